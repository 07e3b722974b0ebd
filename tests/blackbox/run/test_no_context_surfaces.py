"""Runs with no CLAUDE_HELPER_CONTEXT (issue 17): the MCP headersHelper (and Claude Code's
apiKeyHelper) set none and give the helper no terminal; the MCP one kills it at 30 s and it
must never prompt. gatekey tells the cases apart by the terminal: no TTY on stdin or stderr
means nobody is there to answer, so the run is silent (never a browser, never a prompt) and,
whatever ``timeouts.silent`` says, it ends before the app's 30 s (context.NO_CONTEXT_MAX, 24 s),
printing a cached credential that is still valid if the source hangs. With a terminal (a person
running it by hand) the run is interactive, as before.
"""

from __future__ import annotations

import time

import pytest

from blackbox_env import Env
from deadlines import EARLY_S, HANG_S, SILENT_S, ends_by
from idp_helpers import idp_profile
from oidc_peer import OidcProvider
from pty_session import TerminalRun
from sign_in_browsers import RECORDING_BROWSER, Browsers

pytestmark = pytest.mark.blackbox

MCP_KILL_S = 30.0  # the app's limit for a headersHelper run (contract.md)
NO_CONTEXT_MAX_S = 24.0  # gatekey's cap for a silent run with no context (context.py)
LONG_SILENT = '[timeouts]\nsilent = "60s"\n'  # an admin's choice for slow background runs


def headers_profile(gk: Env, extra: str = "") -> None:
    gk.write_config(LONG_SILENT + gk.counting_profile("p", f'min_ttl = "10m"\n{extra}'))


def test_the_caps_stay_below_the_mcp_kill_with_room_to_overrun() -> None:
    """The documented default (10 s) and the cap both end, overrun included, inside 30 s."""
    assert ends_by(SILENT_S) < MCP_KILL_S
    assert ends_by(NO_CONTEXT_MAX_S) <= MCP_KILL_S


def test_no_context_without_a_terminal_is_silent_and_capped(gk: Env) -> None:
    headers_profile(gk)
    r = gk.run(GATEKEY_OUTPUT="headers", GATEKEY_LOG_LEVEL="debug")
    assert r.code == 0, r.err
    assert (
        "a silent run (24 s limit; CLAUDE_HELPER_CONTEXT unset, no terminal; "
        "timeouts.silent (60 s) capped at 24 s)"
    ) in r.err


@pytest.mark.parametrize("context", ["background", "scheduled-task"])
def test_the_cap_leaves_the_inference_helpers_silent_runs_alone(gk: Env, context: str) -> None:
    """timeouts.silent also serves the inference helper's background runs, whose limit the
    admin sets (inferenceCredentialHelperTimeoutSec, up to 600 s): not capped there."""
    headers_profile(gk)
    r = gk.run(context=context, GATEKEY_LOG_LEVEL="debug")
    assert r.code == 0, r.err
    assert f"a {context} run (60 s limit; CLAUDE_HELPER_CONTEXT={context})" in r.err


def test_no_context_with_a_terminal_is_interactive_and_not_capped(gk: Env) -> None:
    """A person at a terminal (stdin and stderr on a pseudo-terminal) may be asked: the run is
    interactive, with the interactive deadline."""
    headers_profile(gk)
    run = TerminalRun(gk, [], GATEKEY_OUTPUT="headers", GATEKEY_LOG_LEVEL="debug")
    r = run.finish()
    assert r.code == 0, r.err
    assert "an interactive run (120 s limit; CLAUDE_HELPER_CONTEXT unset, a terminal)" in r.err
    assert r.stdout == b'{"Authorization": "Bearer tok-1"}\n'


def test_a_hanging_source_ends_before_the_mcp_kill_with_the_cached_headers(gk: Env) -> None:
    """The run the cap is for: the cached token is due for refresh (under min_ttl, still
    valid), the source hangs, and silent is 60 s. The run gives up on the source at 24 s and
    prints the cached headers, where without the cap the app would kill it at 30 s and the MCP
    server would get nothing."""
    headers_profile(gk, 'headers = { X-Org-Route = "prod" }')
    first = gk.run(GATEKEY_OUTPUT="headers")
    assert first.code == 0, first.err
    now = time.time()  # due (min_ttl 10 m), valid for 5 more minutes, obtained an hour ago
    gk.edit_entry(expires_at=now + 300, obtained_at=now - 3600)
    r = gk.run(GATEKEY_OUTPUT="headers", SLEEP=f"{HANG_S:g}")
    assert (r.code, r.stdout) == (0, first.stdout), r.err
    assert NO_CONTEXT_MAX_S - EARLY_S < r.elapsed < MCP_KILL_S, r.elapsed
    assert gk.count() == 2  # asked once more, and given up on


def test_a_failing_source_ends_before_the_mcp_kill_with_one_line(gk: Env) -> None:
    """Nothing cached: the hanging source costs the run its 24 s, then one line and exit 75."""
    headers_profile(gk)
    r = gk.run(GATEKEY_OUTPUT="headers", SLEEP=f"{HANG_S:g}")
    r.assert_clean_failure(75)
    assert "24 s" in r.err
    assert NO_CONTEXT_MAX_S - EARLY_S < r.elapsed < MCP_KILL_S, r.elapsed


@pytest.mark.oidc
@pytest.mark.parametrize("flow", ["device-code", "browser"])
def test_no_context_never_opens_a_browser_nor_prompts_for_the_headers_shape(
    gk: Env, oidc_provider: OidcProvider, tmp_path, flow: str
) -> None:
    """Not signed in, as an MCP server's helper: exit 4 naming the command a person runs, at
    once (nothing to wait for), no browser launched, no sign-in URL or device code shown."""
    gk.write_config(idp_profile(oidc_provider, flow=flow, extra='output = "headers"'))
    browsers = Browsers(tmp_path / "browsers")
    try:
        r = gk.run(**browsers.env(RECORDING_BROWSER))
        r.assert_clean_failure(4)
        assert "gatekey login -p user" in r.err
        assert r.elapsed < SILENT_S
        assert browsers.launches() == []
        assert "https://" not in r.err
    finally:
        browsers.stop()
