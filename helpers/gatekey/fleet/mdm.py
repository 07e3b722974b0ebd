"""`gatekey mdm`: Claude's managed configuration for a gateway with this helper, or gatekey's own
system config, generated from a profile so that no admin writes these formats by hand.

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
"""

from __future__ import annotations

import math
import os
import sys

from gatekey import config, kinds, output
from gatekey.errors import ConfigError, UsageProblem
from gatekey.fleet import managed, system_config
from gatekey.fleet.files import Note, write_file

TTL_MARGIN = 300  # seconds between min_ttl and the TTL the app is given
TIMEOUT_MARGIN = 15  # seconds above gatekey's silent deadline: start-up, a slow disk
# The OS each format configures: this machine's own gatekey path is a default only there.
TARGET_PLATFORM = {
    "mobileconfig": "darwin",
    "plist": "darwin",
    "reg": "win32",
    "linux-json": "linux",
}


def gatekey_config(
    family: str | None, profile: str | None, *, all_profiles: bool, out: str | None, note: Note
) -> None:
    """gatekey's own system config (TOML) with the selected profile and the ones it uses (or
    every profile), on stdout or into ``out``."""
    cfg, name, _prof = _selected(family, profile)
    names = cfg.profile_names if all_profiles else system_config.linked(cfg, [name])
    data = system_config.render(cfg, names, name).encode("utf-8")
    _emit(data, out, note)
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
    out: str | None,
    note: Note,
) -> None:
    """Claude's managed configuration in ``fmt`` (managed.FORMATS), on stdout or into ``out``;
    the values not given come from the profile (see the module docstring)."""
    cfg, name, prof = _selected(family, profile)
    if not gateway_url:
        raise UsageProblem("--gateway-url", "is required, e.g. https://llm-gw.example.com")
    url = managed.check_gateway_url(gateway_url)
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
    else:
        timeout = managed.check_timeout(timeout, silent)
        if sign_in and timeout < cfg.timeout("interactive"):
            note(
                f"--timeout {timeout} is shorter than gatekey's interactive deadline "
                f"({cfg.timeout('interactive'):g} s): a sign-in during an app run may be cut "
                f"short; have people sign in beforehand (gatekey login -p {name})"
            )
    values = managed.settings(
        gateway_url=url,
        helper=helper,
        auth_scheme=auth_scheme or prof.values["auth_scheme"],
        ttl=ttl,
        timeout=timeout,
        headers=managed.check_headers(headers),
    )
    _emit(managed.render(fmt, values, identifier=identifier), out, note)
    if not exists and not windows:
        note(f"{helper} does not exist on this machine; make sure it does on the endpoints")
    chosen = _no_argument_profile(cfg, family)
    if default_helper and profile and chosen != name:
        note(
            f'a no-argument run of {helper} selects profile "{chosen}", '
            f'not "{name}": pin it with gatekey wrap -p {name} -o PATH and pass --helper PATH, '
            "or make it default_profile (gatekey mdm --gatekey-config)"
        )
    note(managed.install_note(fmt, out))


def _selected(family: str | None, profile: str | None) -> tuple[config.Config, str, config.Profile]:
    cfg = config.load()
    name = config.select_profile(cfg, profile, family)
    return cfg, name, cfg.profile(name)  # validates it: exit 78 naming the key


def _no_argument_profile(cfg: config.Config, family: str | None) -> str | None:
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
