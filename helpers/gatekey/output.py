"""The stdout contract: the one module that writes a payload to stdout. Standard library only.

Formats (``gatekey get --format``; the no-argument run uses the profile's ``output``):
- ``token``  the bare credential
- ``json``   ``{"token": "...", "headers": {...}}`` (header values are strings)
- ``header`` ``Authorization: Bearer <t>`` or ``x-api-key: <t>`` for curl debugging
- ``env``    shell exports for Claude Code (``ANTHROPIC_AUTH_TOKEN`` / ``ANTHROPIC_API_KEY``)
Every payload is one write of bytes ending in a newline.
"""

from __future__ import annotations

import json
import os
import sys

from gatekey.errors import HelperError
from gatekey.token import printable

FORMATS = ("token", "json", "header", "env")


class BadToken(HelperError):
    """The source returned something that cannot be printed as a credential."""


def check_token(value: str) -> None:
    """Refuse values that would corrupt the payload or smuggle a header (never echo the value)."""
    if not value:
        raise BadToken("the source returned an empty credential")
    if not printable(value):
        raise BadToken(
            "the credential contains whitespace or control characters, so it is not a token "
            '(a JSON document? set parse = "json"; a "Bearer " prefix? store the token '
            "alone); check what the source returns"
        )


CLAIM_MARK = "{claims."


class MissingClaim(HelperError):
    """A header template names a claim the token does not have (or the token is opaque)."""

    exit_code = 78


def fill_claims(headers: dict[str, str], token: str) -> dict[str, str]:
    """Replace ``{claims.NAME}`` (dotted for nested claims) with the token's claim values.

    Only that placeholder is special, so JSON header values such as
    ``{"_user": "{claims.email}"}`` keep their own braces.
    """
    if not any(CLAIM_MARK in v for v in headers.values()):
        return headers
    import re

    claims = jwt_claims(token)
    filled = {}
    for name, template in headers.items():

        def value(match: re.Match[str], name: str = name) -> str:
            claim = match.group(1)
            if claims is None:
                raise MissingClaim(
                    f'header "{name}" inserts {{claims.{claim}}}, but the token is not a JWT '
                    "(it is opaque), so it has no claims"
                )
            found: object = claims
            for part in claim.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if found is None or isinstance(found, (dict, list)):
                raise MissingClaim(f'header "{name}": the token has no claim {claim!r}')
            return str(found).lower() if isinstance(found, bool) else str(found)

        filled[name] = re.sub(r"\{claims\.([A-Za-z0-9_.:-]+)\}", value, template)
    return filled


def jwt_claims(token: str) -> dict[str, object] | None:
    """The payload of a JWT (not verified: the gateway does that), or None if it is not one."""
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    return payload if isinstance(payload, dict) else None


def render(value: str, fmt: str, *, auth_scheme: str, headers: dict[str, str]) -> bytes:
    check_token(value)
    if fmt in ("json", "env"):
        headers = fill_claims(headers, value)
    if fmt == "token":
        text = value
    elif fmt == "json":
        text = json.dumps({"token": value, "headers": headers}, ensure_ascii=False)
    elif fmt == "header":
        text = (
            f"Authorization: Bearer {value}" if auth_scheme == "bearer" else f"x-api-key: {value}"
        )
    elif fmt == "env":
        import shlex

        var = "ANTHROPIC_AUTH_TOKEN" if auth_scheme == "bearer" else "ANTHROPIC_API_KEY"
        lines = [f"export {var}={shlex.quote(value)}"]
        if headers:
            joined = "\n".join(f"{k}: {v}" for k, v in headers.items())
            lines.append(f"export ANTHROPIC_CUSTOM_HEADERS={shlex.quote(joined)}")
        text = "\n".join(lines)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return (text + "\n").encode("utf-8")


def write_payload(payload: bytes, fd: int | None = None) -> None:
    """Write the payload with as few writes as the OS allows, then flush."""
    target = sys.stdout.fileno() if fd is None else fd
    view = memoryview(payload)
    while view:
        written = os.write(target, view)
        view = view[written:]


def write_text(text: str) -> None:
    """Human output of the non-helper commands (status, config show, version)."""
    print(text)
