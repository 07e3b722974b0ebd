"""How ``gatekey check`` runs a helper: exactly as the app does (see check.py's docstring).

The executable by absolute path, no arguments, stdin at end of file, the filesystem root as
working directory, its own process group (process.Child; killed whole at the time limit), and the
minimal environment the app gives it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from gatekey import context, process

SCALE_ENV = "GATEKEY_CHECK_TIME_SCALE"
KILLED_GRACE = 2.0  # seconds to read what a killed helper wrote (its group is gone)
PASS_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR",
    "DBUS_SESSION_BUS_ADDRESS", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY",
    "https_proxy", "http_proxy", "all_proxy", "no_proxy",
)  # fmt: skip
# What the desktop session gives every app it starts, Claude included: without them a sign-in in
# the interactive context cannot open a browser (webbrowser and xdg-open look for a display, a
# $BROWSER, the desktop in use), and `check --interactive` would fail where `gatekey login` works.
PASS_ENV_DESKTOP = (
    "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "BROWSER", "DESKTOP_SESSION",
    "GNOME_DESKTOP_SESSION_ID", "KDE_FULL_SESSION", "KDE_SESSION_VERSION",
)  # fmt: skip
PASS_ENV_WINDOWS = (
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE",
    "USERNAME", "HOMEDRIVE", "HOMEPATH", "APPDATA", "LOCALAPPDATA", "PROGRAMDATA",
)  # fmt: skip
PASS_PREFIXES = ("XDG_", "GATEKEY_")


@dataclass
class Capture:
    """What one run did. ``code`` is None when it never started or was killed at the limit."""

    code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    seconds: float = 0.0
    timed_out: bool = False
    held_open: bool = False
    start_error: str | None = None


def minimal_env(ctx: str, profile: str | None, environ: dict[str, str]) -> dict[str, str]:
    """The environment of one run (see check.py's docstring)."""
    names = PASS_ENV + PASS_ENV_DESKTOP + (PASS_ENV_WINDOWS if sys.platform == "win32" else ())
    env = {k: v for k, v in environ.items() if k in names or k.startswith(PASS_PREFIXES)}
    env.pop(SCALE_ENV, None)
    if profile is not None:
        env["GATEKEY_PROFILE"] = profile
    if ctx != "unset":
        env[context.ENV] = ctx
    if ctx == "setup-test":
        env["CLAUDE_HELPER_MANUAL_RUN"] = "1"
    return env


def run_helper(path: str, env: dict[str, str], limit: float) -> Capture:
    """Run ``path`` with no arguments the way the app does; stop its process group at ``limit``."""
    started = time.monotonic()
    try:
        child = process.Child([path], env=env, cwd=os.path.abspath(os.sep))
    except OSError as e:
        return Capture(start_error=e.strerror or type(e).__name__)
    with child:
        code = child.wait(limit)
        cap = Capture(code=code, timed_out=code is None)
        if not cap.timed_out:
            # The app reads until end of file: a child that inherited the pipes keeps it waiting.
            cap.held_open = not child.drain(max(started + limit - time.monotonic(), 0))
        cap.seconds = min(time.monotonic() - started, limit)
        if cap.held_open:
            child.kill()
        if cap.timed_out or cap.held_open:
            child.drain(KILLED_GRACE)  # what it wrote before it was killed
        cap.stdout, cap.stderr = child.stdout, child.stderr
    return cap
