"""keystore.split_chunks and ChunkedStore, in process: over an in-memory store that enforces
Windows Credential Manager's 2560-byte limit, and over the limit-enforcing keyring backend
(tests/support/limited_backend.py). The keychain source on the installed executables is in
tests/blackbox/sources/test_keychain.py.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blackbox_env import SUPPORT
from gatekey import keystore
from gatekey.keystore import CHUNK_LIMIT, MANIFEST_PREFIX, ChunkedStore, split_chunks

SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"


class MemoryStore:
    """A RawStore in a dict that enforces the same limit as Windows Credential Manager.

    ``fail_after``: the first N writes succeed, the next raises (a crash mid-way).
    """

    def __init__(self, *, limit: int | None = CHUNK_LIMIT, fail_after: int | None = None) -> None:
        self.entries: dict[tuple[str, str], str] = {}
        self.limit = limit
        self.fail_after = fail_after
        self.writes = 0

    def get(self, service: str, account: str) -> str | None:
        return self.entries.get((service, account))

    def set(self, service: str, account: str, value: str) -> None:
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise RuntimeError("simulated crash")
        if self.limit is not None and len(value.encode("utf-16-le")) > self.limit:
            raise ValueError(f"blob too large: {len(value.encode('utf-16-le'))} bytes")
        self.writes += 1
        self.entries[(service, account)] = value

    def delete(self, service: str, account: str) -> bool:
        return self.entries.pop((service, account), None) is not None


def fits_everywhere(chunk: str) -> bool:
    return (
        len(chunk.encode("utf-16-le")) <= CHUNK_LIMIT and len(chunk.encode("utf-8")) <= CHUNK_LIMIT
    )


ASCII_TOKEN = "eyJ" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_" * 100


MIXED = "é€ß中文Ωж" * 700  # 2- and 3-byte UTF-8, 2-byte UTF-16


ASTRAL = "😀𝄞🀄𐍈" * 800  # 4 bytes in UTF-8 and in UTF-16 (surrogate pairs)


@pytest.mark.parametrize("value", [ASCII_TOKEN, MIXED, ASTRAL, "a" * 1281, "€" * 854 + "x"])
def test_split_chunks_rejoins_exactly_and_every_chunk_fits_both_encodings(value):
    chunks = split_chunks(value)
    assert "".join(chunks) == value
    assert len(chunks) >= 2
    assert all(chunks), "no empty chunks"
    for chunk in chunks:
        assert fits_everywhere(chunk), (
            len(chunk.encode("utf-16-le")),
            len(chunk.encode("utf-8")),
        )
        chunk.encode("utf-8")  # never a split surrogate pair (would raise)


def test_split_chunks_fills_chunks_rather_than_making_many_tiny_ones():
    # 1280 ASCII characters are exactly 2560 bytes of UTF-16: one full chunk.
    assert [len(c) for c in split_chunks("a" * 2560)] == [1280, 1280]
    assert [len(c) for c in split_chunks("a" * 2561)] == [1280, 1280, 1]
    # A 4-byte character never straddles two chunks.
    assert [len(c) for c in split_chunks("😀" * 1000)] == [640, 360]


@pytest.mark.parametrize(
    "value",
    [
        "sk-short",
        "a" * 1280,  # exactly at the limit: one plain entry
        "a" * 1281,  # one byte over: chunked
        ASCII_TOKEN,
        MIXED,
        ASTRAL,
        MANIFEST_PREFIX,  # a value that merely looks like a manifest
        MANIFEST_PREFIX + '{"gen": "00000000", "n": 1, "sha256": "00"}',
        MANIFEST_PREFIX + "x" * 5000,
    ],
)
def test_chunked_store_round_trips_through_a_limited_store(value):
    raw = MemoryStore()
    store = ChunkedStore(raw)
    store.set("svc", "acct", value)
    assert store.get("svc", "acct") == value
    for stored in raw.entries.values():
        assert fits_everywhere(stored)


def test_small_values_are_stored_as_is_and_big_ones_as_chunks_plus_manifest():
    raw = MemoryStore()
    store = ChunkedStore(raw)
    store.set("svc", "acct", "a" * 1280)
    assert raw.entries == {("svc", "acct"): "a" * 1280}

    store.set("svc", "acct", "a" * 1281)
    main = raw.entries[("svc", "acct")]
    assert main.startswith(MANIFEST_PREFIX)
    manifest = json.loads(main[len(MANIFEST_PREFIX) :])
    assert manifest["n"] == 2
    chunk_accounts = sorted(a for (_, a) in raw.entries if a != "acct")
    assert len(chunk_accounts) == 2
    assert all(a.startswith("acct#gatekey-chunk-") for a in chunk_accounts)


def test_a_value_that_begins_with_the_manifest_prefix_is_never_mistaken_for_one():
    raw = MemoryStore()
    store = ChunkedStore(raw)
    # Short enough to be stored as-is, but it would then read back as a (damaged) manifest.
    value = MANIFEST_PREFIX + "not-json"
    store.set("svc", "acct", value)
    assert store.get("svc", "acct") == value
    assert raw.entries[("svc", "acct")] != value  # it went through the manifest path


@pytest.mark.parametrize(
    ("old", "new"),
    [("a" * 5000, "small"), ("a" * 5000, "b" * 7000), ("small", "c" * 4000), (MIXED, ASTRAL)],
)
def test_overwriting_leaves_only_the_new_value_entries(old, new):
    raw = MemoryStore()
    store = ChunkedStore(raw)
    store.set("svc", "acct", old)
    store.set("svc", "acct", new)
    assert store.get("svc", "acct") == new
    expected = 1 if fits_everywhere(new) else len(split_chunks(new)) + 1  # chunks + manifest
    assert len(raw.entries) == expected, sorted(a for (_, a) in raw.entries)


def test_delete_removes_the_manifest_and_every_chunk():
    raw = MemoryStore()
    store = ChunkedStore(raw)
    store.set("svc", "acct", ASTRAL)
    store.set("svc", "other", "kept")
    assert store.delete("svc", "acct") is True
    assert raw.entries == {("svc", "other"): "kept"}
    assert store.get("svc", "acct") is None
    assert store.delete("svc", "acct") is False


@pytest.mark.parametrize("previous", [None, "sk-previous-small", "p" * 4000])
def test_a_crash_at_any_write_leaves_the_previous_value_or_nothing(previous):
    new = ASCII_TOKEN
    writes_needed = len(split_chunks(new)) + 1
    for fail_after in range(writes_needed):
        raw = MemoryStore()
        if previous is not None:
            ChunkedStore(raw).set("svc", "acct", previous)
        raw.fail_after = raw.writes + fail_after
        with pytest.raises(RuntimeError, match="simulated crash"):
            ChunkedStore(raw).set("svc", "acct", new)
        assert ChunkedStore(raw).get("svc", "acct") == previous, f"crash after {fail_after}"
    # ... and with every write allowed, the new value lands: the loop above covered all of them.
    raw = MemoryStore(fail_after=writes_needed)
    ChunkedStore(raw).set("svc", "acct", new)
    assert ChunkedStore(raw).get("svc", "acct") == new


def test_damaged_chunk_sets_read_as_absent_never_as_a_wrong_value():
    raw = MemoryStore()
    store = ChunkedStore(raw)
    store.set("svc", "acct", ASCII_TOKEN)
    chunk_keys = sorted(k for k in raw.entries if k[1] != "acct")

    tampered = dict(raw.entries)
    tampered[chunk_keys[0]] = "X" + tampered[chunk_keys[0]][1:]
    raw.entries = tampered
    assert store.get("svc", "acct") is None  # digest mismatch

    store.set("svc", "acct", ASCII_TOKEN)
    chunk_keys = sorted(k for k in raw.entries if k[1] != "acct")
    del raw.entries[chunk_keys[-1]]
    assert store.get("svc", "acct") is None  # a missing chunk

    for bad in ("not json", "[1, 2]", '{"gen": "x", "n": 0, "sha256": ""}', '{"n": 2}'):
        raw.entries[("svc", "acct")] = MANIFEST_PREFIX + bad
        assert store.get("svc", "acct") is None, bad


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # no lone surrogates: not UTF-8 text
    min_size=1,
    max_size=40,
)


_values = st.builds(lambda piece, times: piece * times, _text, st.integers(1, 400))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values, previous=st.one_of(st.none(), _values))
def test_property_round_trip_fit_and_crash_safety(value, previous):
    for chunk in split_chunks(value):
        assert fits_everywhere(chunk)
    assert "".join(split_chunks(value)) == value

    raw = MemoryStore()
    if previous is not None:
        ChunkedStore(raw).set("s", "a", previous)
    ChunkedStore(raw).set("s", "a", value)
    assert ChunkedStore(raw).get("s", "a") == value

    # A crash before the last write of a new value: the old one (or nothing) reads back.
    raw = MemoryStore()
    if previous is not None:
        ChunkedStore(raw).set("s", "a", previous)
    before = raw.writes
    raw.fail_after = before + len(split_chunks(value))  # every chunk lands, the last write fails
    try:
        ChunkedStore(raw).set("s", "a", value)
    except RuntimeError:
        assert ChunkedStore(raw).get("s", "a") == previous
    else:
        assert ChunkedStore(raw).get("s", "a") == value


def test_only_os_keychains_count_as_secure():
    assert keystore.is_secure(SECRET_SERVICE_BACKEND)
    assert keystore.is_secure("keyring.backends.Windows.WinVaultKeyring")
    assert keystore.is_secure("keyring.backends.macOS.Keyring")
    assert not keystore.is_secure("limited_backend.LimitedKeyring")
    assert not keystore.is_secure("keyrings.alt.file.PlaintextKeyring")
    assert not keystore.is_secure("keyring.backends.null.Keyring")


def test_chunks_carry_non_ascii_and_astral_text_byte_exact(tmp_path, monkeypatch):
    """Not credentials but other state kept in the keychain (MSAL's sign-in, whose ID token
    claims hold names) is chunked too: UTF-16 limits, astral characters across chunk edges."""
    from gatekey.cache import FileCache
    from gatekey.keystore import ChunkedStore, KeyringStore

    monkeypatch.setenv("LIMITED_KEYRING_FILE", str(tmp_path / "kr.json"))
    monkeypatch.syspath_prepend(str(SUPPORT))
    store = ChunkedStore(KeyringStore("limited_backend.LimitedKeyring"), FileCache(str(tmp_path)))
    value = "é€中😀" * 1500
    store.set("gatekey", "state", value)
    assert store.get("gatekey", "state") == value
    raw = json.loads((tmp_path / "kr.json").read_text())
    assert len(raw) > 2
    assert all(len(blob.encode("utf-16-le")) <= 2560 for blob in raw.values())
