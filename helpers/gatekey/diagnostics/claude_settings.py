"""Claude Desktop's managed configuration on this machine, read where the app reads it.

- Linux: ``/etc/claude-desktop/managed-settings.json``. The app rejects the whole file unless it
  is a root-owned regular file, not group/world writable, in a root-owned directory; doctor says
  so instead of reading values the app ignores.
- macOS: ``/Library/Managed Preferences/<user>/com.anthropic.claudefordesktop.plist``, then
  ``/Library/Managed Preferences/com.anthropic.claudefordesktop.plist``.
- Windows: ``HKLM\\SOFTWARE\\Policies\\Claude``, else ``HKCU\\...`` (any value under HKLM hides
  HKCU entirely, as in the app).

``GATEKEY_MANAGED_ROOT=DIR`` reads the Linux/macOS files under DIR instead of ``/`` (tests, or
a copy of another machine's files); ownership is then not checked (permission bits still are).
It has no effect on the Windows registry. Every value read is kept as the string the app stores;
a credential (``inferenceGatewayApiKey``) is never read into them: of the keys that give the app
a credential, only which ones are set is kept (``ClaudeSettings.credentials``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NamedTuple

from gatekey import regular

TTL_KEY = "inferenceCredentialHelperTtlSec"
TIMEOUT_KEY = "inferenceCredentialHelperTimeoutSec"
BASE_URL_KEY = "inferenceGatewayBaseUrl"
SCHEME_KEY = "inferenceGatewayAuthScheme"
HEADERS_KEY = "inferenceCustomHeaders"
HELPER_KEY = "inferenceCredentialHelper"
PROVIDER_KEY = "inferenceProvider"  # "gateway": the app uses the gateway keys (and the helper)
KIND_KEY = "inferenceCredentialKind"  # "helper-script": the helper is the credential
API_KEY_KEY = "inferenceGatewayApiKey"  # a static key: a secret, never read into values
OIDC_KEY = "inferenceGatewayOidc"  # the app's own single sign-on
# The sibling helpers' keys `check --surface` reads (diagnostics/surfaces.py): the MCP servers
# (a JSON array of objects; as_text keeps a native array as JSON) and the OTLP headers helper.
MCP_SERVERS_KEY = "managedMcpServers"
OTLP_HELPER_KEY = "otlpHeadersHelper"
MARKETPLACES_KEY = "allowedPluginMarketplaces"  # a JSON array of marketplace objects, too
KEYS = (
    TTL_KEY, TIMEOUT_KEY, BASE_URL_KEY, SCHEME_KEY, HEADERS_KEY, HELPER_KEY, PROVIDER_KEY, KIND_KEY,
    MCP_SERVERS_KEY, OTLP_HELPER_KEY, MARKETPLACES_KEY,
)  # fmt: skip
# Each gives the app a credential. With inferenceCredentialKind unset and more than one of them
# present, which the app uses (and falls back to) is its own precedence, not the admin's choice.
CREDENTIAL_KEYS = (HELPER_KEY, API_KEY_KEY, OIDC_KEY)
HELPER_KIND = "helper-script"
# The app's documented defaults.
DEFAULT_TTL = 3600
DEFAULT_TIMEOUT = 60
MID_SESSION_CLAMP = 20  # seconds: the app kills mid-session-refresh runs then

ROOT_ENV = "GATEKEY_MANAGED_ROOT"
LINUX_FILE = "/etc/claude-desktop/managed-settings.json"
MAC_PREFERENCES = "/Library/Managed Preferences"
MAC_DOMAIN = "com.anthropic.claudefordesktop"
WINDOWS_KEY = r"SOFTWARE\Policies\Claude"


class ClaudeSettings(NamedTuple):
    values: dict[str, str]  # the keys in KEYS that are set, as the strings the app stores
    where: str | None  # the file or registry key that supplied them; None: nothing found
    looked: list[str]  # where they were looked for
    problem: str | None = None  # found, but the app will not use it (or it cannot be read)
    fix: str | None = None
    credentials: tuple[str, ...] = ()  # the CREDENTIAL_KEYS present (names only, never values)


def read() -> ClaudeSettings:
    """This machine's managed settings for Claude (see the module docstring)."""
    root = os.environ.get(ROOT_ENV) or None
    if sys.platform == "win32":
        return _windows()
    if sys.platform == "darwin":
        candidates = []
        try:
            import getpass

            candidates.append(f"{MAC_PREFERENCES}/{getpass.getuser()}/{MAC_DOMAIN}.plist")
        except (OSError, KeyError):
            pass
        candidates.append(f"{MAC_PREFERENCES}/{MAC_DOMAIN}.plist")
        looked = [_rooted(p, root) for p in candidates]
        for path in looked:
            if os.path.exists(path):
                return read_file(path, looked)
        return ClaudeSettings({}, None, looked)
    path = _rooted(LINUX_FILE, root)
    if not os.path.exists(path):
        return ClaudeSettings({}, None, [path])
    return read_file(path, [path], linux_rules=True, check_owner=root is None)


def _rooted(path: str, root: str | None) -> str:
    return path if root is None else os.path.join(root, path.lstrip("/"))


def read_file(
    path: str, looked: list[str], *, linux_rules: bool = False, check_owner: bool = False
) -> ClaudeSettings:
    """A managed-settings JSON file (Linux) or a preferences plist (``*.plist``, macOS)."""
    problem = _rejected(path, check_owner) if linux_rules else None
    try:
        raw = regular.read(path, 4 << 20)
        if path.endswith(".plist"):
            import plistlib

            data: Any = plistlib.loads(raw)
        else:
            data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as e:
        what = e.strerror if isinstance(e, OSError) else "not valid JSON / plist"
        return ClaudeSettings(
            {},
            path,
            looked,
            f"Claude's managed settings {path} cannot be read ({what})",
            "fix the file: the app ignores a file it cannot parse",
        )
    if not isinstance(data, dict):
        return ClaudeSettings(
            {},
            path,
            looked,
            f"{path} is not a key-value object",
            'write one object of keys and string values, e.g. {"inferenceCredentialHelperTtlSec": '
            '"1800"}',
        )
    values = {k: as_text(data[k]) for k in KEYS if k in data}
    credentials = _credentials(data)
    if problem:
        return ClaudeSettings(values, path, looked, *problem, credentials=credentials)
    return ClaudeSettings(values, path, looked, credentials=credentials)


def _credentials(data: dict[str, Any]) -> tuple[str, ...]:
    """The credential keys set to something (the app ignores an empty value)."""
    return tuple(k for k in CREDENTIAL_KEYS if k in data and as_text(data[k]).strip())


def _rejected(path: str, check_owner: bool) -> tuple[str, str] | None:
    """Why the app would reject a Linux managed-settings file, and the fix; None if it would not."""
    import stat

    directory = os.path.dirname(path) or "."
    try:
        st, parent = os.stat(path), os.stat(directory)
    except OSError:
        return None
    wrong = []
    if not stat.S_ISREG(st.st_mode):
        wrong.append("not a regular file")
    if st.st_mode & 0o022:
        wrong.append(f"group/world writable (mode {stat.S_IMODE(st.st_mode):o})")
    if parent.st_mode & 0o022:
        wrong.append("its directory is group/world writable")
    if check_owner and st.st_uid != 0:
        wrong.append("not owned by root")
    if check_owner and parent.st_uid != 0:
        wrong.append("its directory is not owned by root")
    if not wrong:
        return None
    return (
        f"Claude ignores {path}: {', '.join(wrong)}",
        f"sudo chown root:root {directory} {path} && sudo chmod 755 {directory} && "
        f"sudo chmod 644 {path}",
    )


def _windows() -> ClaudeSettings:
    looked = [rf"HKLM\{WINDOWS_KEY}", rf"HKCU\{WINDOWS_KEY}"]
    if sys.platform != "win32":
        return ClaudeSettings({}, None, looked)
    import winreg

    for hive, where in (
        (winreg.HKEY_LOCAL_MACHINE, looked[0]),
        (winreg.HKEY_CURRENT_USER, looked[1]),
    ):
        try:
            key = winreg.OpenKey(hive, WINDOWS_KEY)
        except OSError:
            continue
        found: dict[str, Any] = {}
        with key:
            index = 0
            while True:
                try:
                    name, value, _kind = winreg.EnumValue(key, index)
                except OSError:
                    break
                found[name] = value
                index += 1
        if found:  # any value under HKLM makes the app ignore HKCU entirely
            values = {k: as_text(found[k]) for k in KEYS if k in found}
            return ClaudeSettings(values, where, looked, credentials=_credentials(found))
    return ClaudeSettings({}, None, looked)


def as_text(value: Any) -> str:
    """The app stores every value as a string; tolerate native numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
