"""`gatekey profile add`: a new profile in the user's config, commented, validated, secret-free.

The block it appends names every key of the source kind (set ones as given, the rest commented
out with their default and what they do), so the file documents itself. The whole new file is
loaded and the profile built exactly as a run would before it replaces the old one: a mistake
exits 78 and leaves the file as it was. What a no-argument run (Claude) selects is kept unless
--default says otherwise: the first profile written beside the built-in one, or a second beside
a lone one, would otherwise change it (or leave it ambiguous).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import textwrap
import time
from typing import Any

import click

from gatekey import config, kinds, paths, sources
from gatekey.cli.common import State, guarded, no_argument_profile, note, pass_state
from gatekey.errors import ConfigError, HelperError, UsageProblem
from gatekey.schema import COMMON_KEYS, PROFILE_NAME, KeySpec, describe

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TOP_DEFAULT = re.compile(r"(?m)^default_profile[ \t]*=.*$")


@click.group("profile")
def profile_group() -> None:
    """Add profiles to your config file."""


def _complete_kinds(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [kind for kind in sorted(sources.BUILTIN) if kind.startswith(incomplete)]


@profile_group.command("add", short_help="Add a profile, every key of its source commented.")
@click.argument("name")
@click.option(
    "--source",
    "kind",
    default="keychain",
    show_default=True,
    metavar="KIND",
    shell_complete=_complete_kinds,
    help="Where the credential comes from: " + ", ".join(sorted(sources.BUILTIN)) + ".",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help='A key of the profile: a TOML value (true, 600, ["a", "b"], { env = "X" }) or plain '
    "text; repeatable. Never a secret: store it (gatekey store) or reference it.",
)
@click.option("--default", "make_default", is_flag=True, help="Make it the profile Claude uses.")
@pass_state
@guarded
def profile_add(
    st: State, name: str, kind: str, settings: tuple[str, ...], make_default: bool
) -> None:
    """Add profile NAME to your config file (GATEKEY_CONFIG, else the user file).

    Every key of the source is written: those given with --set, the rest commented out with
    their default and meaning. The new file is checked as a run would read it before it
    replaces the old one. For example:

    \b
      gatekey profile add work
      gatekey profile add corp --source entra --set tenant=contoso.com \\
        --set client_id=1111... --set 'scopes=["api://llm-gateway/.default"]'
    """
    if not NAME.fullmatch(name):
        raise UsageProblem(
            "NAME", "use letters, digits, - and _ (at most 64, starting with a letter or digit)"
        )
    values = _parse_settings(settings)
    cfg = config.load()
    target = os.path.realpath(paths.user_config_file())
    existing = _read_text(target)
    built_in = _built_in(cfg)  # the embedded profile "default" is what runs today
    if name in cfg.profile_names and not built_in:
        raise ConfigError(
            "a profile of this name exists already", file=cfg.describe_files(), profile=name
        )
    default, origin = cfg.default_profile
    # What a no-argument run selects today stays selected (unless --default): a second profile
    # beside a lone one would leave it ambiguous, one beside the built-in would replace it.
    keep = None
    if default is None and len(cfg.profile_names) == 1:
        keep = cfg.profile_names[0]
    text = existing
    if built_in and name != "default":
        text += _block("default", "keychain", {}, note="the built-in profile, kept as it was")
    text += _block(name, kind, values)
    text = _with_default(text, name if make_default else keep)
    checked = _checked(target, text, name)
    _write(target, text, existed=existing != "")
    note(f'added profile "{name}" ({kind}) to {target}; next: {_next_step(checked)}')
    if make_default and default is not None and os.path.realpath(origin) != target:
        note(f"warning: the managed config's default_profile ({origin}) wins over yours")
    selected, why = no_argument_profile(config.load(), st.family)
    if selected is not None:
        note(f'a no-argument run (Claude) uses profile "{selected}" ({why})')
    else:
        note(f"warning: a no-argument run (Claude) selects no profile: {why}")


def _built_in(cfg: config.Config) -> bool:
    """Whether the config defines no profile, so the embedded "default" is in use."""
    if cfg.profile_names != ["default"]:
        return False
    try:
        return cfg.profile("default").origins["source"] == config.BUILTIN_ORIGIN
    except ConfigError:
        return False


def _parse_settings(settings: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageProblem("--set", "expected KEY=VALUE (the value itself is not shown)")
        if key == "source":
            raise UsageProblem("--set", "the source is given with --source KIND")
        values[key] = _value(raw.strip())
    return values


def _value(raw: str) -> Any:
    """A TOML value if it is one (true, 600, [..], { .. }, "quoted"), else the text itself."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, ValueError):
        return raw


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the file ({type(e).__name__})", file=path) from None
    return text if not text or text.endswith("\n") else text + "\n"


def _block(name: str, kind: str, values: dict[str, Any], *, note: str | None = None) -> str:
    spec = sources.find(kind)
    lines = ["", f"# Added by `gatekey profile add` on {time.strftime('%Y-%m-%d')}."]
    if spec is not None:
        lines.append(f"# Source {kind}: {spec.summary or kind}.")
    if note:
        lines.append(f"# {note}")
    lines.append("# Every key it may have is below; remove the leading # to set one.")
    lines += [f"[profiles.{name}]", f"source = {_toml(kind)}"]
    lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    keys = {**(spec.keys if spec is not None else {}), **COMMON_KEYS}
    for key, key_spec in keys.items():
        if key != "source" and key not in values:
            lines.append(_commented(name, key, key_spec))
    return "\n".join(lines) + "\n"


def _commented(profile: str, key: str, spec: KeySpec) -> str:
    """What the key does (a comment), then the key commented out: with its default, an example
    reference for a secret, or its type when it has no default."""
    doc = spec.doc
    if spec.type == "choice":
        doc = f"{describe(spec)}: {doc}"
    default = profile if spec.default == PROFILE_NAME else spec.default
    if spec.type == "secret_ref":
        doc += " (a reference, never the secret itself)"
        line = f'# {key} = {{ env = "NAME" }}'
    elif default is None or default == () or default == []:
        line = f"# {key} = ...  ({describe(spec)})"
    elif spec.type == "duration":
        line = f"# {key} = {_toml(_duration(float(default)))}"
    else:
        line = f"# {key} = {_toml(default)}"
    return "\n".join([*textwrap.wrap(doc, 96, initial_indent="# ", subsequent_indent="# "), line])


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _with_default(text: str, name: str | None) -> str:
    """``default_profile = "name"`` at the top level (before every table), or unchanged."""
    if name is None:
        return text
    line = f"default_profile = {_toml(name)}"
    head = ("\n" + text).split("\n[", 1)[0]  # top-level keys come before the first table
    if TOP_DEFAULT.search(head):
        return TOP_DEFAULT.sub(line, text, count=1)
    return f"{line}\n{text}"


def _checked(target: str, text: str, name: str) -> config.Profile:
    """The new profile as a run would build it from ``text`` in place of the user file."""
    from gatekey.refresh import Links, make_source

    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, candidate = tempfile.mkstemp(dir=folder, prefix=".gatekey-", suffix=".toml")
    before = os.environ.get("GATEKEY_CONFIG")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.environ["GATEKEY_CONFIG"] = candidate
        try:
            cfg = config.load()
            prof = cfg.profile(name)
            make_source(prof, Links(cfg))  # what the schema cannot check (e.g. the backend)
        except ConfigError as e:
            if e.file is not None:
                e.file = e.file.replace(candidate, target)
            step = "nothing was written"
            if e.message.startswith("missing required key"):
                step = f"give it with --set {e.key}=VALUE; {step}"
            e.fix = step if e.fix is None else f"{e.fix}; {step}"
            raise
        return prof
    finally:
        if before is None:
            os.environ.pop("GATEKEY_CONFIG", None)
        else:
            os.environ["GATEKEY_CONFIG"] = before
        with contextlib.suppress(OSError):
            os.unlink(candidate)


def _write(target: str, text: str, *, existed: bool) -> None:
    from gatekey.fleet.files import write_file

    mode = 0o600
    if existed:
        with contextlib.suppress(OSError):
            mode = os.stat(target).st_mode & 0o777
    try:
        write_file(target, text.encode("utf-8"), mode)
    except HelperError as e:
        raise ConfigError(e.message, file=target) from None


def _next_step(prof: config.Profile) -> str:
    if kinds.capable(prof.spec, kinds.Storing) is not None:
        return f'printf %s "$KEY" | gatekey store -p {prof.name}'
    if kinds.person_signs_in(prof):
        return f"gatekey login -p {prof.name}"
    return f"gatekey doctor -p {prof.name}"
