"""Azure managed identity (IMDS, App Service, Functions, Arc) through MSAL: the ``entra`` flow
``managed-identity``, and the azure-key-vault source's ``credential_from = "managed-identity"``.

MSAL's client finds the machine's endpoint itself; gatekey hands it a deadline-bound HTTP client
without proxies (gatekey.http.ManagedIdentitySession) and a fresh in-memory token cache: gatekey
caches the token, and nothing of a managed identity is ever saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatekey.context import RunContext
from gatekey.errors import ConfigError, SourceUnavailable
from gatekey.sources.idp.results import raise_for, token
from gatekey.token import Token

if TYPE_CHECKING:
    from gatekey.sources.idp.settings import IdpSettings


def acquire(
    run: RunContext,
    resource: str,
    *,
    profile: str,
    client_id: str | None = None,
    http_client: Any = None,
) -> Any:
    """MSAL's answer (a dict) for a token for ``resource`` from this machine's managed identity:
    the user-assigned one with ``client_id``, else the system-assigned one. SourceUnavailable
    when MSAL finds no identity endpoint of a kind it can use (ManagedIdentityError)."""
    import msal

    if http_client is None:
        from gatekey.http import ManagedIdentitySession

        http_client = ManagedIdentitySession(run)
    identity = (
        msal.UserAssignedManagedIdentity(client_id=client_id)
        if client_id
        else msal.SystemAssignedManagedIdentity()
    )
    try:
        client = msal.ManagedIdentityClient(
            identity, http_client=http_client, token_cache=msal.TokenCache()
        )
        return client.acquire_token_for_client(resource=resource)
    except msal.ManagedIdentityError as e:
        raise SourceUnavailable(
            f"no managed identity is available on this machine ({type(e).__name__})",
            profile=profile,
            fix="managed-identity works on Azure-hosted machines only",
        ) from None


def fetch(settings: IdpSettings, run: RunContext, http_client: Any = None) -> Token:
    """The ``managed-identity`` flow of an entra profile: a token for the API in its scopes."""

    # Managed identity takes a resource, not scopes: "api://gw/.default" -> "api://gw".
    scope = settings.scopes[0] if settings.scopes else ""
    resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
    if not resource:
        raise ConfigError(
            "flow managed-identity needs the gateway API in scopes, e.g. "
            '["api://llm-gateway/.default"]',
            file=settings.profile.origins.get("scopes"),
            profile=settings.name,
            key="scopes",
        )
    result = acquire(
        run,
        resource,
        profile=settings.name,
        client_id=settings.values["managed_identity_client_id"],
        http_client=http_client,
    )
    raise_for(settings, result, "requesting a managed-identity token")
    return token(settings, result)
