"""What a gateway's answers to doctor mean, and what to do about them: pure rules, no I/O.

Doctor asks a gateway ``GET /v1/models`` (the gateway check) and, with --probe-messages,
``POST /v1/messages``. Nothing here sees a token: the rules get the token's claims (``aud``,
``iss``, ``scp``...), which are not secret, and the gateway's own error message and type. A rule
written for one product's answer (LiteLLM's) matches only what that product says, and its advice
repeats what the gateway said, so it stays right when another gateway says the same.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gatekey import kinds
from gatekey.checks import FAIL, OK, WARN, Check
from gatekey.diagnostics.claude_settings import SCHEME_KEY

if TYPE_CHECKING:
    from gatekey.config import Profile

# LiteLLM without a database knows one key, its master key: any other key is answered 400 with
# type no_db_connection, "No connected db." (LiteLLM 1.x), not 401.
_NO_DB = re.compile(r"\bno connected (db|database)\b", re.IGNORECASE)
# A feature the gateway was configured to use but is not licensed for (LiteLLM's enable_jwt_auth
# without a licence: 403 "JWT Auth is an enterprise only feature."). The credential was not judged.
_LICENCE = re.compile(r"\benterprise[ -]only\b|\benterprise licen[cs]e\b", re.IGNORECASE)


def answer(
    status: int,
    *,
    endpoint: str,
    profile: Profile,
    claims: dict[str, object] | None,
    method: str = "GET",
    challenge: str = "",
    message: str = "",
    error_type: str = "",
    models: int | None = None,
    location: str | None = None,
) -> Check:
    """What a gateway's answer to ``method endpoint`` (``GET /v1/models``, ``POST
    /v1/messages``) with the token means; ``message`` and ``error_type`` are from its error body."""
    said = f" ({message})" if message else ""
    head = f"{method} {endpoint} answered {status}"
    if status == 200:
        if models == 0:
            return Check(
                "gateway",
                WARN,
                f"{head} but lists no models",
                ["ask the gateway's admins for access"],
            )
        listed = "" if models is None else f" ({models} model(s))"
        return Check("gateway", OK, f"{head}{listed}: the gateway accepts the token")
    if status in (401, 403) and _LICENCE.search(message):
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway is set up to use a feature it has no licence for{said}; it "
            "did not judge the credential",
            [
                "the gateway's operators must license that feature, or turn it off and use one "
                "the open-source edition has (LiteLLM: a general_settings.custom_auth hook that "
                "checks the token, instead of enable_jwt_auth)"
            ],
        )
    if status == 401:
        return _unauthorized(head, challenge, message, claims, profile)
    if status == 403:
        held = claims_text(claims, ("sub", "azp", "appid", "client_id", "scp", "scope", "roles"))
        who = f" ({held})" if held else " (the key's team or model permissions)"
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway knows the credential but refuses it access{said}",
            [
                f"ask the gateway's admins to allow this identity{who}, or request the scope or "
                "role the gateway requires (the profile's scopes)"
            ],
        )
    if status == 400 and (error_type == "no_db_connection" or _NO_DB.search(message)):
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway has no database to look the key up in{said}, so it accepts "
            "only its master key (LiteLLM answers so for any other key)",
            [
                "use the gateway's master key, or give the gateway its database (LiteLLM: "
                "DATABASE_URL): virtual keys, one per user, live there"
            ],
        )
    if status in (404, 405):
        return _not_found(head, endpoint, said)
    if 300 <= status < 400:
        return Check(
            "gateway",
            FAIL,
            f"{head}: a redirect to {location or '(no Location)'}",
            ["set the base URL to the address the gateway redirects to"],
        )
    if status == 429:
        return Check("gateway", WARN, f"{head}: rate limited{said}", ["try again later"])
    if status >= 500:
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway failed{said}",
            ["the gateway or its upstream is failing"],
        )
    return Check("gateway", FAIL, f"{head}{said}", ["check the gateway's logs for why it refused"])


def _not_found(head: str, endpoint: str, said: str) -> Check:
    """404 / 405: the base URL is wrong, or (models) the gateway lists none."""
    route = endpoint.rstrip("/").rsplit("/", 1)[-1]  # "models" or "messages"
    base = endpoint[: -len(f"/v1/{route}")]
    if base.rstrip("/").endswith("/v1"):
        fix = f"drop the trailing /v1 from the base URL ({base}): Claude appends /v1/..."
    elif route == "models":
        fix = (
            "check the base URL: it is the address under which the gateway serves "
            "/v1/messages; if the gateway does not list models, list them in Claude's "
            "configuration so the app does not call /v1/models"
        )
    else:
        fix = "check the base URL: it is the address under which the gateway serves /v1/messages"
    return Check("gateway", FAIL, f"{head}: no {route} endpoint there{said}", [fix])


def _unauthorized(
    head: str, challenge: str, message: str, claims: dict[str, object] | None, profile: Profile
) -> Check:
    """401: which part of the token the gateway rejects, from its challenge and message."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    reason = params.get("error_description") or params.get("error") or message
    said = f" ({reason})" if reason else ""
    text = f"{params.get('error_description', '')} {message}".lower()
    has = {name: claims_text(claims, (name,)) or f"no {name}" for name in ("aud", "iss")}
    if re.search(r"\baud|audience", text):
        issuer = kinds.capable(profile.spec, kinds.CheckingTokens)
        how = (
            issuer.audience_fix(profile)
            if issuer is not None
            else "use a credential issued for this gateway"
        )
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway rejects the token's audience{said}; the token has {has['aud']}",
            [f"{how}, or configure the gateway to accept that audience"],
        )
    if re.search(r"\biss|issuer", text):
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway rejects the token's issuer{said}; the token has {has['iss']}",
            ["configure the gateway to trust this issuer, or sign in at the one it trusts"],
        )
    if "expired" in text:
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway says the token expired{said}",
            [
                "compare the clocks (the clock check), then: gatekey get -p "
                f"{profile.name} --force-refresh"
            ],
        )
    if "signature" in text:
        return Check(
            "gateway",
            FAIL,
            f"{head}: the gateway cannot verify the token's signature{said}",
            [f"the gateway checks another issuer's keys; the token has {has['iss']}"],
        )
    other = "x-api-key" if profile.values["auth_scheme"] == "bearer" else "bearer"
    return Check(
        "gateway",
        FAIL,
        f"{head}: the gateway does not accept the credential{said}",
        [
            f'if the gateway wants it as {other}, set auth_scheme = "{other}" (and {SCHEME_KEY}); '
            f"otherwise look at the token: gatekey inspect -p {profile.name}"
        ],
    )


def claims_text(claims: dict[str, object] | None, names: tuple[str, ...]) -> str:
    if not claims:
        return ""
    return ", ".join(f"{n}={claims[n]}" for n in names if claims.get(n) not in (None, ""))


def tls(reason: str, host: str) -> str:
    """The fix for a TLS failure with ``host``, from OpenSSL's ``reason``."""
    lowered = reason.lower()
    if "hostname" in lowered or "ip address mismatch" in lowered:
        return f"the certificate is for another name than {host}: use the name it was issued for"
    if "expired" in lowered:
        return f"{host}'s certificate has expired: the gateway's operators must renew it"
    return (
        f"{host}'s certificate is not trusted here: add the CA that issued it (your "
        "organisation's, or a TLS-inspecting proxy's) to this machine's trust store"
    )


# --- the wrong protocol -----------------------------------------------------------------------
def plain_http(host: str) -> Check:
    """An https:// URL whose server answered in plain HTTP (the handshake met HTTP bytes)."""
    return Check(
        "gateway",
        FAIL,
        f"the server at {host} answered in plain HTTP, not TLS; no token was sent",
        [
            f"use the gateway's TLS port in the https:// URL (http://{host} serves plain HTTP; "
            "Claude needs https://, doctor allows http:// only to this machine)"
        ],
    )


def not_tls(host: str, reason: str, proxy: str | None = None) -> Check:
    """An https:// URL whose server (or ``proxy``, on the way) did not answer the TLS handshake
    in TLS; what it speaks instead could not be told."""
    if proxy is not None:
        return Check(
            "gateway",
            FAIL,
            f"the TLS handshake with {host} through the proxy {proxy} met bytes that are not "
            f"TLS ({reason}); no token was sent",
            [
                f"check the port of {host}, and the proxy setting (HTTPS_PROXY: a proxy is "
                "usually named with http://, even for https:// traffic)"
            ],
        )
    return Check(
        "gateway",
        FAIL,
        f"the server at {host} does not speak TLS there ({reason}); no token was sent",
        [f"check the port: {host} is not a TLS port (is it plain HTTP, or another protocol?)"],
    )


def speaks_tls(host: str) -> Check:
    """An http:// URL whose server speaks TLS on that port."""
    return Check(
        "gateway",
        FAIL,
        f"the server at {host} speaks TLS, not plain HTTP",
        [f"use https://{host} (Claude needs https:// anyway)"],
    )
