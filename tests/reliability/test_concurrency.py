"""Overlapping runs: the app's tabs, scheduled tasks and Claude Code share one helper.

Sixteen processes started together against one cache entry must ask the source once (single
flight under the per-key lock) and all print the token that one fetch obtained.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, Env
from deadlines import HANG_S, ends_by

pytestmark = [pytest.mark.blackbox, pytest.mark.slow]

N = 16


def run_together(
    gk: Env, contexts: list[str | None], *args: str, **extra: str
) -> list[tuple[int, bytes, bytes, float]]:
    return gk.run_together(contexts, *args, **extra)


def entry(gk: Env) -> Path:
    return gk.entry_path()


def rewrite(gk: Env, **fields: float) -> None:
    gk.edit_entry(**fields)


def prefill(gk: Env, state: str) -> None:
    first = gk.run()
    assert (first.code, first.stdout) == (0, b"tok-1\n"), first.err
    now = time.time()
    if state == "expired":
        rewrite(gk, expires_at=now - 100, obtained_at=now - 7300)
    elif state == "stale":
        rewrite(gk, expires_at=now + 1000, obtained_at=now - 6200)
    else:
        raise AssertionError(state)


def assert_single_flight(gk: Env, results, before: int, token: bytes) -> None:
    errors = [(code, err.decode()) for code, _, err, _ in results if code != 0]
    assert not errors, errors
    outputs = {out for _, out, _, _ in results}
    assert outputs == {token}, outputs
    assert gk.count() == before + 1, f"{gk.count() - before} fetches for {len(results)} runs"
    assert all(err == b"" for _, _, err, _ in results), [r[2] for r in results]
    assert json.loads(entry(gk).read_text())["token"] == token.decode().strip()
    assert not list(gk.cache_dir.rglob("*.tmp")), "temporary files left behind"
    assert isinstance(json.loads((gk.cache_dir / "index.json").read_text()), dict)


@pytest.mark.parametrize("ctx", [None, *CONTEXTS], ids=lambda c: c or "unset")
def test_sixteen_runs_on_an_expired_entry_fetch_once(gk, ctx):
    gk.write_config(gk.counting_profile())
    prefill(gk, "expired")
    results = run_together(gk, [ctx] * N, SLEEP="0.5")
    assert_single_flight(gk, results, before=1, token=b"tok-2\n")


def test_sixteen_runs_on_a_stale_entry_fetch_once(gk):
    gk.write_config(gk.counting_profile())
    prefill(gk, "stale")
    results = run_together(gk, [None] * N, SLEEP="0.5")
    assert_single_flight(gk, results, before=1, token=b"tok-2\n")


def test_sixteen_runs_on_a_cold_cache_fetch_once(gk):
    gk.write_config(gk.counting_profile())
    results = run_together(gk, ["background"] * N, SLEEP="0.5")
    assert_single_flight(gk, results, before=0, token=b"tok-1\n")


def test_mixed_contexts_share_one_fetch(gk):
    """A mid-session-refresh run and silent runs overlap: the newest token serves them all."""
    gk.write_config(gk.counting_profile())
    prefill(gk, "expired")
    contexts = [
        ("mid-session-refresh", "background", "scheduled-task", None)[i % 4] for i in range(N)
    ]
    results = run_together(gk, contexts, SLEEP="0.5")
    assert_single_flight(gk, results, before=1, token=b"tok-2\n")


def test_sixteen_runs_on_a_timing_out_source_ask_it_once_and_end_in_time(gk):
    gk.write_config('[timeouts]\nsilent = "1s"\n' + gk.counting_profile())
    results = run_together(gk, ["background"] * N, SLEEP=f"{HANG_S:g}")
    for code, out, err, elapsed in results:
        assert code == 75, err.decode()
        assert out == b""
        assert err.startswith(b"gatekey: ")
        assert err.count(b"\n") == 1, err.decode()
        assert elapsed < ends_by(1), elapsed  # from the first start: the 1 s deadline
    # Never twice (one run holds the fetch, the others wait for it). Once on an idle machine;
    # on a busy one the 1 s deadline can pass before the lock holder has started the source.
    assert gk.count() <= 1, "the source was asked more than once"


def test_a_failing_source_is_asked_once_by_sixteen_silent_runs(gk):
    """A down source (the command exits non-zero, as a CLI does when the VPN is down) is asked
    once: the winner remembers the failure, and the runs waiting on the lock report it."""
    gk.write_config(gk.counting_profile())
    prefill(gk, "expired")
    before = gk.count()
    results = run_together(gk, ["background"] * N, FAIL="1", SLEEP="0.3")
    assert gk.count() == before + 1
    for code, out, err, _ in results:
        assert (code, out) == (1, b""), err
        assert err.decode().splitlines()[-1].startswith("gatekey: ")
    remembered = [err for _, _, err, _ in results if b"not asking again until" in err]
    assert len(remembered) == N - 1
