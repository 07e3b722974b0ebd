"""Where gatekey's files live on each OS. Standard library only: the cache hit reads these.

The user directories follow platformdirs' rules (``user_config_dir("gatekey", appauthor=False)``,
``user_cache_dir``); they are written out here because the no-argument cache hit may import only
the standard library, and a test holds them equal to platformdirs on the test platform.
"""

from __future__ import annotations

import os
import sys

from gatekey.errors import Unresolvable

APP = "gatekey"


def home() -> str:
    """The user's home directory: $HOME, else the password database; never a relative path.

    ``os.path.expanduser`` returns "~/..." unchanged when neither is available (a container
    running an arbitrary uid), which would make every path relative to the working directory.
    """
    value = os.environ.get("USERPROFILE" if sys.platform == "win32" else "HOME", "")
    if not value:
        expanded = os.path.expanduser("~")
        value = "" if expanded == "~" else expanded
    if not value:
        raise Unresolvable(
            "cannot find your home directory: HOME is not set and this user has no entry in "
            "the password database; set HOME, or GATEKEY_CONFIG and GATEKEY_CACHE_DIR to "
            "absolute paths"
        )
    if not os.path.isabs(value):
        raise Unresolvable(
            f"HOME is a relative path ({value!r}); set it to an absolute path, or set "
            "GATEKEY_CONFIG and GATEKEY_CACHE_DIR to absolute paths"
        )
    return value


def expand(path: str) -> str:
    """``~`` expanded against home(); Unresolvable if the result would not be absolute."""
    if path == "~" or path.startswith(("~/", "~" + os.sep)):
        path = home() + path[1:]
    if not os.path.isabs(path):
        raise Unresolvable(
            f"{path!r} is a relative path, which would depend on the working directory; "
            "give an absolute path (or one starting with ~/)"
        )
    return path


def managed_config_file() -> str:
    """The admin's system-wide config file (managed settings win over the user's)."""
    if sys.platform == "darwin":
        return "/Library/Application Support/gatekey/config.toml"
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA") or r"C:\ProgramData"
        return os.path.join(base, APP, "config.toml")
    return "/etc/gatekey/config.toml"


def _xdg(var: str, fallback: str) -> str:
    value = os.environ.get(var, "")
    # The XDG base directory spec: a relative value is invalid and must be ignored.
    return value if value.strip() and os.path.isabs(value) else expand(fallback)


def _windows_local_appdata() -> str:
    return os.environ.get("LOCALAPPDATA") or expand(r"~\AppData\Local")


def _absolute_override(var: str) -> str | None:
    value = os.environ.get(var)
    if not value:
        return None
    if not os.path.isabs(value):
        raise Unresolvable(
            f"{var} is a relative path ({value!r}), which would depend on the working "
            "directory; set it to an absolute path"
        )
    return value


def user_config_dir() -> str:
    if sys.platform == "darwin":
        return expand(f"~/Library/Application Support/{APP}")
    if sys.platform == "win32":
        return os.path.join(_windows_local_appdata(), APP)
    return os.path.join(_xdg("XDG_CONFIG_HOME", "~/.config"), APP)


def user_config_file() -> str:
    return _absolute_override("GATEKEY_CONFIG") or os.path.join(user_config_dir(), "config.toml")


def cache_dir() -> str:
    override = _absolute_override("GATEKEY_CACHE_DIR")
    if override:
        return override
    if sys.platform == "darwin":
        return expand(f"~/Library/Caches/{APP}")
    if sys.platform == "win32":
        return os.path.join(_windows_local_appdata(), APP, "Cache")
    return os.path.join(_xdg("XDG_CACHE_HOME", "~/.cache"), APP)


def config_files() -> list[tuple[str, bool]]:
    """Config files, highest precedence first, each with whether it must exist.

    GATEKEY_MANAGED_CONFIG stands in a managed file on a machine that has none (packaging,
    tests); it never shadows a real one, so a user cannot opt out of the admin's settings.
    """
    managed = managed_config_file()
    override = os.environ.get("GATEKEY_MANAGED_CONFIG")
    if override and not os.path.exists(managed):
        managed = override
    return [(managed, False), (user_config_file(), bool(os.environ.get("GATEKEY_CONFIG")))]


def config_fingerprint() -> list[list[int] | None]:
    """Stat signatures of the config files: any edit, replacement or removal changes it."""
    out: list[list[int] | None] = []
    for path, _ in config_files():
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append([st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino])
    return out
