"""Client credentials: a service's token with a client secret or certificate, no person and no
saved sign-in (MSAL's in-memory cache only; gatekey caches the token)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatekey.context import RunContext
from gatekey.kinds import Linker
from gatekey.sources.idp.results import raise_for, token
from gatekey.sources.idp.settings import load_certificate
from gatekey.token import Token

if TYPE_CHECKING:
    from gatekey.sources.idp.settings import IdpSettings


def credential(settings: IdpSettings, run: RunContext, links: Linker | None) -> Any:
    """The profile's client_certificate (as MSAL's certificate credential) or client_secret,
    resolved from where its reference points (links: for { keychain = ... } references)."""
    from gatekey import secretref

    profile = settings.profile
    if settings.values.get("client_certificate"):
        return load_certificate(
            secretref.resolve(
                settings.values["client_certificate"],
                profile=profile,
                key="client_certificate",
                run=run,
                links=links,
            ),
            profile,
        )
    return secretref.resolve(
        settings.values["client_secret"],
        profile=profile,
        key="client_secret",
        run=run,
        links=links,
    )


def client_credentials(settings: IdpSettings, secret: Any, http_client: Any) -> Token:
    """One token request with ``secret`` (from ``credential``)."""
    import msal

    try:
        app = msal.ConfidentialClientApplication(
            settings.values["client_id"],
            client_credential=secret,
            **settings.app_kwargs(http_client),
        )
    except ValueError as e:
        raise settings.authority_error(e) from None
    result = app.acquire_token_for_client(settings.scopes, data=settings.extra)
    raise_for(settings, result, "requesting a token with the client credentials")
    return token(settings, result)
