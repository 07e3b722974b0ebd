"""The saved sign-in: MSAL's token cache (refresh tokens) and the account this profile chose.

It lives in the OS keychain (the same chunked store as the keychain source), or in a 0600 file
when the profile says ``token_cache = "file"`` or when Linux has no Secret Service (with a
warning). Profiles with the same authority and client share one state (it holds every account):
it is loaded, redeemed and saved under its own lock (``state_lock``), and a silent refresh holds
the signals that would kill the run between the redeem and the save (``signals_held``). What is
loaded is checked to be MSAL-shaped first: MSAL trusts what it reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.errors import HelperError, SourceUnavailable
from gatekey.token import Token

if TYPE_CHECKING:
    from gatekey.sources.idp.settings import IdpSettings

log = logging.getLogger(__name__)

KEYCHAIN_SERVICE = "gatekey-idp"
_FELL_BACK: set[str] = set()  # states this process has warned are kept in a file instead


class MsalStateStore:
    """Where MSAL's token cache (refresh tokens) and the chosen account are kept."""

    def __init__(self, settings: IdpSettings, run: RunContext) -> None:
        self.settings = settings
        self.run = run
        self.mode: str = settings.values["token_cache"]
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
                    lambda: store.get(KEYCHAIN_SERVICE, self.settings.state_key),
                    self.run,
                    "reading the saved sign-in from the keychain",
                )
            except SourceUnavailable as e:
                if sys.platform != "linux":
                    raise
                if self.settings.state_key not in _FELL_BACK:  # once a run (login reads twice)
                    _FELL_BACK.add(self.settings.state_key)
                    log.warning(
                        "profile %s: %s; keeping the sign-in in a user-only file instead (set "
                        'token_cache = "file" to make this the choice and silence this warning)',
                        self.settings.name,
                        e.message.split(";")[0],
                    )
                self.mode = "file"
        data, _ = FileCache().read_blob("msal", self.settings.state_key)
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
                "the saved sign-in of profile %s was damaged; sign in again", self.settings.name
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
                store.lock(KEYCHAIN_SERVICE, self.settings.state_key, self.run)
                call_with_deadline(
                    lambda: store.set(KEYCHAIN_SERVICE, self.settings.state_key, body),
                    self.run,
                    "saving the sign-in to the keychain",
                )
            else:
                FileCache().write_blob("msal", self.settings.state_key, body)
        except (HelperError, OSError) as e:
            # The refresh token may have rotated: the next silent run will need a sign-in.
            raise HelperError(
                f"could not save the sign-in ({e}); the next run will ask you to sign in again",
                profile=self.settings.name,
            ) from None
        token_cache.has_state_changed = False
        self._dirty = False

    def clear(self) -> int:
        existed = 0
        if self.mode == "keychain":
            try:
                store = self._keychain()
                store.lock(KEYCHAIN_SERVICE, self.settings.state_key, self.run)
                existed += bool(store.delete(KEYCHAIN_SERVICE, self.settings.state_key))
            except SourceUnavailable:
                pass
        existed += FileCache().delete_blob("msal", self.settings.state_key)
        return existed


@contextlib.contextmanager
def state_lock(settings: IdpSettings, run: RunContext) -> Iterator[None]:
    """MSAL's state lock (see IdpSource.fetch); none to take when the cache directory is refused
    (another user's): the run has said so, and MSAL's state can live in the keychain only."""
    cache = FileCache()
    if cache.refused() is not None:
        yield
        return
    with cache.lock(settings.state_key, run):
        yield


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


def saved_state(settings: IdpSettings, store: MsalStateStore) -> Any:
    """MSAL's token cache as saved (empty when there is none, or it is damaged)."""
    import msal

    cache = msal.SerializableTokenCache()
    blob = store.load()
    if blob:
        try:
            cache.deserialize(blob)
        except (ValueError, TypeError):
            log.warning("the saved sign-in of profile %s was damaged; sign in again", settings.name)
    return cache


def saved_accounts(settings: IdpSettings, cache: Any) -> list[dict[str, Any]]:
    """The saved accounts this profile could use, read without the network: every account
    MSAL's get_accounts could list (it also filters by the authority's host, which it needs
    discovery for), so an empty list means MSAL has none either."""
    accounts = list(cache.find(cache.CredentialType.ACCOUNT))
    hint = settings.values["login_hint"]
    if hint:
        accounts = [a for a in accounts if str(a.get("username", "")).lower() == hint.lower()]
    return accounts


def chosen_account(settings: IdpSettings, app: Any, store: MsalStateStore) -> Any:
    """The account of MSAL's ``app`` this profile uses: the login_hint's, else the one it
    signed in as, else the only one (None when it cannot tell)."""
    hint = settings.values["login_hint"]
    accounts = app.get_accounts(username=hint) if hint else app.get_accounts()
    if not accounts:
        return None
    remembered = store.account
    for account in accounts:
        if account.get("home_account_id") == remembered:
            return account
    return accounts[0] if len(accounts) == 1 or hint else None


def is_ours(settings: IdpSettings, account: dict[str, Any], store: MsalStateStore) -> bool:
    """Whether ``logout`` removes this account of the shared state."""
    hint = settings.values["login_hint"]
    if hint:
        return str(account.get("username", "")).lower() == str(hint).lower()
    return store.account is None or bool(account.get("home_account_id") == store.account)


def logout_reach(
    settings: IdpSettings,
    others: list[IdpSettings],
    cache: Any,
    store: MsalStateStore,
    *,
    all_accounts: bool,
) -> list[str]:
    """The names of ``others`` (profiles sharing ``settings``' state) whose account a logout of
    ``settings`` would take away: read from the saved state, as IdpSource.logout would act on
    it (it removes is_ours accounts, or all of them, and forgets the remembered choice)."""
    accounts = list(cache.find(cache.CredentialType.ACCOUNT))
    removed = {
        a.get("home_account_id") for a in accounts if all_accounts or is_ours(settings, a, store)
    }
    if not removed:
        return []
    left = [a for a in accounts if a.get("home_account_id") not in removed]
    return [
        other.name
        for other in others
        if (before := _choice(other, accounts, store.account)) is not None
        and before != _choice(other, left, None)
    ]


def _choice(settings: IdpSettings, accounts: list[dict[str, Any]], remembered: Any) -> Any:
    """chosen_account's answer (a home_account_id), from saved accounts without MSAL's app."""
    hint = settings.values["login_hint"]
    if hint:
        accounts = [a for a in accounts if str(a.get("username", "")).lower() == hint.lower()]
    if not accounts:
        return None
    for account in accounts:
        if account.get("home_account_id") == remembered:
            return remembered
    return accounts[0].get("home_account_id") if len(accounts) == 1 or hint else None


def _home_account_id(token_cache: Any, claims: dict[str, Any]) -> str | None:
    sub = claims.get("oid") or claims.get("sub")
    for account in token_cache.find(token_cache.CredentialType.ACCOUNT):
        if sub and str(account.get("local_account_id")) == str(sub):
            return str(account.get("home_account_id"))
    return None


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
