"""get_token(): cache → state → lock → re-read → fetch → persist, or fall back / fail.

The order matters:
1. A usable cached token is printed without locking (the common case, and the fast path's).
2. Otherwise take the per-key lock (bounded by the deadline) and read the cache again: another
   process may have refreshed while we waited, and then we reuse its token (single flight).
3. A failure remembered moments ago (negative cache, 5 s doubling to 60 s) is reported instead
   of asking the source again, unless a person is present or --force-refresh was given.
4. Fetch; persist atomically before printing; forget any remembered failure. When the fetch may
   rotate a saved sign-in (an IdP's refresh token), fetch and persist run in a worker process
   that a kill of this run cannot stop, holding the lock until it has saved (worker.py).
5. If the fetch fails and the old token is still valid, print it with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

from gatekey import clocks, kinds, logs, waiting, worker
from gatekey.cache import FileCache, cache_key
from gatekey.config import Config, Profile
from gatekey.context import RunContext
from gatekey.durations import format_duration
from gatekey.errors import (
    AccessDenied,
    CacheUnusable,
    ConfigError,
    CredentialNotFound,
    ExpiredOnArrival,
    HelperError,
    LockTimeout,
)
from gatekey.output import check_token
from gatekey.schema import header_refs
from gatekey.securecache import TokenStore as TokenStore
from gatekey.securecache import index_store as index_store
from gatekey.securecache import max_stale as max_stale
from gatekey.securecache import token_store as token_store
from gatekey.sources import Source
from gatekey.token import (
    EXPIRED,
    EXPIRY_MARGIN,
    FRESH,
    Token,
    servable,
    short_lifetime,
    state,
)

log = logging.getLogger(__name__)

SourceFactory = Callable[[Profile], Source]
MIN_APP_TTL = 120  # the app does not re-run the helper for inferenceCredentialHelperTtlSec <= 120


class Obtained(str, Enum):
    """How get_token obtained its token: the run log's "outcome" and doctor's "how" (their
    values, as strings, are what those print)."""

    CACHE = "cache"  # a cached token, fresh enough for this run (perhaps another run's)
    FETCHED = "fetched"  # asked the source (and saved what it gave, cache permitting)
    FALLBACK = "fallback"  # the source failed: a cached token still valid, with a warning
    SOURCE = "source"  # asked the source for a profile without the file cache

    def __str__(self) -> str:  # the value, as logs and f-strings print it on every Python
        return str(self.value)


class Outcome(NamedTuple):
    token: Token
    how: Obtained
    warnings: list[str]


def make_source(profile: Profile, links: Links | None = None) -> Source:
    """The profile's source, given what it may ask of the rest of gatekey (``links``: the
    loaded config's profiles and their tokens; by default the config is loaded when needed)."""
    source: Source = kinds.source_class(profile.spec)(profile, links or Links())
    return source


def profile_cache_key(profile: Profile) -> str:
    return cache_key(profile.kind, profile.source_settings())


def get_token(
    profile: Profile,
    run: RunContext,
    *,
    min_ttl: float | None = None,
    cache: FileCache | None = None,
    source_factory: SourceFactory = make_source,
    clock: Callable[[], float] = time.time,
    links: Links | None = None,
) -> Outcome:
    ttl = float(profile.values["min_ttl"] if min_ttl is None else min_ttl)
    # Injected sources and clocks (tests) live in this process only: no worker for them.
    spawn = source_factory is make_source and clock is time.time
    if source_factory is make_source and links is not None:
        source_factory = lambda prof: make_source(prof, links)  # noqa: E731
    if not (profile.spec.file_cache and profile.values["cache"]):
        token = _fetch_safely(
            source_factory(profile), profile, run, clock, spawn=spawn, links=links
        )
        return Outcome(token, Obtained.SOURCE, _lifetime_warnings(token, ttl, profile))

    cache = cache or FileCache()
    store = token_store(profile, run, cache)
    key = profile_cache_key(profile)
    cached, why = store.read(key)
    if cached is not None:
        logs.register_secret(cached.value)  # a failing source may echo it on stderr
    run.fallback = fallback_candidate(cached, clock(), profile)
    bypass, force = run.bypass_cache, run.force_refresh
    if cached is not None and servable(cached, clock(), ttl, bypass=bypass, force=force):
        return Outcome(cached, Obtained.CACHE, [])
    log.debug(
        'profile "%s": asking the source, not the cache: %s',
        profile.name,
        why or _miss_text(cached, clock(), ttl, run),
    )

    remembered = remembered_failure(cache, key, run, profile, clock())
    if remembered is not None:  # decided without the lock: failing runs do not queue up
        return _fall_back(cached, remembered, clock(), profile)
    source = source_factory(profile)
    saving = _Saving(cache, store, key, cached, spawn)
    saving.links = links
    try:
        with cache.lock(key, run) as lock_fd:
            saving.lock_fd = lock_fd  # a refresh worker holds the lock with it
            result = _fetch_once(source, profile, run, saving, ttl, clock)
    except LockTimeout as e:  # waiting for another process's refresh took the whole budget
        return _fall_back(cached, e, clock(), profile)
    except CacheUnusable as e:
        log.warning(
            "the cache directory cannot be used (%s); fetching without it, so every run will ask "
            "the source until this is fixed (set GATEKEY_CACHE_DIR to a writable directory)",
            e,
        )
        token = _fetch_safely(source, profile, run, clock, spawn=spawn, links=links)
        return Outcome(token, Obtained.FETCHED, _lifetime_warnings(token, ttl, profile))
    if isinstance(result, Outcome):
        return result
    return Outcome(result, Obtained.FETCHED, _lifetime_warnings(result, ttl, profile))


class _Saving:
    """Where a fetched token is saved, under which lock, and whether in a worker."""

    def __init__(
        self, cache: FileCache, store: TokenStore, key: str, cached: Token | None, spawn: bool
    ) -> None:
        self.cache, self.store, self.key, self.cached, self.spawn = cache, store, key, cached, spawn
        self.lock_fd: int | None = None
        self.links: Links | None = None  # what header references may ask (default: Links())


def _fetch_once(
    source: Source,
    profile: Profile,
    run: RunContext,
    saving: _Saving,
    ttl: float,
    clock: Callable[[], float],
) -> Token | Outcome:
    """Under the lock: reuse a token another process just obtained, or fetch and persist one."""
    bypass, force = run.bypass_cache, run.force_refresh
    cache, key = saving.cache, saving.key
    cached, _why = saving.store.read(key)  # the winner of the lock may have refreshed it
    if cached is not None:
        logs.register_secret(cached.value)
    now = clock()
    if cached is not None and servable(cached, now, ttl, bypass=bypass, force=force):
        log.debug("reusing the token another gatekey process just obtained")
        return Outcome(cached, Obtained.CACHE, [])
    remembered = remembered_failure(cache, key, run, profile, now)
    if remembered is not None:
        return _fall_back(cached, remembered, now, profile)
    try:
        if saving.spawn and worker.wanted(source):
            secrets = [t.value for t in (cached, saving.cached) if t is not None]
            return worker.refresh(
                profile,
                run,
                cache_root=cache.root,
                key=key,
                lock_fd=saving.lock_fd,
                secrets=secrets,
                in_process=lambda: fetch_and_save(
                    source, profile, run, cache, saving.store, key, links=saving.links
                ),
            )
        return fetch_and_save(
            source, profile, run, cache, saving.store, key, clock, links=saving.links
        )
    except ConfigError:
        raise
    except HelperError as e:
        return _fall_back(cached, e, clock(), profile)


def fetch_and_save(
    source: Source,
    profile: Profile,
    run: RunContext,
    cache: FileCache,
    store: TokenStore,
    key: str,
    clock: Callable[[], float] = time.time,
    *,
    links: Links | None = None,
) -> Token:
    """Fetch, then persist atomically and forget any remembered failure; or remember the
    failure and raise it."""
    try:
        token = _fetch(source, profile, run, clock, links)
    except ConfigError:
        raise
    except HelperError as e:
        # Remembered whatever the cause (down, timed out, refused, not signed in), so that the
        # app's many callers do not each ask a failing source again; a person retries at once.
        try:
            cache.record_failure(key, e, clock(), run_name=run.name)
        except OSError as oe:
            log.debug("could not remember the failure (%s)", oe.strerror)
        raise
    try:
        store.write(key, token)
    except OSError as e:
        log.warning(
            "could not save the new token to the cache in %s (%s); every run will ask the "
            "source until this is fixed",
            cache.root,
            e.strerror,
        )
    cache.clear_failure(key)
    return token


def fetch_in_worker(profile: Profile, run: RunContext, cache_root: str | None, key: str) -> Token:
    """A refresh worker's job (worker.main): fetch and, given a cache, persist."""
    source = make_source(profile)
    if cache_root is None:
        return _fetch(source, profile, run, time.time)
    cache = FileCache(cache_root)
    return fetch_and_save(source, profile, run, cache, token_store(profile, run, cache), key)


def _fetch_safely(
    source: Source,
    profile: Profile,
    run: RunContext,
    clock: Callable[[], float],
    *,
    spawn: bool,
    links: Links | None = None,
) -> Token:
    """Fetch without saving a token (no cache), still in a worker when the fetch may rotate a
    saved sign-in: the source's own state (MSAL's) is saved there."""
    if not (spawn and worker.wanted(source)):
        return _fetch(source, profile, run, clock, links)
    return worker.refresh(
        profile,
        run,
        cache_root=None,
        key=profile_cache_key(profile),
        lock_fd=None,
        secrets=[],
        in_process=lambda: _fetch(source, profile, run, clock, links),
    )


def remembered_failure(
    cache: FileCache, key: str, run: RunContext, profile: Profile, now: float
) -> HelperError | None:
    """A failure remembered moments ago, for runs with no one present to retry deliberately."""
    if run.interactive or run.force_refresh:
        return None
    remembered = cache.read_failure(key, now)
    if remembered is None:
        return None
    error, until = remembered
    # Its own step still holds; then: wait, or retry on purpose.
    wait = (
        f"not asking again until {_clock_text(until)} (in {format_duration(until - now)}) "
        f"to spare the source; to retry now, run: gatekey get -p {profile.name} --force-refresh"
    )
    error.fix = wait if error.fix is None else f"{error.fix}; {wait}"
    return error


def _headers(
    profile: Profile, run: RunContext, links: Links | None
) -> tuple[dict[str, str], float | None]:
    """The profile's header references, resolved with the credential to be cached with it (the
    cache hit prints them without reading the keychain or a file), and the earliest expiry
    among them."""
    from gatekey import secretref

    return secretref.resolve_headers(profile, run, links or Links())


def _fetch(
    source: Source,
    profile: Profile,
    run: RunContext,
    clock: Callable[[], float],
    links: Links | None = None,
) -> Token:
    run.check("starting to fetch a credential")
    run.fetches += 1
    # A person at a terminal sees that a slow source is being waited for (a sign-in shows its own).
    shown = run.interactive and not kinds.person_signs_in(profile)
    # Header references first: a missing one must not cost a sign-in or a vault read.
    headers = _headers(profile, run, links) if header_refs(profile.values["headers"]) else None
    with waiting.SlowSource(f"waiting for the {profile.kind} source", run.deadline, show=shown):
        token = source.fetch(run)
    check_token(token.value)
    if headers is not None:
        token.headers, expires_at = headers
        if expires_at is not None and (token.expires_at is None or expires_at < token.expires_at):
            token.expires_at = expires_at  # no later than another profile's credential it holds
    clocks.settle(token, profile.kind, profile.name, run, clock)
    remaining = token.remaining(clock())
    if remaining is not None and remaining <= EXPIRY_MARGIN:
        raise ExpiredOnArrival(
            f"the {profile.kind} source returned a credential that expires in "
            f"{max(int(remaining), 0)} s, too soon to use; check the source's token lifetime "
            "and this machine's clock",
            profile=profile.name,
        )
    return token


def fallback_candidate(cached: Token | None, now: float, profile: Profile) -> Token | None:
    """The cached token if it may stand in for a source that fails or is too slow: not
    expired, not from the future, and (a vault-like secret with no expiry of its own) read at
    most ``max_stale`` ago."""
    if cached is None or state(cached, now, 0.0) == EXPIRED or cached.obtained_at > now + 60:
        return None
    limit = max_stale(profile)
    if limit is not None and cached.expires_at is None and cached.age(now) > limit:
        return None
    return cached


def _fall_back(cached: Token | None, error: HelperError, now: float, profile: Profile) -> Outcome:
    """Print a still-valid old token with a warning, or re-raise the failure.

    Not when the source says the secret is gone or denied (withdrawn on purpose); and a
    vault-like secret with no expiry of its own for at most ``max_stale`` after it was read.
    """
    if error.profile is None:
        error.profile = profile.name
    if isinstance(error, (CredentialNotFound, AccessDenied)):
        raise error  # deleted or denied at the source: withdrawn on purpose
    cached = fallback_candidate(cached, now, profile)
    if cached is None:
        raise error
    remaining = cached.remaining(now)
    left = (
        "has no known expiry" if remaining is None else f"expires in {format_duration(remaining)}"
    )
    return Outcome(
        cached,
        Obtained.FALLBACK,
        [f"could not refresh ({error}); printing the cached token, which {left}"],
    )


def _lifetime_warnings(token: Token, min_ttl: float, profile: Profile) -> list[str]:
    if not short_lifetime(token, min_ttl):
        return []
    lifetime = token.lifetime or 0.0
    # The app keeps a printed token for its TTL; leave a 5-minute margin. It does not re-run the
    # helper for TTLs of 120 s or less, so shorter tokens cannot be made to work by the TTL.
    workable = int(lifetime - 300)
    if workable > MIN_APP_TTL:
        advice = (
            f"set Claude's inferenceCredentialHelperTtlSec to at most {workable} and min_ttl to "
            "match"
        )
    else:
        advice = (
            "tokens this short-lived cannot work with Claude's credential TTL; configure a "
            "longer token lifetime at the source"
        )
    return [
        f'profile "{profile.name}": the new token lives {format_duration(lifetime)}, less than '
        f"min_ttl ({format_duration(min_ttl)}), so the app may keep using it after it expires; "
        f"{advice}"
    ]


def _miss_text(token: Token | None, now: float, min_ttl: float, run: RunContext) -> str:
    """Why a cached token was not printed, as a sentence for the debug line."""
    if token is None:
        return "nothing is cached"
    if run.force_refresh:
        return "a new token was asked for (--force-refresh or a sign-in)"
    current = state(token, now, min_ttl)
    if current == EXPIRED:
        return "the cached token has expired"
    if run.bypass_cache:
        return "a mid-session-refresh run prints only a token obtained moments ago"
    if current != FRESH:
        return f"the cached token has less than min_ttl ({format_duration(min_ttl)}) left"
    return "the cached token cannot be used"


def _clock_text(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))


class Links:
    """What a source may ask of the rest of gatekey (kinds.Linker): the profiles its keys name,
    from the config already loaded (or loaded once, when first needed), and their tokens."""

    def __init__(self, cfg: Config | None = None) -> None:
        self._cfg = cfg

    def _config(self) -> Config:
        if self._cfg is None:
            from gatekey import config

            self._cfg = config.load()
        return self._cfg

    def named(self, name: str) -> Profile:
        return self._config().profile(name)

    def profile(
        self,
        referrer: Profile,
        key: str,
        name: str,
        *,
        accept: Callable[[Profile], bool],
        what: str,
    ) -> Profile:
        cfg = self._config()
        origin = referrer.origins.get(key.split(".")[0])
        if name not in cfg.profile_names:
            raise ConfigError(
                f"{key} names profile {name!r}, which does not exist; the profiles are: "
                f"{', '.join(cfg.profile_names)}",
                file=origin,
                profile=referrer.name,
                key=key,
            )
        target = cfg.profile(name)
        if not accept(target):
            raise ConfigError(
                f"{key} must name {what}; {name!r} uses source {target.kind!r}",
                file=origin,
                profile=referrer.name,
                key=key,
            )
        return target

    def token(self, profile: Profile, run: RunContext) -> Token:
        """A linked profile's token (vault's ``auth.jwt_from``, Key Vault's ``credential_from``)
        as a run of its own that shares this run's deadline and child processes: get_token
        records the profile's cached token as the run's fallback (RunContext.fallback, what the
        deadline path prints), and the linked profile's must not take the place of the
        credential the run was asked for."""
        linked = RunContext(
            run.name,
            interactive=run.interactive,
            timeout=run.timeout,
            force_refresh=run.force_refresh,
            started=run.started,
        )
        linked.children = run.children  # the watchdog stops what the linked fetch starts, too
        try:
            return get_token(profile, linked, links=self).token
        finally:
            run.fetches += linked.fetches

    def fetch(self, profile: Profile, run: RunContext) -> Token:
        return make_source(profile, self).fetch(run)
