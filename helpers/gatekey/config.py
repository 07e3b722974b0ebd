"""TOML configuration: locating, merging, validating, and where each value came from.

Standard library only: the no-argument cache hit loads the config too.

Files, in order of precedence (a value set in an earlier file wins, key by key):
1. the system-managed file (admins; see ``paths.managed_config_file``);
2. the user file: ``$GATEKEY_CONFIG`` if set, else ``<user config dir>/config.toml``.
With no file at all, an embedded profile ``default`` (keychain, service ``gatekey``) applies.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from gatekey import credential_headers, paths, regular, sources
from gatekey.errors import ConfigError, NotRegular, Unresolvable
from gatekey.kinds import Profile as Profile
from gatekey.schema import BUILTIN_ORIGIN as BUILTIN_ORIGIN
from gatekey.schema import COMMON_KEYS as COMMON_KEYS
from gatekey.schema import DEFAULT_MIN_TTL as DEFAULT_MIN_TTL
from gatekey.schema import PRESENTATION_KEYS as PRESENTATION_KEYS
from gatekey.schema import PROFILE_NAME, KeySpec, check_value, describe

# Per-context time budgets, [timeouts] table.
TIMEOUT_KEYS: dict[str, KeySpec] = {
    "interactive": KeySpec("duration", 120.0, doc="a person is present"),
    "mid_session_refresh": KeySpec(
        "duration", 15.0, doc="silent refresh; the app kills the helper at 20 s"
    ),
    "silent": KeySpec("duration", 10.0, doc="scheduled-task, setup-test, background"),
}
MAX_CONFIG_BYTES = 1 << 20
MAX_MID_SESSION = 19.0  # the app clamps mid-session-refresh runs to 20 s
TOP_KEYS = ("default_profile", "log_file", "profiles", "timeouts")

EMBEDDED_PROFILES: dict[str, dict[str, Any]] = {"default": {"source": "keychain"}}


class Config:
    """The merged configuration. Profiles are validated when asked for, one at a time."""

    def __init__(self, layers: list[tuple[str, dict[str, Any]]]) -> None:
        # layers: (path, parsed table), highest precedence first.
        self.files = [path for path, _ in layers]
        self._raw_profiles: dict[str, dict[str, tuple[Any, str]]] = {}
        self._top: dict[str, tuple[Any, str]] = {}
        for path, data in reversed(layers):  # lowest precedence first; later layers overwrite
            for key, value in data.items():
                if key == "profiles":
                    for name, table in value.items():
                        merged = self._raw_profiles.setdefault(name, {})
                        for pkey, pvalue in table.items():
                            merged[pkey] = (pvalue, path)
                elif key == "timeouts":
                    for tkey, tvalue in value.items():
                        self._top[f"timeouts.{tkey}"] = (tvalue, path)
                else:
                    self._top[key] = (value, path)
        if not self._raw_profiles:
            for name, table in EMBEDDED_PROFILES.items():
                self._raw_profiles[name] = {k: (v, BUILTIN_ORIGIN) for k, v in table.items()}

    # --- profiles -------------------------------------------------------------------------
    @property
    def profile_names(self) -> list[str]:
        return sorted(self._raw_profiles)

    def raw_kind(self, name: str) -> str | None:
        entry = self._raw_profiles.get(name, {}).get("source")
        return entry[0] if entry and isinstance(entry[0], str) else None

    def profile(self, name: str) -> Profile:
        raw = self._raw_profiles.get(name)
        if raw is None:
            close = _close(name, self.profile_names)
            raise ConfigError(
                "no such profile"
                + (f' (did you mean "{close}"?)' if close else "")
                + f"; the profiles are: {', '.join(self.profile_names)}",
                file=self.describe_files(),
                profile=name,
                fix=None if close else f"to add it, run: gatekey profile add {name} --source KIND",
            )
        source_entry = raw.get("source")
        if source_entry is None:
            raise ConfigError(
                f"missing required key; set source = one of {_kind_list()}",
                file=self._file_of(raw),
                profile=name,
                key="source",
            )
        kind, kind_origin = source_entry
        if not isinstance(kind, str):
            raise ConfigError(
                "expected a string naming the source", file=kind_origin, profile=name, key="source"
            )
        spec = sources.find(kind)
        if spec is None:
            raise ConfigError(
                f"unknown source {kind!r}{_did_you_mean(kind, list(sources.BUILTIN))}; "
                f"known sources: {_kind_list()}",
                file=kind_origin,
                profile=name,
                key="source",
            )
        allowed = {**COMMON_KEYS, **spec.keys}
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for key, (value, origin) in raw.items():
            key_spec = allowed.get(key)
            if key_spec is None:
                raise ConfigError(
                    f"unknown key for {_article(kind)} {kind} profile{_suggest(key, allowed)}",
                    file=origin,
                    profile=name,
                    key=key,
                )
            try:
                values[key] = check_value(key_spec, value)
            except ValueError as e:
                raise ConfigError(str(e), file=origin, profile=name, key=key) from None
            origins[key] = origin
        for key, key_spec in allowed.items():
            if key in values:
                continue
            if key_spec.required:
                raise ConfigError(
                    f"missing required key ({describe(key_spec)}: {key_spec.doc})",
                    file=self._file_of(raw),
                    profile=name,
                    key=key,
                )
            default = key_spec.default
            values[key] = name if default == PROFILE_NAME else default
            origins[key] = BUILTIN_ORIGIN
        problem = credential_headers.profile_problem(values["headers"], values["auth_scheme"])
        if problem is not None:
            raise ConfigError(problem, file=origins["headers"], profile=name, key="headers")
        return Profile(name, spec, values, origins)

    def _file_of(self, raw: dict[str, tuple[Any, str]]) -> str:
        origins = {origin for _, origin in raw.values()}
        return " + ".join(sorted(origins)) or self.describe_files()

    def describe_files(self) -> str:
        return " + ".join(self.files) if self.files else "(no config file; built-in default)"

    # --- top-level settings ---------------------------------------------------------------
    @property
    def default_profile(self) -> tuple[str | None, str]:
        value, origin = self._top.get("default_profile", (None, BUILTIN_ORIGIN))
        return value, origin

    @property
    def log_file(self) -> tuple[str | None, str]:
        """The run log (one JSON line per helper run), if configured: (path, origin)."""
        value, origin = self._top.get("log_file", (None, BUILTIN_ORIGIN))
        return (paths.expand(value) if value else None), origin

    def timeout(self, key: str) -> float:
        return float(self.timeout_with_origin(key)[0])

    def timeout_with_origin(self, key: str) -> tuple[float, str]:
        spec = TIMEOUT_KEYS[key]
        value, origin = self._top.get(f"timeouts.{key}", (spec.default, BUILTIN_ORIGIN))
        return float(value), origin

    def top_level(self) -> dict[str, tuple[Any, str]]:
        out: dict[str, tuple[Any, str]] = {
            "default_profile": self.default_profile,
            "log_file": self.log_file,
        }
        for key in TIMEOUT_KEYS:
            out[f"timeouts.{key}"] = self.timeout_with_origin(key)
        return out


def _kind_list() -> str:
    return ", ".join(sorted(sources.BUILTIN))


def _suggest(key: str, allowed: dict[str, KeySpec]) -> str:
    hint = _close(key, list(allowed))
    did_you_mean = f"; did you mean {hint!r}?" if hint else ""
    return f"{did_you_mean} (allowed: {', '.join(sorted(allowed))})"


def _did_you_mean(word: str, known: list[str]) -> str:
    hint = _close(word, known)
    return f" (did you mean {hint!r}?)" if hint else ""


def _close(word: str, known: list[str]) -> str | None:
    """The known name ``word`` most likely misspells, if any."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, known, n=1)
    return close[0] if close else None


def _article(kind: str) -> str:
    return "an" if kind[:1].lower() in "aeiou" else "a"  # an entra, an oidc, a vault profile


# --- loading ------------------------------------------------------------------------------
def locate() -> list[tuple[str, bool]]:
    try:
        return paths.config_files()
    except Unresolvable as e:
        raise ConfigError(f"cannot locate the config file: {e}") from None


def load(only: str | None = None) -> Config:
    """Read and merge every config file; ConfigError names the file and key of any mistake.

    ``only``: that one file instead, required and not held to the managed file's rules (the
    fleet's config an admin generates for with `gatekey mdm --config`)."""
    layers: list[tuple[str, dict[str, Any]]] = []
    files = locate() if only is None else [(only, True)]
    for index, (path, required) in enumerate(files):
        data = _read(path, required, managed=index == 0 and only is None)
        if data is not None:
            _check_shape(path, data)
            layers.append((path, data))
    return Config(layers)


def _read(path: str, required: bool, *, managed: bool = False) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        fd = regular.open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        if required:
            raise ConfigError("file not found (set by GATEKEY_CONFIG)", file=path) from None
        return None
    except NotRegular as e:
        raise ConfigError(f"is {e.what}, expected a TOML file", file=path) from None
    except OSError as e:
        raise ConfigError(f"cannot read the file ({e.strerror})", file=path) from None
    try:
        if managed:
            _check_managed_file(path, os.fstat(fd))
        with os.fdopen(fd, "rb") as f:
            fd = -1
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read the file ({e.strerror})", file=path) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"larger than {MAX_CONFIG_BYTES // 1024} KiB; a gatekey config is a few lines",
            file=path,
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(
            "starts with a byte-order mark (BOM), which TOML does not allow; save it as "
            "UTF-8 without BOM (in Notepad: Save as, Encoding: UTF-8)",
            file=path,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("not valid UTF-8 text", file=path) from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML ({e})", file=path) from None
    except RecursionError:
        raise ConfigError("not valid TOML (nested too deeply)", file=path) from None


def _check_managed_file(path: str, st: os.stat_result) -> None:
    """The admin's file decides which helper commands run and where tokens go: refuse it if
    anyone but its owner could have changed it, or (the real system file) if root does not own
    it. Checked on the open file, so it cannot be swapped between the check and the read."""
    if sys.platform == "win32":
        return  # %ProgramData% ACLs; checked by the installer
    import stat

    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"the managed config is writable by other users (mode {mode:o}), so anyone could "
            f"change what gatekey runs; refusing it. Run: sudo chmod 644 {path}",
            file=path,
        )
    if path == paths.managed_config_file() and st.st_uid != 0:
        raise ConfigError(
            f"the managed config is owned by uid {st.st_uid}, not root, so that user could change "
            f"what gatekey runs for everyone; refusing it. Run: sudo chown root {path}",
            file=path,
        )


def _check_shape(path: str, data: dict[str, Any]) -> None:
    """Top-level structure; profile contents are checked when the profile is used."""
    for key, value in data.items():
        if key not in TOP_KEYS:
            raise ConfigError(
                f"unknown top-level key{_suggest(key, dict.fromkeys(TOP_KEYS, KeySpec('str')))}",
                file=path,
                key=key,
            )
        if key == "default_profile" and (not isinstance(value, str) or not value):
            raise ConfigError("expected a profile name (a string)", file=path, key=key)
        if key == "log_file" and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(
                "expected the path of the run log (a string), e.g. "
                '"~/.local/state/gatekey/runs.jsonl"',
                file=path,
                key=key,
            )
        if key == "log_file":
            try:
                paths.expand(value)
            except Unresolvable as e:
                raise ConfigError(str(e), file=path, key=key) from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError("expected tables such as [profiles.corp]", file=path, key="profiles")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(f"expected a table [profiles.{name}]", file=path, profile=name)
    timeouts = data.get("timeouts", {})
    if not isinstance(timeouts, dict):
        raise ConfigError("expected a table [timeouts]", file=path, key="timeouts")
    for key, value in timeouts.items():
        spec = TIMEOUT_KEYS.get(key)
        if spec is None:
            raise ConfigError(
                f"unknown timeout{_suggest(key, TIMEOUT_KEYS)}", file=path, key=f"timeouts.{key}"
            )
        try:
            seconds = check_value(spec, value)
        except ValueError as e:
            raise ConfigError(str(e), file=path, key=f"timeouts.{key}") from None
        limit = MAX_MID_SESSION if key == "mid_session_refresh" else 600.0
        if not 0 < seconds <= limit:
            raise ConfigError(
                f"must be more than 0 s and at most {limit:g} s", file=path, key=f"timeouts.{key}"
            )
        timeouts[key] = seconds


# --- profile selection --------------------------------------------------------------------
def select_profile(
    cfg: Config,
    explicit: str | None = None,
    family: str | None = None,
) -> str:
    """Which profile a run uses: -p, else $GATEKEY_PROFILE, else default_profile, else the only one.

    ``family`` restricts to one source family (gatekey-keychain, gatekey-idp, gatekey-vault).
    """

    def in_family(name: str) -> bool:
        if family is None:
            return True
        kind = cfg.raw_kind(name)
        if kind is None:
            return False
        spec = sources.find(kind)
        return spec is not None and spec.family == family

    chosen = explicit or os.environ.get("GATEKEY_PROFILE", "").strip() or None
    if chosen is not None:
        if chosen in cfg.profile_names and not in_family(chosen):
            raise ConfigError(
                f"uses source {cfg.raw_kind(chosen)!r}, but gatekey-{family} serves only "
                f"{sources.FAMILIES[family or '']} profiles; use: gatekey -p {chosen}",
                file=cfg.describe_files(),
                profile=chosen,
            )
        return chosen
    default, origin = cfg.default_profile
    if default is not None and default not in cfg.profile_names:
        raise ConfigError(
            f"names profile {default!r}, which does not exist"
            f"{_did_you_mean(default, cfg.profile_names)}; "
            f"the profiles are: {', '.join(cfg.profile_names)}",
            file=origin,
            key="default_profile",
        )
    if default is not None and in_family(default):
        return default
    candidates = [n for n in cfg.profile_names if in_family(n)]
    if len(candidates) == 1:
        return candidates[0]
    what = f"{sources.FAMILIES[family]} profiles" if family else "profiles"
    if not candidates:
        raise ConfigError(
            f"no {what} are configured (profiles: {', '.join(cfg.profile_names)})",
            file=cfg.describe_files(),
        )
    raise ConfigError(
        f"several {what} and no default: set default_profile, GATEKEY_PROFILE or -p "
        f"to one of: {', '.join(candidates)}",
        file=cfg.describe_files(),
        key="default_profile",
    )
