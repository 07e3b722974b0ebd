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
