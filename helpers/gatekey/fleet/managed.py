"""Claude's managed configuration for a gateway with a credential helper: values and file formats.

Pure: checks and renders, no I/O beyond ``os.path.isfile`` on a helper path. What the app wants
(reference/contract.md): every value a string; macOS a configuration profile whose payload type
is ``com.anthropic.claudefordesktop``; Windows REG_SZ values directly under
``HKLM\\SOFTWARE\\Policies\\Claude`` (no subkeys); Linux
``/etc/claude-desktop/managed-settings.json``.
"""

from __future__ import annotations

import json
import ntpath
import plistlib
import posixpath
import re
import shlex
import uuid
from typing import Any
from urllib.parse import urlsplit

from gatekey import credential_headers
from gatekey.diagnostics.claude_settings import (
    BASE_URL_KEY,
    HEADERS_KEY,
    HELPER_KEY,
    LINUX_FILE,
    MAC_DOMAIN,
    SCHEME_KEY,
    TIMEOUT_KEY,
    TTL_KEY,
    WINDOWS_KEY,
)
from gatekey.errors import UsageProblem

PROVIDER_KEY = "inferenceProvider"
KIND_KEY = "inferenceCredentialKind"
FORMATS = ("mobileconfig", "plist", "reg", "linux-json")
WINDOWS_FORMATS = ("reg",)
# Not text a terminal can show: regedit's UTF-16 (NUL bytes, a BOM). Written to a file or a pipe.
BINARY_FORMATS = ("reg",)
MIN_APP_TTL = 120  # the app does not re-run the helper for a TTL of 120 s or less
MAX_APP_TIMEOUT = 600  # inferenceCredentialHelperTimeoutSec's documented range is 1-600
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)
REG_HEADER = "Windows Registry Editor Version 5.00"
DEFAULT_IDENTIFIER = "gatekey.claude-desktop"
EXAMPLE_HELPER = {
    False: "/opt/gatekey/bin/gatekey",
    True: r"C:\Program Files\gatekey\Scripts\gatekey.exe",
}


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def check_gateway_url(url: str) -> str:
    """The gateway's base URL: https, a host, no credentials, query or fragment."""
    option = "--gateway-url"
    if _control(url) or url != url.strip() or " " in url:
        raise UsageProblem(option, "must be a URL without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise UsageProblem(
            option, f"must be an https:// URL (the app refuses {parts.scheme or 'no'} scheme)"
        )
    if not parts.hostname:
        raise UsageProblem(option, "has no host name, e.g. https://llm-gw.example.com")
    if parts.username or parts.password:
        raise UsageProblem(option, "must not contain credentials; the helper supplies them")
    if parts.query or parts.fragment:
        raise UsageProblem(option, "must be a base URL without ?query or #fragment")
    return url.rstrip("/")


def gateway_url_warning(url: str) -> str | None:
    """Why a valid base URL (from check_gateway_url) is likely wrong: the app appends
    ``/v1/messages`` and ``/v1/models`` itself, so a base ending in ``/v1`` makes it, and doctor,
    call ``/v1/v1/...`` (a 404 that then looks like a credential or audience problem)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for suffix in ("/v1/messages", "/v1/models", "/v1"):
        if path.lower().endswith(suffix):
            good = parts._replace(path=path[: -len(suffix)]).geturl()
            return (
                f"--gateway-url ends in {suffix}, but the app adds /v1/messages and /v1/models "
                f"itself: it would call {url}/v1/messages (and doctor {url}/v1/models). "
                f"Unless the gateway really serves that path, give --gateway-url {good}"
            )
    return None


def check_helper_path(path: str, *, windows: bool, exists: bool, option: str = "--helper") -> str:
    """The helper as one absolute path the app can spawn with no arguments.

    The app takes the whole value as one file name, so ``/opt/gatekey/bin/gatekey -p corp``
    fails to spawn on every machine. Spaces inside a path are fine (macOS's
    ``/Library/Application Support/...``), so a value with spaces is refused only when it looks
    like a command line: a later word starting with ``-`` or holding no path separator (an
    argument such as ``get``), unless ``exists`` (the file is on this machine, so it is a path).
    ``option`` names the value in errors (``--helper``, ``--mcp-helper``...).
    """
    if not path or _control(path) or path != path.strip():
        raise UsageProblem(
            option, "must be an absolute path without control characters or surrounding spaces"
        )
    flavour = ntpath if windows else posixpath
    if windows:
        absolute = bool(re.match(r"^[A-Za-z]:\\", path) or path.startswith("\\\\"))
    else:
        absolute = path.startswith("/")
    example = EXAMPLE_HELPER[windows]
    if not absolute:
        raise UsageProblem(
            option, f"{path!r} is not an absolute path; the app needs one, e.g. {example}"
        )
    separators = ("\\", "/") if windows else ("/",)
    words = path.split()
    looks_like_args = any(
        w.startswith("-") or not any(s in w for s in separators) for w in words[1:]
    )
    if looks_like_args and not exists:
        raise UsageProblem(
            option,
            f"{path!r} looks like a command with arguments; the app runs the value as one file "
            "with no arguments (it would fail with ENOENT). Pin a profile with a wrapper instead: "
            "gatekey wrap -p PROFILE -o /path/to/wrapper, then --helper /path/to/wrapper",
        )
    if flavour.basename(path) == "":
        raise UsageProblem(option, f"{path!r} names a directory, not an executable")
    return path


ALLOW_FLAG = "--allow-static-credential-header"
# What a static credential header risks: said by the refusal and by the flag's --help.
STATIC_CREDENTIAL_RISK = (
    "its value goes in plain text into the managed settings of every machine, readable by every "
    "local user and process there, the same for every person, and cannot be revoked for one "
    "user without redeploying to all"
)


def check_headers(pairs: tuple[str, ...], allowed: tuple[str, ...] = ()) -> dict[str, str]:
    """``--header K=V`` pairs as the static inferenceCustomHeaders. A header that carries a
    credential (credential_headers.py) is refused unless ``allowed`` names it (the admin's
    --allow-static-credential-header, case-insensitive as header names are)."""
    allow = {name.strip().lower() for name in allowed}
    headers: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not HEADER_NAME.fullmatch(name):
            raise UsageProblem("--header", "expected NAME=VALUE with an HTTP header name")
        why = credential_headers.why(name)
        if why is not None and name.lower() not in allow:
            raise UsageProblem(
                "--header",
                f"{why}: {STATIC_CREDENTIAL_RISK}. Give it per user from the helper instead (a "
                "profile's headers, by reference, e.g. { keychain = ... }); if it truly is the "
                f"same non-revocable value for everyone, add {ALLOW_FLAG} {name}",
            )
        if _control(value):
            raise UsageProblem("--header", f"the value of {name} contains control characters")
        headers[name] = value
    unused = allow - {name.lower() for name in headers}
    if unused:
        raise UsageProblem(
            ALLOW_FLAG, f"names {', '.join(sorted(unused))}, which no --header gives"
        )
    return headers


def check_ttl(ttl: int, min_ttl: float, profile: str) -> int:
    if ttl <= MIN_APP_TTL:
        raise UsageProblem(
            "--ttl",
            f"{ttl} s is too short: with a TTL of {MIN_APP_TTL} s or less the app does not "
            "re-run the helper before a turn, only after the gateway rejects a token",
        )
    if ttl > min_ttl:
        raise UsageProblem(
            "--ttl",
            f"{ttl} s is longer than profile {profile!r}'s min_ttl ({min_ttl:g} s), the least "
            "lifetime gatekey guarantees a printed token; the app would keep using tokens after "
            f'they expire. Use --ttl {int(min_ttl) - 300} or raise min_ttl (e.g. "{ttl + 300}s")',
        )
    return ttl


def check_timeout(timeout: int, silent: float) -> int:
    if not 1 <= timeout <= MAX_APP_TIMEOUT:
        raise UsageProblem(
            "--timeout", f"must be from 1 to {MAX_APP_TIMEOUT} seconds (the app's range)"
        )
    if timeout < silent:
        raise UsageProblem(
            "--timeout",
            f"{timeout} s is shorter than gatekey's silent deadline ({silent:g} s, [timeouts] "
            "silent), so the app could kill a refresh that would have succeeded",
        )
    return timeout


def settings(
    *,
    gateway_url: str,
    helper: str,
    auth_scheme: str,
    ttl: int,
    timeout: int,
    headers: dict[str, str],
) -> dict[str, str]:
    """The managed keys, every value a string as the app requires."""
    values = {
        PROVIDER_KEY: "gateway",
        BASE_URL_KEY: gateway_url,
        SCHEME_KEY: auth_scheme,
        KIND_KEY: "helper-script",
        HELPER_KEY: helper,
        TTL_KEY: str(ttl),
        TIMEOUT_KEY: str(timeout),
    }
    if headers:
        values[HEADERS_KEY] = json.dumps(headers, ensure_ascii=False, separators=(",", ":"))
    return values


# --- renderers ---------------------------------------------------------------------------------
def mobileconfig(
    values: dict[str, str], *, identifier: str = DEFAULT_IDENTIFIER, display: str | None = None
) -> bytes:
    """A complete configuration profile (System scope) with one Claude payload.

    The identifiers are stable, so a regenerated profile replaces the installed one; the UUIDs
    are new on every run, as a changed profile should have."""
    name = display or "Claude Desktop: LLM gateway with gatekey"
    payload: dict[str, Any] = {
        "PayloadType": MAC_DOMAIN,
        "PayloadIdentifier": f"{identifier}.{MAC_DOMAIN}",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": "Claude Desktop managed preferences",
        "PayloadEnabled": True,
        **values,
    }
    profile: dict[str, Any] = {
        "PayloadContent": [payload],
        "PayloadType": "Configuration",
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": name,
        "PayloadDescription": "Points Claude Desktop at the organisation's LLM gateway, with "
        "gatekey as the credential helper.",
        "PayloadScope": "System",
        "PayloadRemovalDisallowed": False,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=False)


def preference_plist(values: dict[str, str]) -> bytes:
    """The bare preference domain (what Jamf's "Application & Custom Settings" uploads)."""
    return plistlib.dumps(values, fmt=plistlib.FMT_XML, sort_keys=False)


def _reg_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def reg(values: dict[str, str]) -> bytes:
    """A regedit file: REG_SZ values directly under HKLM\\SOFTWARE\\Policies\\Claude.

    UTF-16 LE with a byte-order mark and CRLF line ends, as regedit itself exports
    "Version 5.00" files (a UTF-8 file would garble any non-ASCII value)."""
    lines = [REG_HEADER, "", f"[HKEY_LOCAL_MACHINE\\{WINDOWS_KEY}]"]
    lines += [f"{_reg_string(k)}={_reg_string(v)}" for k, v in values.items()]
    return b"\xff\xfe" + ("\r\n".join(lines) + "\r\n").encode("utf-16-le")


def linux_json(values: dict[str, str]) -> bytes:
    return (json.dumps(values, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def render(fmt: str, values: dict[str, str], *, identifier: str) -> bytes:
    if fmt == "mobileconfig":
        return mobileconfig(values, identifier=identifier)
    if fmt == "plist":
        return preference_plist(values)
    if fmt == "reg":
        return reg(values)
    if fmt == "linux-json":
        return linux_json(values)
    raise AssertionError(fmt)


def install_note(fmt: str, out: str | None) -> str:
    """How the artifact is deployed (stderr, after it is written)."""
    file = shlex.quote(out) if out else "FILE"
    if fmt == "linux-json":
        return (
            f"install it as {LINUX_FILE}: a regular file owned by root, mode 644, in a "
            "root-owned directory that only root can write (otherwise Claude ignores the whole "
            "file): sudo install -d -o root -g root -m 755 /etc/claude-desktop && sudo install "
            f"-o root -g root -m 644 {file} {LINUX_FILE}"
        )
    if fmt == "reg":
        return (
            f"import it as an administrator (reg import {file}, or a GPO / Intune); the values go "
            f"directly under HKLM\\{WINDOWS_KEY}, and any value there makes Claude ignore HKCU"
        )
    if fmt == "plist":
        return (
            f"upload it as the preference domain {MAC_DOMAIN} (e.g. Jamf: Application & Custom "
            "Settings)"
        )
    return "deploy it with your MDM (Jamf, Kandji, Intune...) as a device-level profile"
