"""`gatekey login` as a person lives it (issue 14, item 7): it shows that it waits (a countdown
in place on a terminal, one line otherwise), offers the device code where a browser here cannot
reach them (SSH, no display), lets them pick the flow for one run (``--device-code``,
``--browser``), asks before signing in again, and when it gives up says what to do instead of
the command just run.

The installed gatekey runs against the real OpenID provider (support/oidc_peer.py); a person at
a terminal is a pseudo-terminal (support/pty_session.py). Waits that must run out use short
``[timeouts] interactive`` (support/deadlines.py); everything that must succeed keeps the
documented 120 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import Env
from deadlines import ends_by
from idp_helpers import DEVICE_URL, cc_profile, claims, device_sign_in, idp_profile, printed_token
from oidc_peer import CONF_CLIENT, OidcProvider, approve
from pty_session import TerminalRun, lines_shown
from sign_in_browsers import HEADLESS_BROWSER, RECORDING_BROWSER, Browsers

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

DISPLAY = {"DISPLAY": ":99"}  # a display is there (nothing draws on it: the browsers are fakes)
SSH = {"DISPLAY": ":99", "SSH_CONNECTION": "192.0.2.10 50022 192.0.2.20 22"}
COUNTDOWN = re.compile(
    r"\rgatekey: waiting for the sign-in in the browser \((\d+):(\d\d) left, Ctrl-C"
)
LOGIN = ("login", "-p", "user")


def short_wait(seconds: int, profile: str) -> str:
    """A config whose sign-in waits ``seconds`` (for runs that wait it out)."""
    return f'[timeouts]\ninteractive = "{seconds}s"\n\n{profile}'


def recording_browser(op: OidcProvider, flow: str = "browser") -> str:
    return idp_profile(op, flow=flow, extra=f'browser_command = ["{RECORDING_BROWSER}"]')


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Browsers]:
    b = Browsers(tmp_path / "browsers")
    yield b
    b.stop()


def assert_not_the_command_just_run(last_line: str) -> None:
    """The next step after a timed-out `gatekey login -p user` is another way in, never
    that very command again."""
    assert not re.search(r"run: gatekey login -p user\s*$", last_line), last_line
    assert not last_line.rstrip().endswith("gatekey login -p user"), last_line


# --- waiting, shown -----------------------------------------------------------------------------
@pytest.mark.slow
def test_browser_sign_in_counts_down_in_place_on_a_terminal(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    """Nobody finishes the sign-in: the terminal shows the URL, then one line rewritten in place
    every second with the time left, then the outcome on that same line."""
    # 6 s: even on a busy machine, seconds are left to count down once gatekey has started
    gk.write_config(short_wait(6, recording_browser(oidc_provider_auto)))
    r = TerminalRun(gk, LOGIN, **DISPLAY, **browsers.env(None)).finish()
    assert r.code == 4, r.err
    assert r.stdout == b""
    assert len(browsers.launches()) == 1
    ticks = COUNTDOWN.findall(r.err)
    left = [int(m) * 60 + int(s) for m, s in ticks]
    assert len(set(left)) >= 2, r.err  # it changed while the person watched...
    assert left == sorted(left, reverse=True), left  # ...going down
    assert max(left) <= 6
    # in place: from the first tick to the outcome, no line break; the outcome replaces it
    waiting = r.err[COUNTDOWN.search(r.err).start() :]  # type: ignore[union-attr]
    assert waiting.count("\n") == 1, repr(waiting)
    assert waiting.endswith("\r\n"), repr(waiting)
    shown = lines_shown(r.err)
    assert shown[0].startswith("gatekey: to sign in to profile user, open https://"), shown
    assert len(shown) == 2, shown  # the URL, then the outcome: no countdown left behind
    assert shown[-1].startswith('gatekey: profile "user": the browser sign-in did not finish')
    assert "--device-code" in shown[-1]
    assert_not_the_command_just_run(shown[-1])


def test_browser_sign_in_says_it_waits_in_one_line_without_a_terminal(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    gk.write_config(short_wait(2, recording_browser(oidc_provider_auto)))
    r = gk.run(*LOGIN, **DISPLAY, **browsers.env(None))
    assert r.code == 4, r.err
    assert "\r" not in r.err  # a log gets no carriage returns
    lines = r.err.splitlines()
    assert lines[0].startswith("gatekey: to sign in to profile user, open https://"), lines
    assert re.fullmatch(
        r"gatekey: waiting for the sign-in in the browser \(for up to \d+ s\)", lines[1]
    ), lines
    assert len(lines) == 3, lines
    assert "finish signing in in the browser window" in lines[-1]
    assert "gatekey login -p user --device-code" in lines[-1]
    assert_not_the_command_just_run(lines[-1])
    assert r.elapsed < ends_by(2)


def test_device_code_timeout_says_what_to_do_instead(gk: Env, oidc_provider: OidcProvider):
    """Nobody enters the code: one waiting line, and a next step that is not the login just run."""
    gk.write_config(short_wait(2, idp_profile(oidc_provider)))
    r = gk.run(*LOGIN, **DISPLAY)
    assert r.code == 4, r.err
    lines = r.err.splitlines()
    assert "enter the code" in lines[0]
    assert re.fullmatch(
        r"gatekey: waiting for the code to be approved at https://\S+/device \(for up to \d+ s\)",
        lines[1],
    ), lines
    assert "enter the code and approve the sign-in in time" in lines[-1]
    assert "gatekey login -p user --browser" in lines[-1]  # a display is there
    assert_not_the_command_just_run(lines[-1])


# --- no browser can reach the person: the device code -------------------------------------------
@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "there is no display here (neither DISPLAY nor WAYLAND_DISPLAY is set)"),
        (SSH, "this is an SSH session"),
    ],
    ids=["no-display", "ssh"],
)
def test_without_a_usable_browser_login_names_the_device_code_flag(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers, env: dict[str, str], reason: str
):
    """No terminal to ask on: the configured browser flow runs, and both the line before it and
    the outcome say how to sign in on another device instead."""
    gk.write_config(short_wait(2, recording_browser(oidc_provider_auto)))
    r = gk.run(*LOGIN, **env, **browsers.env(None))
    assert r.code == 4, r.err
    lines = r.err.splitlines()
    assert lines[0].startswith(f"gatekey: {reason}"), lines
    assert lines[0].endswith("sign in on another device with: gatekey login -p user --device-code")
    assert lines[-1].endswith(
        f"{reason}, so a browser here cannot reach you; sign in on another device: "
        "gatekey login -p user --device-code"
    ), lines[-1]


@pytest.mark.slow
def test_over_ssh_a_terminal_is_offered_the_device_code_and_shown_its_progress(
    gk: Env, oidc_provider: OidcProvider, browsers: Browsers
):
    """A person over SSH with a browser-flow profile: asked (yes by default) whether to sign in
    with a code instead; the code, then the time left for approving it; signed in as alice, and
    no browser was started."""
    op = oidc_provider
    gk.write_config(recording_browser(op))
    t = TerminalRun(gk, LOGIN, **SSH, **browsers.env(None))
    try:
        t.read_until(
            r"gatekey: this is an SSH session, so a browser here may not reach you; sign in with "
            r"a code on another device instead \(--device-code\)\? \[Y/n\] $"
        )
        t.type("\n")  # the default: yes
        url = t.read_until(DEVICE_URL).group(1)
        t.read_until(
            r"\rgatekey: waiting for the code to be approved at https://\S+/device "
            r"\(\d+:\d\d left, Ctrl-C to stop\)"
        )
        approve(url, op.ca, user="alice")
        r = t.finish()
    finally:
        t.close()
    assert r.code == 0, r.err
    assert r.stdout == b""
    assert lines_shown(r.err)[-1] == 'gatekey: profile "user": signed in as alice@example.test'
    assert browsers.launches() == []
    assert claims(printed_token(gk.run(context="background")))["sub"] == "alice"


# --- picking the flow for one run ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["oidc", "entra"])
def test_device_code_flag_signs_a_browser_profile_in_with_a_code(
    gk: Env,
    kind: str,
    oidc_provider: OidcProvider,
    entra_provider: OidcProvider,
    browsers: Browsers,
):
    op = oidc_provider if kind == "oidc" else entra_provider
    scopes = '["api.read"]'
    gk.write_config(
        idp_profile(
            op,
            kind=kind,
            flow="browser",
            scopes=scopes,
            extra=f'browser_command = ["{RECORDING_BROWSER}"]',
        )
    )
    r = device_sign_in(gk, op, (*LOGIN, "--device-code"), **browsers.env(None))
    assert r.code == 0, r.err
    assert 'profile "user": signed in as alice@example.test' in r.err
    assert browsers.launches() == []
    assert claims(printed_token(gk.run(context="background")))["iss"] == op.issuer


@pytest.mark.slow
def test_browser_flag_signs_a_device_code_profile_in_with_the_browser(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    op = oidc_provider_auto
    gk.write_config(idp_profile(op, flow="device-code"))
    before = len(op.requests_log())
    r = gk.run(*LOGIN, "--browser", **browsers.env(HEADLESS_BROWSER))
    assert r.code == 0, r.err + browsers.log.read_text()
    assert 'profile "user": signed in as alice@example.test' in r.err
    assert [launch.split()[0] for launch in browsers.launches()] == ["headless"]
    asked = [path for _method, path in op.requests_log()[before:]]
    assert not any(path.startswith(f"{op.issuer_path}/device") for path in asked), asked
    assert claims(printed_token(gk.run(context="background")))["sub"] == "alice"


def test_flow_flags_are_refused_where_no_person_signs_in(gk: Env, oidc_provider: OidcProvider):
    svc = cc_profile(oidc_provider, '{ env = "GK_TEST_CLIENT_SECRET" }')
    gk.write_config(f'[profiles.key]\nsource = "keychain"\n\n{svc}')
    r = gk.run("login", "-p", "key", "--device-code")
    r.assert_clean_failure(78)
    assert "--device-code" in r.err
    assert "has no sign-in" in r.err
    r = gk.run("login", "-p", "svc", "--browser", GK_TEST_CLIENT_SECRET=CONF_CLIENT[1])
    r.assert_clean_failure(78)
    assert "--browser" in r.err
    assert "no person signs in" in r.err
    both = gk.run("login", "-p", "svc", "--browser", "--device-code")
    assert both.code == 2, both.err
    assert "give one" in both.err


# --- already signed in ------------------------------------------------------------------------
@pytest.mark.slow
def test_already_signed_in_a_terminal_is_asked_first(gk: Env, oidc_provider: OidcProvider):
    op = oidc_provider
    gk.write_config(idp_profile(op))
    assert device_sign_in(gk, op).code == 0
    before = len(op.requests_log())
    t = TerminalRun(gk, LOGIN, **DISPLAY)
    try:
        t.read_until(
            r'gatekey: profile "user": already signed in as alice@example\.test \(token expires '
            r"in \d+ min, at \d\d:\d\d\); sign in again\? \[y/N\] $"
        )
        t.type("n\n")
        r = t.finish()
    finally:
        t.close()
    assert r.code == 0, r.err
    assert (
        lines_shown(r.err)[-1] == 'gatekey: profile "user": kept the sign-in as alice@example.test'
    )
    assert op.requests_log()[before:] == []  # nothing was asked of the provider
    # --yes (also --force): no question, a new sign-in (bob's, this time)
    t = TerminalRun(gk, (*LOGIN, "--yes"), **DISPLAY)
    try:
        url = t.read_until(DEVICE_URL).group(1)
        approve(url, op.ca, user="bob")
        r = t.finish()
    finally:
        t.close()
    assert r.code == 0, r.err
    assert "sign in again?" not in r.err
    assert lines_shown(r.err)[-1] == 'gatekey: profile "user": signed in as bob@example.test'


def test_already_signed_in_without_a_terminal_signs_in_again_and_says_why(
    gk: Env, oidc_provider: OidcProvider
):
    op = oidc_provider
    gk.write_config(idp_profile(op))
    assert device_sign_in(gk, op).code == 0
    r = device_sign_in(gk, op, user="bob")
    assert r.code == 0, r.err
    first = r.err.splitlines()[0]
    assert first.startswith('gatekey: profile "user": already signed in as alice@example.test ('), (
        first
    )
    assert first.endswith(
        "; signing in again, as asked (no terminal to confirm on; --yes skips this)"
    )
    assert r.err.splitlines()[-1] == 'gatekey: profile "user": signed in as bob@example.test'
    assert claims(printed_token(gk.run(context="background")))["sub"] == "bob"
