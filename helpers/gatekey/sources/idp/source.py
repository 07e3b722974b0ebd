"""IdpSource, the source of the ``entra`` and ``oidc`` kinds: the flows in order, each step done
by a module of this package.

What happens when gatekey's own cache has no usable token (refresh.get_token, inside its lock):
1. client-credentials: one token request (MSAL's in-memory cache only; gatekey caches).
2. otherwise, silently from MSAL's persisted cache: its access token if it outlives ``min_ttl``,
   else the refresh-token grant (``force_refresh``). The new refresh token is persisted before
   the access token is returned, so a rotating refresh token is never lost.
3. a rejected refresh token (``invalid_grant``, ``interaction_required``): that account is
   dropped, and the run either signs in again (a person is present) or exits 4 naming
   ``gatekey login -p <profile>``. Never a loop.
4. no account: sign in if a person is present (device-code), else exit 4.

MSAL's token cache (refresh tokens) lives in the OS keychain, or in a 0600 file (msal_state).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import gatekey.sources.idp.checks as idp_checks
import gatekey.sources.idp.confidential as confidential
import gatekey.sources.idp.managed as managed
import gatekey.sources.idp.public as public
import gatekey.sources.idp.results as results
import gatekey.sources.idp.signin as signin
from gatekey.cache import FileCache
from gatekey.checks import Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import HelperError, InteractionRequired
from gatekey.kinds import Audience, Linker, ProbeKit, SignInState
from gatekey.sources.idp.msal_state import (
    MsalStateStore,
    is_ours,
    logout_reach,
    saved_accounts,
    saved_state,
    signals_held,
    state_lock,
)
from gatekey.sources.idp.settings import IdpSettings
from gatekey.token import Token

log = logging.getLogger(__name__)


class IdpSource:
    """Fetches tokens for one ``entra`` or ``oidc`` profile. Never caches (beyond MSAL's own
    refresh-token store), prints to stdout, or exits."""

    def __init__(self, profile: Profile, links: Linker | None = None) -> None:
        self.profile = profile
        self.links = links  # for { keychain = ... } client secrets
        self.settings = IdpSettings(profile)  # ConfigError for what no flow could use
        self.dropped: str | None = None  # why the provider refused the saved sign-in, if it did

    @property
    def name(self) -> str:
        return self.profile.name

    # --- capabilities (kinds.py); the logic lives in checks.py -------------------------------
    @classmethod
    def person_signs_in(cls, profile: Profile) -> bool:
        return idp_checks.person_signs_in(profile)

    @classmethod
    def sign_in_flows(cls, profile: Profile) -> tuple[str, ...]:
        """The profile's own flow first, then the other one a person may pick for one login."""
        flow = profile.values.get("flow")
        if flow not in idp_checks.SIGN_IN_FLOWS:
            return ()
        return (flow, *(f for f in idp_checks.SIGN_IN_FLOWS if f != flow))

    def probe(self, kit: ProbeKit) -> Check:
        return idp_checks.probe(self.profile, kit)

    def sign_in_state(self, run: RunContext) -> SignInState:
        return idp_checks.sign_in_state(self.settings, run)

    def sign_in_storage(self) -> str:
        return idp_checks.sign_in_storage(self.settings)

    @classmethod
    def audience(cls, profile: Profile) -> Audience | None:
        return idp_checks.audience(profile)

    @classmethod
    def issuer_checks(cls, profile: Profile, claims: dict[str, Any]) -> list[Check]:
        return idp_checks.issuer_checks(profile, claims)

    @classmethod
    def audience_fix(cls, profile: Profile) -> str:
        return idp_checks.audience_fix(profile)

    @property
    def rotates_sign_in(self) -> bool:
        """A fetch may redeem, and so rotate, a saved refresh token (gatekey.worker then runs
        it where a kill of the run cannot interrupt the save); the confidential flows save none."""
        return self.settings.flow not in ("client-credentials", "managed-identity")

    # --- the source interface ----------------------------------------------------------------
    def fetch(self, run: RunContext) -> Token:
        if self.settings.flow == "client-credentials":
            return self._client_credentials(run)
        if self.settings.flow == "managed-identity":
            return self._managed_identity(run)
        # Profiles with the same authority and client share MSAL's state (one file or keychain
        # entry holding every account): load → redeem → save under the state's own lock, or two
        # accounts refreshing at once would each save the other's old, rotated refresh token.
        with state_lock(self.settings, run):
            if run.interactive:
                return self._fetch_public(run)  # Ctrl-C must work during a sign-in
            # A silent refresh redeems a refresh token that the provider then revokes (rotation):
            # a SIGTERM between the request and the save would lose the sign-in. Hold it (and
            # SIGINT, SIGHUP) until the new state is saved; the deadline bounds the wait.
            with signals_held():
                return self._fetch_public(run)

    def _fetch_public(self, run: RunContext) -> Token:
        store = MsalStateStore(self.settings, run)
        saved = saved_state(self.settings, store)
        if not run.interactive and not saved_accounts(self.settings, saved):
            # Nothing to refresh, whatever the network does: the truth is "sign in", decided
            # before the identity provider is asked anything (MSAL's app asks for discovery).
            raise self._sign_in_needed(run)
        app = self._public_app(run, store, saved=saved)

        def attempt() -> Token:
            result, dropped = public.silent(self.settings, app, store, run)
            if dropped:
                self.dropped = dropped  # said once, by whoever reports the outcome
            if result is None:
                if not run.interactive:
                    raise self._sign_in_needed(run)
                if self.dropped:
                    log.warning(
                        'profile "%s": %s; signing in again', self.name, self._why_sign_in()
                    )
                result = signin.sign_in(self.settings, app, run)
                store.remember_account(result, app.token_cache)
            return results.token(self.settings, result)

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

    def login(self, run: RunContext, *, flow: str | None = None) -> Token:
        """Sign in interactively, whatever the context (``gatekey login``), in ``flow`` (one
        of ``sign_in_flows``) or else the profile's own."""
        if self.settings.flow == "client-credentials":
            return self._client_credentials(run)
        with state_lock(self.settings, run):  # see fetch()
            store = MsalStateStore(self.settings, run)
            app = self._public_app(run, store)

            def attempt() -> Token:
                result = signin.sign_in(self.settings, app, run, flow)
                store.remember_account(result, app.token_cache)
                return results.token(self.settings, result)

            return store.saved_after(attempt, app.token_cache)

    def logout(self, run: RunContext, *, all_accounts: bool = False) -> int:
        """Forget this profile's account (or every account); returns how many were removed."""
        with state_lock(self.settings, run):  # see fetch()
            store = MsalStateStore(self.settings, run)
            if all_accounts:
                return store.clear()
            app = self._public_app(run, store)
            accounts = [a for a in app.get_accounts() if is_ours(self.settings, a, store)]
            for account in accounts:
                app.remove_account(account)
            store.forget_account()
            store.save(app.token_cache)
            return len(accounts)

    def also_signed_out(
        self, run: RunContext, others: Iterable[Profile], *, all_accounts: bool = False
    ) -> list[str]:
        """Which of ``others`` a logout of this profile would sign out too (read only): profiles
        of the same client at the same provider share one saved sign-in, and lose the account
        they use (or, with no login_hint, the remembered choice between several)."""
        if self.settings.flow not in idp_checks.SIGN_IN_FLOWS:
            return []
        sharing = []
        for other in others:
            if other.name == self.name or other.spec.factory != self.profile.spec.factory:
                continue
            try:
                settings = IdpSettings(other)
            except HelperError:
                continue  # a broken profile shares nothing it could use
            if settings.state_key == self.settings.state_key and other.values.get("flow") in (
                idp_checks.SIGN_IN_FLOWS
            ):
                sharing.append(settings)
        if not sharing:
            return []
        store = MsalStateStore(self.settings, run)
        cache = saved_state(self.settings, store)
        return logout_reach(self.settings, sharing, cache, store, all_accounts=all_accounts)

    # --- the steps that reach the identity provider --------------------------------------------
    def _session(self, run: RunContext) -> Any:
        """The HTTP client every MSAL application of this source gets (tests hand in another)."""
        from gatekey.http import IdpSession

        return IdpSession(
            run, ca_bundle=self.settings.values["ca_bundle"], cache=FileCache(), json_answers=True
        )

    def _public_app(self, run: RunContext, store: MsalStateStore, *, saved: Any = None) -> Any:
        cache = saved_state(self.settings, store) if saved is None else saved
        return public.public_app(self.settings, cache, self._session(run))

    def _client_credentials(self, run: RunContext) -> Token:
        secret = confidential.credential(self.settings, run, self.links)
        return confidential.client_credentials(self.settings, secret, self._session(run))

    def _managed_identity(self, run: RunContext, http_client: Any = None) -> Token:
        return managed.fetch(self.settings, run, http_client)
