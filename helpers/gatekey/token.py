"""A token, its state, and the refresh policy. Pure: no I/O, standard library only.

The app keeps whatever the helper prints for ``inferenceCredentialHelperTtlSec`` (default 3600 s)
and never looks at the token's real expiry, so "fresh" here means "will outlive the app's cache":
remaining lifetime above ``min_ttl`` (default 3600 s + 5 min margin).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the cache hit ~3 ms
if TYPE_CHECKING:
    from typing import Any, TypeGuard

FRESH = "fresh"  # remaining > min_ttl: print it
STALE = "stale"  # usable, but inside the refresh window: refresh; on failure print it and warn
EXPIRED = "expired"  # refresh or fail

# A token this close to expiry is treated as expired: the gateway's clock may be ahead of ours
# and the request still has to travel.
EXPIRY_MARGIN = 30.0
# A token obtained this recently is never fetched again merely because its whole lifetime is
# shorter than min_ttl (a new one would be no better); also the window in which a
# mid-session-refresh run may reuse a token another run has just obtained.
RECENT = 60.0


class Token:
    """A credential with an absolute expiry computed at receipt. The value never shows in repr.

    ``expires_at`` is when the credential stops working, if known. ``refresh_at`` is for
    credentials with no known expiry (a vault's API key): when the cached copy should be read
    from the source again. It is a cache policy, not a lifetime, so it never makes a token stale
    for ``min_ttl`` purposes.
    """

    __slots__ = ("expires_at", "headers", "meta", "obtained_at", "refresh_at", "source", "value")

    def __init__(
        self,
        value: str,
        *,
        expires_at: float | None,
        obtained_at: float,
        source: str,
        refresh_at: float | None = None,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.value = value
        # Header values the profile names by reference, resolved when the credential was
        # obtained and kept with it (secrets, like the value: never in repr).
        self.headers = headers or {}
        self.expires_at = expires_at  # UTC epoch seconds; None = no known expiry (static key)
        self.obtained_at = obtained_at
        self.refresh_at = refresh_at
        self.source = source
        self.meta = meta or {}

    @classmethod
    def from_expires_in(
        cls,
        value: str,
        expires_in: float | None,
        *,
        source: str,
        now: float | None = None,
        cache_ttl: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Token:
        """Build from a source's ``expires_in`` (seconds), measured from receipt, never decoded.

        With no ``expires_in``, ``cache_ttl`` says when to read the source again.
        """
        now = time.time() if now is None else now
        expires_at = None if expires_in is None else now + float(expires_in)
        refresh_at = None if expires_in is not None or cache_ttl is None else now + cache_ttl
        return cls(
            value,
            expires_at=expires_at,
            obtained_at=now,
            source=source,
            refresh_at=refresh_at,
            meta=meta,
        )

    def __repr__(self) -> str:
        return (
            f"Token(value=<hidden>, expires_at={self.expires_at!r}, "
            f"obtained_at={self.obtained_at!r}, source={self.source!r})"
        )

    __str__ = __repr__

    def remaining(self, now: float) -> float | None:
        return None if self.expires_at is None else self.expires_at - now

    @property
    def lifetime(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - self.obtained_at

    def age(self, now: float) -> float:
        return now - self.obtained_at

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.value,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
            "refresh_at": self.refresh_at,
            "source": self.source,
            "meta": self.meta,
            **({"headers": self.headers} if self.headers else {}),
        }

    @classmethod
    def from_json(cls, data: Any) -> Token:
        """Rebuild a cached token; ValueError if the entry is not a well-formed token."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        value, expires_at, obtained_at = (
            data.get("token"),
            data.get("expires_at"),
            data.get("obtained_at"),
        )
        refresh_at = data.get("refresh_at")
        if not isinstance(value, str) or not value:
            raise ValueError("no token")
        if not printable(value):
            raise ValueError("unprintable token")
        for name, number in (("expires_at", expires_at), ("refresh_at", refresh_at)):
            if number is not None and not is_time(number):
                raise ValueError(f"bad {name}")
        if not is_time(obtained_at):
            raise ValueError("bad obtained_at")
        source = data.get("source")
        meta = data.get("meta")
        headers = data.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("bad headers")
        return cls(
            value,
            expires_at=None if expires_at is None else float(expires_at),
            obtained_at=float(obtained_at),
            source=source if isinstance(source, str) else "",
            refresh_at=None if refresh_at is None else float(refresh_at),
            meta=meta if isinstance(meta, dict) else {},
            headers=headers,
        )


_MAX_TIME = 1e11  # epoch seconds, year 5138: beyond it a number is damage, not a time


def is_time(value: Any) -> TypeGuard[float]:
    # Compared before any float(): an integer too large for a float must not raise OverflowError.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and -_MAX_TIME < value < _MAX_TIME
    )


# The longest credential gatekey prints. Identity providers' JWTs stay far below it (an Entra
# token with many group claims is 4-8 KB); Node's HTTP client refuses request headers over
# 16 KiB in all, so a longer value could never reach the gateway.
MAX_CREDENTIAL = 16384


def credential_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as an HTTP credential (Bearer token or API key), or None.

    A credential is 1 to MAX_CREDENTIAL characters of printable ASCII with no spaces (RFC 6750's
    b64token is stricter still). Anything else is refused, never cut or transcoded: a byte-order
    mark, a zero-width or bidi character, U+FFFD from bytes that were not UTF-8, a space or a
    line break mean the source returned something other than the credential.
    """
    if value.isascii() and value.isprintable() and " " not in value and value:
        return None if len(value) <= MAX_CREDENTIAL else _TOO_LONG
    if not value:
        return "it is empty"
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in value):
        return (
            "it contains whitespace or control characters, so it is not a token (a JSON "
            'document? set parse = "json"; a "Bearer " prefix? store the token alone)'
        )
    if "\ufffd" in value:
        return "it contains bytes that are not UTF-8 text (shown as U+FFFD)"
    if value.startswith("\ufeff"):
        return "it starts with a byte-order mark (BOM), as some Windows editors save text"
    return (
        "it contains characters other than printable ASCII (invisible, bidi or accented "
        "characters, which HTTP headers cannot carry)"
    )


_TOO_LONG = f"it is longer than {MAX_CREDENTIAL} characters, more than an HTTP header can carry"


def printable(value: str) -> bool:
    """Whether ``value`` is a credential gatekey may print (see credential_problem)."""
    return credential_problem(value) is None


def state(token: Token, now: float, min_ttl: float) -> str:
    """FRESH, STALE or EXPIRED for a token at ``now`` under a profile's ``min_ttl``."""
    remaining = token.remaining(now)
    if remaining is not None and remaining <= EXPIRY_MARGIN:
        return EXPIRED
    if token.refresh_at is not None and now >= token.refresh_at:
        return STALE  # the source said when to read it again (cache_ttl), whatever the expiry
    if remaining is None or remaining > min_ttl:
        return FRESH
    return STALE


def usable_without_fetch(token: Token, now: float, min_ttl: float) -> bool:
    """Whether a cached token may be printed without asking the source again.

    FRESH tokens may; so may STALE ones obtained moments ago, whose whole lifetime is simply
    shorter than ``min_ttl`` (fetching again would give a token no better, and would storm the
    source). A token claiming to be obtained in the future (clock moved back) is not trusted.
    """
    if token.obtained_at > now + EXPIRY_MARGIN:
        return False
    st = state(token, now, min_ttl)
    if st == FRESH:
        return True
    # Only a real lifetime can be "too short"; a cache_ttl that ran out means read again.
    if token.refresh_at is not None and now >= token.refresh_at:
        return False
    return st == STALE and token.expires_at is not None and token.age(now) < RECENT


def servable(token: Token, now: float, min_ttl: float, *, bypass: bool, force: bool) -> bool:
    """Whether a run may print this cached token without asking the source.

    ``bypass``: the app just had its token rejected, or its TTL ran out (mid-session-refresh):
    only a token another run obtained moments ago is new enough to print. ``force``: never.
    """
    if force:
        return False
    if bypass:
        return 0 <= token.age(now) < RECENT and state(token, now, min_ttl) != EXPIRED
    return usable_without_fetch(token, now, min_ttl)


def short_lifetime(token: Token, min_ttl: float) -> bool:
    """A freshly obtained token that cannot cover ``min_ttl`` even when new."""
    lifetime = token.lifetime
    return lifetime is not None and lifetime <= min_ttl


# --- claims: the one decoder of JWTs and base64url JSON, read and never verified -----------------
# A JWT's claims tell gatekey what it may fill into a header ({claims.email}), when a token really
# expires (exp against a clock), and what gatekey inspect shows; an identity provider's
# client_info is base64url JSON too. None of these trust what they read: a gateway verifies the
# signature, and gatekey inspect --verify checks it against the issuer's keys. Anything that does
# not decode is "not a JWT" (None, or "opaque"), never an exception. Here rather than in a module
# of its own: a cache hit whose headers insert a claim then imports no module more.
def b64json(part: str) -> Any:
    """One base64url segment (padding optional) as JSON; ValueError or RecursionError if it is
    not (binascii.Error and UnicodeDecodeError are ValueErrors)."""
    import base64  # here, not at the top: the cache hit decodes nothing unless a header asks
    import json

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
