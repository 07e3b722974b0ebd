"""MSAL's public client (the flows a person signs in to): built on the saved sign-in, and
refreshed silently from it.

The silent path: MSAL's own access token if it outlives ``min_ttl``, else the refresh-token grant.
A refresh token the provider no longer accepts (``invalid_grant``, ``interaction_required``)
drops that account, and the caller decides between signing in again and exit 4. Never a loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatekey.context import RunContext
from gatekey.sources.idp.msal_state import MsalStateStore, chosen_account
from gatekey.sources.idp.results import DEAD_GRANT_ERRORS, raise_for, remaining, usable
from gatekey.sources.idp.settings import broker_kwargs

if TYPE_CHECKING:
    from gatekey.sources.idp.settings import IdpSettings


def public_app(settings: IdpSettings, cache: Any, http_client: Any) -> Any:
    """MSAL's PublicClientApplication over ``cache`` (msal_state.saved_state)."""
    import msal

    kwargs = settings.app_kwargs(http_client)
    if settings.values.get("broker"):
        kwargs.update(broker_kwargs())
    try:
        return msal.PublicClientApplication(
            settings.values["client_id"], token_cache=cache, **kwargs
        )
    except ValueError as e:
        raise settings.authority_error(e) from None


def silent(
    settings: IdpSettings, app: Any, store: MsalStateStore, run: RunContext
) -> tuple[dict[str, Any] | None, str | None]:
    """(MSAL's usable answer, or None when a person must sign in; the error for which the
    provider's refusal dropped the saved account, if it did)."""
    account = chosen_account(settings, app, store)
    if account is None:
        return None, None
    min_ttl = float(settings.values["min_ttl"])
    # Redeem the refresh token at once when MSAL's own copy cannot serve: the app just had
    # its token rejected (mid-session-refresh, --force-refresh: the same token would fail
    # again), or an ID token is wanted (MSAL's cache answers with access tokens only).
    force = run.bypass_cache or settings.wants_id
    result = app.acquire_token_silent_with_error(
        settings.scopes, account, force_refresh=force, data=settings.extra
    )
    if not force and result and usable(settings, result) and remaining(settings, result) <= min_ttl:
        # MSAL's own copy would not outlive the app's TTL: redeem the refresh token now.
        result = app.acquire_token_silent_with_error(
            settings.scopes, account, force_refresh=True, data=settings.extra
        )
    if result is None:
        return None, None  # MSAL has no refresh token for these scopes
    if usable(settings, result):
        return dict(result), None
    if result.get("error") in DEAD_GRANT_ERRORS:
        app.remove_account(account)
        store.forget_account()
        return None, str(result.get("error"))
    raise_for(settings, result, "refreshing the sign-in")
    return None, None  # pragma: no cover - raise_for raised
