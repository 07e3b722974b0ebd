"""The one decoder of JWTs and base64url JSON: read, never verified. Standard library only.

A JWT's claims tell gatekey what it may fill into a header (``{claims.email}``), when a token
really expires (``exp`` against a clock), and what ``gatekey inspect`` shows; an identity
provider's ``client_info`` is base64url JSON too. None of these trust what they read: a gateway
verifies the signature, and ``gatekey inspect --verify`` checks it against the issuer's keys.
Anything that does not decode is "not a JWT" (None, or "opaque"), never an exception.
"""

from __future__ import annotations

import base64
import json

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the cache hit ~3 ms
if TYPE_CHECKING:
    from typing import Any


def b64json(part: str) -> Any:
    """One base64url segment (padding optional) as JSON; ValueError or RecursionError if it is
    not (binascii.Error and UnicodeDecodeError are ValueErrors)."""
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64json_object(part: str) -> dict[str, Any] | None:
    """A base64url segment holding a JSON object (a JWT's payload, MSAL's client_info), or None."""
    try:
        value = b64json(part)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS (three segments), or None if it is not one."""
    parts = token.split(".")
    return b64json_object(parts[1]) if len(parts) == 3 else None


def decode(value: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kind, header, claims): a signed JWT ("jwt"), an encrypted JWE ("jwe": a header and no
    readable claims), or "opaque" (anything else, with neither)."""
    parts = value.split(".")
    if len(parts) not in (3, 5):
        return "opaque", {}, {}
    try:
        header = b64json(parts[0])
        if not isinstance(header, dict) or "alg" not in header:
            return "opaque", {}, {}
        if len(parts) == 5:
            return "jwe", header, {}
        claims = b64json(parts[1])
    except (ValueError, RecursionError):
        return "opaque", {}, {}
    return ("jwt", header, claims) if isinstance(claims, dict) else ("opaque", {}, {})
