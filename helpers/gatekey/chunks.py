"""Keychain values of any size: chunk items in generations, a manifest written last, sweeping.

A value over the chunk limit is kept as ``<account>#gatekey-chunk-<generation>-<i>`` items, then
a manifest at ``<account>`` (the head) names the generation, its chunk count and digest. Writing
the head last makes a half-written set read as the previous value (or absent).

Leftover generations (of a store killed part-way, or of stores that overlapped) hold old secret
text, so they must not outlive the value. The rule that makes removing them safe:

- Writers of one entry take turns: ``lock()`` holds a per-entry lock in gatekey's cache directory
  (flock) until the process exits, so a writer whose keychain call was abandoned at the deadline
  still owns the entry until it is gone.
- A writer that holds the lock first records the generations it is about to make unreferenced
  (its own new one, and the one the head names) in a journal beside the lock, then writes, and
  only once the head is replaced or deleted, sweeps. At that moment no other store is in progress
  and the head names at most the writer's own generation, so every other chunk generation of
  this account is provably an orphan: listed (stores that can list, like the Secret Service) or
  journaled (any store), it is deleted.
- Readers take no lock. A chunk that vanished under a reader means a writer replaced or deleted
  the head; the reader reads the head again (a few times), so it returns a whole value (old or
  new) or nothing, never a mixture (the digest is checked) and never an error for the race.

Without the lock (no usable cache directory, or a caller that does not take it) writers fall back
to removing only the generation the previous head named, and ``delete`` still removes every
generation the store can list.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any, Protocol

from gatekey.errors import DeadlineExceeded, HelperError, TemporaryFailure

if TYPE_CHECKING:
    from gatekey.cache import FileCache
    from gatekey.context import RunContext

log = logging.getLogger(__name__)

CHUNK_LIMIT = 2560  # bytes per secret in Windows Credential Manager (CRED_MAX_CREDENTIAL_BLOB_SIZE)
MANIFEST_PREFIX = "gatekey-chunked:v1:"
CHUNK_MARK = "#gatekey-chunk-"
READ_ATTEMPTS = 4  # head reads per get: each retry follows a writer that replaced the head
LOCK_POLL = 0.02
JOURNAL_AREA = "keychain-chunks"  # in the cache directory: generation ids only, never a value
_GENERATION = re.compile(r"[0-9a-f]{8}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,3}")


# --- splitting -------------------------------------------------------------------------------
class RawStore(Protocol):
    """One keychain entry per (service, account); values are text.

    A store that can list its items also has ``accounts(service, prefix) -> list[str]`` (the
    Secret Service does; keyring's API cannot): chunk generations are then found by listing.
    """

    def get(self, service: str, account: str) -> str | None: ...
    def set(self, service: str, account: str, value: str) -> None: ...
    def delete(self, service: str, account: str) -> bool: ...


def fits(text: str) -> bool:
    # Windows stores text as UTF-16; other stores as UTF-8. A chunk must fit both.
    return len(text.encode("utf-16-le")) <= CHUNK_LIMIT and len(text.encode()) <= CHUNK_LIMIT


def split_chunks(value: str) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size16 = size8 = 0
    for ch in value:
        c16, c8 = len(ch.encode("utf-16-le")), len(ch.encode("utf-8", "surrogatepass"))
        if current and (size16 + c16 > CHUNK_LIMIT or size8 + c8 > CHUNK_LIMIT):
            chunks.append("".join(current))
            current, size16, size8 = [], 0, 0
        current.append(ch)
        size16 += c16
        size8 += c8
    if current:
        chunks.append("".join(current))
    return chunks


def chunk_account(account: str, generation: str, index: int) -> str:
    return f"{account}{CHUNK_MARK}{generation}-{index}"


def parse_chunk_account(account: str, name: str) -> tuple[str, int] | None:
    """(generation, index) of one of ``account``'s chunk items, or None for any other name."""
    prefix = account + CHUNK_MARK
    if not name.startswith(prefix):
        return None
    generation, _, index = name[len(prefix) :].partition("-")
    if not _GENERATION.fullmatch(generation) or not _INDEX.fullmatch(index):
        return None
    return generation, int(index)


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10_000


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


_MISSING = object()  # a chunk the manifest names is gone: a writer may have moved the head


class ChunkedStore:
    """Values of any size over a RawStore: small ones as-is, large ones as chunks + manifest."""

    def __init__(self, raw: RawStore, files: FileCache | None = None) -> None:
        self.raw = raw
        self._files = files
        self._locked: set[tuple[str, str]] = set()  # entries this process is the writer of

    # --- the writers' lock and journal ---------------------------------------------------------
    def _cache(self) -> FileCache:
        if self._files is None:
            from gatekey.cache import FileCache

            self._files = FileCache()
        return self._files

    @staticmethod
    def _key(service: str, account: str) -> str:
        from gatekey.cache import cache_key

        return cache_key("keychain-entry", {"service": service, "account": account})

    def lock(self, service: str, account: str, run: RunContext) -> bool:
        """Become the only writer of this entry until the process exits (so a write abandoned
        at the deadline keeps it); waits no longer than the run's deadline. False when there is
        no usable cache directory to lock in: writes then do not sweep."""
        key = self._key(service, account)
        try:
            while not self._cache().hold(key):
                if run.remaining() <= 0:
                    raise DeadlineExceeded(
                        f"gave up after {run.timeout:g} s ({run.name} time limit) waiting for "
                        "another gatekey process to finish writing this keychain entry"
                    )
                time.sleep(min(LOCK_POLL, max(run.remaining(), 0.001)))
        except OSError as e:
            log.debug("keychain writes are not locked (%s); old chunks are not swept", e)
            return False
        self._locked.add((service, account))
        return True

    def _journal(self, service: str, account: str) -> dict[str, int]:
        """Generations that may still have chunks, with the first index not yet deleted."""
        text, _ = self._cache().read_blob(JOURNAL_AREA, self._key(service, account))
        try:
            entries = json.loads(text) if text else []
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            log.debug("the keychain chunk journal is damaged; using what the keychain lists")
            return {}
        return {
            g: i
            for g, i in (e for e in entries if isinstance(e, list) and len(e) == 2)
            if isinstance(g, str) and _GENERATION.fullmatch(g) and _is_index(i)
        }

    def _save_journal(self, service: str, account: str, pending: dict[str, int]) -> None:
        key = self._key(service, account)
        try:
            if pending:
                body = json.dumps(sorted([g, i] for g, i in pending.items()))
                self._cache().write_blob(JOURNAL_AREA, key, body)
            else:
                self._cache().delete_blob(JOURNAL_AREA, key)
        except OSError as e:
            log.debug("could not update the keychain chunk journal (%s)", e)

    # --- reading -------------------------------------------------------------------------------
    def _manifest(self, stored: str | None) -> dict[str, Any] | None:
        if stored is None or not stored.startswith(MANIFEST_PREFIX):
            return None
        try:
            data = json.loads(stored[len(MANIFEST_PREFIX) :])
        except ValueError:
            return {}
        ok = (
            isinstance(data, dict)
            and isinstance(data.get("gen"), str)
            and isinstance(data.get("n"), int)
            and 0 < data["n"] <= 1000
            and isinstance(data.get("sha256"), str)
        )
        return data if ok else {}

    def _session(self) -> Any:
        """The store's one-connection block when it has one (the Secret Service does)."""
        session = getattr(self.raw, "session", None)
        return session() if session is not None else contextlib.nullcontext()

    def get(self, service: str, account: str) -> str | None:
        with self._session():
            return self._get(service, account)

    def _get(self, service: str, account: str) -> str | None:
        seen: list[str | None] = []  # heads whose chunks went missing while we read them
        for _ in range(READ_ATTEMPTS):
            head = self.raw.get(service, account)
            if seen and head == seen[-1]:
                # A chunk is missing and the head has not moved since: damage, not a race.
                log.debug("a keychain chunk is missing under its manifest; treating as absent")
                return None
            value = self._assemble(service, account, head)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
            seen.append(head)
        log.debug("the keychain entry kept changing while it was read; treating it as absent")
        return None

    def _assemble(self, service: str, account: str, stored: str | None) -> str | object | None:
        manifest = self._manifest(stored)
        if manifest is None:
            return stored
        if not manifest:
            log.debug("keychain entry has a damaged chunk manifest; treating it as absent")
            return None
        parts = []
        for i in range(manifest["n"]):
            part = self.raw.get(service, chunk_account(account, manifest["gen"], i))
            if part is None:
                return _MISSING
            parts.append(part)
        value = "".join(parts)
        if _digest(value) != manifest["sha256"]:
            log.debug("keychain chunks do not match their manifest; treating as absent")
            return None
        return value

    # --- writing -------------------------------------------------------------------------------
    def set(self, service: str, account: str, value: str) -> None:
        with self._session():
            self._set(service, account, value)

    def delete(self, service: str, account: str) -> bool:
        """Remove the value and every chunk generation of it; True if anything was there.
        Raises when a chunk could not be removed (it holds secret text: erase must say so)."""
        with self._session():
            return self._delete(service, account)

    def _set(self, service: str, account: str, value: str) -> None:
        locked = (service, account) in self._locked
        previous = self._manifest(self.raw.get(service, account))
        generation = None
        if not fits(value) or value.startswith(MANIFEST_PREFIX):
            generation = os.urandom(4).hex()
        if locked:  # before any write: a kill from here on leaves nothing unrecorded
            pending = self._journal(service, account)
            for gen in (generation, (previous or {}).get("gen")):
                if gen is not None:
                    pending.setdefault(gen, 0)
            self._save_journal(service, account, pending)
        if generation is None:
            self.raw.set(service, account, value)
        else:
            chunks = split_chunks(value)
            for i, chunk in enumerate(chunks):
                self.raw.set(service, chunk_account(account, generation, i), chunk)
            manifest = {"gen": generation, "n": len(chunks), "sha256": _digest(value)}
            # Written last: until this write lands, readers see the previous value (or nothing).
            self.raw.set(service, account, MANIFEST_PREFIX + json.dumps(manifest))
        if locked:
            _, left = self._sweep(service, account, keep=generation, previous=previous)
            later = "; the next store or erase of this entry removes them"
        else:
            _, left = self._drop(service, account, previous)
            later = ""
        if left:
            log.warning(
                "%d chunk items of an older value could not be removed from the keychain%s",
                left,
                later,
            )

    def _delete(self, service: str, account: str) -> bool:
        locked = (service, account) in self._locked
        previous = self._manifest(self.raw.get(service, account))
        if locked and previous:
            pending = self._journal(service, account)
            pending.setdefault(previous["gen"], 0)
            self._save_journal(service, account, pending)
        existed = self.raw.delete(service, account)  # first: a partial delete reads as absent
        if locked:
            removed, left = self._sweep(service, account, keep=None, previous=previous)
        else:
            removed, left = self._drop(service, account, previous)
            more, still, _ = self._drop_listed(service, account, keep=None)
            removed, left = removed + more, left + still
        if left:
            raise TemporaryFailure(
                f"{left} chunk items of the stored secret could not be removed from the keychain",
                fix="run gatekey erase again",
            )
        if removed and not existed:
            log.info("removed %d chunk items an interrupted store had left behind", removed)
        return existed or bool(removed)

    # --- sweeping ------------------------------------------------------------------------------
    def _listed(self, service: str, account: str) -> dict[str, list[int]] | None:
        """Every chunk item of this account by generation, when the store can list its items."""
        accounts = getattr(self.raw, "accounts", None)
        if accounts is None:
            return None
        found: dict[str, list[int]] = {}
        for name in accounts(service, account + CHUNK_MARK):
            parsed = parse_chunk_account(account, name)
            if parsed is not None:
                found.setdefault(parsed[0], []).append(parsed[1])
        return found

    def _sweep(
        self, service: str, account: str, keep: str | None, previous: dict[str, Any] | None
    ) -> tuple[int, int]:
        """Under the lock, after this writer replaced or deleted the head: delete every chunk
        generation but ``keep``. Returns (items deleted, items that could not be deleted)."""
        pending = self._journal(service, account)
        if previous:
            pending.setdefault(previous["gen"], 0)
        pending.pop(keep or "", None)
        removed, left, failed = self._drop_listed(service, account, keep)
        if failed is not None:
            pending = failed  # the store lists its items: what it listed is the whole truth
        else:
            for gen, start in list(pending.items()):
                # Chunks are written in order and a write stops at its first failure, so a
                # generation is a run of indices from 0: delete upwards until one is missing.
                index = start
                try:
                    while self._remove_item(service, chunk_account(account, gen, index)):
                        index += 1
                        removed += 1
                    del pending[gen]
                except HelperError:
                    pending[gen] = index
                    left += 1
        self._save_journal(service, account, pending)
        return removed, left

    def _drop_listed(
        self, service: str, account: str, keep: str | None
    ) -> tuple[int, int, dict[str, int] | None]:
        """Delete every listed chunk item but generation ``keep``: (deleted, not deleted, the
        generations not fully deleted with their lowest index left), or None for the last when
        the store cannot list."""
        listed = self._listed(service, account)
        if listed is None:
            return 0, 0, None
        removed = left = 0
        failed: dict[str, int] = {}
        for gen, indices in listed.items():
            if gen == keep:
                continue
            for index in sorted(indices):
                try:
                    removed += self._remove_item(service, chunk_account(account, gen, index))
                except HelperError:
                    failed.setdefault(gen, index)
                    left += 1  # only what is still there: later indices may have gone
        return removed, left, failed

    def _drop(self, service: str, account: str, manifest: dict[str, Any] | None) -> tuple[int, int]:
        """Unlocked: delete only the chunks ``manifest`` names: (deleted, not deleted)."""
        if not manifest:
            return 0, 0
        removed = left = 0
        for i in range(manifest["n"]):
            try:
                removed += self._remove_item(service, chunk_account(account, manifest["gen"], i))
            except HelperError:
                left += 1
        return removed, left

    def _remove_item(self, service: str, name: str) -> bool:
        """Delete one chunk item: True if this call removed it, False if it was not there.

        A delete that fails is not yet a chunk left behind: the item may have been removed
        anyway (by another process between our listing and our delete, or by the store before
        it reported an error about it, as a keychain under load does). So the item is looked up
        again: gone is gone, whatever the delete said; one still there gets one more delete, and
        raises (HelperError) only when that fails too and the item is still there.
        """
        try:
            return self.raw.delete(service, name)
        except HelperError as e:
            log.debug("a keychain chunk delete failed; looking again: %s", e.describe(where=False))
        if not self._present(service, name):
            return False
        try:
            return self.raw.delete(service, name)  # once more: the failure may have been passing
        except HelperError as e:
            if self._present(service, name):
                log.debug("could not remove a keychain chunk item: %s", e.describe(where=False))
                raise
            return False

    def _present(self, service: str, name: str) -> bool:
        """Whether the item exists; True when that cannot be told (never report a chunk that may
        still hold secret text as removed)."""
        exists = getattr(self.raw, "exists", None)  # the Secret Service: without the secret
        try:
            if exists is not None:
                return bool(exists(service, name))
            return self.raw.get(service, name) is not None
        except HelperError:
            return True
