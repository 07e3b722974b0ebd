"""What an identity provider profile tells the diagnostics: its probe, its sign-in, and what a
token it issues should say. IdpSource's capabilities (kinds.Probing, SigningIn, CheckingTokens)
are implemented here, beside the source, and never print; doctor and inspect render them."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from gatekey.cache import FileCache
from gatekey.checks import FAIL, OK, SKIP, WARN, Check
from gatekey.kinds import Audience, ProbeKit, SignInState
from gatekey.sources.idp.msal_state import MsalStateStore
from gatekey.sources.idp.settings import ENTRA_HOST

if TYPE_CHECKING:
    from gatekey.config import Profile
    from gatekey.context import RunContext
    from gatekey.sources.idp.settings import IdpSettings

GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
GRAPH = "https://graph.microsoft.com"
SIGN_IN_FLOWS = ("browser", "device-code")  # the flows in which a person signs in


def person_signs_in(profile: Profile) -> bool:
    return profile.values.get("flow") in SIGN_IN_FLOWS


# --- doctor's source check ----------------------------------------------------------------------
def probe(profile: Profile, kit: ProbeKit) -> Check:
    """OpenID discovery, fetched afresh: the provider is there and offers what the flow needs."""
    values = profile.values
    if values["flow"] == "managed-identity":
        return Check("source", SKIP, "managed identity: the token check asks for one")
    if profile.kind == "oidc":
        base, key = str(values["issuer"]).rstrip("/"), "issuer"
    else:
        base, key = (
            f"{values['authority_host'] or ENTRA_HOST}/{values['tenant']}/v2.0",
            "tenant",
        )
    from gatekey.http import fetch_discovery

    t0 = time.monotonic()
    answer = fetch_discovery(base, lambda url: kit.get(url, ca_bundle=values.get("ca_bundle")))
    took = time.monotonic() - t0
    url, doc = answer.url, answer.document
    data = {"url": url, "status": answer.status}
    if answer.status != 200:
        fix = (
            f"check the profile's {key}: the provider serves its discovery document there"
            if answer.status < 500
            else "the identity provider is failing: try again later, or ask its operators"
        )
        detail = f"OpenID discovery at {url} answered HTTP {answer.status}"
        return Check("source", FAIL, detail, [fix], data)
    if doc is None or "token_endpoint" not in doc:
        fix = f"check the profile's {key} (a proxy or captive portal may have answered)"
        return Check("source", FAIL, f"{url} is not OpenID discovery", [fix], data)
    if values["flow"] == "device-code" and "device_authorization_endpoint" not in doc:
        fix = 'set flow = "browser"'
        return Check("source", FAIL, "the provider offers no device-code flow", [fix], data)
    issuer = str(doc.get("issuer", "")).rstrip("/")
    if profile.kind == "oidc" and issuer != base:
        fix = f'set issuer = "{issuer}" (tokens are checked against it)'
        return Check("source", WARN, f"{url} names another issuer, {issuer}", [fix], data)
    return Check("source", OK, f"OpenID discovery at {url} answered in {took:.2f} s", [], data)


# --- the saved sign-in --------------------------------------------------------------------------
def sign_in_state(settings: IdpSettings, run: RunContext) -> SignInState:
    """Who is signed in and whether a refresh token is saved: read only, names only."""
    store = MsalStateStore(settings, run)
    account, has_refresh = saved_account(store.load(), store.account)
    return SignInState(account, has_refresh, store.mode)


def saved_account(blob: str | None, chosen: str | None) -> tuple[str | None, bool]:
    """From MSAL's serialized cache: the signed-in account's name, and whether a refresh token
    is saved for it. Reads account names only, never a credential."""
    try:
        data = json.loads(blob or "")
    except ValueError:
        return None, False
    if not isinstance(data, dict):
        return None, False
    accounts = [a for a in (data.get("Account") or {}).values() if isinstance(a, dict)]
    if chosen is not None:
        accounts = [a for a in accounts if a.get("home_account_id") == chosen]
    if not accounts:
        return None, False
    home = accounts[0].get("home_account_id")
    refresh = [
        rt
        for rt in (data.get("RefreshToken") or {}).values()
        if isinstance(rt, dict) and rt.get("home_account_id") == home
    ]
    name = accounts[0].get("username") or accounts[0].get("local_account_id") or "an account"
    return str(name), bool(refresh)


def sign_in_storage(settings: IdpSettings) -> str:
    """Where the sign-in actually is: a file (configured, or the fallback on Linux without a
    Secret Service) or the OS keychain."""
    blob, _ = FileCache().read_blob("msal", settings.state_key)
    if blob is not None:
        return "user-only file (0600, not encrypted)"
    if settings.values["token_cache"] == "keychain":  # noqa: S105 - a setting
        return "OS keychain"
    return "user-only file"


# --- what its tokens should say -----------------------------------------------------------------
def scope_resource(scope: str) -> str:
    """The Entra resource a scope is for: ``api://x/.default`` → ``api://x``; a bare scope
    (``User.Read``) is Microsoft Graph's."""
    scheme, sep, rest = scope.partition("://")
    if sep:
        return f"{scheme}://{rest.rsplit('/', 1)[0]}" if "/" in rest else scope
    head, slash, _ = scope.partition("/")
    return head if slash and GUID.fullmatch(head) else GRAPH


def audience(profile: Profile) -> Audience | None:
    """The audiences the gateway should see, and where that came from (there is no
    ``gateway_audience`` key yet: these are what the profile asks the IdP for)."""
    values = profile.values
    # Entra names an application api://<id> or <id>: a bare id may be its App ID URI.
    app_ids = profile.kind == "entra"
    if values.get("token") == "id":
        origin = "client_id (an ID token is issued to the client)"
        return Audience([values["client_id"]], origin, app_ids)
    if profile.kind == "oidc":
        for key in ("audience", "resource"):
            if values.get(key):
                return Audience([values[key]], f"the profile's {key}")
        return None
    resources = sorted({scope_resource(s) for s in values.get("scopes") or []})
    if not resources:
        return None
    return Audience(resources, "the resource of the profile's scopes", app_ids)


def issuer_checks(profile: Profile, claims: dict[str, Any]) -> list[Check]:
    """The token's issuer (oidc) or tenant (entra) against the profile's."""
    iss = claims.get("iss")
    if profile.kind == "oidc" and isinstance(iss, str):
        want = str(profile.values["issuer"])
        if iss.rstrip("/") == want.rstrip("/"):
            return [Check("issuer", OK, f"the profile's issuer ({want})")]
        return [Check("issuer", WARN, f"iss {iss} is not the profile's issuer {want}")]
    tid, tenant = claims.get("tid"), str(profile.values.get("tenant") or "")
    if profile.kind == "entra" and isinstance(tid, str) and GUID.fullmatch(tenant):
        if tid.lower() == tenant.lower():
            return [Check("tenant", OK, f"the profile's tenant ({tenant})")]
        return [Check("tenant", WARN, f"tid {tid} is not the profile's tenant {tenant}")]
    return []


def audience_fix(profile: Profile) -> str:
    """What to change when a gateway rejects the token's audience."""
    if profile.kind == "entra":
        return 'request a token for the gateway\'s API (scopes = ["api://<its app>/.default"])'
    return (
        "request a token for the gateway: set the profile's audience or resource, or "
        "the API scope your provider issues for it"
    )
