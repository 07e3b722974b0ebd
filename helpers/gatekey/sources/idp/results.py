"""MSAL's answers, which are dicts (a token, or ``error``/``error_description``), turned into a
Token or into our errors: a refused grant is InteractionRequired (exit 4, naming ``gatekey
login``), a provider's own failure TemporaryFailure, a refused client or scope a HelperError
saying what to check. Every token in an answer is registered as a secret before anything is
logged."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gatekey import logs
from gatekey.errors import HelperError, InteractionRequired, TemporaryFailure
from gatekey.token import Token

if TYPE_CHECKING:
    from gatekey.sources.idp.settings import IdpSettings

# MSAL error codes after which the refresh token is of no further use.
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "interaction_required", "login_required"})


def usable(settings: IdpSettings, result: dict[str, Any]) -> bool:
    """The answer holds the token the profile wants."""
    return bool(("id_token" if settings.wants_id else "access_token") in result)


def remaining(settings: IdpSettings, result: dict[str, Any]) -> float:
    """Seconds the answer's token (access or ID) has left."""
    if settings.wants_id:
        exp = (result.get("id_token_claims") or {}).get("exp")
        return float(exp) - time.time() if isinstance(exp, (int, float)) else 0.0
    return float(result.get("expires_in", 0) or 0)


def token(settings: IdpSettings, result: dict[str, Any]) -> Token:
    """The profile's token from a usable answer."""
    which = "id_token" if settings.wants_id else "access_token"
    value = result.get(which)
    if not isinstance(value, str) or not value:
        raise HelperError(
            f"the identity provider returned no {which.replace('_', ' ')}; "
            + (
                'set token = "access"'
                if which == "id_token"
                else "check the profile's scopes (an API scope gives an access token)"
            ),
            profile=settings.name,
        )
    logs.register_secret(value)
    for other in ("refresh_token", "id_token", "access_token"):
        if isinstance(result.get(other), str):
            logs.register_secret(result[other])
    # Lifetime from the response (access tokens may be opaque); for ID tokens, the exp claim
    # MSAL has already validated. 600 s if the provider states none.
    expires_in = remaining(settings, result) if which == "id_token" else result.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else 600.0
    claims = result.get("id_token_claims") or {}
    account = claims.get("preferred_username") or claims.get("email") or claims.get("sub")
    meta = {"account": str(account)} if account else {}
    return Token.from_expires_in(value, lifetime, source=settings.profile.kind, meta=meta)


def raise_for(settings: IdpSettings, result: dict[str, Any] | None, doing: str) -> None:
    """Nothing for a usable answer; otherwise the error that says what went wrong ``doing``."""
    if result and usable(settings, result):
        return
    name = settings.name
    result = result or {}
    code = str(result.get("error") or "no_token")
    description = str(result.get("error_description") or "").strip().splitlines()
    detail = f"{code}: {description[0][:200]}" if description else code
    if code in DEAD_GRANT_ERRORS or code in ("access_denied", "authorization_declined"):
        raise InteractionRequired(
            f"the identity provider refused {doing} ({detail})",
            profile=name,
            fix=f"run: gatekey login -p {name}",
        )
    if code in ("invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"):
        raise HelperError(
            f"the identity provider refused {doing} ({detail}); check the profile's "
            "client_id, scopes and credentials",
            profile=name,
        )
    if code in ("temporarily_unavailable", "server_error", "slow_down"):
        raise TemporaryFailure(
            f"the identity provider failed {doing} ({detail})", profile=name, fix="try again later"
        )
    raise HelperError(f"the identity provider refused {doing} ({detail})", profile=name)
