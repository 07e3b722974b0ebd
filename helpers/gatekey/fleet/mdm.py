"""`gatekey mdm`: Claude's managed configuration for a gateway with this helper, or gatekey's own
system config, generated from a profile so that no admin writes these formats by hand.

The config: with ``--config FILE``, that file alone (the fleet's config, which this machine's
system config, the admin's own config and ``GATEKEY_PROFILE`` then do not touch); without it,
this machine's config as any gatekey command reads it. Either way stderr names the files, the
profile and why it was chosen, and where each default number came from.

Defaults come from the profile (``-p``, else the usual selection):
- the helper: this installed executable (``gatekey``, or ``gatekey-<family>`` when run as that);
- the auth scheme: the profile's ``auth_scheme``;
- the TTL: the profile's ``min_ttl`` minus 5 minutes. gatekey never prints a token with less than
  ``min_ttl`` left and the app keeps a printed token for its TTL without looking at the expiry,
  so TTL <= min_ttl is what keeps the app from using an expired token; the margin covers clock
  skew and the request in flight (``min_ttl`` 65 min, the default, gives the app's own 3600);
- the timeout: ``[timeouts] interactive`` (120 s) when a person may sign in during a run (an
  entra / oidc profile with a browser or device-code flow, or a vault / Key Vault logging in
  through one), else ``[timeouts] silent`` + 15 s.

Claude's other documented keys come from ``--set KEY=VALUE`` (checked in fleet/claude_keys.py);
the sibling helpers' keys (MCP servers, the OTLP exporter, a plugin marketplace) from their own
options (fleet/siblings.py), checked by the same rules against the profile each helper serves.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator

from gatekey import config, kinds, output
from gatekey.errors import ConfigError, UsageProblem
from gatekey.fleet import managed, siblings, system_config
from gatekey.fleet.files import Note, write_file
from gatekey.schema import BUILTIN_ORIGIN

TTL_MARGIN = 300  # seconds between min_ttl and the TTL the app is given
TIMEOUT_MARGIN = 15  # seconds above gatekey's silent deadline: start-up, a slow disk
# The OS each format configures: this machine's own gatekey path is a default only there.
TARGET_PLATFORM = {
    "mobileconfig": "darwin",
    "plist": "darwin",
    "reg": "win32",
    "linux-json": "linux",
}
PROFILE_ENV = "GATEKEY_PROFILE"


def gatekey_config(
    family: str | None,
    profile: str | None,
    *,
    all_profiles: bool,
    config_file: str | None,
    out: str | None,
    note: Note,
) -> None:
    """gatekey's own system config (TOML) with the selected profile and the ones it uses (or
    every profile), on stdout or into ``out``."""
    cfg, name, _prof, source = _selected(family, profile, config_file)
    names = cfg.profile_names if all_profiles else system_config.linked(cfg, [name])
    data = system_config.render(cfg, names, name).encode("utf-8")
    _emit(data, out, note)
    note(f"generated from {source}")
    note(
        "install it root/Administrators-owned, not user-writable, at "
        + "; ".join(f"{k}: {v}" for k, v in system_config.MANAGED_PATHS.items())
    )


def claude_config(
    family: str | None,
    profile: str | None,
    *,
    fmt: str,
    gateway_url: str | None,
    helper: str | None,
    ttl: int | None,
    timeout: int | None,
    auth_scheme: str | None,
    headers: tuple[str, ...],
    identifier: str,
    allow_credential_headers: tuple[str, ...] = (),
    config_file: str | None,
    extra: dict[str, str],
    out: str | None,
    note: Note,
    sibling: siblings.Request | None = None,
    force: bool = False,
) -> None:
    """Claude's managed configuration in ``fmt`` (managed.FORMATS), on stdout or into ``out``;
    the values not given come from the profile (see the module docstring). ``extra``: further
    documented keys, already checked (claude_keys.parse); ``sibling``: the sibling helpers' keys
    to add; ``force``: use sibling helper paths others could replace (with a warning)."""
    cfg, name, prof, source = _selected(family, profile, config_file)
    if not gateway_url:
        raise UsageProblem("--gateway-url", "is required, e.g. https://llm-gw.example.com")
    url = managed.check_gateway_url(gateway_url)
    derived: list[str] = []  # where each default came from, for the admin (stderr)
    default_helper = helper is None
    windows = fmt in managed.WINDOWS_FORMATS
    if helper is None:
        from gatekey.diagnostics.check import default_helper as find_helper

        if not sys.platform.startswith(TARGET_PLATFORM[fmt]):
            raise UsageProblem(
                "--helper",
                f"is required for --format {fmt} here: this machine's gatekey is not the path on "
                f"the endpoints, e.g. {managed.EXAMPLE_HELPER[windows]}",
            )
        helper = find_helper(family)
    exists = os.path.isfile(helper)
    helper = managed.check_helper_path(helper, windows=windows, exists=exists)
    min_ttl = float(prof.values["min_ttl"])
    if ttl is None:
        ttl = int(min_ttl) - TTL_MARGIN
        derived.append(
            f"TTL {ttl} = min_ttl {min_ttl:g} s ({_origin(prof.origins['min_ttl'])}) "
            f"- {TTL_MARGIN} s"
        )
        if ttl <= managed.MIN_APP_TTL:
            raise ConfigError(
                f"min_ttl {min_ttl:g} s leaves no workable TTL (min_ttl - {TTL_MARGIN} s must be "
                f"above {managed.MIN_APP_TTL} s); raise min_ttl (the default is 65m) or give --ttl",
                file=prof.origins["min_ttl"],
                profile=name,
                key="min_ttl",
            )
    else:
        ttl = managed.check_ttl(ttl, min_ttl, name)
    silent = cfg.timeout("silent")
    sign_in = _signs_in(cfg, prof)
    if timeout is None:
        wanted = cfg.timeout("interactive") if sign_in else silent + TIMEOUT_MARGIN
        timeout = min(managed.MAX_APP_TIMEOUT, math.ceil(max(wanted, silent)))
        how = _timeout_origin(cfg, sign_in)
        if timeout != math.ceil(wanted):  # kept within the app's range and above silent
            how += f", made {timeout}"
        derived.append(f"timeout {timeout} = {how}")
    else:
        timeout = managed.check_timeout(timeout, silent)
        if sign_in and timeout < cfg.timeout("interactive"):
            note(
                f"--timeout {timeout} is shorter than gatekey's interactive deadline "
                f"({cfg.timeout('interactive'):g} s): a sign-in during an app run may be cut "
                f"short; have people sign in beforehand (gatekey login -p {name})"
            )
    if auth_scheme is None:
        auth_scheme = prof.values["auth_scheme"]
        derived.append(
            f"auth scheme {auth_scheme} = auth_scheme ({_origin(prof.origins['auth_scheme'])})"
        )
    values = managed.settings(
        gateway_url=url,
        helper=helper,
        auth_scheme=auth_scheme,
        ttl=ttl,
        timeout=timeout,
        headers=managed.check_headers(headers, allow_credential_headers),
    )
    for header in allow_credential_headers:  # check_headers made sure each names a --header
        note(
            f"warning: {managed.ALLOW_FLAG} {header}: {managed.STATIC_CREDENTIAL_RISK}; rotate "
            "it for everyone if it leaks"
        )
    values.update(extra)  # never a key settings() wrote: claude_keys refuses those
    chosen = _no_argument_profile(cfg, family, config_file)
    if sibling is not None:
        target = siblings.Target(
            cfg=cfg,
            profile=name,
            no_argument=chosen,
            windows=windows,
            gateway_url=url,
            ttl_margin=TTL_MARGIN,
            force=force,
            note=note,
        )
        more, origins = siblings.values(sibling, target, extra)
        values.update(more)  # managedMcpServers: --set's entries and ours, merged
        derived += origins
    _emit(managed.render(fmt, values, identifier=identifier), out, note)
    warning = managed.gateway_url_warning(url)
    if warning:
        note(f"warning: {warning}")
    if derived:
        note(f"from {source}: " + "; ".join(derived))
    else:
        note(f"checked against {source}")
    if not config_file:
        note("to generate from the fleet's gatekey config alone, give --config FILE")
    if not exists and not windows:
        note(f"{helper} does not exist on this machine; make sure it does on the endpoints")
    if default_helper and profile and chosen != name:
        note(
            f'a no-argument run of {helper} selects profile "{chosen}", '
            f'not "{name}": pin it with gatekey wrap -p {name} -o PATH and pass --helper PATH, '
            "or make it default_profile (gatekey mdm --gatekey-config)"
        )
    note(managed.install_note(fmt, out))


@contextlib.contextmanager
def _fleet_only(config_file: str | None) -> Iterator[None]:
    """With --config, the result depends on that file and the command line alone: the admin's
    GATEKEY_PROFILE (a choice for this machine, not the fleet) is set aside meanwhile, so the
    profile is -p, else the file's default_profile, else its only profile, as on an endpoint."""
    saved = os.environ.pop(PROFILE_ENV, None) if config_file else None
    try:
        yield
    finally:
        if saved is not None:
            os.environ[PROFILE_ENV] = saved


def _selected(
    family: str | None, profile: str | None, config_file: str | None
) -> tuple[config.Config, str, config.Profile, str]:
    """The config, the profile's name and validated values, and a phrase saying where they came
    from (which files, and why this profile) for the admin to read."""
    cfg = config.load(os.path.abspath(config_file) if config_file else None)
    with _fleet_only(config_file):
        name = config.select_profile(cfg, profile, family)
        by_env = bool(os.environ.get(PROFILE_ENV, "").strip())
    prof = cfg.profile(name)  # validates it: exit 78 naming the key
    if profile:
        why = "-p"
    elif by_env:
        why = PROFILE_ENV
    elif cfg.default_profile[0] == name:
        why = "default_profile"
    else:
        why = "the only profile"
    files = cfg.describe_files()
    where = f"--config {files}" if config_file else f"this machine's config {files}"
    return cfg, name, prof, f'profile "{name}" ({why}) of {where}'


def _origin(origin: str) -> str:
    return origin if origin == BUILTIN_ORIGIN else f"set in {origin}"


def _timeout_origin(cfg: config.Config, sign_in: bool) -> str:
    silent, where = cfg.timeout_with_origin("silent")
    if not sign_in:
        return f"[timeouts] silent {silent:g} s ({_origin(where)}) + {TIMEOUT_MARGIN} s"
    interactive, where = cfg.timeout_with_origin("interactive")
    return (
        f"[timeouts] interactive {interactive:g} s ({_origin(where)}), as a person may sign in "
        "during a run"
    )


def _no_argument_profile(
    cfg: config.Config, family: str | None, config_file: str | None
) -> str | None:
    with _fleet_only(config_file):
        try:
            return config.select_profile(cfg, None, family)
        except ConfigError:
            return None


def _signs_in(cfg: config.Config, prof: config.Profile) -> bool:
    """Whether a person may sign in during a run of ``prof`` (itself or a profile it uses)."""
    for name in system_config.linked(cfg, [prof.name]):
        linked = cfg.profile(name)
        if kinds.person_signs_in(linked):
            return True
    return False


def _emit(data: bytes, out: str | None, note: Note) -> None:
    if out is None:
        sys.stdout.flush()
        output.write_payload(data)
        return
    path = write_file(out, data, 0o644)
    note(f"wrote {path}")
