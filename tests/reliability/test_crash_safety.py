"""Crash safety under SIGKILL at random points of a refresh (issue 7, item 3), black box.

The installed ``gatekey`` runs as the app runs it (no arguments, stdin closed,
CLAUDE_HELPER_CONTEXT=background) and is killed with SIGKILL after a random delay drawn across
the whole duration of a normal refresh (measured first, in the same test). After every kill:

- gatekey's cache reads as valid or absent: ``tokens/*.json``, ``msal/*.json`` (MSAL's state,
  where the refresh token lives), ``failures/*.json`` and ``index.json`` parse, nothing wider
  than 0600; for the secure default, the kernel keyring entry decodes;
- no stale lock: the next no-argument run ends well inside its deadline;
- the refresh token is never lost: the next run must itself redeem the refresh token (both
  caches are aged first) and print a token.

Profiles: an ``oidc`` device-code sign-in (``token_cache = "file"``) against the real provider
(node-oidc-provider: refresh tokens rotate on every use, and replaying a used one revokes the
whole grant), and the ``command`` source with ``allow_insecure_cache = true`` and with the
secure default (kernel keyring).

Rounds: ``GATEKEY_CRASH_ROUNDS`` (the issue asks for 200); the default keeps the module near a
minute. Every test prints its figures (``-s`` or the ``-rA`` summary shows them).

Finding (see ``test_kill_between_redeem_and_save_loses_the_sign_in``): a kill after the
provider has taken the refresh-token request and before gatekey has saved the new refresh token
loses the sign-in; the next run's redemption of the old token is a replay, the provider revokes
the grant, and the user must sign in again (exit 4, naming ``gatekey login -p user``). The random
test tolerates and counts that outcome (it must be handled cleanly); the deterministic test is
the requirement, marked xfail(strict=True): a limit of rotating refresh tokens that are revoked
on reuse, which no client can avoid for SIGKILL. SIGTERM, SIGINT and SIGHUP (what an app's
timeout sends first) are held until the rotated token is saved
(``test_a_polite_stop_during_a_refresh_waits_for_the_save``).
"""

from __future__ import annotations

import contextlib
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

from conftest import Env, exe
from oidc_peer import OidcProvider
from test_crash import kill_later_orphans
from test_idp_flows import (
    age_msal_access_token,
    idp_profile,
    login,
    make_expired,
    printed_token,
    read_msal,
    refresh_token,
)

pytestmark = [pytest.mark.slow, pytest.mark.blackbox]

ROUNDS = int(os.environ.get("GATEKEY_CRASH_ROUNDS", "0"))
IDP_ROUNDS = ROUNDS or 50
COMMAND_ROUNDS = ROUNDS or 80
SILENT_S = 5.0  # the profile's silent deadline: a stale lock would show as a run this long
SLACK = 1.0  # process start and exit beyond gatekey's own budget
TIMEOUTS = f'[timeouts]\nsilent = "{SILENT_S:g}s"\n'
CONTEXT = "background"


# --- processes ---------------------------------------------------------------------------------
def start(gk: Env, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [exe(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(gk.vars, CLAUDE_HELPER_CONTEXT=CONTEXT),
        cwd=gk.root,
    )


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
def stale_everywhere(gk: Env) -> None:
    """Both caches too old to serve: the next run must redeem the refresh token."""
    if list((gk.cache_dir / "tokens").glob("*.json")):
        make_expired(gk)
    age_msal_access_token(gk, -60)


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
    for i in range(IDP_ROUNDS):
        where = f"round {i} (seed {seed})"
        stale_everywhere(gk)
        rt_before = refresh_token(read_msal(gk))
        requests_before = redeem_requests(op)
        delay = rng.uniform(0.0, refresh_s * 1.1)
        killed = kill_after(start(gk), delay)
        check_idp_cache(gk.cache_dir)
        redeemed = redeem_requests(op) > requests_before
        saved = refresh_token(read_msal(gk)) != rt_before
        kind = (
            "finished"
            if not killed
            else "saved"
            if saved
            else "in-flight"
            if redeemed
            else "before-redeem"
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
        # The refresh token is lost: only possible if the killed run's request reached the
        # provider and its new refresh token was never saved.
        assert kind == "in-flight", f"{where}: lost after a {kind} kill: {r.err}"
        assert_lost_cleanly(r, op)
        outcomes["LOST"] += 1
        lost_rounds.append((i, round(delay, 3)))
        gk.forget_failures()
        login(gk, op)
        printed_token(gk.run(context=CONTEXT))
    elapsed = time.monotonic() - t_start
    print(
        f"\nIdP crash rounds: {IDP_ROUNDS} in {elapsed:.1f} s, seed {seed}, refresh "
        f"{refresh_s * 1000:.0f} ms (kills in 0..{refresh_s * 1100:.0f} ms); kill outcomes "
        f"{dict(outcomes)}; sign-in LOST in {len(lost_rounds)} rounds {lost_rounds}; "
        f"next run max {max(next_elapsed, default=0):.2f} s; provider grant errors "
        f"{Counter(e.split(' ', 1)[1][:60] for e in grant_errors(op))}"
    )
    record_property("crash_rounds", IDP_ROUNDS)
    record_property("crash_lost_sign_ins", len(lost_rounds))
    record_property("crash_next_run_max_s", round(max(next_elapsed, default=0), 2))
    # Every loss was the in-flight kind (asserted above) and handled cleanly; whether the
    # product avoids it at all is test_kill_between_redeem_and_save_loses_the_sign_in.


LIMIT_SIGKILL = (
    "LIMIT: a SIGKILL after the provider took the refresh-token request and before gatekey "
    "saved the rotated refresh token loses the sign-in: the next run replays the used token, "
    "node-oidc-provider revokes the grant, exit 4 (sign in again). No client can save a token "
    "it never received; it needs an IdP reuse grace period or a refresh token that does not rotate"
)


def signal_at_redeem(gk: Env, op: OidcProvider, sig: signal.Signals) -> str:
    """Start a refresh, send ``sig`` the moment the provider logs the refresh-token request,
    wait for the run to end; returns the refresh token saved before it."""
    stale_everywhere(gk)
    rt_before = refresh_token(read_msal(gk))
    requests_before = redeem_requests(op)
    proc = start(gk)
    deadline = time.monotonic() + 15
    while redeem_requests(op) == requests_before and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never redeemed the refresh token"
        time.sleep(0.0005)
    proc.send_signal(sig)
    proc.wait(timeout=15)
    check_idp_cache(gk.cache_dir)
    return rt_before


@pytest.mark.oidc
@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(
            signal.SIGKILL,
            marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=LIMIT_SIGKILL),
        )
    ],
    ids=["SIGKILL"],
)
def test_kill_between_redeem_and_save_loses_the_sign_in(
    gk: Env, idp: OidcProvider, sig: signal.Signals
):
    """Deterministic: the signal the moment the provider logs the refresh request."""
    op = idp
    for _attempt in range(10):
        refused_before = len(grant_errors(op))
        rt_before = signal_at_redeem(gk, op, sig)
        time.sleep(0.3)  # let the provider finish the request the dead run sent
        # A kill while the request body was still being sent never redeemed anything (the
        # provider cannot parse the body): outside the window, try again.
        cut_short = any("failed to parse" in e for e in grant_errors(op)[refused_before:])
        if refresh_token(read_msal(gk)) == rt_before and not cut_short:
            break  # killed inside the window: redeemed at the provider, not saved
    else:
        pytest.fail("10 kills all landed outside the window (before the body or after the save)")
    stale_everywhere(gk)
    r = gk.run(context=CONTEXT)
    print(f"\nafter a kill inside the window: exit {r.code}: {r.err.strip()}")
    print(f"provider: {grant_errors(op)[-2:]}")
    assert r.code == 0, r.err  # the requirement: the refresh token is never lost
    printed_token(r)


@pytest.mark.oidc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=str)
def test_a_polite_stop_during_a_refresh_waits_for_the_save(
    gk: Env, idp: OidcProvider, sig: signal.Signals
):
    """SIGTERM (an app's timeout), SIGINT or SIGHUP the moment the provider logs the refresh
    request: gatekey holds it until the rotated refresh token is saved, then stops; the next run
    refreshes silently."""
    rt_before = signal_at_redeem(gk, idp, sig)
    assert refresh_token(read_msal(gk)) != rt_before, "the rotated refresh token was not saved"
    stale_everywhere(gk)
    r = gk.run(context=CONTEXT)
    assert r.code == 0, r.err
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
