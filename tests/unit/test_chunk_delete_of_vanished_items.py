"""Erasing chunked keychain values when chunk items vanish under the delete (the rare exit 75).

A chunk item can go away between the listing that found it and the delete that removes it, and
the keychain may then answer that delete with an error rather than "no such item" (a Secret
Service under load did: ``erase`` exited 75 saying 4 chunk items "could not be removed" while
none was left). What this module protects: an item that is gone counts as removed, whatever the
delete said; an item that really stays is still reported, with the true count, so erase never
claims a secret is gone while a piece of it remains.

Deterministic, in process: a stand-in store that lists its items like the Secret Service and
whose delete of chosen items removes them and then fails (what the race looks like from here).
"""

from __future__ import annotations

import pytest

from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.errors import TemporaryFailure
from gatekey.keystore import CHUNK_LIMIT, ChunkedStore, split_chunks

SERVICE = "gatekey"
VALUE = "v" * (CHUNK_LIMIT + 100)  # UTF-16: 2 bytes a character, so three chunk items
CHUNKS = len(split_chunks(VALUE))
RUN = RunContext("interactive", interactive=True, timeout=120)


class VanishingStore:
    """A RawStore in a dict that can list its items. Deleting an item named in ``vanish``
    removes it (another process got there first) and then fails; one in ``stuck`` stays and
    fails every time (a chunk that really cannot be removed)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}
        self.vanish: set[str] = set()
        self.stuck: set[str] = set()

    def get(self, service: str, account: str) -> str | None:
        return self.items.get((service, account))

    def set(self, service: str, account: str, value: str) -> None:
        self.items[(service, account)] = value

    def delete(self, service: str, account: str) -> bool:
        if account in self.stuck:
            raise TemporaryFailure("the keychain refused the request: DBusErrorResponse")
        if account in self.vanish:
            self.vanish.discard(account)
            self.items.pop((service, account), None)
            raise TemporaryFailure("the Secret Service failed the request (LockedException)")
        return self.items.pop((service, account), None) is not None

    def accounts(self, service: str, prefix: str) -> list[str]:
        return [a for s, a in self.items if s == service and a.startswith(prefix)]

    def chunks(self, account: str) -> list[str]:
        return sorted(a for _, a in self.items if a.startswith(account + "#gatekey-chunk-"))


def stored(raw: VanishingStore, files: FileCache, account: str, generations: int) -> ChunkedStore:
    """``generations`` stores of the value, the later ones leaving the earlier chunks behind
    (stores that overlapped: a lock-free writer removes only the generation the head named)."""
    for _ in range(generations):
        before = dict(raw.items)
        ChunkedStore(raw, files).set(SERVICE, account, VALUE)
        raw.items.update({k: v for k, v in before.items() if k[1] != account})
    assert len(raw.chunks(account)) == CHUNKS * generations
    return ChunkedStore(raw, files)


@pytest.mark.parametrize("locked", [True, False], ids=["writer-lock", "no-lock"])
def test_erase_counts_chunk_items_that_vanished_under_its_delete_as_removed(tmp_path, locked):
    raw, files = VanishingStore(), FileCache(str(tmp_path / "cache"))
    account = f"erase-{locked}"
    store = stored(raw, files, account, generations=2)
    raw.vanish = set(raw.chunks(account)[1:5])  # across both generations, as in the CI failure
    if locked:
        assert store.lock(SERVICE, account, RUN)
    assert store.delete(SERVICE, account) is True  # no TemporaryFailure (exit 75)
    assert raw.items == {}, "erase left items of the entry behind"
    assert ChunkedStore(raw, files).get(SERVICE, account) is None


def test_a_store_sweeping_chunks_that_vanish_under_it_keeps_its_own_and_warns_of_nothing(
    tmp_path, caplog
):
    raw, files = VanishingStore(), FileCache(str(tmp_path / "cache"))
    account = "store"
    stored(raw, files, account, generations=2)
    old = raw.chunks(account)
    raw.vanish = set(old)
    store = ChunkedStore(raw, files)
    assert store.lock(SERVICE, account, RUN)
    store.set(SERVICE, account, VALUE + "new")
    assert not set(raw.chunks(account)) & set(old), "an older generation survived the sweep"
    assert len(raw.chunks(account)) == CHUNKS
    assert ChunkedStore(raw, files).get(SERVICE, account) == VALUE + "new"
    assert "could not be removed" not in caplog.text


def test_a_chunk_item_that_really_stays_is_still_reported_with_the_true_count(tmp_path):
    raw, files = VanishingStore(), FileCache(str(tmp_path / "cache"))
    account = "stuck"
    store = stored(raw, files, account, generations=1)
    first = raw.chunks(account)[0]
    raw.stuck = {first}  # the lowest index: the ones after it do go
    assert store.lock(SERVICE, account, RUN)
    with pytest.raises(TemporaryFailure) as failed:
        store.delete(SERVICE, account)
    assert failed.value.describe(where=False).startswith("1 chunk items of the stored secret")
    assert raw.chunks(account) == [first], "the deletable chunks must go even when one stays"
    raw.stuck = set()
    assert ChunkedStore(raw, files).delete(SERVICE, account) is True  # erase again: all gone
    assert raw.items == {}
