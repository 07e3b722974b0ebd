"""What a token says, judged as a gateway would: pure rules over its decoded header and claims.

Nothing here trusts the token (token.decode reads, never verifies; jwks.py checks signatures)
or sees its value: only the header, the claims and what gatekey knows of the token it cached.
What a profile's tokens should say (their audience, issuer or tenant) its kind tells, through
kinds.CheckingTokens.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gatekey import kinds
from gatekey.checks import Check
from gatekey.diagnostics.present import when

if TYPE_CHECKING:
    from gatekey.config import Profile
    from gatekey.token import Token

# iat/nbf this far in the future is a clock problem, not network delay (the usual JWT leeway).
SKEW = 60.0
GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
GRAPH = "https://graph.microsoft.com"
GRAPH_AUDIENCES = frozenset(
    {
        GRAPH,
        "00000003-0000-0000-c000-000000000000",  # Graph's application id
        "https://graph.microsoft.us",
        "https://dod-graph.microsoft.us",
        "https://microsoftgraph.chinacloudapi.cn",
    }
)
MAX_EPOCH = 253402300800  # 10000-01-01: beyond what a clock (or strftime) can show


def epoch(value: Any) -> float | None:
    """A NumericDate claim as epoch seconds, or None if it is not one (nor a time we can show)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < MAX_EPOCH else None


def jwt_checks(
    header: dict[str, Any], claims: dict[str, Any], profile: Profile | None, now: float
) -> list[Check]:
    """A decoded JWT's algorithm, times, audience and issuer, as a gateway would judge them."""
    checks = []
    alg = str(header.get("alg"))
    if alg.lower() == "none":
        checks.append(Check("algorithm", "fail", "unsigned (alg none): no gateway accepts it"))
    elif alg.startswith("HS"):
        checks.append(
            Check(
                "algorithm",
                "warn",
                f"{alg} is a shared-secret signature: a gateway "
                "checking the issuer's published keys cannot verify it",
            )
        )
    exp, nbf, iat = (epoch(claims.get(k)) for k in ("exp", "nbf", "iat"))
    if exp is None and "exp" in claims:
        checks.append(Check("expiry", "fail", "the exp claim is not a valid time"))
    elif exp is None:
        checks.append(Check("expiry", "warn", "no exp claim: most gateways refuse such tokens"))
    elif exp <= now:
        checks.append(Check("expiry", "fail", f"expired at {when(exp, now)}"))
    else:
        checks.append(Check("expiry", "ok", f"valid until {when(exp, now)}"))
    if nbf is not None and nbf > now:
        checks.append(
            Check(
                "not before",
                "fail" if nbf > now + SKEW else "warn",
                f"not valid until {when(nbf, now)}; check this machine's clock",
            )
        )
    if iat is not None:
        if iat > now + SKEW:
            checks.append(
                Check(
                    "clock",
                    "warn",
                    f"issued at {when(iat, now)}, in the future: this "
                    "machine's clock is behind the issuer's; check time synchronisation",
                )
            )
        else:
            checks.append(Check("clock", "ok", f"issued {when(iat, now)}"))
    checks.append(audience_check(claims, profile))
    checks += issuer_checks(claims, profile)
    if profile is not None and profile.spec.family == "idp" and profile.values.get("token") == "id":
        checks.append(Check("token type", "warn", "an ID token: most gateways want access tokens"))
    return checks


def opaque_checks(
    kind: str, profile: Profile | None, token: Token | None, now: float
) -> list[Check]:
    """What can be said of a token without readable claims (an opaque one, or a JWE): its
    format, and its expiry as gatekey knows it (``token``: None when it came from stdin)."""
    checks = []
    if kind == "jwe":
        checks.append(
            Check(
                "format",
                "warn",
                "encrypted (JWE): only its intended recipient can read "
                "the claims; a gateway validating JWTs cannot use it",
            )
        )
    elif profile is not None and profile.spec.family == "idp":
        checks.append(
            Check(
                "format",
                "warn",
                "the identity provider issued an opaque access token; a "
                "gateway validating JWTs cannot use it (Okta: use a custom authorization "
                "server; Auth0: set audience)",
            )
        )
    if token is None:
        checks.append(Check("expiry", "skip", "unknown: opaque, and not from gatekey's cache"))
    elif token.expires_at is None:
        again = f"; read again {when(token.refresh_at, now)}" if token.refresh_at else ""
        checks.append(Check("expiry", "skip", f"the source states no expiry{again}"))
    elif token.expires_at <= now:
        checks.append(Check("expiry", "fail", f"expired at {when(token.expires_at, now)}"))
    else:
        checks.append(Check("expiry", "ok", f"valid until {when(token.expires_at, now)}"))
    checks.append(Check("audience", "skip", "an opaque token carries no audience to read"))
    return checks


def expected_audience(prof: Profile | None) -> kinds.Audience | None:
    """The audiences the gateway should see, as the profile's kind tells (kinds.CheckingTokens)."""
    cls = kinds.capable(prof.spec, kinds.CheckingTokens) if prof is not None else None
    return None if cls is None else cls.audience(prof)


def _norm(aud: str) -> str:
    aud = aud.rstrip("/")
    return aud.lower() if GUID.fullmatch(aud) else aud


def audience_check(claims: dict[str, Any], profile: Profile | None) -> Check:
    raw = claims.get("aud")
    auds = [str(a) for a in raw] if isinstance(raw, list) else [] if raw is None else [str(raw)]
    shown = ", ".join(auds)
    if any(_norm(a) in GRAPH_AUDIENCES for a in auds):
        return Check(
            "audience",
            "fail",
            f"a Microsoft Graph token (aud {shown}): a gateway cannot "
            "validate it; request the gateway's API, e.g. scopes = [\"api://<gateway app>/"
            '.default"]',
        )
    expected = expected_audience(profile)
    if expected is None:
        why = "no profile" if profile is None else "the profile names no audience"
        return Check("audience", "skip", f"aud {shown or '(none)'}; nothing to compare ({why})")
    wanted, origin, app_ids = expected
    if not auds:
        return Check("audience", "fail", f"no aud claim; expected {', '.join(wanted)}")
    norm = {_norm(w) for w in wanted}
    # Entra names an application api://<id> or <id> (v2 tokens carry the bare id).
    norm |= {w[6:] for w in norm if w.startswith("api://") and GUID.fullmatch(w[6:])}
    if any(_norm(a) in norm for a in auds):
        return Check("audience", "ok", f"aud {shown}, as expected ({origin})")
    if app_ids and all(GUID.fullmatch(a) for a in auds):
        return Check(
            "audience",
            "warn",
            f"aud {shown} is an application id; expected {', '.join(wanted)}"
            f" ({origin}): the same only if that is this application's App ID URI",
        )
    return Check(
        "audience",
        "fail",
        f"aud {shown} is not the configured {', '.join(wanted)} ({origin}); "
        "the gateway will refuse it",
    )


def issuer_checks(claims: dict[str, Any], prof: Profile | None) -> list[Check]:
    cls = kinds.capable(prof.spec, kinds.CheckingTokens) if prof is not None else None
    if cls is None:
        return []
    return list(cls.issuer_checks(prof, claims))


# --- the shape of a JWT: whole, or cut short -----------------------------------------------------
# People copy tokens out of logs, terminals and browser panels that cut long lines; a cut JWT
# is not an opaque token. Only the shape is judged here (the parts, their encoding, the length
# a signature of that algorithm has), never the value.
B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
TRUNCATED = "starts like a JWT but does not decode: truncated?"
COPY_WHOLE = (
    "copy the whole token (a JWT is three base64url parts joined by dots: "
    "header.claims.signature), or let gatekey read it: gatekey inspect -p <profile>"
)
# Signature sizes in bytes that each algorithm always has (RFC 7518 section 3, RFC 8037).
SIGNATURE_BYTES = {
    "HS256": (32,),
    "HS384": (48,),
    "HS512": (64,),
    "ES256": (64,),
    "ES256K": (64,),
    "ES384": (96,),
    "ES512": (132,),
    "EdDSA": (64, 114),  # Ed25519, Ed448
    "Ed25519": (64,),
    "Ed448": (114,),
}
RSA_MIN_BYTES = 256  # RFC 7518 3.3: RSA keys of 2048 bits or more; a signature is key-sized


def _leading_json(segment: str) -> str:
    """What the base64url characters at the start of ``segment`` decode to, as far as they go."""
    import base64

    end = 0
    while end < len(segment) and segment[end] in B64URL:
        end += 1
    usable = segment[: end - end % 4] if end % 4 == 1 else segment[:end]
    data = base64.urlsafe_b64decode(usable + "=" * (-len(usable) % 4))
    return data.decode("utf-8", "ignore")


def broken_jwt(value: str) -> tuple[str, dict[str, Any]] | None:
    """Why ``value``, which token.decode found no JWT, starts like one (or like a JWE) and does
    not decode, with its header if that much decodes; None if it does not start like one."""
    from gatekey.token import b64json_object

    shortened = value.endswith(("...", "\u2026"))
    parts = value.rstrip(".\u2026").split(".") if shortened else value.split(".")
    if not _leading_json(parts[0]).lstrip().startswith('{"'):
        return None
    header = b64json_object(parts[0]) if B64URL.issuperset(parts[0]) else None
    if header is not None and "alg" not in header and len(parts) == 1 and not shortened:
        return None  # base64url JSON of another kind: an opaque token that happens to be JSON
    found, n = header or {}, len(parts)
    if shortened:
        why = "it ends in an ellipsis: a copy from a display that shortened it"
    elif header is None:
        why = "it stops inside the header" if n == 1 else "its header does not decode"
    elif "alg" not in header:
        why = "its header has no alg"
    elif "enc" in header:
        why = f"an encrypted JWT (JWE) has 5 parts separated by dots; this one has {n}"
    elif n == 1:
        why = "it is a JWT header alone: the claims and the signature are missing"
    elif n == 2:
        why = "it stops after the header, in the claims: the signature is missing"
    elif n == 3:
        why = "its claims (the second part) do not decode as base64url JSON"
    else:
        why = f"a signed JWT has 3 parts separated by dots (an encrypted one 5); this has {n}"
    return why, found


def malformed_checks(why: str) -> list[Check]:
    """A value that starts like a JWT and does not decode: its claims cannot be read."""
    return [
        Check("format", "fail", f"{TRUNCATED} {why}", [COPY_WHOLE]),
        Check("expiry", "skip", "unknown: its claims cannot be read"),
        Check("audience", "skip", "unknown: its claims cannot be read"),
    ]


def jws_format(header: dict[str, Any], value: str) -> list[Check]:
    """Whether a decoded JWT's signature part has the size its algorithm gives every signature:
    a cut inside the signature leaves header and claims readable (--verify would also fail)."""
    import base64

    alg, signature = str(header.get("alg")), value.rsplit(".", 1)[1]
    if alg.lower() == "none":
        return []  # the algorithm check fails it already
    if not signature:
        why = "the signature is missing: nothing follows the last dot"
    elif not B64URL.issuperset(signature) or len(signature) % 4 == 1:
        why = "its signature is not valid base64url"
    else:
        size = len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        sizes = SIGNATURE_BYTES.get(alg)
        rsa = alg[:2] in ("RS", "PS")
        if sizes is not None and size not in sizes:
            expected = " or ".join(str(s) for s in sizes)
            why = f"a {alg} signature is {expected} bytes; this one is {size}"
        elif rsa and size < RSA_MIN_BYTES:
            why = (
                f"a {alg} signature is as long as the RSA key, {RSA_MIN_BYTES} bytes or more "
                f"(2048 bits); this one is {size}"
            )
        else:
            unusual = rsa and size % 128 != 0  # keys are 2048, 3072 or 4096 bits
            detail = f"header, claims and a {size}-byte {alg} signature"
            if unusual:
                return [Check("format", "warn", f"{detail}: an unusual size for RSA; cut short?")]
            return [Check("format", "ok", f"complete: {detail}")]
    return [Check("format", "fail", f"truncated? {why}", [COPY_WHOLE])]
