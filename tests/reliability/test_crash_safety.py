"""Crash safety under SIGKILL at random points of a refresh (issue 7, item 3; issue 12), black box.

The installed ``gatekey`` runs as the app runs it (no arguments, stdin closed,
CLAUDE_HELPER_CONTEXT=background) and is killed with SIGKILL after a random delay drawn across
the whole duration of a normal refresh (measured first, in the same test). After every kill:

- gatekey's cache reads as valid or absent: ``tokens/*.json``, ``msal/*.json`` (MSAL's state,
  where the refresh token lives), ``failures/*.json`` and ``index.json`` parse, nothing wider
  than 0600; for the secure default, the kernel keyring entry decodes;
- no stale lock: the next no-argument run ends well inside its deadline;
- the sign-in is never lost: the next run must itself redeem the refresh token (both caches are
  aged first) and print a token. Zero losses is the requirement (issue 12).

Profiles: an ``oidc`` device-code sign-in (``token_cache = "file"``) against the real provider
(node-oidc-provider: refresh tokens rotate on every use, and replaying a used one revokes the
whole grant), and the ``command`` source with ``allow_insecure_cache = true`` and with the
secure default (kernel keyring).

How a kill cannot lose the sign-in (helpers/gatekey/worker.py): an IdP refresh (the request and
the saves) runs in a worker process in its own session that holds the profile's lock until it
has saved and exited; a kill of the run or of its process group does not reach it, and the next
run waits for the lock. So the test waits for the cache's locks (as gatekey does) before it
reads or ages the cache after a kill. ``test_a_kill_while_the_provider_rotates_keeps_the_sign_in``
makes the window deterministic: a proxy holds the refresh request while the run is killed, then
lets the provider rotate the token;
``test_a_refresh_worker_holds_no_pipe_of_the_app_and_never_lingers`` checks that a killed run's
pipes end at once, that a run still ends at its deadline, and that a worker never outlives its
run's deadline by more than its grace.

Rounds: ``GATEKEY_CRASH_ROUNDS`` (the figures command runs 200); the default keeps the module
near a minute (the deterministic tests catch a regression on every run). Every test prints its
figures (``-s`` or the ``-rA`` summary shows them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blackbox_env import Env
from fault_proxy import FaultProxy
from gatekey.worker import WORKER_GRACE  # a refresh worker ends by its run's deadline plus this
from idp_helpers import (
    idp_profile,
    login,
    make_expired,
    printed_token,
    read_msal,
    refresh_token,
)
from killed_runs import CONTEXT, cache_locked, proxied_sign_in, stale_everywhere, start
from oidc_peer import OidcProvider
from orphans import kill_later_orphans

pytestmark = [pytest.mark.slow, pytest.mark.blackbox]

ROUNDS = int(os.environ.get("GATEKEY_CRASH_ROUNDS", "0"))
IDP_ROUNDS = ROUNDS or 15
COMMAND_ROUNDS = ROUNDS or 25
SILENT_S = 5.0  # the profile's silent deadline: a stale lock would show as a run this long
SLACK = 1.0  # process start and exit beyond gatekey's own budget
TIMEOUTS = f'[timeouts]\nsilent = "{SILENT_S:g}s"\n'


# --- processes ---------------------------------------------------------------------------------
def kill_after(proc: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` s after its start; True if it was still running then."""
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    return False


def measure_refresh(gk: Env, prepare: Callable[[], None], *args: str, n: int = 3) -> float:
    """Median wall time of ``n`` complete refreshing runs (each after ``prepare``)."""
    times = []
    for _ in range(n):
        prepare()
        t0 = time.monotonic()
        proc = start(gk, *args)
        assert proc.wait(30) == 0
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def lock_held(gk: Env) -> bool:
    """Whether any lock of ``gk``'s cache is held right now (without waiting)."""
    for path in (gk.cache_dir / "locks").glob("*.lock"):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


# A killed run's worker ends by the run's deadline plus its grace, counted from the kill here.
AFTER_KILL = SILENT_S + WORKER_GRACE + SLACK


# --- what the cache holds ------------------------------------------------------------------------
def check_private(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


def check_common_files(root: Path) -> None:
    for path in [root / "index.json", *root.glob("failures/*.json")]:
        if path.exists():
            assert isinstance(json.loads(path.read_text()), dict), path
    check_private(root)


def check_idp_cache(root: Path) -> None:
    """gatekey's token entries and MSAL's state parse (or are absent); the sign-in is present."""
    for path in root.glob("tokens/*.json"):
        data = json.loads(path.read_text())  # a partial file would not parse
        assert isinstance(data["token"], str), path
        assert data["token"].count(".") == 2, path  # a whole JWT
        assert isinstance(data["expires_at"], float), path
    states = list(root.glob("msal/*.json"))
    assert len(states) == 1, f"MSAL's state is gone or doubled: {states}"
    state = json.loads(json.loads(states[0].read_text())["blob"])
    msal = json.loads(state["msal"])
    assert isinstance(msal, dict), states[0]
    check_common_files(root)


def check_command_file_cache(root: Path) -> None:
    for path in root.glob("tokens/*.json"):
        data = json.loads(path.read_text())
        assert data["token"].startswith("tok-"), data
        assert isinstance(data["expires_at"], float), data
    check_common_files(root)


def kernel_entries(gk: Env) -> dict[str, bytes | None]:
    from gatekey import kernelkeys
    from vault_cases import kernel_keys

    return {name: kernelkeys.read(name) for name in kernel_keys(gk.cache_dir)}


def check_kernel_cache(gk: Env) -> None:
    for name, raw in kernel_entries(gk).items():
        if raw is None:  # removed or expired between listing and reading
            continue
        data = json.loads(raw)
        assert data["token"].startswith("tok-"), name
        assert isinstance(data["expires_at"], float), name
    assert not list(gk.cache_dir.glob("tokens/*.json")), "the secure default wrote a token file"
    check_common_files(gk.cache_dir)


def expire_kernel_entry(gk: Env) -> None:
    """The cached secret in the kernel keyring: expired, as time passing would make it."""
    from gatekey import kernelkeys

    entries = {name: raw for name, raw in kernel_entries(gk).items() if raw is not None}
    assert len(entries) == 1, f"expected one kernel entry, found {list(entries)}"
    [(name, raw)] = entries.items()
    data = json.loads(raw)
    data["expires_at"] = time.time() - 1
    assert kernelkeys.write(name, json.dumps(data).encode(), timeout=3600)


@pytest.fixture
def _drop_kernel_keys(gk: Env) -> Iterator[None]:
    yield
    from vault_cases import drop_kernel_keys

    with contextlib.suppress(OSError):  # /proc/keys unreadable here
        drop_kernel_keys(gk.cache_dir)


# --- the identity provider ---------------------------------------------------------------------
def rotated(gk: Env, before: str) -> bool:
    """Whether the saved refresh token is no longer ``before`` (a bool: an assertion on the
    comparison itself would print both tokens when it fails)."""
    return refresh_token(read_msal(gk)) != before


def redeem_requests(op: OidcProvider) -> int:
    return op.token_requests()


def grant_errors(op: OidcProvider) -> list[str]:
    """What the provider logged as refused grants (DEBUG_EVENTS)."""
    lines = op.stderr_log.read_text(errors="replace").splitlines()
    return [line for line in lines if line.startswith("grant.error")]


def assert_lost_cleanly(r, op: OidcProvider) -> None:
    """The sign-in is gone: a clean exit 4 that says why and what to run, inside the deadline."""
    r.assert_clean_failure(4)
    assert "invalid_grant" in r.err, r.err
    assert "gatekey login -p user" in r.err.splitlines()[-1], r.err
    assert r.elapsed < SILENT_S + SLACK, r.elapsed


@pytest.fixture
def idp(gk: Env, make_oidc_provider: Callable[..., OidcProvider]) -> OidcProvider:
    """A provider of this test's own (its grant gets revoked) and a device-code sign-in."""
    op = make_oidc_provider(DEBUG_EVENTS="1")
    gk.write_config(TIMEOUTS + idp_profile(op))
    login(gk, op)
    printed_token(gk.run(context=CONTEXT))
    return op


@pytest.mark.oidc
def test_sigkill_at_random_points_of_an_idp_refresh(
    gk: Env, idp: OidcProvider, record_property: Callable[[str, object], None]
):
    op = idp
    seed = int(os.environ.get("GATEKEY_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    t_start = time.monotonic()
    refresh_s = measure_refresh(gk, lambda: stale_everywhere(gk))
    outcomes: Counter[str] = Counter()
    lost_rounds: list[tuple[int, float]] = []
    next_elapsed: list[float] = []
    waits: list[float] = []
    for i in range(IDP_ROUNDS):
        where = f"round {i} (seed {seed})"
        stale_everywhere(gk)
        rt_before = refresh_token(read_msal(gk))
        requests_before = redeem_requests(op)
        delay = rng.uniform(0.0, refresh_s * 1.1)
        killed = kill_after(start(gk), delay)
        # What the killed run itself had done (MSAL's state is replaced atomically).
        saved_by_run = rotated(gk, rt_before)
        with cache_locked(gk, AFTER_KILL) as waited:  # its refresh worker first finishes
            waits.append(waited)
            check_idp_cache(gk.cache_dir)
            redeemed = redeem_requests(op) > requests_before
            saved = rotated(gk, rt_before)
            kind = (
                "finished"
                if not killed
                else "before-redeem"
                if not redeemed
                else "saved-by-run"
                if saved_by_run
                else "saved-after-kill"  # by the run's worker: the window that lost sign-ins
                if saved
                else "redeemed-unsaved"
            )
            # The next run must redeem the refresh token itself: a silent refresh.
            stale_everywhere(gk)
            requests_before = redeem_requests(op)
        r = gk.run(context=CONTEXT)
        assert redeem_requests(op) == requests_before + 1, where
        assert "Traceback" not in r.err, f"{where}: {r.err}"
        if r.code == 0:
            printed_token(r)
            assert r.err == "", f"{where}: {r.err}"
            assert r.elapsed < SILENT_S + SLACK, f"{where}: a stale lock? {r.elapsed:.2f} s"
            next_elapsed.append(r.elapsed)
            outcomes[kind] += 1
            continue
        # The sign-in is lost: counted (the figure), handled cleanly, signed in again to go on.
        assert_lost_cleanly(r, op)
        outcomes[f"LOST after {kind}"] += 1
        lost_rounds.append((i, round(delay, 3)))
        gk.forget_failures()
        login(gk, op)
        printed_token(gk.run(context=CONTEXT))
    elapsed = time.monotonic() - t_start
    print(
        f"\nIdP crash rounds: {IDP_ROUNDS} in {elapsed:.1f} s, seed {seed}, refresh "
        f"{refresh_s * 1000:.0f} ms (kills in 0..{refresh_s * 1100:.0f} ms); kill outcomes "
        f"{dict(outcomes)}; sign-in LOST in {len(lost_rounds)} rounds {lost_rounds}; "
        f"wait for a killed run's worker max {max(waits):.2f} s; next run max "
        f"{max(next_elapsed, default=0):.2f} s; provider grant errors "
        f"{Counter(e.split(' ', 1)[1][:60] for e in grant_errors(op))}"
    )
    record_property("crash_rounds", IDP_ROUNDS)
    record_property("crash_lost_sign_ins", len(lost_rounds))
    record_property("crash_saved_after_kill", outcomes["saved-after-kill"])
    record_property("crash_next_run_max_s", round(max(next_elapsed, default=0), 2))
    assert not lost_rounds, (
        f"sign-ins lost in {len(lost_rounds)} of {IDP_ROUNDS} kills (seed {seed})"
    )


def signal_at_redeem(
    gk: Env, op: OidcProvider, sig: signal.Signals, *, group: bool = False
) -> tuple[str, int]:
    """Start a refresh, send ``sig`` (to its process group with ``group``) the moment the
    provider logs the refresh-token request, wait for the run and then for the cache's locks
    (its worker); returns the refresh token saved before it and the run's exit status."""
    stale_everywhere(gk)
    rt_before = refresh_token(read_msal(gk))
    requests_before = redeem_requests(op)
    proc = start(gk, group=group)
    deadline = time.monotonic() + 15
    while redeem_requests(op) == requests_before and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never redeemed the refresh token"
        time.sleep(0.0005)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    code = proc.wait(timeout=15)
    with cache_locked(gk, AFTER_KILL):
        check_idp_cache(gk.cache_dir)
    return rt_before, code


STOPS = [
    ("SIGKILL to the run", signal.SIGKILL, False),
    ("SIGKILL to its process group (as an app may)", signal.SIGKILL, True),
    ("SIGTERM (an app's timeout)", signal.SIGTERM, False),
    ("SIGINT", signal.SIGINT, False),
    ("SIGHUP", signal.SIGHUP, False),
]


@pytest.mark.oidc
def test_a_stop_when_the_provider_takes_the_refresh_keeps_the_sign_in(gk: Env, idp: OidcProvider):
    """Each of STOPS the moment the provider logs the refresh-token request: the rotated refresh
    token is saved (by the run's worker, which no signal to the run or its process group
    reaches), and the next run refreshes silently. (Before the
    refresh worker a SIGKILL here lost the sign-in: the next run replayed the used token and
    the provider revoked the grant, exit 4.)"""
    op = idp
    for what, sig, group in STOPS:
        rt_before, code = signal_at_redeem(gk, op, sig, group=group)
        # (A polite stop's exit status depends on the signals this process inherited ignored:
        # pytest-xdist's workers ignore SIGINT. What must hold is the same either way.)
        assert code == -signal.SIGKILL or sig != signal.SIGKILL, what
        saved = rotated(gk, rt_before)  # a bool: pytest would show the tokens of the call
        assert saved, f"{what}: the rotated refresh token is lost"
        stale_everywhere(gk)
        requests_before = redeem_requests(op)
        r = gk.run(context=CONTEXT)
        assert r.code == 0, f"{what}: {r.err}"  # the sign-in survived
        printed_token(r)
        assert redeem_requests(op) == requests_before + 1, what


# --- the provider behind a proxy: the window held open -------------------------------------------
SLOW_SILENT_S = 20.0  # room for the held request; never waited for in full
HANG_SILENT_S = 5.0  # a hung refresh ends at this deadline (the worker's too)
HELD_S = 2.0  # how long the proxy holds the refresh request before the provider sees it


def wait_for_request(proxy: FaultProxy, before: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while proxy.count("POST", "/token") == before:
        assert proc.poll() is None, "the run ended before its refresh request"
        assert time.monotonic() < deadline, "the run never sent its refresh request"
        time.sleep(0.002)


@pytest.mark.oidc
def test_a_kill_while_the_provider_rotates_keeps_the_sign_in(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], tmp_path: Path
):
    """Deterministic: a proxy holds the refresh request; the run (then its process group) is
    killed; then the proxy passes the request on and the provider rotates the refresh token.
    The new one must be saved and the next run refresh silently. (Before the refresh worker:
    lost every time, exit 4.)"""
    op = make_oidc_provider(DEBUG_EVENTS="1")
    with FaultProxy(tmp_path / "proxy", op.origin, upstream_ca=op.ca) as proxy:
        proxy.applies = proxied_sign_in(gk, op, proxy, SLOW_SILENT_S)
        for group in (False, True):
            what = "the run's process group" if group else "the run"
            stale_everywhere(gk)
            rt_before = refresh_token(read_msal(gk))
            requests_before = redeem_requests(op)
            proxy.mode, proxy.delay = "slow", HELD_S
            before = proxy.count("POST", "/token")
            proc = start(gk, group=group)
            wait_for_request(proxy, before, proc)
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            assert proc.wait(15) == -signal.SIGKILL
            deadline = time.monotonic() + HELD_S + 15
            while redeem_requests(op) == requests_before:  # the proxy passes the request on
                assert time.monotonic() < deadline, "the held request never reached the provider"
                time.sleep(0.01)
            with cache_locked(gk, SLOW_SILENT_S + WORKER_GRACE + SLACK):
                check_idp_cache(gk.cache_dir)
                assert redeem_requests(op) == requests_before + 1, what
                saved = rotated(gk, rt_before)
                assert saved, f"killed {what}: the provider rotated the refresh token, lost"
                proxy.mode = "forward"
                stale_everywhere(gk)
            r = gk.run(context=CONTEXT)
            printed_token(r)
            assert r.err == "", what
            assert redeem_requests(op) == requests_before + 2, (
                f"{what}: the next run did not refresh"
            )


@pytest.mark.oidc
def test_a_refresh_worker_holds_no_pipe_of_the_app_and_never_lingers(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], tmp_path: Path
):
    """The provider never answers the refresh request. (1) The run is killed: its stdout and
    stderr (which the app reads to their end) end at once, while its worker still waits.
    (2) A run left alone exits 75 at its deadline, one line, while waiting for its worker.
    Each worker is gone by its run's deadline plus its grace, and the sign-in is intact."""
    op = make_oidc_provider()
    with FaultProxy(tmp_path / "proxy", op.origin, upstream_ca=op.ca) as proxy:
        proxy.applies = proxied_sign_in(gk, op, proxy, HANG_SILENT_S)
        rt_before = refresh_token(read_msal(gk))
        for killed in (True, False):
            if killed:
                stale_everywhere(gk)
            else:  # the hung refresh left MSAL with no access token: only gatekey's to age
                make_expired(gk)
            gk.forget_failures()
            proxy.mode = "hang"
            before = proxy.count("POST", "/token")
            t0 = time.monotonic()
            proc = start(gk, pipes=True)
            wait_for_request(proxy, before, proc)
            if killed:
                proc.kill()
            out, err = proc.communicate(timeout=HANG_SILENT_S + SLACK)  # both pipes at an end
            if killed:
                assert (out, err) == (b"", b"")
                assert lock_held(gk), "the worker ended before the deadline: this proves nothing"
            else:
                assert (proc.returncode, out) == (75, b""), err
                assert err.count(b"\n") == 1, err
                assert time.monotonic() - t0 < HANG_SILENT_S + SLACK
            left = HANG_SILENT_S + WORKER_GRACE + SLACK - (time.monotonic() - t0)
            with cache_locked(gk, left):
                kept = not rotated(gk, rt_before)
                assert kept, "the refresh token changed: the provider saw the hung request"
        proxy.mode = "forward"
        gk.forget_failures()
        r = gk.run(context=CONTEXT)
    printed_token(r)


# --- the command source ------------------------------------------------------------------------
@pytest.mark.usefixtures("_drop_kernel_keys")
@pytest.mark.parametrize("store", ["insecure-file", "secure-default"])
def test_sigkill_at_random_points_of_a_command_refresh(
    gk: Env, store: str, record_property: Callable[[str, object], None]
):
    if store == "secure-default":
        from gatekey import kernelkeys

        if not kernelkeys.available():
            pytest.skip("no kernel keyring here (not Linux, or keyctl blocked by seccomp)")
        expire, check = (lambda: expire_kernel_entry(gk)), (lambda: check_kernel_cache(gk))
    else:
        expire, check = (
            (lambda: gk.edit_entry(expires_at=time.time() - 1)),
            (lambda: check_command_file_cache(gk.cache_dir)),
        )
    seed = int(os.environ.get("GATEKEY_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    gk.write_config(TIMEOUTS + gk.counting_profile(secure=store == "secure-default"))
    t_start = time.monotonic()
    try:
        first = gk.run(context=CONTEXT)
        assert (first.code, first.stdout, first.stderr) == (0, b"tok-1\n", b""), first.err
        refresh_s = measure_refresh(gk, expire)
        outcomes: Counter[str] = Counter()
        next_elapsed = []
        for i in range(COMMAND_ROUNDS):
            where = f"round {i} (seed {seed})"
            expire()
            before = gk.count()
            killed = kill_after(start(gk), rng.uniform(0.0, refresh_s * 1.1))
            check()
            outcomes[
                "finished" if not killed else "fetched" if gk.count() > before else "before-fetch"
            ] += 1
            # The next run: whatever the kill left (an expired entry, a new one, none), it
            # prints a token it fetched, at once, with nothing to say.
            r = gk.run(context=CONTEXT)
            assert r.code == 0, f"{where}: {r.err}"
            assert r.stderr == b"", f"{where}: {r.err}"
            n = int(r.out.removeprefix("tok-"))
            assert 1 <= n <= gk.count(), f"{where}: {r.out!r}"
            assert r.elapsed < SILENT_S + SLACK, f"{where}: a stale lock? {r.elapsed:.2f} s"
            next_elapsed.append(r.elapsed)
            check()
    finally:
        kill_later_orphans(gk)
    print(
        f"\ncommand ({store}) crash rounds: {COMMAND_ROUNDS} in "
        f"{time.monotonic() - t_start:.1f} s, seed {seed}, refresh {refresh_s * 1000:.0f} ms; "
        f"kill outcomes {dict(outcomes)}; next run max {max(next_elapsed):.2f} s"
    )
    record_property("crash_rounds", COMMAND_ROUNDS)  # every one survived: asserted above
    record_property("crash_lost_sign_ins", 0)
    record_property("crash_next_run_max_s", round(max(next_elapsed), 2))
