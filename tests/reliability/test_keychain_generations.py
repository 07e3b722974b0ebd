"""Chunk generations in the real Secret Service (issue 12, item 5), black box.

A keychain value over the chunk limit is kept as ``<account>#gatekey-chunk-<generation>-<i>``
items plus a manifest at ``<account>`` (the head) naming the current generation. What this
module protects:

- ``erase`` removes every generation, including those left by concurrent ``store``s and by a
  ``store`` killed part-way (SIGKILL), and a later ``store`` sweeps such leftovers: nothing that
  holds old secret text stays in the keychain;
- concurrent ``store`` / ``erase`` / reads of one profile never end in exit 75 (an item that
  vanished under a reader or a writer is a race, not a keychain failure), and a read prints a
  whole stored value byte-exact or exits 3, never a mixture.

The installed executables run against gnome-keyring's Secret Service on a private D-Bus (the
``secret_service`` fixture); the test counts items through secretstorage. ``store`` and
``erase`` run as a person runs them (interactive context, its 120 s deadline: concurrent writers
of one entry take turns), readers as the app's background refresh (silent, 10 s).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from blackbox_env import Env, exe
from gatekey.keystore import ChunkedStore, split_chunks

pytestmark = [pytest.mark.keychain, pytest.mark.blackbox]

SERVICE, ACCOUNT = "gatekey", "default"  # the embedded default profile's entry
# Under 8 KiB (any sane credential limit allows it) and still six chunks each.
VALUE_CHARS = 7500
WRITER_CONTEXT = "interactive"  # a person at a terminal: 120 s deadline
READER_CONTEXT = "background"  # the app's silent refresh: 10 s deadline
RUN_TIMEOUT = 120 + 30  # the writers' documented deadline plus a margin for process start
# Enough overlap that today's main fails each test (checked), few enough processes for a module
# of ~15 s on a busy 2-core machine.
CONCURRENT_STORES = 4
ROUNDS, MIXED_STORES, MIXED_READERS = 2, 3, 4  # and one erase per round


def large_value(tag: str) -> str:
    """A distinctive printable value over the chunk limit (the tag keeps values apart)."""
    body = secrets.token_urlsafe(VALUE_CHARS)
    return f"sk-{tag}-{body}"[:VALUE_CHARS]


@pytest.fixture
def keychain(secret_service: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service.vars["DBUS_SESSION_BUS_ADDRESS"])
    return secret_service


def usernames() -> list[str]:
    """The usernames of every item of our service in the default collection, now."""
    import secretstorage
    from secretstorage.exceptions import ItemNotFoundException

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        for _ in range(50):  # a store running beside us may delete an item mid-listing
            try:
                return sorted(
                    item.get_attributes()["username"]
                    for item in collection.search_items({"service": SERVICE})
                )
            except ItemNotFoundException:
                continue
        raise AssertionError("the keychain kept changing under 50 listings in a row")
    finally:
        connection.close()


@contextlib.contextmanager
def item_counter() -> Iterator[Callable[[], int]]:
    """How many items our service has, in one D-Bus round trip per call (a store writes its
    chunks within milliseconds: a slower look would rarely see one part-way)."""
    import secretstorage
    from secretstorage.collection import COLLECTION_IFACE
    from secretstorage.util import DBusAddressWrapper

    connection = secretstorage.dbus_init()
    try:
        path = secretstorage.get_default_collection(connection).collection_path
        collection = DBusAddressWrapper(path, COLLECTION_IFACE, connection)
        yield lambda: len(collection.call("SearchItems", "a{ss}", {"service": SERVICE})[0])
    finally:
        connection.close()


def names_of(names: list[str], account: str = ACCOUNT) -> list[str]:
    """The chunk items among ``names``."""
    return [name for name in names if name.startswith(f"{account}#gatekey-chunk-")]


def chunk_items() -> list[str]:
    return names_of(usernames())


def generations(names: list[str]) -> set[str]:
    return {name.split("#gatekey-chunk-", 1)[1].rsplit("-", 1)[0] for name in names}


def start(gk: Env, *args: str, context: str, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
    env = dict(gk.vars, CLAUDE_HELPER_CONTEXT=context)
    proc = subprocess.Popen(
        [exe(), *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=gk.root,
    )
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)  # under a pipe's buffer: never blocks, so all start together
        proc.stdin.close()
        proc.stdin = None  # communicate() would flush it (Python 3.11 raises on a closed file)
    return proc


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    return proc.returncode, out, err


def store(gk: Env, value: str) -> None:
    result = gk.run("store", stdin=value.encode(), context=WRITER_CONTEXT, timeout=RUN_TIMEOUT)
    assert result.code == 0, result.err


def read(gk: Env) -> tuple[int, bytes]:
    result = gk.run(context=READER_CONTEXT, timeout=RUN_TIMEOUT)
    return result.code, result.stdout


def erase_everything(gk: Env) -> None:
    """``erase`` says truthfully whether it erased something, then no item of the entry is
    left at all."""
    before = usernames()
    erased = gk.run("erase", context=WRITER_CONTEXT, timeout=RUN_TIMEOUT)
    assert erased.code == 0, erased.err
    said = "erased the keychain entry" if before else "nothing to erase"
    assert said in erased.err, (len(before), erased.err)
    left = usernames()
    assert left == [], f"{len(left)} items of the entry survived erase ({generations(left)})"
    gk.run(context=READER_CONTEXT).assert_clean_failure(3)


def test_erase_after_concurrent_large_stores_leaves_no_chunk_items(keychain, secret_hygiene):
    gk = keychain
    values = [large_value(f"concurrent{i}") for i in range(CONCURRENT_STORES)]
    for value in values:
        secret_hygiene.register(value, "a value stored concurrently")
    procs = [start(gk, "store", context=WRITER_CONTEXT, stdin=v.encode()) for v in values]
    results = [finish(p) for p in procs]
    assert [code for code, _, _ in results] == [0] * len(values), [e for _, _, e in results]

    # Booleans and counts only in assertions: pytest would print a value compared in one.
    code, printed = read(gk)
    whole = code == 0 and printed in {v.encode() + b"\n" for v in values}
    assert whole, f"exit {code}, and the output is not one of the stored values"
    expected, left = len(split_chunks(printed.decode().rstrip("\n"))), chunk_items()
    # The last store swept whatever the others left: only the stored value's chunks remain.
    assert len(left) == expected, f"{len(generations(left)) - 1} leftover generations"
    erase_everything(gk)


def test_a_store_killed_part_way_leaves_chunks_that_erase_and_the_next_store_remove(
    keychain, secret_hygiene, record_property
):
    gk = keychain
    old = large_value("old")
    secret_hygiene.register(old, "the value stored before the kills")
    store(gk, old)

    attempts = []

    def kill_a_store_part_way() -> None:
        """SIGKILL a ``store`` once some of its chunks are written and before its manifest is:
        a kill that comes too late (the store finished) is undone and tried again."""
        for attempt in range(1, 9):
            before = set(chunk_items())
            value = large_value("killed")
            secret_hygiene.register(value, "a value whose store was killed")
            with item_counter() as count:
                items = count()
                proc = start(gk, "store", context=WRITER_CONTEXT, stdin=value.encode())
                try:
                    deadline = time.monotonic() + RUN_TIMEOUT
                    while proc.poll() is None and time.monotonic() < deadline:
                        if count() > items:  # its first chunk is there
                            break
                finally:
                    proc.kill()  # SIGKILL: no cleanup code runs
                    finish(proc)
            if read(gk) == (0, old.encode() + b"\n") and set(chunk_items()) - before:
                attempts.append(attempt)
                return  # interrupted part-way: the old value still reads, new chunks exist
            store(gk, old)  # it finished first: back to the old value, and again
        pytest.fail("no store could be interrupted part-way in 8 attempts")

    kill_a_store_part_way()
    erase_everything(gk)

    store(gk, old)
    kill_a_store_part_way()
    assert len(generations(chunk_items())) == 2, "the old value's and the killed store's chunks"
    new = large_value("after")
    secret_hygiene.register(new, "the value stored after the kills")
    store(gk, new)
    reads_new = read(gk) == (0, new.encode() + b"\n")
    assert reads_new, "the value stored after the kills does not read back"
    left, expected = chunk_items(), len(split_chunks(new))
    assert len(left) == expected, f"{len(left) - expected} leftover chunk items survived a store"
    assert len(generations(left)) == 1
    erase_everything(gk)
    record_property("attempts_per_kill", attempts)


def test_concurrent_store_erase_and_reads_never_exit_75_nor_print_a_mixture(
    keychain, secret_hygiene, record_property
):
    gk = keychain
    values = [large_value(f"mixed{i}") for i in range(MIXED_STORES)]
    for value in values:
        secret_hygiene.register(value, "a value stored in the mixed run")
    whole = {v.encode() + b"\n" for v in values}
    store(gk, values[0])  # readers of the first round race writers too, not an empty entry
    problems: list[str] = []
    reads = {0: 0, 3: 0}
    for round_ in range(ROUNDS):
        writers = [
            ("store", start(gk, "store", context=WRITER_CONTEXT, stdin=v.encode())) for v in values
        ]
        writers.append(("erase", start(gk, "erase", context=WRITER_CONTEXT)))
        readers = [start(gk, "get", context=READER_CONTEXT) for _ in range(MIXED_READERS // 2)]
        readers += [  # and as the app runs it
            start(gk, context=READER_CONTEXT) for _ in range(MIXED_READERS - MIXED_READERS // 2)
        ]
        for what, proc in writers:
            code, out, err = finish(proc)
            if code != 0 or out:
                problems.append(f"round {round_}: {what} exit {code}: {err.decode()!r}")
        for proc in readers:
            code, out, err = finish(proc)
            if code == 0 and out in whole:
                reads[0] += 1
            elif code == 3 and out == b"" and b"no credential stored" in err:
                reads[3] += 1
            elif code == 0:
                problems.append(f"round {round_}: a read printed no stored value whole")
            else:
                problems.append(f"round {round_}: a read exit {code}: {err.decode()!r}")
    assert problems == [], "\n".join(problems)
    record_property("reads_printing_a_value", reads[0])
    record_property("reads_finding_nothing", reads[3])
    erase_everything(gk)


# --- a store that cannot list its items (Windows Credential Manager's limit, in a file) -------
LIMITED_CONFIG = """\
[profiles.win]
source = "keychain"
backend = "limited_backend.LimitedKeyring"
allow_insecure_backend = true
"""


def test_without_listing_erase_and_store_remove_what_a_killed_store_wrote(gk, secret_hygiene):
    """A backend that cannot list (as Windows Credential Manager through keyring): the chunk
    generations a killed store wrote are known from the journal in the cache directory."""
    gk.write_config(LIMITED_CONFIG)
    path = gk.root / "limited-keyring.json"
    gk.vars.update(GATEKEY_PROFILE="win", LIMITED_KEYRING_FILE=str(path))

    def names() -> list[str]:
        entries = json.loads(path.read_text()) if path.exists() else {}
        return sorted(key.split("\x00", 1)[1] for key in entries)

    old, new = large_value("old"), large_value("new")
    for value in (old, new):
        secret_hygiene.register(value, "a value stored in the limited backend")

    def kill_stores(*at_writes: int) -> None:
        for writes in at_writes:  # the process dies on the spot at that write (no cleanup runs)
            killed = gk.run(
                "store",
                stdin=large_value("killed").encode(),
                LIMITED_KEYRING_FAIL_AFTER=str(writes),
                LIMITED_KEYRING_FAIL_MODE="exit",
            )
            assert killed.code == 137, killed.err
        reads_old = read(gk) == (0, old.encode() + b"\n")
        assert reads_old, "a killed store changed the stored value"

    store(gk, old)
    kill_stores(3, 2)
    assert len(generations(names_of(names(), "win"))) == 3
    erased = gk.run("erase", context=WRITER_CONTEXT)
    assert erased.code == 0, erased.err
    left = names()
    assert left == [], f"{len(left)} entries survived erase"

    store(gk, old)
    kill_stores(4)
    store(gk, new)
    expected, left = 1 + len(split_chunks(new)), names()
    assert len(left) == expected, f"{len(left) - expected} leftover chunk entries after a store"
    assert len(generations(names_of(left, "win"))) == 1


# --- in process: what a reader does when a writer moves the head under it ---------------------
class RacingStore:
    """A RawStore in a dict; ``during_read`` runs once, at the first chunk read (a writer that
    replaces or deletes the value while a reader is between its manifest and its chunks)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}
        self.during_read: Callable[[], None] | None = None
        self.reads = 0

    def get(self, service: str, account: str) -> str | None:
        self.reads += 1
        if self.during_read is not None and "#gatekey-chunk-" in account:
            writer, self.during_read = self.during_read, None
            writer()
        return self.entries.get((service, account))

    def set(self, service: str, account: str, value: str) -> None:
        self.entries[(service, account)] = value

    def delete(self, service: str, account: str) -> bool:
        return self.entries.pop((service, account), None) is not None


def test_a_read_that_loses_a_race_with_a_store_returns_the_new_value_whole():
    raw = RacingStore()
    old, new = large_value("old"), large_value("new")
    ChunkedStore(raw).set("s", "a", old)
    raw.during_read = lambda: ChunkedStore(raw).set("s", "a", new)  # drops old's chunks
    got = ChunkedStore(raw).get("s", "a")
    assert got is not None, "a race with a store must not read as 'nothing stored'"
    assert got == new, "the read returned a value that is not the stored one"


def test_a_read_that_loses_a_race_with_erase_or_finds_damage_reads_as_absent():
    raw = RacingStore()
    ChunkedStore(raw).set("s", "a", large_value("old"))
    raw.during_read = lambda: ChunkedStore(raw).delete("s", "a")
    assert ChunkedStore(raw).get("s", "a") is None
    ChunkedStore(raw).set("s", "a", large_value("damaged"))
    del raw.entries[max(k for k in raw.entries if "#" in k[1])]  # a chunk gone for good
    raw.reads = 0
    assert ChunkedStore(raw).get("s", "a") is None
    assert raw.reads <= 2 * 7, "damage is found on the second look, not after many"
