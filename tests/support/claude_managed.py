"""Claude's managed settings for a test: the Linux file, written under the test's own
GATEKEY_MANAGED_ROOT (helpers/gatekey/diagnostics/claude_settings.py), never this machine's /etc;
and reading doctor's text report back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from blackbox_env import Env, Result, exe

# One check's line of doctor's text report: verdict, check, what it found.
DOCTOR_LINE = re.compile(r"^(OK|WARN|FAIL|SKIP)\s+(\S+)\s+(.*)$")

# What `gatekey mdm` writes for a gateway whose helper is gatekey (less the URL and numbers).
GATEWAY = {
    "inferenceProvider": "gateway",
    "inferenceCredentialKind": "helper-script",
}


def write_managed_settings(gk: Env, values: dict[str, str], mode: int = 0o644) -> Path:
    """Write ``values`` as Claude's managed-settings.json (directories root-only writable, as
    the app demands) and point gk's runs at it; the file's path."""
    root = gk.root / "claude-managed-root"
    gk.vars["GATEKEY_MANAGED_ROOT"] = str(root)
    path = root / "etc" / "claude-desktop" / "managed-settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in (root, path.parent.parent, path.parent):
        folder.chmod(0o755)
    path.write_text(json.dumps(values))
    path.chmod(mode)
    return path


def gateway_with_helper(gk: Env, helper: str | None = None, **values: str) -> Path:
    """Managed settings for a gateway whose inferenceCredentialHelper is ``helper`` (default:
    the installed gatekey), plus ``values``."""
    settings = {**GATEWAY, "inferenceCredentialHelper": helper or exe(), **values}
    return write_managed_settings(gk, settings)


def doctor_lines(r: Result) -> dict[str, tuple[str, str]]:
    """{check: (verdict, its text and fix lines)} from doctor's text report."""
    found: dict[str, tuple[str, str]] = {}
    current = None
    for line in r.out.splitlines()[1:]:
        m = DOCTOR_LINE.match(line)
        if m:
            current = m.group(2)
            found[current] = (m.group(1), m.group(3))
        elif line.strip().startswith("fix:") and current:
            verdict, text = found[current]
            found[current] = (verdict, f"{text}\n{line.strip()}")
    return found
