"""The file cache (cache.py): permissions, atomic writes, damaged entries, keys, backoff, lock."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deadlines import SILENT_S, ends_by
from gatekey import cache as cache_mod
from gatekey import config
from gatekey.cache import (
    BACKOFF_MAX,
    INDEX_MAX_ENTRIES,
    MAX_ENTRY_BYTES,
    FileCache,
    cache_key,
)
from gatekey.context import RunContext
from gatekey.errors import DeadlineExceeded, TemporaryFailure
from gatekey.refresh import profile_cache_key
from gatekey.token import Token

NOW = 1_700_000_000.0
KEY = "k" * 40


def tok(value: str = "dummy-cache-token-42") -> Token:
    return Token(value, expires_at=NOW + 3600, obtained_at=NOW, source="test", meta={"n": 1})


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def fc(root: Path) -> FileCache:
    return FileCache(str(root))


def write_everything(fc: FileCache) -> None:
    fc.write(KEY, tok())
    fc.record_failure(KEY, TemporaryFailure("down"), NOW)
    fc.write_index("sel", {"key": KEY})
    with fc.lock(KEY, RunContext("t", interactive=False, timeout=5)):
        pass


def assert_private(root: Path) -> None:
    assert mode(root) == 0o700
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            assert mode(Path(dirpath, d)) == 0o700, d
            seen.add(d)
        for f in filenames:
            assert mode(Path(dirpath, f)) == 0o600, f
            seen.add(f)
    assert {"tokens", "failures", "locks", "index.json", f"{KEY}.json", f"{KEY}.lock"} <= seen


# --- permissions ----------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077])
def test_files_are_0600_and_directories_0700_whatever_the_umask(
    fc: FileCache, root: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        write_everything(fc)
    finally:
        os.umask(old)
    assert_private(root)


def test_a_missing_parent_directory_is_created(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "cache"
    fc = FileCache(str(root))
    fc.write(KEY, tok())
    assert fc.read(KEY)[0] is not None
    assert mode(root) == 0o700
    assert mode(root / "tokens") == 0o700


def test_an_existing_open_cache_directory_is_tightened(fc: FileCache, root: Path) -> None:
    root.mkdir(mode=0o755)
    root.chmod(0o777)
    fc.write(KEY, tok())
    assert mode(root) == 0o700


def test_rewriting_an_entry_keeps_it_private(fc: FileCache, root: Path) -> None:
    fc.write(KEY, tok("dummy-first"))
    target = root / "tokens" / f"{KEY}.json"
    target.chmod(0o644)
    fc.write(KEY, tok("dummy-second"))
    assert mode(target) == 0o600
    assert fc.read(KEY)[0].value == "dummy-second"


# --- atomic writes --------------------------------------------------------------------------
def test_writes_leave_no_temporary_files(fc: FileCache, root: Path) -> None:
    for i in range(5):
        fc.write(KEY, tok(f"dummy-{i}"))
        fc.write_index(f"sel-{i}", {"key": KEY})
    fc.record_failure(KEY, TemporaryFailure("x"), NOW)
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert sorted(p.name for p in (root / "tokens").iterdir()) == [f"{KEY}.json"]


def test_a_failed_write_leaves_the_old_entry_and_no_temporary_file(
    fc: FileCache, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fc.write(KEY, tok("dummy-old"))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod, "_replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        fc.write(KEY, tok("dummy-new"))
    assert fc.read(KEY)[0].value == "dummy-old"
    assert [p.name for p in (root / "tokens").iterdir()] == [f"{KEY}.json"]


def test_round_trip(fc: FileCache) -> None:
    fc.write(KEY, tok())
    back, why = fc.read(KEY)
    assert why is None
    assert back is not None
    assert (back.value, back.expires_at, back.obtained_at, back.meta) == (
        "dummy-cache-token-42",
        NOW + 3600,
        NOW,
        {"n": 1},
    )


def test_delete(fc: FileCache, root: Path) -> None:
    assert fc.delete(KEY) is False
    fc.write(KEY, tok())
    fc.record_failure(KEY, TemporaryFailure("x"), NOW)
    assert fc.delete(KEY) is True
    assert fc.read(KEY) == (None, "no cache entry")
    assert not (root / "failures" / f"{KEY}.json").exists()


# --- damaged entries ------------------------------------------------------------------------
DAMAGED = [
    pytest.param(b"", "not JSON", id="empty"),
    pytest.param(b'{"token": "dummy", "obtained_at": 17', "not JSON", id="truncated"),
    pytest.param(b"\x00\x01\x02garbage", "not JSON", id="binary"),
    pytest.param(b'{"token": "\xff\xfe"}', "not JSON", id="not-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "not JSON", id="deeply-nested"),
    pytest.param(b"[1, 2, 3]", "unusable (not an object)", id="array"),
    pytest.param(b'"dummy"', "unusable (not an object)", id="string"),
    pytest.param(b'{"obtained_at": 1}', "unusable (no token)", id="no-token"),
    pytest.param(b'{"token": "dummy"}', "unusable (bad obtained_at)", id="no-obtained-at"),
    pytest.param(
        b'{"token": "dummy", "obtained_at": 1, "expires_at": "never"}',
        "unusable (bad expires_at)",
        id="bad-expiry",
    ),
    pytest.param(b'{"token": "dummy", "obtained_at": NaN}', "unusable (bad obtained_at)", id="nan"),
]


@pytest.mark.parametrize(("content", "reason"), DAMAGED)
def test_damaged_entries_read_as_a_miss(
    fc: FileCache, root: Path, content: bytes, reason: str
) -> None:
    (root / "tokens").mkdir(parents=True)
    (root / "tokens" / f"{KEY}.json").write_bytes(content)
    value, why = fc.read(KEY)
    assert value is None
    assert why is not None
    assert reason in why


def test_an_entry_holding_an_unprintable_token_reads_as_a_miss(fc: FileCache, root: Path) -> None:
    (root / "tokens").mkdir(parents=True)
    (root / "tokens" / f"{KEY}.json").write_text(
        json.dumps({"token": "dummy\nX-Injected: 1", "obtained_at": NOW, "expires_at": None})
    )
    assert fc.read(KEY)[0] is None


def test_a_null_entry_reads_as_a_miss_with_a_reason(fc: FileCache, root: Path) -> None:
    (root / "tokens").mkdir(parents=True)
    (root / "tokens" / f"{KEY}.json").write_bytes(b"null")
    value, why = fc.read(KEY)
    assert value is None
    assert why is not None


def test_an_oversize_entry_reads_as_a_miss(fc: FileCache, root: Path) -> None:
    (root / "tokens").mkdir(parents=True)
    body = json.dumps({"token": "dummy", "obtained_at": 1, "meta": {"pad": ""}})
    pad = "x" * (MAX_ENTRY_BYTES + 1 - len(body))
    big = json.dumps({"token": "dummy", "obtained_at": 1, "meta": {"pad": pad}})
    assert len(big) == MAX_ENTRY_BYTES + 1
    (root / "tokens" / f"{KEY}.json").write_text(big)
    assert fc.read(KEY) == (None, "cache entry too large")
    # One byte less is read normally.
    small = json.dumps({"token": "dummy", "obtained_at": 1, "meta": {"pad": pad[1:]}})
    (root / "tokens" / f"{KEY}.json").write_text(small)
    assert fc.read(KEY)[0] is not None


def test_an_unreadable_entry_reads_as_a_miss(fc: FileCache, root: Path) -> None:
    (root / "tokens" / f"{KEY}.json").mkdir(parents=True)  # a directory where the file should be
    value, why = fc.read(KEY)
    assert value is None
    assert why is not None
    assert "unreadable" in why


def test_a_missing_entry_reads_as_a_miss(fc: FileCache) -> None:
    assert fc.read(KEY) == (None, "no cache entry")


def test_a_huge_number_in_an_entry_reads_as_a_miss(fc: FileCache, root: Path) -> None:
    (root / "tokens").mkdir(parents=True)
    (root / "tokens" / f"{KEY}.json").write_text(
        '{"token": "dummy", "obtained_at": 1' + "0" * 400 + "}"
    )
    assert fc.read(KEY)[0] is None


# --- cache keys -----------------------------------------------------------------------------
BASE = {"source": "command", "command": ["tool", "print-token"], "parse": "json"}


def test_cache_key_is_stable_and_reveals_nothing() -> None:
    key = cache_key("command", dict(BASE))
    assert key == cache_key("command", dict(reversed(list(BASE.items()))))  # order-independent
    assert len(key) == 40
    assert all(c in "0123456789abcdef" for c in key)
    for value in ("tool", "print-token", "json", "command"):
        assert value not in key


@pytest.mark.parametrize(
    "change",
    [
        {"command": ["tool", "print-token", "--other"]},
        {"command": ["other-tool", "print-token"]},
        {"parse": "raw"},
        {"token_path": "access_token"},
        {"new_setting": "x"},
    ],
)
def test_cache_key_changes_with_any_setting(change: dict[str, object]) -> None:
    assert cache_key("command", {**BASE, **change}) != cache_key("command", BASE)


def test_cache_key_changes_with_the_kind() -> None:
    assert cache_key("command", BASE) != cache_key("keychain", BASE)


def profile(table: dict[str, object]) -> config.Profile:
    return config.Config([("/t.toml", {"profiles": {"p": table}})]).profile("p")


KEYCHAIN = {"source": "keychain"}
COMMAND = {"source": "command", "command": ["tool"]}


@pytest.mark.parametrize(
    ("base", "change"),
    [
        (KEYCHAIN, {"service": "other"}),
        (KEYCHAIN, {"account": "bob"}),
        (KEYCHAIN, {"backend": "keyring.backends.null.Keyring"}),
        (KEYCHAIN, {"allow_insecure_backend": True}),
        (COMMAND, {"command": ["tool", "-v"]}),
        (COMMAND, {"parse": "json"}),
        (COMMAND, {"token_path": "a.b"}),
        (COMMAND, {"expires_in_path": "exp"}),
        (COMMAND, {"cache_ttl": "5m"}),
    ],
)
def test_profile_cache_key_follows_source_settings(
    base: dict[str, object], change: dict[str, object]
) -> None:
    assert profile_cache_key(profile({**base, **change})) != profile_cache_key(profile(base))


@pytest.mark.parametrize(
    "change",
    [
        {"auth_scheme": "x-api-key"},
        {"output": "json"},
        {"headers": {"X-Route": "prod"}},
        {"min_ttl": "10m"},
        {"cache": False},
    ],
)
def test_profile_cache_key_ignores_presentation(change: dict[str, object]) -> None:
    assert profile_cache_key(profile({**COMMAND, **change})) == profile_cache_key(profile(COMMAND))


def test_profile_cache_key_same_value_from_default_or_file() -> None:
    explicit = profile({**COMMAND, "parse": "raw", "cache_ttl": "15m"})
    assert profile_cache_key(explicit) == profile_cache_key(profile(COMMAND))


def test_a_keychain_account_defaults_to_the_profile_name() -> None:
    a = config.Config([("/t.toml", {"profiles": {"a": KEYCHAIN}})]).profile("a")
    b = config.Config([("/t.toml", {"profiles": {"b": KEYCHAIN}})]).profile("b")
    assert profile_cache_key(a) != profile_cache_key(b)


# --- negative cache -------------------------------------------------------------------------
def test_backoff_doubles_for_consecutive_failures_up_to_the_cap(fc: FileCache) -> None:
    waits = []
    now = NOW
    for _ in range(8):
        until = fc.record_failure(KEY, TemporaryFailure("down"), now)
        waits.append(until - now)
        now = until  # the next attempt fails as soon as it is allowed
    assert waits == [5, 10, 20, 40, 60, 60, 60, 60]
    assert max(waits) == BACKOFF_MAX


def test_backoff_starts_over_after_a_long_quiet_spell(fc: FileCache) -> None:
    fc.record_failure(KEY, TemporaryFailure("down"), NOW)
    fc.record_failure(KEY, TemporaryFailure("down"), NOW + 10)
    later = NOW + 10 + BACKOFF_MAX * 4 + 1
    assert fc.record_failure(KEY, TemporaryFailure("down"), later) == later + 5


def test_a_remembered_failure_reads_back_with_its_exit_code_and_message(fc: FileCache) -> None:
    until = fc.record_failure(KEY, DeadlineExceeded("gave up after 10 s"), NOW)
    remembered = fc.read_failure(KEY, NOW + 1)
    assert remembered is not None
    error, when = remembered
    assert error.exit_code == DeadlineExceeded.exit_code == 75
    assert error.message == "gave up after 10 s"
    assert when == until == NOW + 5
    assert fc.read_failure(KEY, NOW + 5) is None  # over
    assert fc.read_failure(KEY, NOW - 100) is None  # a clock that jumped back


def test_failures_are_per_key(fc: FileCache) -> None:
    fc.record_failure(KEY, TemporaryFailure("down"), NOW)
    assert fc.read_failure("other" * 8, NOW + 1) is None
    fc.clear_failure(KEY)
    assert fc.read_failure(KEY, NOW + 1) is None
    fc.clear_failure(KEY)  # clearing twice is fine


@pytest.mark.parametrize(
    "record",
    [
        {"until": NOW + 5, "message": "m", "exit": 0},
        {"until": NOW + 5, "message": "m", "exit": 78},
        {"until": NOW + 5, "message": "m", "exit": "os"},
        {"until": NOW + 5, "message": "m", "exit": 1e400},
        {"until": NOW + 5, "message": "m"},
    ],
)
def test_a_tampered_failure_exit_code_becomes_75(
    fc: FileCache, root: Path, record: dict[str, object]
) -> None:
    (root / "failures").mkdir(parents=True)
    (root / "failures" / f"{KEY}.json").write_text(json.dumps(record))
    remembered = fc.read_failure(KEY, NOW)
    assert remembered is not None
    assert remembered[0].exit_code == 75  # never success, nor an undocumented code
    assert remembered[0].message == "m"


@pytest.mark.parametrize(
    "content",
    [b"", b"[]", b'{"until": "soon", "message": "m"}', b'{"until": 1}', b"\xff"],
)
def test_a_damaged_failure_record_is_ignored(fc: FileCache, root: Path, content: bytes) -> None:
    (root / "failures").mkdir(parents=True)
    (root / "failures" / f"{KEY}.json").write_bytes(content)
    assert fc.read_failure(KEY, NOW) is None
    assert fc.record_failure(KEY, TemporaryFailure("down"), NOW) == NOW + 5


def test_a_nan_failure_record_is_ignored(fc: FileCache, root: Path) -> None:
    (root / "failures").mkdir(parents=True)
    (root / "failures" / f"{KEY}.json").write_text('{"until": NaN, "message": "m"}')
    assert fc.read_failure(KEY, NOW) is None


def test_record_failure_survives_a_huge_number_in_the_old_record(fc: FileCache, root: Path) -> None:
    (root / "failures").mkdir(parents=True)
    (root / "failures" / f"{KEY}.json").write_text('{"at": 1' + "0" * 400 + ', "count": 1}')
    assert fc.record_failure(KEY, TemporaryFailure("down"), NOW) == NOW + 5


# --- the no-argument index ------------------------------------------------------------------
def test_index_round_trip(fc: FileCache) -> None:
    assert fc.read_index("sel") is None
    entry = {"key": KEY, "min_ttl": 3900.0, "headers": {"X": "y"}, "config": [[1, 2, 3, 4]]}
    fc.write_index("sel", entry)
    assert fc.read_index("sel") == entry
    assert fc.read_index("other") is None
    fc.write_index("sel", {"key": "new"})
    assert fc.read_index("sel") == {"key": "new"}


def test_index_keeps_the_most_recent_entries(fc: FileCache, root: Path) -> None:
    total = INDEX_MAX_ENTRIES + 8
    for i in range(total):
        fc.write_index(f"sel-{i}", {"n": i})
        if i == INDEX_MAX_ENTRIES:
            fc.write_index("sel-0", {"n": 0})  # rewriting an entry makes it the newest
    index = json.loads((root / "index.json").read_text())
    assert len(index) == INDEX_MAX_ENTRIES
    assert fc.read_index("sel-0") == {"n": 0}
    assert fc.read_index(f"sel-{total - 1}") == {"n": total - 1}
    dropped = [i for i in range(total) if fc.read_index(f"sel-{i}") is None]
    assert dropped == list(range(1, 9))  # 40 selections, 32 kept; sel-0 was refreshed


@pytest.mark.parametrize("content", [b"garbage", b"[1]", b'{"sel": 3}', b""])
def test_a_damaged_index_reads_as_empty_and_is_replaced(
    fc: FileCache, root: Path, content: bytes
) -> None:
    root.mkdir()
    (root / "index.json").write_bytes(content)
    assert fc.read_index("sel") is None
    fc.write_index("sel", {"key": KEY})
    assert fc.read_index("sel") == {"key": KEY}


# --- the lock -------------------------------------------------------------------------------
def hold(root: Path, key: str) -> int:
    """Take the lock on a second open file description (flock conflicts with it)."""
    (root / "locks").mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "locks" / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_lock_gives_up_at_the_deadline(fc: FileCache, root: Path) -> None:
    fd = hold(root, KEY)
    try:
        run = RunContext("background", interactive=False, timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info, fc.lock(KEY, run):
            pytest.fail("the lock was taken while another holder had it")
        elapsed = time.monotonic() - t0
    finally:
        os.close(fd)
    # The holder never lets go: without the deadline the wait would never end.
    assert 0.25 <= elapsed < ends_by(0.3)
    assert "waiting for another gatekey process" in str(info.value)
    assert "background time limit" in str(info.value)


def test_lock_waits_for_the_holder_to_release(fc: FileCache, root: Path) -> None:
    fd = hold(root, KEY)
    threading.Timer(0.3, os.close, (fd,)).start()
    t0 = time.monotonic()
    with fc.lock(KEY, RunContext("background", interactive=False, timeout=SILENT_S)):
        waited = time.monotonic() - t0
    assert 0.25 <= waited < SILENT_S  # (at the deadline it would have raised instead)


def test_lock_waits_for_another_process(fc: FileCache, root: Path, tmp_path: Path) -> None:
    (root / "locks").mkdir(parents=True)
    ready, released = tmp_path / "ready", tmp_path / "released"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "open(sys.argv[2], 'w').close()\n"
            "time.sleep(0.5)\n"
            "open(sys.argv[3], 'w').close()\n"
            "os.close(fd)\n",
            str(root / "locks" / f"{KEY}.lock"),
            str(ready),
            str(released),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert time.monotonic() < deadline, "the child never took the lock"
            time.sleep(0.01)
        with fc.lock(KEY, RunContext("interactive", interactive=True, timeout=10)):
            # Taken only once the child let go (an order, not a duration: on a busy machine the
            # child's 0.5 s may be over before this process even asks).
            assert released.exists(), "the lock was taken while the other process held it"
    finally:
        child.wait(10)


def test_locks_on_different_keys_do_not_conflict(fc: FileCache, root: Path) -> None:
    fd = hold(root, KEY)
    try:
        with fc.lock("other" * 8, RunContext("background", interactive=False, timeout=0.2)):
            pass
    finally:
        os.close(fd)


def test_the_lock_is_released_after_use_and_after_an_error(fc: FileCache, root: Path) -> None:
    run = RunContext("background", interactive=False, timeout=2)
    with fc.lock(KEY, run):
        pass
    with pytest.raises(RuntimeError), fc.lock(KEY, run):
        raise RuntimeError("boom")
    fd = os.open(root / "locks" / f"{KEY}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if still held
    finally:
        os.close(fd)


def test_an_entry_that_is_a_symbolic_link_is_a_miss(tmp_path: Path) -> None:
    """A link planted in the cache (to feed gatekey another file) is not followed on read;
    the next write replaces the link itself, never its target."""
    cache = FileCache(str(tmp_path / "cache"))
    cache.write(KEY, tok())
    entry = tmp_path / "cache" / "tokens" / f"{KEY}.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(entry.read_text())
    entry.unlink()
    entry.symlink_to(elsewhere)
    token, why = cache.read(KEY)
    assert token is None
    assert why == "cache entry is a symbolic link (ignored)"
    cache.write(KEY, tok("a-new-token-value-1"))
    assert not entry.is_symlink()
    assert json.loads(elsewhere.read_text())["token"] == "dummy-cache-token-42"
    assert cache.read(KEY)[0].value == "a-new-token-value-1"  # type: ignore[union-attr]


@pytest.mark.parametrize(("asked", "waits"), [(None, 5.0), (30.0, 30.0), (3600.0, BACKOFF_MAX)])
def test_a_retry_after_lengthens_the_backoff_within_its_bound(
    tmp_path: Path, asked: float | None, waits: float
) -> None:
    cache = FileCache(str(tmp_path / "cache"))
    error = TemporaryFailure("rate limited")
    error.retry_after = asked
    assert cache.record_failure(KEY, error, NOW) == NOW + waits


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", None),
        ("\u00b2", None),  # a digit to str.isdigit(), not to float(): was a ValueError
    ],
)
def test_retry_after_header_values(header: str | None, seconds: float | None) -> None:
    from gatekey.http import retry_after

    assert retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    from email.utils import formatdate

    from gatekey.http import retry_after

    later = retry_after(formatdate(time.time() + 120, usegmt=True))
    assert later is not None
    assert 100 < later <= 120
    assert retry_after(formatdate(time.time() - 120, usegmt=True)) == 0.0
