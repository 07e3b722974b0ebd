"""Where vault-like sources keep their cached secret: never a plain file.

A vault secret is a long-lived key, so its cached copy (the whole Token: value, obtained_at,
refresh_at, expiry) is kept

- in the kernel's key retention service on Linux (kernelkeys.py): in memory, this user only, the
  kernel drops it when it can no longer be served even as a fallback; the cache hit reads it
  with the standard library alone;
- and in the OS keychain (keystore.py, service ``gatekey-cache``, account = the kernel key's
  name): the durable copy, which survives a reboot and serves the platforms without a kernel
  keyring.

Locks and remembered failures stay in the file cache: they hold no secret. A store that cannot
be reached is a miss (the source is read again), never a crash; if neither can hold the secret,
the run says so once and reads through every time.

Both names include a hash of the cache directory, so two cache directories (two users of
GATEKEY_CACHE_DIR, the test suite's many) never see each other's entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Protocol

from gatekey import kernelkeys
from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.kinds import Profile
from gatekey.schema import header_refs
from gatekey.token import Token

log = logging.getLogger(__name__)

KEYCHAIN_SERVICE = "gatekey-cache"


def kernel_name(cache: FileCache, key: str) -> str:
    """The kernel key for ``key`` in this cache directory (written to the index for the hit)."""
    root = os.path.realpath(cache.root)
    return hashlib.sha256(root.encode("utf-8")).hexdigest()[:12] + ":" + key


def keep_for(token: Token, max_stale: float, now: float) -> int:
    """How long a copy can be of any use: until it expires, else max_stale after it was read."""
    horizon = token.expires_at if token.expires_at is not None else token.obtained_at + max_stale
    # The kernel expires a key at (whole wall-clock seconds now) + timeout: count from there.
    return max(math.ceil(horizon - math.floor(now)), 0)


class NoTokens:
    """The token store of a profile that caches nothing (``cache_ttl = 0``: always read through);
    locks and remembered failures still apply."""

    def read(self, key: str) -> tuple[Token | None, str | None]:
        return None, "not cached (cache_ttl = 0)"

    def write(self, key: str, token: Token) -> None:
        return None

    def delete(self, key: str) -> bool:
        return False

    def describe(self) -> str:
        return "not cached (cache_ttl = 0): read on each run"


class SecretTokens:
    """The token store of one run for vault-like profiles (same read/write/delete as FileCache)."""

    def __init__(self, cache: FileCache, run: RunContext, *, max_stale: float) -> None:
        self.cache = cache
        self.run = run
        self.max_stale = max_stale
        self._keychain: Any = None
        self._keychain_error: str | None = None
        self.found_in: str | None = None  # where the last read found the secret

    # --- the two homes ---------------------------------------------------------------------
    def _store(self) -> Any:
        if self._keychain is None and self._keychain_error is None:
            from gatekey.errors import HelperError
            from gatekey.keystore import ChunkedStore, default_backend, open_store

            try:
                self._keychain = ChunkedStore(
                    open_store(default_backend(), interactive=self.run.interactive), self.cache
                )
            except HelperError as e:
                self._keychain_error = e.message.split(";")[0]
        return self._keychain

    def _keychain_call(self, doing: str, fn: Any) -> Any:
        from gatekey.errors import HelperError
        from gatekey.keystore import call_with_deadline

        store = self._store()
        if store is None:
            return None
        try:
            return call_with_deadline(lambda: fn(store), self.run, doing)
        except HelperError as e:
            self._keychain_error = e.message.split(";")[0]
            log.debug("%s failed: %s", doing, self._keychain_error)
            return None

    # --- FileCache's token interface -----------------------------------------------------------
    def read(self, key: str) -> tuple[Token | None, str | None]:
        name = kernel_name(self.cache, key)
        raw = kernelkeys.read(name)
        if raw is not None:
            token = _decode(raw)
            if token is not None:
                self.found_in = "kernel keyring"
                return token, None
        text = self._keychain_call(
            "reading the cached secret from the keychain",
            lambda store: store.get(KEYCHAIN_SERVICE, name),
        )
        if text is None:
            why = self._keychain_error or "no cached secret"
            return None, why
        token = _decode(text.encode("utf-8"))
        if token is None:
            return None, "cached secret in the keychain is damaged"
        self.found_in = "OS keychain"
        # Back into the fast home for the next runs.
        timeout = keep_for(token, self.max_stale, time.time())
        kernelkeys.write(name, text.encode("utf-8"), timeout=timeout)
        return token, None

    def write(self, key: str, token: Token) -> None:
        text = json.dumps(token.to_json(), separators=(",", ":"))
        name = kernel_name(self.cache, key)
        timeout = keep_for(token, self.max_stale, time.time())
        fast = kernelkeys.write(name, text.encode("utf-8"), timeout=timeout)
        durable = self._keychain_call(
            "saving the cached secret in the keychain",
            lambda store: self._locked(store, name).set(KEYCHAIN_SERVICE, name, text) or True,
        )
        if not (fast or durable):
            log.warning(
                "the secret was not cached (%s); every run will read the source until a keychain "
                "is available, or set allow_insecure_cache = true to cache it in a user-only file",
                self._keychain_error or "no keychain",
            )

    def _locked(self, store: Any, name: str) -> Any:
        """The store, with this process as the entry's only writer: a write then sweeps the
        chunks of any earlier write that was killed part-way (chunks.py)."""
        store.lock(KEYCHAIN_SERVICE, name, self.run)
        return store

    def describe(self) -> str:
        where = f"in the {self.found_in}" if self.found_in else "kernel keyring + OS keychain"
        return f"vault cache, {where} (never a plain file)"

    def delete(self, key: str) -> bool:
        name = kernel_name(self.cache, key)
        removed = kernelkeys.delete(name)
        durable = self._keychain_call(
            "removing the cached secret from the keychain",
            lambda store: self._locked(store, name).delete(KEYCHAIN_SERVICE, name),
        )
        self.cache.delete(key)  # remembered failures
        return bool(removed or durable)


def _decode(raw: bytes) -> Token | None:
    try:
        return Token.from_json(json.loads(raw.decode("utf-8")))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


# --- which store a profile's credential uses ---------------------------------------------------
# How long a cached credential with no expiry of its own is kept beside header values by
# reference, for kinds without max_stale (a vault-like kind's default).
DEFAULT_MAX_STALE = 24 * 3600.0


class TokenStore(Protocol):
    """Where a profile's cached token lives: FileCache, or this module's stores."""

    def read(self, key: str) -> tuple[Token | None, str | None]: ...
    def write(self, key: str, token: Token) -> None: ...
    def delete(self, key: str) -> bool: ...
    def describe(self) -> str: ...


def secure(profile: Profile) -> bool:
    """Whether the profile's cached credential is a secret kept out of plain files: a
    vault-like secret, or any credential kept with header values given by reference (a
    Portkey or APIM key from the keychain must not land in a file because a token did)."""
    return profile.spec.secure_cache or bool(header_refs(profile.values["headers"]))


def token_store(profile: Profile, run: RunContext, cache: FileCache) -> TokenStore:
    """A vault-like secret (or a credential with header values by reference) is cached in the
    kernel keyring and the OS keychain (never a plain file, unless the profile allows it), or
    not at all with cache_ttl = 0; other sources' tokens in the file cache."""
    if not secure(profile):
        return cache
    if profile.values.get("cache_ttl") == 0:
        return NoTokens()
    if profile.values.get("allow_insecure_cache"):
        return cache
    stale = max_stale(profile)
    return SecretTokens(cache, run, max_stale=DEFAULT_MAX_STALE if stale is None else stale)


def index_store(profile: Profile, cache: FileCache, key: str) -> tuple[str, str | None]:
    """Where the cache hit finds this profile's token: IndexEntry's store and kernel_name."""
    if not secure(profile) or profile.values.get("allow_insecure_cache"):
        return "file", None
    if profile.values.get("cache_ttl") == 0 or not kernelkeys.available():
        return "none", None  # read through / only the keychain: the full path serves it
    return "kernel", kernel_name(cache, key)


def max_stale(profile: Profile) -> float | None:
    """How old a cached secret with no expiry may be and still be served when the source fails."""
    value = profile.values.get("max_stale")
    return None if value is None else float(value)
