"""Crash safety: a gatekey killed at any moment leaves a cache the next run can use at once.

The app may kill the helper (its timeout, a quit, a crash); a laptop may lose power. Whatever
the moment, a cache entry is either a whole token or absent, and no lock outlives its process.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from blackbox_env import exe
from deadlines import HANG_S, SILENT_S
from orphans import kill_later_orphans
from rounds import rounds

pytestmark = pytest.mark.slow

# SIGKILL rounds: GATEKEY_CRASH_ROUNDS (200 in benchmarks/figures.py). CI's 12 kill a run at
# random moments of its first 0.3 s (config, lock, source, cache write), half of them a forced
# refresh; a lock or torn file left behind fails the very next run of that round, and
# tests/reliability/test_crash_safety.py kills refreshes at random points many more times.
ITERATIONS = rounds("GATEKEY_CRASH_ROUNDS", ci=12)


def check_cache_files(root: Path) -> None:
    """Every file the cache reads is absent or whole; temporary files may remain, nothing else."""
    for path in (root / "tokens").glob("*.json") if (root / "tokens").exists() else ():
        data = json.loads(path.read_text())  # a partial file would not parse
        assert isinstance(data["token"], str), data
        assert data["token"].startswith("tok-"), data
        assert isinstance(data["expires_at"], float), data
        assert isinstance(data["obtained_at"], float), data
    for path in [root / "index.json", *root.glob("failures/*.json")]:
        if path.exists():
            assert isinstance(json.loads(path.read_text()), dict), path
    for path in root.rglob("*"):
        if path.is_file():
            assert path.suffix in (".json", ".lock", ".tmp"), path
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


@pytest.mark.blackbox
def test_sigkill_at_random_moments_while_refreshing(gk):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    # The documented silent deadline: a run that waited on a lock left by a killed run would
    # wait it out and fail; a run that did not ends before it, however busy the machine is.
    gk.write_config(gk.counting_profile())
    first = gk.run()
    assert first.code == 0, first.err
    try:
        for i in range(ITERATIONS):
            env = dict(gk.vars, SLEEP=rng.choice(["0", "0.01", "0.05"]))
            env["CLAUDE_HELPER_CONTEXT"] = rng.choice(["background", "mid-session-refresh"])
            if i % 2:
                args: list[str] = ["get", "--force-refresh"]
            else:
                args = []
                tokens = gk.cache_dir / "tokens"
                for path in tokens.glob("*.json"):  # expire it, so that this run refreshes
                    data = json.loads(path.read_text())
                    data["expires_at"] = time.time() - 1
                    tmp = path.with_name(path.name + ".edit.tmp")
                    tmp.write_text(json.dumps(data))
                    tmp.chmod(0o600)
                    os.replace(tmp, path)
            proc = subprocess.Popen(
                [exe(), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=gk.root,
            )
            time.sleep(rng.uniform(0.0, 0.3))
            proc.kill()
            proc.wait()
            check_cache_files(gk.cache_dir)
            before = gk.count()
            after = gk.run("get", "--force-refresh", context="background")
            assert after.code == 0, f"iteration {i} (seed {seed}): {after.err}"
            assert after.stderr == b"", f"iteration {i} (seed {seed}): {after.err}"
            assert after.elapsed < SILENT_S, f"iteration {i} (seed {seed}): waited on a dead lock?"
            assert gk.count() > before
            check_cache_files(gk.cache_dir)
        final = gk.run(context="scheduled-task")
        assert final.code == 0, final.err
        assert final.stdout.startswith(b"tok-")
    finally:
        kill_later_orphans(gk)


@pytest.mark.blackbox
def test_killed_mid_fetch_leaves_no_lock_behind_even_while_its_source_lives_on(gk):
    """The lock is the process's own flock: the orphaned source child does not hold it. (The
    documented deadline, 10 s, and a source that lives on for HANG_S: a run that waited for the
    orphan's lock would wait out its deadline and fail.)"""
    gk.write_config(gk.counting_profile())
    env = dict(gk.vars, SLEEP=f"{HANG_S:g}", CLAUDE_HELPER_CONTEXT="background")
    proc = subprocess.Popen(
        [exe()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=gk.root,
    )
    try:
        deadline = time.monotonic() + SILENT_S  # the source starts long before gatekey's deadline
        while gk.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gk.count() == 1
        proc.kill()
        proc.wait()
        result = gk.run(context="background")
        assert (result.code, result.stdout, result.stderr) == (0, b"tok-2\n", b""), result.err
        assert result.elapsed < SILENT_S, "the next run waited for the dead run's lock"
    finally:
        kill_later_orphans(gk)


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from gatekey.cache import FileCache
    from gatekey.token import Token

    cache = FileCache(sys.argv[1])
    key, generation, i = sys.argv[2], int(sys.argv[3]), 0
    while True:
        i += 1
        # Tokens stay under gatekey's longest credential (16 KiB); the padding keeps each
        # entry around 300 KB, so a write takes several system calls to land.
        value = f"tok-{generation}-{i}-" + "abcdefgh" * (1_500 + i % 400)
        sha = hashlib.sha256(value.encode()).hexdigest()
        cache.write(key, Token(value, expires_at=2e9, obtained_at=1e9, source="t",
                               meta={"sha": sha, "pad": "p" * (300_000 + i % 3_000)}))
    """
)


def test_readers_never_see_a_partial_entry_while_writers_are_killed(tmp_path):
    from gatekey.cache import FileCache

    root = tmp_path / "cache"
    key = "k" * 40
    cache = FileCache(str(root))
    rng = random.Random()
    reads = whole = 0
    seen_entry = False
    for generation in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), key, str(generation)],
            stdin=subprocess.DEVNULL,
        )
        try:
            kill_at = time.monotonic() + rng.uniform(0.15, 0.5)
            while time.monotonic() < kill_at or not seen_entry:
                token, why = cache.read(key)
                reads += 1
                if token is None:
                    assert not seen_entry, f"the entry vanished or broke: {why}"
                    assert why == "no cache entry", why
                    continue
                seen_entry = True
                digest = hashlib.sha256(token.value.encode()).hexdigest()
                assert digest == token.meta["sha"], "a token from one write, meta from another"
                whole += 1
                assert time.monotonic() < kill_at + 10, "the writer never wrote"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        token, why = cache.read(key)
        assert token is not None, why
    # Enough overlap with the writers to mean something (a loaded CI machine starts them late).
    assert whole > 10, f"only {whole} of {reads} reads saw an entry"
    leftovers = list((root / "tokens").glob("*.tmp"))
    assert all(p.name.startswith(key + ".json.") for p in leftovers), leftovers
    # Leftover temporary files do not disturb later writes or reads.
    cache.write(key, _token("tok-final"))
    assert cache.read(key)[0].value == "tok-final"


def _token(value: str):
    from gatekey.token import Token

    return Token(value, expires_at=2e9, obtained_at=1e9, source="t")
