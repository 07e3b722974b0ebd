"""Where gatekey's files live on each OS. Standard library only: the cache hit reads these.

The user directories follow platformdirs' rules (``user_config_dir("gatekey", appauthor=False)``,
``user_cache_dir``); they are written out here because the no-argument cache hit may import only
the standard library, and a test holds them equal to platformdirs on the test platform.
"""

from __future__ import annotations

import os
import sys

APP = "gatekey"


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
    return value if value.strip() else os.path.expanduser(fallback)


def _windows_local_appdata() -> str:
    return os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")


def user_config_dir() -> str:
    if sys.platform == "darwin":
        return os.path.expanduser(f"~/Library/Application Support/{APP}")
    if sys.platform == "win32":
        return os.path.join(_windows_local_appdata(), APP)
    return os.path.join(_xdg("XDG_CONFIG_HOME", "~/.config"), APP)


def user_config_file() -> str:
    return os.environ.get("GATEKEY_CONFIG") or os.path.join(user_config_dir(), "config.toml")


def cache_dir() -> str:
    override = os.environ.get("GATEKEY_CACHE_DIR")
    if override:
        return override
    if sys.platform == "darwin":
        return os.path.expanduser(f"~/Library/Caches/{APP}")
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
