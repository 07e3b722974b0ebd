"""What runs say on stderr reads as sentences (issue 14, item 14): the context a run took named
as the time limit it has ("the silent time limit"), never "(unset (no terminal))"; `-v` says how
a cache hit was served; debug lines without a raw RunContext(...) or "credential from fetched";
a remembered failure not told in the first run's context; erase saying what it erased."""

from __future__ import annotations

import pytest

from blackbox_env import Env
from deadlines import HANG_S

pytestmark = pytest.mark.blackbox

HANG = f"{HANG_S:g}"  # SLEEP for the counting source: far past any deadline here
# Short limits for runs that wait one out (tests/support/deadlines.py).
FAST = '[timeouts]\nsilent = "1s"\nmid_session_refresh = "1s"\n'


def test_an_unset_context_is_named_as_its_time_limit(gk: Env):
    gk.write_config(FAST + gk.counting_profile("cmd"))
    r = gk.run(SLEEP=HANG)  # no CLAUDE_HELPER_CONTEXT, no terminal: a silent run
    r.assert_clean_failure(75)
    assert "within the silent time limit (1 s)" in r.err
    assert "unset (" not in r.err


def test_verbose_says_how_a_cache_hit_was_served(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    assert gk.run().code == 0
    for args in (["-v"], ["-v", "get", "-p", "cmd"]):
        r = gk.run(*args)
        assert (r.code, r.out) == (0, "tok-1\n"), r.err
        assert r.err.startswith(
            'gatekey: info: profile "cmd": printing the cached token (expires '
        ), r.err
    assert gk.count() == 1


def test_verbose_says_a_new_token_was_fetched(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    r = gk.run("-v")
    assert r.code == 0, r.err
    assert 'gatekey: info: profile "cmd": printing a new token from the command source (' in r.err


def test_debug_lines_are_sentences(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    assert gk.run().code == 0
    r = gk.run("--debug", "get", "-p", "cmd", "--force-refresh")
    assert r.code == 0, r.err
    assert "RunContext(" not in r.err
    assert "credential from" not in r.err
    assert "cached token is fresh" not in r.err  # it was, and a new one was asked for anyway
    assert (
        'debug: profile "cmd" (source command): a silent run (10 s limit; '
        "CLAUDE_HELPER_CONTEXT unset, no terminal)"
    ) in r.err
    assert (
        'debug: profile "cmd": asking the source, not the cache: a new token was asked for '
        "(--force-refresh or a sign-in)"
    ) in r.err


def test_a_remembered_failure_is_not_told_in_the_first_runs_context(gk: Env):
    gk.write_config(FAST + gk.counting_profile("cmd"))
    first = gk.run(context="mid-session-refresh", SLEEP=HANG)
    first.assert_clean_failure(75)
    assert "within the mid-session-refresh time limit (1 s)" in first.err
    for context in ("background", "scheduled-task"):
        later = gk.run(context=context)
        later.assert_clean_failure(75)
        assert "not asking again until" in later.err  # remembered, not asked again
        assert "mid-session-refresh" not in later.err
        assert "within an earlier run's time limit (1 s)" in later.err
    assert gk.count() == 1


def test_erase_says_what_it_erased(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    nothing = gk.run("erase", "-p", "cmd")
    assert nothing.code == 0, nothing.err
    assert nothing.err == 'gatekey: profile "cmd": nothing to erase (nothing stored or cached)\n'
    assert gk.run("get", "-p", "cmd").code == 0
    cached = gk.run("erase", "-p", "cmd")
    assert cached.err == 'gatekey: profile "cmd": erased its cached token\n'
