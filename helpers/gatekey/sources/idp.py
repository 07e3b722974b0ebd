"""Identity-provider sources, ``entra`` and ``oidc``, on MSAL.

What happens when gatekey's own cache has no usable token (refresh.get_token, inside its lock):
1. client-credentials: one token request (MSAL's in-memory cache only; gatekey caches).
2. otherwise, silently from MSAL's persisted cache: its access token if it outlives ``min_ttl``,
   else the refresh-token grant (``force_refresh``). The new refresh token is persisted before
   the access token is returned, so a rotating refresh token is never lost.
3. a rejected refresh token (``invalid_grant``, ``interaction_required``): that account is
   dropped, and the run either signs in again (a person is present) or exits 4 naming
   ``gatekey login -p <profile>``. Never a loop.
4. no account: sign in if a person is present (device-code), else exit 4.

MSAL's token cache (refresh tokens) lives in the OS keychain (the same chunked store as the
keychain source), or in a 0600 file when the profile says ``token_cache = "file"`` or when Linux
has no Secret Service (with a warning).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable, Iterator
from typing import Any

from gatekey import logs
from gatekey.cache import FileCache, cache_key
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import (
    ConfigError,
    DeadlineExceeded,
    HelperError,
    InteractionRequired,
    SourceUnavailable,
    TemporaryFailure,
)
from gatekey.token import Token

log = logging.getLogger(__name__)

ENTRA_HOST = "https://login.microsoftonline.com"
MSAL_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# MSAL error codes after which the refresh token is of no further use.
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "interaction_required", "login_required"})
KEYCHAIN_SERVICE = "gatekey-idp"
# Parameters of the authorize URL that the authorization-code flow itself sets.
FLOW_PARAMS = frozenset(
    {
        "client_id",
        "client_info",
        "code_challenge",
        "code_challenge_method",
        "nonce",
        "redirect_uri",
        "response_mode",
        "response_type",
        "scope",
        "state",
    }
)


class IdpSource:
    """Fetches tokens for one ``entra`` or ``oidc`` profile. Never caches (beyond MSAL's own
    refresh-token store), prints to stdout, or exits."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.values = profile.values
        self.flow: str = self.values["flow"]
        self.wants_id = self.values["token"] == "id"  # noqa: S105 - a setting, not a secret
        self.dropped: str | None = None  # why the provider refused the saved sign-in, if it did
        self.scopes: list[str] = list(self.values["scopes"] or [])
        reserved = MSAL_RESERVED_SCOPES & set(self.scopes)
        if reserved:
            raise ConfigError(
                f"remove {', '.join(sorted(reserved))}: they are always requested for sign-in",
                file=profile.origins.get("scopes"),
                profile=profile.name,
                key="scopes",
            )
        if self.flow == "managed-identity" and profile.kind != "entra":
            raise ConfigError(
                "flow managed-identity is for entra profiles on Azure-hosted machines",
                file=profile.origins.get("flow"),
                profile=profile.name,
                key="flow",
            )
        if self.flow == "client-credentials" and not (
            self.values.get("client_secret") or self.values.get("client_certificate")
        ):
            raise ConfigError(
                "flow client-credentials needs client_secret or client_certificate "
                '(a reference such as { env = "CORP_SECRET" })',
                file=profile.origins.get("flow"),
                profile=profile.name,
                key="client_secret",
            )
        if profile.kind == "oidc":
            issuer: str = self.values["issuer"]
            if "/" not in issuer.split("://", 1)[1]:
                raise ConfigError(
                    f"issuer {issuer} has no path; MSAL cannot use an issuer at the root of a "
                    "host (e.g. Google), so this provider is not supported yet",
                    file=profile.origins.get("issuer"),
                    profile=profile.name,
                    key="issuer",
                )
        if self.values["ca_bundle"]:
            check_ca_bundle(self.values["ca_bundle"], profile)
        # Extra parameters (oidc): audience/resource go on every token request and on the
        # browser sign-in URL; authorize_params on the sign-in URL only.
        self.extra: dict[str, str] = {
            key: self.values[key] for key in ("audience", "resource") if self.values.get(key)
        }
        self.authorize_params = {**self.extra, **self._authorize_params(profile)}
        # Refresh tokens belong to (authority, client); scopes are asked per request.
        self.state_key = cache_key(
            profile.kind, {"authority": self.authority, "client_id": self.values["client_id"]}
        )

    def _authorize_params(self, profile: Profile) -> dict[str, str]:
        params: dict[str, str] = dict(self.values.get("authorize_params") or {})
        taken = sorted(FLOW_PARAMS & set(params))
        if "login_hint" in params:
            taken.append("login_hint (use the login_hint key)")
        if taken:
            raise ConfigError(
                f"remove {', '.join(taken)} from authorize_params: the sign-in flow sets them",
                file=profile.origins.get("authorize_params"),
                profile=profile.name,
                key="authorize_params",
            )
        for key in ("audience", "resource"):
            if key in params and self.values.get(key):
                raise ConfigError(
                    f"{key} is set both as a key and in authorize_params; keep the {key} key "
                    "(it is sent on token requests too)",
                    file=profile.origins.get("authorize_params"),
                    profile=profile.name,
                    key="authorize_params",
                )
        return params

    @property
    def authority(self) -> str:
        if self.profile.kind == "oidc":
            return str(self.values["issuer"])
        host = self.values["authority_host"] or ENTRA_HOST
        return f"{host}/{self.values['tenant']}"

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def rotates_sign_in(self) -> bool:
        """A fetch may redeem, and so rotate, a saved refresh token (gatekey.worker then runs
        it where a kill of the run cannot interrupt the save); the confidential flows save none."""
        return self.flow not in ("client-credentials", "managed-identity")

    # --- the source interface ----------------------------------------------------------------
    def fetch(self, run: RunContext) -> Token:
        if self.flow == "client-credentials":
            return self._client_credentials(run)
        if self.flow == "managed-identity":
            return self._managed_identity(run)
        # Profiles with the same authority and client share MSAL's state (one file or keychain
        # entry holding every account): load → redeem → save under the state's own lock, or two
        # accounts refreshing at once would each save the other's old, rotated refresh token.
        with self._state_lock(run):
            if run.interactive:
                return self._fetch_public(run)  # Ctrl-C must work during a sign-in
            # A silent refresh redeems a refresh token that the provider then revokes (rotation):
            # a SIGTERM between the request and the save would lose the sign-in. Hold it (and
            # SIGINT, SIGHUP) until the new state is saved; the deadline bounds the wait.
            with signals_held():
                return self._fetch_public(run)

    def _fetch_public(self, run: RunContext) -> Token:
        store = MsalStateStore(self, run)
        saved = self._saved_state(store)
        if not run.interactive and not self._saved_accounts(saved):
            # Nothing to refresh, whatever the network does: the truth is "sign in", decided
            # before the identity provider is asked anything (MSAL's app asks for discovery).
            raise self._sign_in_needed(run)
        app = self._public_app(run, store, saved=saved)

        def attempt() -> Token:
            result = self._silent(app, store, run)
            if result is None:
                if not run.interactive:
                    raise self._sign_in_needed(run)
                if self.dropped:
                    log.warning(
                        'profile "%s": %s; signing in again', self.name, self._why_sign_in()
                    )
                result = self._sign_in(app, run)
                store.remember_account(result, app.token_cache)
            return self._token(result)

        return store.saved_after(attempt, app.token_cache)

    def _why_sign_in(self) -> str:
        if self.dropped:
            return (
                f"the identity provider no longer accepts the saved sign-in ({self.dropped}), "
                "so it was removed"
            )
        return "not signed in (or the sign-in expired)"

    def _sign_in_needed(self, run: RunContext) -> InteractionRequired:
        return InteractionRequired(
            f"{self._why_sign_in()}, and no one is present to sign in ({run.name})",
            profile=self.name,
            fix=f"run: gatekey login -p {self.name}",
        )

    def login(self, run: RunContext) -> Token:
        """Sign in interactively, whatever the context (``gatekey login``)."""
        if self.flow == "client-credentials":
            return self._client_credentials(run)
        with self._state_lock(run):  # see fetch()
            store = MsalStateStore(self, run)
            app = self._public_app(run, store)

            def attempt() -> Token:
                result = self._sign_in(app, run)
                store.remember_account(result, app.token_cache)
                return self._token(result)

            return store.saved_after(attempt, app.token_cache)

    def logout(self, run: RunContext, *, all_accounts: bool = False) -> int:
        """Forget this profile's account (or every account); returns how many were removed."""
        with self._state_lock(run):  # see fetch()
            store = MsalStateStore(self, run)
            if all_accounts:
                return store.clear()
            app = self._public_app(run, store, network=False)
            accounts = [a for a in app.get_accounts() if self._is_ours(a, store)]
            for account in accounts:
                app.remove_account(account)
            store.forget_account()
            store.save(app.token_cache)
            return len(accounts)

    @contextlib.contextmanager
    def _state_lock(self, run: RunContext) -> Iterator[None]:
        """MSAL's state lock (see fetch()); none to take when the cache directory is refused
        (another user's): the run has said so, and MSAL's state can live in the keychain only."""
        cache = FileCache()
        if cache.refused() is not None:
            yield
            return
        with cache.lock(self.state_key, run):
            yield

    # --- MSAL applications -----------------------------------------------------------------
    def _session(self, run: RunContext) -> Any:
        from gatekey.http import IdpSession

        return IdpSession(
            run, ca_bundle=self.values["ca_bundle"], cache=FileCache(), json_answers=True
        )

    def _app_kwargs(self, run: RunContext) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"http_client": self._session(run)}
        if self.profile.kind == "oidc":
            kwargs["oidc_authority"] = self.authority
        else:
            kwargs["authority"] = self.authority
            if self.values["authority_host"]:
                # Sovereign clouds and test authorities: no instance discovery on the public cloud.
                kwargs["instance_discovery"] = False
        return kwargs

    def _saved_state(self, store: MsalStateStore) -> Any:
        """MSAL's token cache as saved (empty when there is none, or it is damaged)."""
        import msal

        cache = msal.SerializableTokenCache()
        blob = store.load()
        if blob:
            try:
                cache.deserialize(blob)
            except (ValueError, TypeError):
                log.warning("the saved sign-in of profile %s was damaged; sign in again", self.name)
        return cache

    def _saved_accounts(self, cache: Any) -> list[dict[str, Any]]:
        """The saved accounts this profile could use, read without the network: every account
        MSAL's get_accounts could list (it also filters by the authority's host, which it needs
        discovery for), so an empty list means MSAL has none either."""
        accounts = list(cache.find(cache.CredentialType.ACCOUNT))
        hint = self.values["login_hint"]
        if hint:
            accounts = [a for a in accounts if str(a.get("username", "")).lower() == hint.lower()]
        return accounts

    def _public_app(
        self, run: RunContext, store: MsalStateStore, *, network: bool = True, saved: Any = None
    ) -> Any:
        import msal

        cache = self._saved_state(store) if saved is None else saved
        kwargs = self._app_kwargs(run)
        if self.values.get("broker"):
            kwargs.update(broker_kwargs())
        try:
            return msal.PublicClientApplication(
                self.values["client_id"], token_cache=cache, **kwargs
            )
        except ValueError as e:
            raise self._authority_error(e) from None

    def _client_credentials(self, run: RunContext) -> Token:
        import msal

        from gatekey import secretref

        credential: Any
        if self.values.get("client_certificate"):
            credential = load_certificate(
                secretref.resolve(
                    self.values["client_certificate"],
                    profile=self.profile,
                    key="client_certificate",
                    run=run,
                ),
                self.profile,
            )
        else:
            credential = secretref.resolve(
                self.values["client_secret"], profile=self.profile, key="client_secret", run=run
            )
        try:
            app = msal.ConfidentialClientApplication(
                self.values["client_id"], client_credential=credential, **self._app_kwargs(run)
            )
        except ValueError as e:
            raise self._authority_error(e) from None
        result = app.acquire_token_for_client(self.scopes, data=self.extra)
        self._raise_for(result, "requesting a token with the client credentials")
        return self._token(result)

    def _managed_identity(self, run: RunContext, http_client: Any = None) -> Token:
        """Azure managed identity (IMDS, App Service, Functions, Arc) through MSAL."""
        import msal

        if http_client is None:
            from gatekey.http import ManagedIdentitySession

            http_client = ManagedIdentitySession(run)
        client_id = self.values["managed_identity_client_id"]
        identity = (
            msal.UserAssignedManagedIdentity(client_id=client_id)
            if client_id
            else msal.SystemAssignedManagedIdentity()
        )
        # Managed identity takes a resource, not scopes: "api://gw/.default" -> "api://gw".
        scope = self.scopes[0] if self.scopes else ""
        resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
        if not resource:
            raise ConfigError(
                "flow managed-identity needs the gateway API in scopes, e.g. "
                '["api://llm-gateway/.default"]',
                file=self.profile.origins.get("scopes"),
                profile=self.name,
                key="scopes",
            )
        client = msal.ManagedIdentityClient(identity, http_client=http_client)
        try:
            result = client.acquire_token_for_client(resource=resource)
        except msal.ManagedIdentityError as e:
            raise SourceUnavailable(
                f"no managed identity is available on this machine ({type(e).__name__})",
                profile=self.name,
                fix="managed-identity works on Azure-hosted machines only",
            ) from None
        self._raise_for(result, "requesting a managed-identity token")
        return self._token(result)

    def _authority_error(self, error: ValueError) -> HelperError:
        key = "issuer" if self.profile.kind == "oidc" else "tenant"
        return HelperError(
            f"the identity provider at {self.authority} cannot be used ({error}); check {key}",
            profile=self.name,
        )

    # --- silent path -------------------------------------------------------------------------
    def _silent(self, app: Any, store: MsalStateStore, run: RunContext) -> dict[str, Any] | None:
        account = self._account(app, store)
        if account is None:
            return None
        min_ttl = float(self.values["min_ttl"])
        # Redeem the refresh token at once when MSAL's own copy cannot serve: the app just had
        # its token rejected (mid-session-refresh, --force-refresh: the same token would fail
        # again), or an ID token is wanted (MSAL's cache answers with access tokens only).
        force = run.bypass_cache or self.wants_id
        result = app.acquire_token_silent_with_error(
            self.scopes, account, force_refresh=force, data=self.extra
        )
        if not force and result and self._usable(result) and self._remaining(result) <= min_ttl:
            # MSAL's own copy would not outlive the app's TTL: redeem the refresh token now.
            result = app.acquire_token_silent_with_error(
                self.scopes, account, force_refresh=True, data=self.extra
            )
        if result is None:
            return None  # MSAL has no refresh token for these scopes
        if self._usable(result):
            return dict(result)
        if result.get("error") in DEAD_GRANT_ERRORS:
            app.remove_account(account)
            store.forget_account()
            self.dropped = str(result.get("error"))  # said once, by whoever reports the outcome
            return None
        self._raise_for(result, "refreshing the sign-in")
        return None  # pragma: no cover - _raise_for raised

    def _account(self, app: Any, store: MsalStateStore) -> Any:
        hint = self.values["login_hint"]
        accounts = app.get_accounts(username=hint) if hint else app.get_accounts()
        if not accounts:
            return None
        remembered = store.account
        for account in accounts:
            if account.get("home_account_id") == remembered:
                return account
        return accounts[0] if len(accounts) == 1 or hint else None

    def _is_ours(self, account: dict[str, Any], store: MsalStateStore) -> bool:
        hint = self.values["login_hint"]
        if hint:
            return str(account.get("username", "")).lower() == str(hint).lower()
        return store.account is None or bool(account.get("home_account_id") == store.account)

    # --- interactive sign-in -----------------------------------------------------------------
    def _sign_in(self, app: Any, run: RunContext) -> dict[str, Any]:
        if self.flow == "device-code":
            return self._device_code(app, run)
        return self._browser(app, run)

    def _browser(self, app: Any, run: RunContext) -> dict[str, Any]:
        """Authorization code + PKCE: a loopback listener receives the code; we open the browser.

        MSAL's ``acquire_token_interactive`` cannot add parameters to the authorize URL (Auth0's
        ``audience``, ``authorize_params``), so outside the broker the flow is driven through
        MSAL's public pieces: ``initiate_auth_code_flow`` builds the URL (PKCE, state, nonce),
        its loopback receiver takes the answer, ``acquire_token_by_auth_code_flow`` redeems it.
        """
        import msal

        launcher = DetachedBrowser(self.values["browser_command"], profile=self.name)
        webbrowser.register("gatekey", None, launcher, preferred=True)
        left = run.check("starting the browser sign-in")
        # End before the deadline (the watchdog acts there): a wait that would run past it
        # has already failed, and says so as the exit 4 it is, not as a watchdog's 75.
        timeout = left - 0.5
        not_finished = InteractionRequired(
            f"the browser sign-in did not finish within {run.timeout:g} s",
            profile=self.name,
            fix=f"run: gatekey login -p {self.name}",
        )
        if timeout < 0.1:
            raise not_finished
        if self.values.get("broker"):
            # The broker shows its own window; MSAL needs a parent, and a console is ours.
            try:
                result = app.acquire_token_interactive(
                    self.scopes,
                    login_hint=self.values["login_hint"],
                    timeout=timeout,
                    parent_window_handle=app.CONSOLE_WINDOW_HANDLE,
                )
            except (msal.BrowserInteractionTimeoutError, DeadlineExceeded):
                raise not_finished from None
        else:
            result = self._loopback_sign_in(app, timeout, launcher)
        if not result or result.get("error") == "timeout":
            raise not_finished
        self._raise_for(result, "signing in in the browser")
        return dict(result)

    def _loopback_sign_in(
        self, app: Any, timeout: float, launcher: DetachedBrowser
    ) -> dict[str, Any] | None:
        from urllib.parse import urlencode

        from msal.oauth2cli.authcode import AuthCodeReceiver

        with AuthCodeReceiver(port=0) as receiver:
            flow = app.initiate_auth_code_flow(
                self.scopes,
                redirect_uri=f"http://localhost:{receiver.get_port()}",
                login_hint=self.values["login_hint"],
                response_mode="form_post",  # what MSAL's receiver accepts
            )
            auth_uri = str(flow["auth_uri"])
            if self.authorize_params:
                auth_uri += "&" + urlencode(self.authorize_params)
            response = receiver.get_auth_response(
                auth_uri=auth_uri,
                state=flow["state"],
                timeout=timeout,
                auth_uri_callback=launcher.tell,
                browser_name="gatekey",
                success_template="Signed in to gatekey. You can close this tab.",
            )
        if not response:
            return None  # timed out, or an answer with the wrong state
        result = app.acquire_token_by_auth_code_flow(flow, response, data=self.extra)
        return dict(result) if result else None

    def _device_code(self, app: Any, run: RunContext) -> dict[str, Any]:
        flow = app.initiate_device_flow(scopes=self.scopes)  # MSAL sets its own data here
        if "user_code" not in flow:
            self._raise_for(flow, "starting the device-code sign-in")
        uri = flow.get("verification_uri") or flow.get("verification_url") or ""
        message = (
            f"to sign in to profile {self.name}, open {uri} and enter the code {flow['user_code']}"
        )
        complete = flow.get("verification_uri_complete")
        if complete:
            message += f" (or open {complete})"
        _tell_person(message)
        # Bounded by the code's own expiry and by this run's deadline, whichever comes first.
        # MSAL checks the expiry once a second while it waits between polls: stop a second
        # early, so that the run ends (exit 4) before the watchdog's deadline.
        flow["expires_at"] = min(float(flow["expires_at"]), time.time() + run.remaining() - 1.0)
        not_approved = InteractionRequired(
            "the sign-in with the device code was not completed in time",
            profile=self.name,
            fix=f"run: gatekey login -p {self.name}",
        )
        try:
            result = app.acquire_token_by_device_flow(flow, data=self.extra)
        except DeadlineExceeded:
            raise not_approved from None
        if result.get("error") in ("expired_token", "authorization_pending", "slow_down"):
            raise not_approved
        self._raise_for(result, "signing in with the device code")
        return dict(result)

    # --- results -----------------------------------------------------------------------------
    def _usable(self, result: dict[str, Any]) -> bool:
        return bool(("id_token" if self.wants_id else "access_token") in result)

    def _remaining(self, result: dict[str, Any]) -> float:
        if self.wants_id:
            exp = (result.get("id_token_claims") or {}).get("exp")
            return float(exp) - time.time() if isinstance(exp, (int, float)) else 0.0
        return float(result.get("expires_in", 0) or 0)

    def _token(self, result: dict[str, Any]) -> Token:
        which = "id_token" if self.wants_id else "access_token"
        value = result.get(which)
        if not isinstance(value, str) or not value:
            raise HelperError(
                f"the identity provider returned no {which.replace('_', ' ')}; "
                + (
                    'set token = "access"'
                    if which == "id_token"
                    else "check the profile's scopes (an API scope gives an access token)"
                ),
                profile=self.name,
            )
        logs.register_secret(value)
        for other in ("refresh_token", "id_token", "access_token"):
            if isinstance(result.get(other), str):
                logs.register_secret(result[other])
        # Lifetime from the response (access tokens may be opaque); for ID tokens, the exp claim
        # MSAL has already validated. 600 s if the provider states none.
        expires_in = self._remaining(result) if which == "id_token" else result.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else 600.0
        claims = result.get("id_token_claims") or {}
        account = claims.get("preferred_username") or claims.get("email") or claims.get("sub")
        meta = {"account": str(account)} if account else {}
        return Token.from_expires_in(value, lifetime, source=self.profile.kind, meta=meta)

    def _raise_for(self, result: dict[str, Any] | None, doing: str) -> None:
        if result and self._usable(result):
            return
        result = result or {}
        code = str(result.get("error") or "no_token")
        description = str(result.get("error_description") or "").strip().splitlines()
        detail = f"{code}: {description[0][:200]}" if description else code
        if code in DEAD_GRANT_ERRORS or code in ("access_denied", "authorization_declined"):
            raise InteractionRequired(
                f"the identity provider refused {doing} ({detail})",
                profile=self.name,
                fix=f"run: gatekey login -p {self.name}",
            )
        if code in ("invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"):
            raise HelperError(
                f"the identity provider refused {doing} ({detail}); check the profile's "
                "client_id, scopes and credentials",
                profile=self.name,
            )
        if code in ("temporarily_unavailable", "server_error", "slow_down"):
            raise TemporaryFailure(
                f"the identity provider failed {doing} ({detail})",
                profile=self.name,
                fix="try again later",
            )
        raise HelperError(f"the identity provider refused {doing} ({detail})", profile=self.name)


class MsalStateStore:
    """Where MSAL's token cache (refresh tokens) and the chosen account are kept."""

    def __init__(self, source: IdpSource, run: RunContext) -> None:
        self.source = source
        self.run = run
        self.mode: str = source.values["token_cache"]
        self.account: str | None = None
        self._dirty = False

    # Keychain first; a 0600 file when configured, or when Linux has no Secret Service.
    def _keychain(self) -> Any:
        from gatekey.keystore import ChunkedStore, default_backend, open_store

        return ChunkedStore(open_store(default_backend(), interactive=self.run.interactive))

    def _read(self) -> str | None:
        if self.mode == "keychain":
            from gatekey.keystore import call_with_deadline

            try:
                store = self._keychain()
                return call_with_deadline(  # type: ignore[no-any-return]
                    lambda: store.get(KEYCHAIN_SERVICE, self.source.state_key),
                    self.run,
                    "reading the saved sign-in from the keychain",
                )
            except SourceUnavailable as e:
                if sys.platform != "linux":
                    raise
                log.warning(
                    "profile %s: %s; keeping the sign-in in a user-only file instead (set "
                    'token_cache = "file" to make this the choice and silence this warning)',
                    self.source.name,
                    e.message.split(";")[0],
                )
                self.mode = "file"
        data, _ = FileCache().read_blob("msal", self.source.state_key)
        return data

    def load(self) -> str | None:
        raw = self._read()
        if not raw:
            return None
        try:
            data = json.loads(raw)
            msal_state = data.get("msal") if isinstance(data, dict) else None
            usable = isinstance(msal_state, str) and _msal_shaped(json.loads(msal_state))
        except (ValueError, RecursionError):
            usable = False
        if not usable:
            log.warning(
                "the saved sign-in of profile %s was damaged; sign in again", self.source.name
            )
            return None
        account = data.get("account")
        self.account = account if isinstance(account, str) else None
        return str(msal_state)

    def saved_after(self, attempt: Callable[[], Token], token_cache: Any) -> Token:
        """Run ``attempt``, then persist MSAL's cache (a rotated refresh token) before returning.

        If the attempt failed, whatever changed (a dropped account) is still saved, but a failure
        to save does not hide the attempt's own error.
        """
        try:
            token = attempt()
        except BaseException:
            try:
                self.save(token_cache)
            except HelperError as e:
                log.warning("%s", e)
            raise
        self.save(token_cache)  # a failure here is the run's error: the next run would need it
        return token

    def remember_account(self, result: dict[str, Any], token_cache: Any) -> None:
        """Which of MSAL's accounts this profile signed in as (used when there are several)."""
        claims = result.get("id_token_claims") or {}
        self.account = _home_account_id(token_cache, claims) or self.account
        self._dirty = True

    def forget_account(self) -> None:
        self.account = None
        self._dirty = True

    def save(self, token_cache: Any) -> None:
        if not token_cache.has_state_changed and not self._dirty:
            return
        body = json.dumps({"v": 1, "account": self.account, "msal": token_cache.serialize()})
        try:
            if self.mode == "keychain":
                from gatekey.keystore import call_with_deadline

                store = self._keychain()
                # The entry's only writer: the write sweeps what a killed one left (chunks.py).
                store.lock(KEYCHAIN_SERVICE, self.source.state_key, self.run)
                call_with_deadline(
                    lambda: store.set(KEYCHAIN_SERVICE, self.source.state_key, body),
                    self.run,
                    "saving the sign-in to the keychain",
                )
            else:
                FileCache().write_blob("msal", self.source.state_key, body)
        except (HelperError, OSError) as e:
            # The refresh token may have rotated: the next silent run will need a sign-in.
            raise HelperError(
                f"could not save the sign-in ({e}); the next run will ask you to sign in again",
                profile=self.source.name,
            ) from None
        token_cache.has_state_changed = False
        self._dirty = False

    def clear(self) -> int:
        existed = 0
        if self.mode == "keychain":
            try:
                store = self._keychain()
                store.lock(KEYCHAIN_SERVICE, self.source.state_key, self.run)
                existed += bool(store.delete(KEYCHAIN_SERVICE, self.source.state_key))
            except SourceUnavailable:
                pass
        existed += FileCache().delete_blob("msal", self.source.state_key)
        return existed


def linked_token(profile: Profile, run: RunContext) -> str:
    """The token of a linked entra or oidc profile (vault's ``auth.jwt_from``, Key Vault's
    ``credential_from``), obtained as a run of its own that shares this run's deadline and child
    processes: refresh.get_token records the profile's cached token as the run's fallback
    (RunContext.fallback, what the deadline path prints), and the linked profile's must not
    take the place of the credential the run was asked for."""
    from gatekey.refresh import get_token

    linked = RunContext(
        run.name,
        interactive=run.interactive,
        timeout=run.timeout,
        force_refresh=run.force_refresh,
        started=run.started,
    )
    linked.children = run.children  # the watchdog stops what the linked fetch starts, too
    try:
        return get_token(profile, linked).token.value
    finally:
        run.fetches += linked.fetches


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP for the block; one that arrived is delivered after it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            previous[number] = signal.signal(number, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            log.debug("a signal arrived during the refresh; delivering it now the state is saved")
            signal.raise_signal(caught[0])


def _home_account_id(token_cache: Any, claims: dict[str, Any]) -> str | None:
    sub = claims.get("oid") or claims.get("sub")
    for account in token_cache.find(token_cache.CredentialType.ACCOUNT):
        if sub and str(account.get("local_account_id")) == str(sub):
            return str(account.get("home_account_id"))
    return None


def check_ca_bundle(path: str, profile: Profile) -> None:
    """A ca_bundle must be a readable PEM file of certificates (checked before any request)."""
    import ssl

    try:
        # An empty context: loading the OS store too (create_default_context) costs ~25 ms.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else type(e).__name__
        raise ConfigError(
            f"{path} is not a readable PEM file of CA certificates ({why})",
            file=profile.origins.get("ca_bundle"),
            profile=profile.name,
            key="ca_bundle",
        ) from None


def broker_kwargs() -> dict[str, Any]:
    """MSAL's broker switches (WAM on Windows, Company Portal on macOS)."""
    return {"enable_broker_on_windows": True, "enable_broker_on_mac": True}


def load_certificate(pem: str, profile: Profile) -> dict[str, Any]:
    """MSAL's certificate credential from one PEM text holding the private key and certificate."""
    import hashlib
    import re
    import ssl

    key = re.search(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S
    )
    cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if key is None or cert is None:
        raise ConfigError(
            "client_certificate must name a PEM file holding both the private key and the "
            "certificate",
            file=profile.origins.get("client_certificate"),
            profile=profile.name,
            key="client_certificate",
        )
    der = ssl.PEM_cert_to_DER_cert(cert.group(0))
    return {
        "private_key": key.group(0),
        "thumbprint": hashlib.sha1(der).hexdigest(),  # noqa: S324 - the x5t MSAL sends is SHA-1
        "public_certificate": cert.group(0),
    }


class DetachedBrowser(webbrowser.BaseBrowser):
    """A ``webbrowser`` browser that starts the configured command detached from our stdio.

    The browser may outlive gatekey; started in its own session with stdin/stdout/stderr on
    /dev/null it can neither hold the app's stdout pipe open nor write into it. The URL is always
    printed on stderr too, for a person whose browser did not come up.
    """

    def __init__(self, command: list[str] | None, *, profile: str) -> None:
        super().__init__("gatekey")
        self.command = command or _browser_from_environment()
        self.profile = profile

    def tell(self, url: str) -> None:
        _tell_person(f"to sign in to profile {self.profile}, open {url}")

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.tell(url)
        if not self.command:
            return False
        argv = [part.replace("%s", url) for part in self.command]
        if not any("%s" in part for part in self.command):
            argv.append(url)
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=sys.platform != "win32",
                close_fds=True,
            )
        except OSError as e:
            log.warning("could not start the browser %s (%s)", argv[0], e.strerror)
            return False
        return True

    def open_new(self, url: str) -> bool:
        return self.open(url, 1)

    def open_new_tab(self, url: str) -> bool:
        return self.open(url, 2)


def _browser_from_environment() -> list[str] | None:
    """$BROWSER (its first entry), else the platform's opener."""
    import shlex

    for entry in os.environ.get("BROWSER", "").split(os.pathsep):
        if entry.strip():
            return shlex.split(entry)
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform == "win32":
        return ["rundll32", "url.dll,FileProtocolHandler"]
    opener = shutil.which("xdg-open")
    return [opener] if opener else None


def _tell_person(message: str) -> None:
    """Show a sign-in instruction on stderr, and as a desktop notification with no terminal."""
    sys.stderr.write(f"gatekey: {message}\n")
    sys.stderr.flush()
    if sys.stderr.isatty():
        return
    notifier: list[str] | None = None
    if sys.platform == "darwin" and shutil.which("osascript"):
        script = f'display notification {json.dumps(message)} with title "gatekey sign-in"'
        notifier = ["osascript", "-e", script]
    elif shutil.which("notify-send"):
        notifier = ["notify-send", "gatekey sign-in", message]
    if notifier:
        with contextlib.suppress(OSError):
            subprocess.Popen(
                notifier,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )


def _msal_shaped(state: Any) -> bool:
    """MSAL's serialized cache as MSAL writes it: sections of entries, secrets as text. MSAL
    trusts what it reads; damage of another shape would fail deep inside it."""
    if not isinstance(state, dict):
        return False
    for section in state.values():
        if not isinstance(section, dict):
            return False
        for entry in section.values():
            if not isinstance(entry, dict):
                return False
            for key, value in entry.items():
                if key in MSAL_TIMES:  # strings of integers, which MSAL int()s
                    if not _integer_text(value):
                        return False
                elif value is not None and not isinstance(value, str):  # MSAL writes text
                    return False
    return True


MSAL_TIMES = ("cached_at", "expires_on", "extended_expires_on", "refresh_on")


def _integer_text(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    try:
        return abs(int(value)) < 10**11  # epoch seconds; beyond, MSAL's float math overflows
    except ValueError:
        return False
