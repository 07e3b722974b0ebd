"""The vault-family secret cache, from the outside: kernel keyring + OS keychain, never a file.

Vehicle: the ``command`` source (the same store serves vault, aws-secrets-manager,
azure-key-vault and onepassword), run through the installed executables. The test process looks
at the kernel's user keyring itself (``/proc/keys``, gatekey.kernelkeys): same user, same keyring.
Every kernel key a test's cache directories produced is removed when the test ends.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import Env
from deadlines import EARLY_S, HANG_S, OVERRUN_S, deadline_of, ends_by
from gatekey import kernelkeys
from gatekey.cache import FileCache
from gatekey.securecache import kernel_name
from vault_cases import age_cached_secret, drop_kernel_keys, kernel_keys, kernel_name_prefix

pytestmark = [
    pytest.mark.blackbox,
    pytest.mark.skipif(
        not kernelkeys.available(),
        reason="no kernel keyring here (not Linux, or keyctl blocked by seccomp)",
    ),
]

# A tiny command source: counts its runs in $COUNT_FILE and prints $OUTPUT ("{n}" = run number,
# default "key-{n}": a key with no expiry). EXIT fails with that status after writing $STDERR.
EMITTER = """\
import os, sys
with open(os.environ["COUNT_FILE"], "a+") as f:
    f.write(f"{os.getpid()}\\n")
    f.seek(0)
    n = len(f.read().splitlines())
if os.environ.get("EXIT"):
    sys.stderr.write(os.environ.get("STDERR", "emitter: failing on purpose") + "\\n")
    sys.exit(int(os.environ["EXIT"]))
sys.stdout.write(os.environ.get("OUTPUT", "key-{n}").replace("{n}", str(n)) + "\\n")
"""

# 2030-01-01T10:00:00Z
EPOCH_2030 = calendar.timegm((2030, 1, 1, 10, 0, 0, 0, 0, 0))


# --- helpers -----------------------------------------------------------------------------------
def emitter(gk: Env) -> Path:
    """The emitter script, executable with a shebang (so it can also stand in for ``op``)."""
    path = gk.root / "emitter"
    if not path.exists():
        path.write_text(f"#!{sys.executable}\n{EMITTER}")
        path.chmod(0o755)
    return path


def emitter_profile(gk: Env, extra: str = "", name: str = "cmd") -> str:
    """A command profile whose secret states no lifetime (cache_ttl decides when to re-read)."""
    return f'[profiles.{name}]\nsource = "command"\ncommand = ["{emitter(gk)}"]\n{extra}\n'


def index_entry(gk: Env, cache_dir: Path | None = None) -> dict:
    """The (only) no-argument selection recorded in the cache index."""
    index = json.loads(((cache_dir or gk.cache_dir) / "index.json").read_text())
    assert len(index) == 1, index
    return next(iter(index.values()))


def proc_key_rows(cache_dir: Path) -> dict[str, list[str]]:
    """{kernel name (without "gatekey:"): its /proc/keys columns} of the keys of ``cache_dir``."""
    try:
        return kernel_keys(cache_dir)
    except OSError:
        pytest.skip("/proc/keys is not readable here")


def proc_keys(cache_dir: Path) -> dict[str, str]:
    """{kernel name: timeout column ("59s", "1h", "3w")} of the keys of ``cache_dir``."""
    return {name: row[3] for name, row in proc_key_rows(cache_dir).items()}


def assert_timeout_about(column: str, seconds: float) -> None:
    """A /proc/keys timeout column ("59s", "1h", "3w": whole units, rounded down) stands for
    about ``seconds`` (give or take the run's few seconds and the rounding of the timeout)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = int(column[:-1]), units[column[-1]]
    assert number * unit <= seconds + 2, column
    assert seconds - 10 < (number + 1) * unit, column


def kernel_token(name: str) -> dict | None:
    raw = kernelkeys.read(name)
    return None if raw is None else json.loads(raw)


def files_containing(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def process_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for a reaper (it no longer runs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(deadline: float) -> None:
    time.sleep(max(deadline - time.monotonic(), 0))


def warnings_about_cache(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "not cached" in line]


@pytest.fixture(autouse=True)
def _remove_kernel_keys(tmp_path: Path) -> Iterator[None]:
    """Leave no secret in this user's keyring: drop the keys of every directory of the test."""
    yield
    with contextlib.suppress(OSError):  # /proc/keys is not readable here
        for directory in [tmp_path, *(p for p in tmp_path.rglob("*") if p.is_dir())]:
            drop_kernel_keys(directory)


@pytest.fixture
def no_kernel(gk: Env) -> dict[str, str]:
    """Environment for a gatekey whose kernel keyring is unusable (as under Docker's seccomp
    profile, or not Linux): a sitecustomize that empties kernelkeys' syscall table."""
    shim = gk.root / "no-kernel-keys"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import gatekey.kernelkeys\ngatekey.kernelkeys._SYSCALLS.clear()\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(shim), gk.vars["PYTHONPATH"]])}


# --- 1. the secret never lands in a file ----------------------------------------------------
@pytest.mark.parametrize("keychain", [False, True], ids=["kernel-only", "with-secret-service"])
def test_secret_never_written_to_a_file(gk: Env, request: pytest.FixtureRequest, keychain: bool):
    if keychain:
        request.getfixturevalue("secret_service")
    gk.write_config(gk.counting_profile(secure=True))
    first, second = "sk-first-9f3c1d2e7a", "sk-second-5b8e0a4c61"
    assert gk.run(TOKEN=first).stdout == f"{first}\n".encode()
    assert gk.run(TOKEN="unused").stdout == f"{first}\n".encode()  # the cache hit
    assert gk.run("get", "-p", "cmd").stdout == f"{first}\n".encode()
    assert gk.run("get", "-p", "cmd", "--force-refresh", TOKEN=second).stdout == (
        f"{second}\n".encode()
    )
    r = gk.run(context="mid-session-refresh", TOKEN="unused")
    assert (r.code, r.stdout) == (0, f"{second}\n".encode())  # obtained moments ago: reused
    assert gk.count() == 2
    assert index_entry(gk)["store"] == "kernel"
    # Anywhere in the test's tree: cache dir (index.json, locks, failures), HOME, config.
    # (gnome-keyring's own file is encrypted.)
    for secret in (first, second):
        assert files_containing(gk.root, secret) == []
    assert not (gk.cache_dir / "tokens").exists() or not any((gk.cache_dir / "tokens").iterdir())


# --- 2. the cache hit reads the kernel keyring ----------------------------------------------
def test_cache_hit_comes_from_the_kernel_keyring(gk: Env):
    gk.write_config(gk.counting_profile(secure=True))
    first = gk.run()
    assert (first.code, first.stdout, first.stderr) == (0, b"tok-1\n", b"")
    entry = index_entry(gk)
    assert entry["store"] == "kernel"
    assert entry["kernel_name"] == kernel_name(FileCache(str(gk.cache_dir)), entry["key"])
    assert entry["kernel_name"].startswith(kernel_name_prefix(gk.cache_dir))
    ((_, _, _, _, perm, uid, *_),) = proc_key_rows(gk.cache_dir).values()
    assert (perm, int(uid)) == ("3f3f0000", os.getuid())  # this user (and possessor) only
    assert (kernel_token(entry["kernel_name"]) or {}).get("token") == "tok-1"

    hit = gk.run()
    assert (hit.code, hit.stdout, hit.stderr) == (0, b"tok-1\n", b"")
    full = gk.run("get", "-p", "cmd")  # the full path reads the same store
    assert (full.code, full.stdout, full.stderr) == (0, b"tok-1\n", b"")
    assert gk.count() == 1

    # The hit really depends on the kernel key: without it (and no keychain) the source is read.
    assert kernelkeys.delete(entry["kernel_name"])
    assert gk.run().stdout == b"tok-2\n"
    assert gk.count() == 2


def test_kernel_key_lives_until_the_token_expires(gk: Env):
    gk.write_config(gk.counting_profile(secure=True))
    assert gk.run(EXPIRES_IN="7200").code == 0
    (timeout,) = proc_keys(gk.cache_dir).values()
    assert_timeout_about(timeout, 7200)  # until the expiry, not max_stale (24 h)


def test_kernel_key_of_a_secret_without_expiry_lives_max_stale(gk: Env):
    gk.write_config(emitter_profile(gk, 'max_stale = "10m"'))
    assert gk.run().stdout == b"key-1\n"
    (timeout,) = proc_keys(gk.cache_dir).values()
    assert_timeout_about(timeout, 600)  # obtained + max_stale, not cache_ttl (15 m)


# --- 3. the durable copy in the OS keychain -------------------------------------------------
@pytest.mark.keychain
def test_keychain_copy_survives_losing_the_kernel_key(secret_service: Env):
    gk = secret_service
    gk.write_config(gk.counting_profile(secure=True))
    assert gk.run().stdout == b"tok-1\n"
    entry = index_entry(gk)
    durable = subprocess.run(
        ["secret-tool", "lookup", "service", "gatekey-cache", "username", entry["kernel_name"]],
        capture_output=True,
        env=gk.vars,
        timeout=10,
        check=True,
    )
    assert json.loads(durable.stdout)["token"] == "tok-1"
    name = entry["kernel_name"]
    assert kernelkeys.delete(name)  # a reboot empties the kernel keyring

    r = gk.run()
    assert (r.code, r.stdout, r.stderr) == (0, b"tok-1\n", b"")
    assert gk.count() == 1  # served from the keychain, not the command
    assert (kernel_token(name) or {}).get("token") == "tok-1"  # back in the fast home
    assert gk.run().stdout == b"tok-1\n"
    assert gk.count() == 1


# --- 4. which stores are there ---------------------------------------------------------------
def test_kernel_keyring_alone_is_enough_and_quiet(gk: Env):
    gk.write_config(gk.counting_profile(secure=True))  # no D-Bus session bus: no keychain
    for _ in range(2):
        r = gk.run("get", "-p", "cmd")
        assert (r.code, r.stdout, r.stderr) == (0, b"tok-1\n", b"")
    r = gk.run()
    assert (r.code, r.stdout, r.stderr) == (0, b"tok-1\n", b"")
    assert gk.count() == 1


def test_without_any_secure_store_every_run_reads_through(gk: Env, no_kernel: dict[str, str]):
    gk.write_config(gk.counting_profile(secure=True))
    for n in (1, 2, 3):
        r = gk.run(**no_kernel)
        assert (r.code, r.stdout) == (0, f"tok-{n}\n".encode())
        assert len(warnings_about_cache(r.err)) == 1, r.err
        assert "allow_insecure_cache" in r.err
    assert gk.count() == 3
    assert index_entry(gk)["store"] == "none"
    assert proc_keys(gk.cache_dir) == {}
    for n in (1, 2, 3):
        assert files_containing(gk.root, f"tok-{n}") == []


@pytest.mark.keychain
def test_keychain_alone_serves_the_cache(secret_service: Env, no_kernel: dict[str, str]):
    gk = secret_service
    gk.write_config(gk.counting_profile(secure=True))
    for _ in range(3):
        r = gk.run(**no_kernel)
        assert (r.code, r.stdout, r.stderr) == (0, b"tok-1\n", b"")
    assert gk.count() == 1
    assert index_entry(gk)["store"] == "none"  # no cache hit: the full path reads the keychain
    assert proc_keys(gk.cache_dir) == {}
    assert files_containing(gk.root, "tok-1") == []


# --- 5. cache_ttl = 0: read through ---------------------------------------------------------
@pytest.mark.parametrize("value", ["0", '"0s"'])
def test_cache_ttl_zero_never_caches(gk: Env, value: str):
    gk.write_config(gk.counting_profile(extra=f"cache_ttl = {value}", secure=True))
    for n in (1, 2, 3):
        r = gk.run()
        assert (r.code, r.stdout, r.stderr) == (0, f"tok-{n}\n".encode(), b"")
    assert gk.run("get", "-p", "cmd").stdout == b"tok-4\n"
    assert gk.count() == 4
    assert index_entry(gk)["store"] == "none"
    assert proc_keys(gk.cache_dir) == {}
    assert files_containing(gk.root, "tok-") == []


def test_cache_ttl_zero_still_remembers_failures(gk: Env):
    gk.write_config(gk.counting_profile(extra="cache_ttl = 0", secure=True))
    gk.run(FAIL="1", context="background").assert_clean_failure(1)
    again = gk.run(context="background")  # a silent caller does not storm the failing source
    again.assert_clean_failure(1)
    assert "not asking again" in again.err
    assert gk.count() == 1


# --- 6. cache_ttl: when to read again -------------------------------------------------------
def test_cache_ttl_says_when_to_read_again(gk: Env):
    """Time passes by aging the cached copy, as time passing would (a 2 s cache_ttl and a real
    sleep made the runs meant to fall inside it race the clock on a busy machine)."""
    gk.write_config(emitter_profile(gk, 'cache_ttl = "10m"'))
    assert gk.run().stdout == b"key-1\n"
    assert gk.run().stdout == b"key-1\n"
    assert gk.run("get", "-p", "cmd").stdout == b"key-1\n"
    age_cached_secret(gk, 9 * 60, profile="cmd")  # still inside cache_ttl
    assert gk.run().stdout == b"key-1\n"
    assert gk.count() == 1
    age_cached_secret(gk, 2 * 60, profile="cmd")  # 11 min old: past it
    r = gk.run()
    assert (r.code, r.stdout, r.stderr) == (0, b"key-2\n", b"")
    assert gk.count() == 2
    assert gk.run().stdout == b"key-2\n"
    assert gk.count() == 2


# --- 7. allow_insecure_cache: the old file cache --------------------------------------------
def test_allow_insecure_cache_uses_a_user_only_file(gk: Env):
    gk.write_config(gk.counting_profile())  # allow_insecure_cache = true
    assert gk.run().stdout == b"tok-1\n"
    assert gk.run().stdout == b"tok-1\n"
    assert gk.count() == 1
    entry = index_entry(gk)
    assert entry["store"] == "file"
    assert "kernel_name" not in entry
    path = gk.entry_path()
    assert path.parent == gk.cache_dir / "tokens"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["token"] == "tok-1"
    assert proc_keys(gk.cache_dir) == {}


# --- 8. max_stale ---------------------------------------------------------------------------
MAX_STALE_S = math.ceil(1.2 + OVERRUN_S)


@pytest.mark.slow
@pytest.mark.parametrize("keychain", [False, True], ids=["kernel-only", "with-secret-service"])
def test_max_stale_bounds_serving_a_cached_secret(
    gk: Env, request: pytest.FixtureRequest, keychain: bool
):
    if keychain:
        request.getfixturevalue("secret_service")
    # Real time, not an aged copy: the kernel key's own timeout is part of what bounds it. The
    # run at 1.2 s must read the copy before max_stale ends: MAX_STALE_S leaves it OVERRUN_S,
    # what any run may take past its start on a busy machine.
    gk.write_config(emitter_profile(gk, f'cache_ttl = "1s"\nmax_stale = "{MAX_STALE_S:g}s"'))
    assert gk.run().stdout == b"key-1\n"
    fetched = time.monotonic()  # the secret was obtained (and stored) before this moment

    wait_until(fetched + 1.2)  # due for a re-read, and the source is down
    stale = gk.run(EXIT="1", STDERR="upstream rejected key-1", context="interactive")
    assert (stale.code, stale.stdout) == (0, b"key-1\n"), stale.err
    assert "key-1" not in stale.err  # the source's echo of the cached secret is masked
    fallback = [line for line in stale.err.splitlines() if "printing the cached token" in line]
    assert len(fallback) == 1, stale.err
    assert "no known expiry" in fallback[0]
    assert "warning" in fallback[0]
    assert gk.count() == 2

    wait_until(fetched + MAX_STALE_S + 0.2)  # older than max_stale: the failure, not the secret
    late = gk.run(EXIT="1", context="interactive")
    late.assert_clean_failure(1)
    assert "exited with status 1" in late.err
    assert "key-1" not in late.err
    assert gk.count() == 3
    assert files_containing(gk.root, "key-1") == []  # nor in the remembered failures


@pytest.mark.slow
def test_default_max_stale_serves_a_failing_command_with_any_status(gk: Env):
    # A command's exit status means nothing to gatekey: even 3 is a general failure, not
    # "deleted", so the cached secret is served (max_stale defaults to 24 h).
    gk.write_config(emitter_profile(gk, 'cache_ttl = "10m"'))
    assert gk.run().stdout == b"key-1\n"
    age_cached_secret(gk, 11 * 60, profile="cmd")  # due for a re-read
    r = gk.run(EXIT="3", context="background")
    assert (r.code, r.stdout) == (0, b"key-1\n"), r.err
    assert len([ln for ln in r.err.splitlines() if "printing the cached token" in ln]) == 1
    r = gk.run(EXIT="3", context="background")  # remembered failure: still served
    assert (r.code, r.stdout) == (0, b"key-1\n"), r.err
    assert gk.count() == 2


# --- 9. deleted or denied at the source: never served stale ----------------------------------
@pytest.mark.slow
def test_a_secret_deleted_in_1password_is_not_served_stale(gk: Env):
    op = emitter(gk)  # stands in for `op read`: prints OUTPUT, or fails like op does
    gk.write_config(
        f'[profiles.op]\nsource = "onepassword"\nreference = "op://vault/item/field"\n'
        f'op_path = "{op}"\ncache_ttl = "1s"\n'
    )
    assert gk.run(OUTPUT="op-secret-1").stdout == b"op-secret-1\n"
    fetched = time.monotonic()
    assert gk.run(OUTPUT="unused").stdout == b"op-secret-1\n"
    assert index_entry(gk)["store"] == "kernel"
    wait_until(fetched + 1.2)  # due for a re-read
    deleted = gk.run(
        EXIT="1",
        STDERR='[ERROR] 2030/01/01 10:00:00 "item" isn\'t an item in the "vault" vault',
        context="interactive",
    )
    deleted.assert_clean_failure(3)
    assert "op-secret-1" not in deleted.err

    # A mere outage of the same source is served stale.
    down = gk.run(EXIT="1", STDERR="[ERROR] connection reset", context="interactive")
    assert (down.code, down.stdout) == (0, b"op-secret-1\n"), down.err


# --- 10. command: expires_path and timeout --------------------------------------------------
# TZ as a POSIX string (no tz database needed): local time is UTC+05:30.
LOCAL_TZ = "IST-5:30"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (EPOCH_2030, EPOCH_2030),
        (EPOCH_2030 + 0.5, EPOCH_2030 + 0.5),
        (str(EPOCH_2030), EPOCH_2030),
        (EPOCH_2030 * 1000, EPOCH_2030),
        (str(EPOCH_2030 * 1000 + 250), EPOCH_2030 + 0.25),
        ("2030-01-01T10:00:00Z", EPOCH_2030),
        ("2030-01-01T10:00:00.000Z", EPOCH_2030),
        ("2030-01-01T12:00:00+02:00", EPOCH_2030),
        ("2030-01-01T05:00:00-05:00", EPOCH_2030),
        ("2030-01-01 10:00:00.000000", EPOCH_2030 - 5.5 * 3600),  # as `az` prints expiresOn
        ("2030-01-01T10:00:00", EPOCH_2030 - 5.5 * 3600),
    ],
    ids=lambda v: repr(v),
)
def test_expires_path_formats(gk: Env, raw: object, expected: float):
    gk.write_config(
        emitter_profile(gk, 'parse = "json"\ntoken_path = "a.token"\nexpires_path = "a.expiresOn"')
    )
    output = json.dumps({"a": {"token": "az-{n}", "expiresOn": raw}})
    r = gk.run(OUTPUT=output, TZ=LOCAL_TZ)
    assert (r.code, r.stdout, r.stderr) == (0, b"az-1\n", b""), r.err
    name = index_entry(gk)["kernel_name"]
    stored = kernel_token(name)
    assert stored is not None
    assert stored["expires_at"] == pytest.approx(expected, abs=1e-3)
    assert stored["refresh_at"] is None  # a real expiry: cache_ttl plays no part
    # the kernel keeps it until that expiry
    assert_timeout_about(proc_keys(gk.cache_dir)[name], expected - time.time())
    again = gk.run(OUTPUT=output, TZ=LOCAL_TZ)
    assert (again.code, again.stdout) == (0, b"az-1\n")
    assert gk.count() == 1


@pytest.mark.parametrize(
    "value", ["next tuesday", True, None, {"at": 1}, "2030-13-01T00:00:00Z"], ids=repr
)
def test_expires_path_invalid(gk: Env, value: object):
    gk.write_config(emitter_profile(gk, 'parse = "json"\nexpires_path = "exp"'))
    data = {"token": "sk-should-not-leak", "exp": value}
    if value is None:
        del data["exp"]
    r = gk.run(OUTPUT=json.dumps(data))
    r.assert_clean_failure(1)
    assert "expires_path" in r.err
    assert "'exp'" in r.err
    assert "sk-should-not-leak" not in r.err
    assert proc_keys(gk.cache_dir) == {}


@pytest.mark.slow
def test_command_timeout_stops_the_process_group(gk: Env):
    """The command (a shell: it starts in a millisecond, so its 1 s timeout is not spent
    starting on a busy machine) leaves a child and hangs; both are stopped at the timeout."""
    pids_file = gk.root / "pids"
    script = f"sleep {HANG_S:g} & echo $$ $! > {pids_file}; sleep {HANG_S:g}"
    gk.write_config(
        f'[profiles.cmd]\nsource = "command"\ncommand = ["/bin/sh", "-c", "{script}"]\n'
        'timeout = "1s"\n'
    )
    r = gk.run(context="interactive")
    r.assert_clean_failure(75)
    assert 1 - EARLY_S < r.elapsed < ends_by(1), r.elapsed
    assert "timeout (1 s)" in r.err
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 2
    # They would sleep on for HANG_S: polling up to a documented deadline tells the two apart.
    deadline = time.monotonic() + deadline_of("background")
    while not all(process_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(process_gone(p) for p in pids), pids


# --- 11. cache directories are separate -----------------------------------------------------
def test_cache_directories_do_not_share_kernel_entries(gk: Env):
    gk.write_config(gk.counting_profile(secure=True))
    other = gk.root / "other-cache"
    other.mkdir()
    assert gk.run().stdout == b"tok-1\n"
    assert gk.run(GATEKEY_CACHE_DIR=str(other)).stdout == b"tok-2\n"  # not A's entry
    assert gk.count() == 2
    a, b = index_entry(gk)["kernel_name"], index_entry(gk, other)["kernel_name"]
    assert a != b
    assert a.split(":", 1)[1] == b.split(":", 1)[1]  # same credential, different directory
    assert set(proc_keys(gk.cache_dir)) == {a}
    assert set(proc_keys(other)) == {b}
    # each directory keeps serving its own copy
    assert gk.run().stdout == b"tok-1\n"
    assert gk.run(GATEKEY_CACHE_DIR=str(other)).stdout == b"tok-2\n"
    assert gk.count() == 2
    assert kernel_token(a)["token"] == "tok-1"
    assert kernel_token(b)["token"] == "tok-2"


@pytest.mark.keychain
def test_cache_directories_do_not_share_the_keychain_copy(secret_service: Env):
    gk = secret_service
    gk.write_config(gk.counting_profile(secure=True))
    other = gk.root / "other-cache"
    other.mkdir()
    assert gk.run().stdout == b"tok-1\n"
    assert gk.run(GATEKEY_CACHE_DIR=str(other)).stdout == b"tok-2\n"
    assert gk.count() == 2
    b = index_entry(gk, other)["kernel_name"]
    assert kernel_token(b)["token"] == "tok-2"
