"""`gatekey inspect` judges the time a token has left against what Claude will do with it (issue
14, item 4), black-box.

The app keeps the helper's output for its TTL (``inferenceCredentialHelperTtlSec`` in its managed
settings, else 3600 s) and never reads ``exp``: a token that expires first fails mid-session.
inspect fails such a token (exit 1) with the numbers and what to do, warns when it outlives the
TTL by less than 300 s, and says when a token states no expiry. Managed settings are written
under GATEKEY_MANAGED_ROOT, never read from this machine's /etc.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from blackbox_env import Env
from deadlines import HARNESS_S
from inspect_tokens import (
    TTL_KEY,
    assert_no_token,
    check_line,
    crafted,
    fixes_of,
    managed_settings,
)

pytestmark = pytest.mark.blackbox

OPAQUE = "gw-key-Q7f3a9c2e51b84d06a1e9b2c4d8f0"
# A token "with a few minutes left" must not expire while inspect runs, however slow the machine:
# the harness gives a run HARNESS_S at most, so its time left at the check is known to the
# second range [left - HARNESS_S, left].
SLACK = int(HARNESS_S) + 1


def token_with(left: float, **claims: object) -> str:
    now = int(time.time())
    return crafted(iss="https://idp.example.test", sub="alice", exp=now + int(left), **claims)


def test_a_token_that_expires_inside_the_apps_default_ttl_fails(gk: Env):
    """The issue's case: a token with minutes left was "OK ... looks usable"."""
    managed_settings(gk, {})  # no managed settings: the app's default TTL, 3600 s
    token = token_with(90 + SLACK)
    r = gk.run("inspect", "--stdin", stdin=token.encode())
    assert r.code == 1, r.out + r.err
    line = check_line(r, "lifetime")
    assert line.startswith("FAIL"), line
    uses = "left, but Claude uses a token 3600 s without reading its expiry"
    assert re.search(rf"\d+ (s|min) {uses}", line), line
    assert "the app's default; no managed settings" in line
    assert "requests fail mid-session once it expires" in line
    assert check_line(r, "expiry").startswith("OK")  # valid now: only the lifetime fails
    fixes = fixes_of(r, "lifetime")
    # No config file: the implicit "default" profile (the keychain's), with the default min_ttl.
    assert "gatekey would not print it: it fetches a new one once less than min_ttl (65 min)" in (
        line
    )
    assert fixes == [
        "gatekey get -p default prints one with more than min_ttl left (refreshing first)"
    ]
    assert "Verdict: FAIL, it expires while Claude still uses it (lifetime)" in r.out
    assert "looks usable" not in r.out
    assert r.err == "gatekey: the credential fails 1 check(s): lifetime\n"
    assert_no_token(r, token)

    again = token_with(90 + SLACK)  # a new one: the first run may have taken its time
    data = json.loads(gk.run("inspect", "--stdin", "--json", stdin=again.encode()).stdout)
    assert data["usable"] is False
    assert data["lifetime"]["claude_ttl"] == 3600
    assert data["lifetime"]["claude_ttl_from"] is None
    assert 0 < data["lifetime"]["seconds_left"] <= 90 + SLACK
    (check,) = [c for c in data["checks"] if c["name"] == "lifetime"]
    assert check["verdict"] == "fail"
    assert check["fixes"] == fixes


@pytest.mark.parametrize(
    ("ttl", "left", "verdict", "code", "words"),
    [
        # Claude's TTL from the managed settings, not the default: 40 min left outlives 600 s
        ("600", 2400, "OK", 0, "more than the 600 s Claude uses a token"),
        # 1800 s TTL: 2050 s left outlives it by less than 300 s (whatever the run's speed)
        ("1800", 2050, "WARN", 0, "more than the 1800 s Claude uses a token"),
        ("1800", 1200, "FAIL", 1, "left, but Claude uses a token 1800 s"),
    ],
    ids=["outlives", "close", "dies-inside"],
)
def test_the_ttl_comes_from_claudes_managed_settings(
    gk: Env, ttl: str, left: int, verdict: str, code: int, words: str
):
    path = managed_settings(gk, {TTL_KEY: ttl})
    token = token_with(left)
    r = gk.run("inspect", "--stdin", stdin=token.encode())
    assert r.code == code, r.out + r.err
    line = check_line(r, "lifetime")
    assert line.startswith(verdict), line
    assert words in line, line
    assert f"{TTL_KEY} in {path}" in line, line
    data = json.loads(gk.run("inspect", "--stdin", "--json", stdin=token.encode()).stdout)
    assert data["lifetime"]["claude_ttl"] == int(ttl)
    assert data["lifetime"]["claude_ttl_from"] == str(path)
    assert_no_token(r, token)


def test_managed_settings_the_app_ignores_leave_its_default(gk: Env):
    """A group-writable file is rejected by the app as a whole: its TTL is not the one used."""
    path = managed_settings(gk, {TTL_KEY: "600"}, mode=0o666)
    token = token_with(2400)
    r = gk.run("inspect", "--stdin", stdin=token.encode())
    assert r.code == 1, r.out + r.err
    line = check_line(r, "lifetime")
    assert line.startswith("FAIL"), line
    assert "Claude uses a token 3600 s" in line
    assert f"the app's default: Claude ignores {path}" in line


def test_a_profiles_token_names_min_ttl_and_the_ttl_that_would_work(gk: Env):
    """A source whose new tokens live 25 min, min_ttl 10 min, Claude's TTL 30 min: gatekey
    prints a token that dies inside the TTL. inspect fails it and gives both fixes."""
    managed_settings(gk, {TTL_KEY: "1800"})
    gk.write_config(gk.counting_profile("cmd", 'min_ttl = "10m"'))
    r = gk.run("inspect", "-p", "cmd", TOKEN=OPAQUE, EXPIRES_IN="1500")
    assert r.code == 1, r.out + r.err
    line = check_line(r, "lifetime")
    assert line.startswith("FAIL"), line
    assert "left, but Claude uses a token 1800 s" in line
    fixes = fixes_of(r, "lifetime")
    assert any(
        "tokens like this live only 25 min when new" in f and f"{TTL_KEY} to at most 1200" in f
        for f in fixes
    ), fixes
    assert any(
        f.startswith('set min_ttl = "2100s" (or more) in profile "cmd"')
        and "600 s lets it print one that expires inside Claude's TTL" in f
        for f in fixes
    ), fixes
    assert r.err == "gatekey: the credential fails 1 check(s): lifetime\n"
    assert_no_token(r, OPAQUE)
    data = json.loads(gk.run("inspect", "-p", "cmd", "--json", TOKEN=OPAQUE).stdout)
    assert data["lifetime"]["min_ttl"] == 600
    assert data["lifetime"]["lifetime"] == 1500
    assert data["lifetime"]["claude_ttl"] == 1800


def test_a_profiles_token_that_lasts_passes(gk: Env):
    """The defaults work together: 2 h tokens, min_ttl 65 min, the app's 3600 s."""
    managed_settings(gk, {})
    gk.write_config(gk.counting_profile("cmd"))
    r = gk.run("inspect", "-p", "cmd", TOKEN=OPAQUE)
    assert r.code == 0, r.out + r.err
    line = check_line(r, "lifetime")
    assert line.startswith("OK"), line
    assert "more than the 3600 s Claude uses a token" in line
    assert "looks usable" in r.out
    assert_no_token(r, OPAQUE)


def test_stdin_compared_with_a_profile_says_gatekey_would_refresh_it(gk: Env):
    """90 min left outlives a 30 min TTL, but not the profile's min_ttl of 2 h: gatekey itself
    would fetch a new one before printing it."""
    managed_settings(gk, {TTL_KEY: "1800"})
    gk.write_config(gk.counting_profile("cmd", 'min_ttl = "2h"'))
    token = token_with(5400)
    r = gk.run("inspect", "--stdin", "-p", "cmd", stdin=token.encode())
    assert r.code == 0, r.out + r.err
    line = check_line(r, "lifetime")
    assert line.startswith("OK"), line
    assert (
        "gatekey would not print it: it fetches a new one once less than min_ttl (2 h 0 min)"
        in (line)
    )
    assert gk.count() == 0  # --stdin asks nothing of the source


def test_a_token_with_no_expiry_says_so(gk: Env):
    managed_settings(gk, {})
    token = crafted(iss="https://idp.example.test", sub="alice")
    r = gk.run("inspect", "--stdin", stdin=token.encode())
    assert r.code == 0, r.out + r.err  # warnings do not fail
    assert check_line(r, "expiry").startswith("WARN")
    assert "no exp claim" in check_line(r, "expiry")
    line = check_line(r, "lifetime")
    assert line.startswith("SKIP"), line
    assert "no known expiry, so nothing to compare: Claude uses a token 3600 s" in line
    data = json.loads(gk.run("inspect", "--stdin", "--json", stdin=token.encode()).stdout)
    assert data["lifetime"]["seconds_left"] is None
    assert data["lifetime"]["claude_ttl"] == 3600
    assert_no_token(r, token)
