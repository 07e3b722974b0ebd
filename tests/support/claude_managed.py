"""Claude's managed settings for a test: the Linux file, written under the test's own
GATEKEY_MANAGED_ROOT (helpers/gatekey/diagnostics/claude_settings.py), never this machine's /etc.
"""

from __future__ import annotations

import json
from pathlib import Path

from blackbox_env import Env, exe

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
