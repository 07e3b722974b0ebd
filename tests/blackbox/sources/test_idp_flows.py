"""Black-box tests of the identity-provider sources (``oidc``, ``entra``): every flow, end to end.

The installed executables run as subprocesses, the way Claude Desktop runs them (no arguments,
stdin closed, CLAUDE_HELPER_CONTEXT set), against the real OpenID provider over HTTPS
(node-oidc-provider, tests/support/oidc_peer.py) and, for the browser flow, real headless
Chromium (tests/support/headless_browser.sh; the real login form through playwright-core,
tests/support/pw_browser.sh). What is asserted is what the app and the provider see: stdout
bytes, exit codes, stderr lines, and the provider's own request log (``token_requests()``).

MSAL's persisted state (refresh tokens) is read where gatekey keeps it: with
``token_cache = "file"`` a 0600 JSON file ``<cache>/msal/<key>.json`` holding
``{"blob": <json {"v", "account", "msal": <MSAL's serialized cache>}>}``; by default, the Secret
Service (items with ``service = gatekey-idp``, chunked with a manifest when large).

Session-scoped providers serve tests whose state does not matter; tests that revoke, replay or
count a user's grant start their own (``make_oidc_provider``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from blackbox_env import CONTEXTS, SILENT_CONTEXTS, SUPPORT, Env, Result, exe
from deadlines import deadline_of, ends_by
from idp_helpers import (
    DEVICE_URL,
    age_msal_access_token,
    assert_no_secrets,
    cc_profile,
    claims,
    device_sign_in,
    drop_token_cache,
    forget_failures,
    idp_profile,
    login,
    make_expired,
    make_stale,
    msal_path,
    printed_token,
    read_msal,
    refresh_token,
    replay,
    revoke,
    secrets_of,
    token_files,
)
from oidc_peer import API_AUDIENCE, CONF_CLIENT, PUBLIC_CLIENT, OidcProvider
from sign_in_browsers import HEADLESS_BROWSER, RECORDING_BROWSER, Browsers, sessions_of

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

PW_BROWSER = SUPPORT / "pw_browser.sh"
ALL_CONTEXTS = (*CONTEXTS, None)  # None: CLAUDE_HELPER_CONTEXT unset (no TTY here: silent)
SECRET_ENV = "GK_TEST_CLIENT_SECRET"
# A CA bundle that does not contain the tests' CA: gatekey's ca_bundle must win over it.
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def ctx_id(ctx: str | None) -> str:
    return ctx or "unset"


@pytest.fixture
def signed_in(gk: Env, make_oidc_provider: Callable[..., OidcProvider]) -> OidcProvider:
    """A new provider and a device-code login to it with token_cache = "file"."""
    op = make_oidc_provider()
    gk.write_config(idp_profile(op))
    login(gk, op)
    return op


@pytest.fixture(autouse=True)
def global_ca_bundle(gk: Env) -> None:
    """Like this machine and CI: REQUESTS_CA_BUNDLE (and CURL_CA_BUNDLE) name the system bundle,
    which lacks the tests' CA. gatekey's profile key ca_bundle must win over them."""
    if Path(SYSTEM_BUNDLE).exists():
        gk.vars["REQUESTS_CA_BUNDLE"] = gk.vars["CURL_CA_BUNDLE"] = SYSTEM_BUNDLE


# --- browsers -----------------------------------------------------------------------------------
@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Browsers]:
    b = Browsers(tmp_path / "browsers")
    yield b
    b.stop()


# ==============================================================================================
# 1. Client credentials
# ==============================================================================================
@pytest.mark.parametrize("kind", ["oidc", "entra"])
def test_client_credentials_token_then_cache_hit(
    gk: Env, kind: str, oidc_provider: OidcProvider, entra_provider: OidcProvider
):
    op = oidc_provider if kind == "oidc" else entra_provider
    gk.write_config(cc_profile(op, f'{{ env = "{SECRET_ENV}" }}', kind=kind))
    env = {SECRET_ENV: CONF_CLIENT[1]}
    before = op.token_requests()
    r = gk.run(context="background", **env)
    token = printed_token(r)
    assert r.err == ""
    c = claims(token)
    assert c["client_id"] == c["sub"] == CONF_CLIENT[0]
    assert c["iss"] == op.issuer
    assert c["aud"] == API_AUDIENCE
    assert op.token_requests() == before + 1
    assert_no_secrets(r.err, token, CONF_CLIENT[1])
    # a new process: gatekey's cache, no request
    again = gk.run(context="scheduled-task", **env)
    assert again.stdout == r.stdout
    assert op.token_requests() == before + 1
    # the secret is only read on a miss: a cache hit needs no secret at all
    assert gk.run(context="setup-test").stdout == r.stdout


def test_client_credentials_debug_shows_no_secret(gk: Env, oidc_provider: OidcProvider):
    gk.write_config(cc_profile(oidc_provider, f'{{ env = "{SECRET_ENV}" }}'))
    r = gk.run("--debug", context="background", **{SECRET_ENV: CONF_CLIENT[1]})
    token = printed_token(r)
    assert "debug" in r.err.lower(), "expected debug logs"
    assert_no_secrets(r.err, token, CONF_CLIENT[1])


def test_client_credentials_needs_the_ca_bundle(gk: Env, oidc_provider: OidcProvider):
    """TLS is verified for real: without ca_bundle (and whatever REQUESTS_CA_BUNDLE says, even
    the tests' CA) the provider's certificate is refused, as a temporary failure naming
    ca_bundle."""
    profile = cc_profile(oidc_provider, f'{{ env = "{SECRET_ENV}" }}')
    gk.write_config(profile.replace(f'ca_bundle = "{oidc_provider.ca}"\n', ""))
    before = oidc_provider.token_requests()
    r = gk.run(
        context="background",
        REQUESTS_CA_BUNDLE=oidc_provider.ca,
        **{SECRET_ENV: CONF_CLIENT[1]},
    )
    r.assert_clean_failure(75)
    assert "TLS" in r.err
    assert "ca_bundle" in r.err
    assert oidc_provider.token_requests() == before


def test_client_credentials_wrong_secret(gk: Env, oidc_provider: OidcProvider):
    gk.write_config(cc_profile(oidc_provider, f'{{ env = "{SECRET_ENV}" }}'))
    wrong = "not-the-conf-secret-0123456789"
    r = gk.run(context="background", **{SECRET_ENV: wrong})
    r.assert_clean_failure(1)
    assert "invalid_client" in r.err
    assert "client_id" in r.err
    assert wrong not in r.err


def test_client_secret_env_unset_is_not_found(gk: Env, oidc_provider: OidcProvider):
    gk.write_config(cc_profile(oidc_provider, f'{{ env = "{SECRET_ENV}" }}'))
    r = gk.run(context="background")
    r.assert_clean_failure(3)
    assert SECRET_ENV in r.err
    assert "client_secret" in r.err


def test_client_secret_from_a_private_file(gk: Env, oidc_provider: OidcProvider):
    secret_file = gk.root / "client-secret"
    secret_file.write_text(CONF_CLIENT[1] + "\n")
    secret_file.chmod(0o600)
    gk.write_config(cc_profile(oidc_provider, f'{{ file = "{secret_file}" }}'))
    before = oidc_provider.token_requests()
    token = printed_token(gk.run(context="background"))
    assert claims(token)["client_id"] == CONF_CLIENT[0]
    assert oidc_provider.token_requests() == before + 1


def test_client_secret_file_readable_by_others_is_refused(gk: Env, oidc_provider: OidcProvider):
    secret_file = gk.root / "client-secret"
    secret_file.write_text(CONF_CLIENT[1])
    secret_file.chmod(0o644)
    gk.write_config(cc_profile(oidc_provider, f'{{ file = "{secret_file}" }}'))
    before = oidc_provider.token_requests()
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert 'key "client_secret"' in r.err
    assert str(secret_file) in r.err
    assert "chmod 600" in r.err
    assert CONF_CLIENT[1] not in r.err
    assert oidc_provider.token_requests() == before


def test_client_secret_file_missing_is_not_found(gk: Env, oidc_provider: OidcProvider):
    missing = gk.root / "no-such-secret"
    gk.write_config(cc_profile(oidc_provider, f'{{ file = "{missing}" }}'))
    r = gk.run(context="background")
    r.assert_clean_failure(3)
    assert str(missing) in r.err
    assert "client_secret" in r.err


@pytest.mark.keychain
def test_client_secret_from_the_keychain(secret_service: Env, oidc_provider: OidcProvider):
    gk = secret_service
    config = 'default_profile = "svc"\n\n[profiles.ccsecret]\nsource = "keychain"\n\n' + cc_profile(
        oidc_provider, '{ keychain = "ccsecret" }'
    )
    gk.write_config(config)
    r = gk.run("store", "-p", "ccsecret", stdin=CONF_CLIENT[1].encode())
    assert r.code == 0, r.err
    before = oidc_provider.token_requests()
    r = gk.run(context="background")
    token = printed_token(r)
    assert claims(token)["client_id"] == CONF_CLIENT[0]
    assert oidc_provider.token_requests() == before + 1
    assert_no_secrets(r.err, token, CONF_CLIENT[1])


def test_client_secret_literal_in_config_is_refused(gk: Env, oidc_provider: OidcProvider):
    literal = "conf-secret-written-in-the-config"
    gk.write_config(cc_profile(oidc_provider, f'"{literal}"'))
    before = oidc_provider.token_requests()
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert 'key "client_secret"' in r.err, r.err
    assert literal not in r.err
    assert oidc_provider.token_requests() == before


# ==============================================================================================
# 2. Device code
# ==============================================================================================
@pytest.mark.slow
def test_device_code_login_then_silent_in_every_context(gk: Env, oidc_provider: OidcProvider):
    op = oidc_provider
    gk.write_config(idp_profile(op))
    # stderr is no terminal here (the app's case): the code is also shown as a notification
    bin_dir, notes = gk.root / "bin", gk.root / "notifications"
    bin_dir.mkdir()
    notify = bin_dir / "notify-send"
    notify.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >>"{notes}"\necho >>"{notes}"\n')
    notify.chmod(0o755)
    r = login(gk, op, PATH=f"{bin_dir}{os.pathsep}{gk.vars['PATH']}")
    match = re.search(rf"open {re.escape(op.issuer)}/device and enter the code (\S+) ", r.err)
    assert match, r.err
    for _ in range(50):  # the notifier runs detached
        if notes.exists() and notes.read_text().endswith("\n"):
            break
        time.sleep(0.1)
    [note] = notes.read_text().splitlines()
    assert note.startswith("gatekey sign-in|")
    assert match.group(1) in note
    first = printed_token(gk.run(context="background"))
    c = claims(first)
    assert c["sub"] == "alice"
    assert c["client_id"] == PUBLIC_CLIENT
    assert c["aud"] == API_AUDIENCE
    assert c["iss"] == op.issuer
    before = op.token_requests()
    for ctx in ALL_CONTEXTS:
        run = gk.run(context=ctx) if ctx else gk.run()
        assert printed_token(run) == first, ctx_id(ctx)
        assert run.err == "", (ctx_id(ctx), run.err)
    # the identity-provider family's executable serves the same profile
    idp = gk.run(exe_name="gatekey-idp", context="background")
    assert printed_token(idp) == first
    assert op.token_requests() == before
    # Without gatekey's own cache, MSAL's persisted access token serves a silent run (it
    # outlives min_ttl), still with no request to the provider.
    drop_token_cache(gk)
    again = gk.run(context="scheduled-task")
    assert printed_token(again) == first
    assert again.err == ""
    assert op.token_requests() == before
    cache = read_msal(gk)
    assert_no_secrets(r.err + again.err, first, refresh_token(cache), *secrets_of(cache, "IdToken"))


def test_device_code_sign_in_from_an_interactive_no_argument_run(
    gk: Env, oidc_provider: OidcProvider
):
    """A person present and no sign-in yet: the no-argument run itself shows the device code
    and prints the token once approved."""
    gk.write_config(idp_profile(oidc_provider))
    r = device_sign_in(gk, oidc_provider, (), context="interactive")
    token = printed_token(r)
    assert claims(token)["sub"] == "alice"
    assert DEVICE_URL.search(r.err)
    assert printed_token(gk.run(context="background")) == token


@pytest.mark.slow
def test_device_code_sign_in_is_bounded_by_the_deadline(gk: Env, oidc_provider: OidcProvider):
    """Nobody approves the code: the sign-in gives up at timeouts.interactive (the code itself
    lives 10 minutes) with exit 4, as when the code expires. Both ways a person signs in:
    ``gatekey login`` (whose next step is entering the code in time, not the login just run:
    tests/blackbox/sources/test_login_experience.py) and an interactive no-argument run (whose
    next step is the login command)."""
    gk.write_config('[timeouts]\ninteractive = "2s"\n\n' + idp_profile(oidc_provider))
    for args, context in [(("login", "-p", "user"), None), ((), "interactive")]:
        before = oidc_provider.token_requests()
        r = gk.run(*args, context=context)
        # it waited (a second of the 2 s is kept for a clean exit 4), and ended by the deadline
        assert 0.9 < r.elapsed < ends_by(2)
        assert oidc_provider.token_requests() > before  # it did poll
        lines = r.err.splitlines()
        assert "enter the code" in lines[0]
        assert r.stdout == b""
        assert "Traceback" not in r.err
        assert r.code == 4, r.err
        if args:
            assert "enter the code and approve the sign-in in time" in lines[-1]
        else:
            assert "gatekey login -p user" in lines[-1]


@pytest.mark.parametrize("context", [*SILENT_CONTEXTS, None], ids=ctx_id)
@pytest.mark.parametrize("flow", ["device-code", "browser"])
def test_not_signed_in_silent_runs_exit_4_without_a_browser(
    gk: Env, oidc_provider: OidcProvider, browsers: Browsers, context: str | None, flow: str
):
    gk.write_config(idp_profile(oidc_provider, flow=flow))
    before = oidc_provider.requests_log()
    env = browsers.env(RECORDING_BROWSER)
    r = gk.run(context=context, **env) if context else gk.run(**env)
    r.assert_clean_failure(4)
    assert "gatekey login -p user" in r.err
    assert r.elapsed < deadline_of(context)  # the documented one: nothing to wait for
    assert browsers.launches() == []
    assert "https://" not in r.err  # no sign-in URL either
    # nothing but (at most) discovery: no device code was requested, no token
    after = oidc_provider.requests_log()[len(before) :]
    assert all(method == "GET" for method, _ in after), after


# ==============================================================================================
# 3. Browser: authorization code + PKCE with real headless Chromium
# ==============================================================================================
@pytest.mark.slow
def test_browser_login_with_headless_chromium(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    op = oidc_provider_auto
    gk.write_config(idp_profile(op, flow=None))  # browser is the default flow
    r = gk.run("--debug", "login", "-p", "user", **browsers.env())
    assert r.code == 0, r.err
    assert r.stdout == b""
    assert 'profile "user": signed in as alice@example.test' in r.err
    match = re.search(r"open (https://\S+)", r.err)
    assert match, r.err
    url = match.group(1)
    assert url.startswith(f"{op.issuer}/auth?")
    assert "code_challenge_method=S256" in url
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in url
    [launch] = browsers.launches()
    assert launch == f"headless {url}"
    assert r.elapsed < ends_by(deadline_of("interactive"))
    before = op.token_requests()
    token = printed_token(gk.run(context="background"))
    assert claims(token)["sub"] == "alice"
    assert op.token_requests() == before
    assert browsers.launches() == [launch]
    cache = read_msal(gk)
    assert_no_secrets(r.err, token, refresh_token(cache), *secrets_of(cache, "IdToken"))


@pytest.mark.slow
def test_browser_sign_in_from_an_interactive_no_argument_run(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    """No sign-in yet and a person present: the no-argument run opens the browser (detached:
    this run's stdout pipe closes when gatekey exits, with Chromium still running), prints the
    token, and later silent runs reuse it."""
    op = oidc_provider_auto
    gk.write_config(idp_profile(op, flow="browser"))
    r = gk.run(context="interactive", **browsers.env())
    token = printed_token(r)
    assert claims(token)["sub"] == "alice"
    assert re.search(rf"open {re.escape(op.issuer)}/auth\?\S+", r.err), r.err
    assert len(browsers.launches()) == 1
    assert r.elapsed < ends_by(deadline_of("interactive"))
    assert sessions_of(int(browsers.pidfile.read_text().split()[0])), "Chromium already gone?"
    for ctx in SILENT_CONTEXTS:
        assert printed_token(gk.run(context=ctx, **browsers.env())) == token
    assert len(browsers.launches()) == 1


@pytest.mark.slow
def test_browser_command_wins_over_BROWSER(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    op = oidc_provider_auto
    extra = f'browser_command = ["{HEADLESS_BROWSER}", "%s"]'
    gk.write_config(idp_profile(op, flow="browser", extra=extra))
    r = gk.run("login", "-p", "user", **browsers.env(RECORDING_BROWSER))
    assert r.code == 0, r.err
    [launch] = browsers.launches()
    assert launch.startswith(f"headless {op.issuer}/auth?")  # %s replaced by the URL, once
    assert launch.count("https://") == 1


@pytest.mark.slow
def test_browser_sign_in_is_bounded_by_the_deadline(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    """A browser that never completes the sign-in: login gives up at timeouts.interactive with
    exit 4 naming the login command; the URL was printed and the browser launched once, with
    the browser_command's own arguments around the URL."""
    op = oidc_provider_auto
    extra = f'browser_command = ["{RECORDING_BROWSER}", "--new-window", "%s", "--x"]'
    config = '[timeouts]\ninteractive = "3s"\n\n' + idp_profile(op, flow="browser", extra=extra)
    gk.write_config(config)
    r = gk.run("login", "-p", "user", **browsers.env(None))
    [launch] = browsers.launches()
    assert re.fullmatch(rf"recorded --new-window {re.escape(op.issuer)}/auth\?\S+ --x", launch)
    assert f"open {launch.split()[2]}" in r.err
    assert 1.5 < r.elapsed < ends_by(3)  # (a second of the 3 s is kept for a clean exit 4)
    assert r.stdout == b""
    assert r.code == 4, r.err
    assert r.err.splitlines()[-1].startswith("gatekey: ")
    assert "gatekey login -p user" in r.err.splitlines()[-1]
    assert "Traceback" not in r.err


@pytest.mark.slow
def test_browser_login_through_the_real_login_form(
    gk: Env, oidc_provider: OidcProvider, browsers: Browsers
):
    """playwright-core drives Chromium through the provider's login and consent pages."""
    op = oidc_provider
    gk.write_config(idp_profile(op, flow="browser"))
    r = gk.run("login", "-p", "user", **browsers.env(PW_BROWSER), PW_LOGIN_USER="bob")
    assert r.code == 0, r.err + browsers.log.read_text()
    assert 'profile "user": signed in as bob@example.test' in r.err
    [launch] = browsers.launches()
    assert launch.startswith(f"playwright {op.issuer}/auth?")
    token = printed_token(gk.run(context="background"))
    assert claims(token)["sub"] == "bob"


# ==============================================================================================
# 4. Silent refresh in a new process; rotation
# ==============================================================================================
@pytest.mark.slow
def test_silent_refresh_rotates_the_refresh_token(gk: Env, signed_in: OidcProvider):
    op = signed_in
    tokens = [printed_token(gk.run(context="background"))]
    rts = [refresh_token(read_msal(gk))]
    for context in ("background", "mid-session-refresh"):
        # gatekey's copy is stale, and MSAL's copy would not outlive min_ttl (10 m): the run
        # must redeem the refresh token (MSAL force_refresh), in one request, discovery cached.
        make_stale(gk)
        age_msal_access_token(gk, 400)
        log_before = op.requests_log()
        r = gk.run(context=context)
        token = printed_token(r)
        assert r.err == ""
        assert op.requests_log()[len(log_before) :] == [("POST", f"{op.issuer_path}/token")]
        assert token not in tokens
        assert claims(token)["sub"] == "alice"
        cache = read_msal(gk)
        assert refresh_token(cache) not in rts, "the refresh token did not rotate"
        assert secrets_of(cache, "AccessToken") == [token]
        tokens.append(token)
        rts.append(refresh_token(cache))
    # the old refresh tokens are dead at the provider (rotation), and nothing broke: the
    # newest one is what gatekey holds. Replaying an old one would revoke the grant, so the
    # check is left to test_replayed_refresh_token_revokes_the_grant.
    assert stat.S_IMODE(msal_path(gk).stat().st_mode) == 0o600


@pytest.mark.slow
def test_silent_refresh_when_msal_access_token_expired(gk: Env, signed_in: OidcProvider):
    op = signed_in
    printed_token(gk.run(context="background"))
    rt0 = refresh_token(read_msal(gk))
    make_expired(gk)
    age_msal_access_token(gk, -60)
    before = op.token_requests()
    r = gk.run(context="scheduled-task")
    token = printed_token(r)
    assert op.token_requests() == before + 1
    assert refresh_token(read_msal(gk)) != rt0
    # and the next silent run is a cache hit again
    assert printed_token(gk.run(context="background")) == token
    assert op.token_requests() == before + 1


def run_with_file_size_limit(gk: Env, limit: int, context: str) -> Result:
    """A no-argument run that cannot write any file larger than ``limit`` bytes (EFBIG: the
    rlimit, with SIGXFSZ ignored, which exec keeps), even as root."""

    def limit_writes() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = [exe()]
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(gk.vars, CLAUDE_HELPER_CONTEXT=context),
        cwd=gk.root,
        timeout=60,
        preexec_fn=limit_writes,  # the test process starts no threads
    )
    return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


@pytest.mark.slow
def test_refresh_that_cannot_be_saved_is_a_visible_error(gk: Env, signed_in: OidcProvider):
    """The refresh token rotated but the new one cannot be saved: the run says so (the next
    run will need a sign-in) rather than print a token as if all were well."""
    op = signed_in
    printed_token(gk.run(context="background"))
    make_expired(gk)
    age_msal_access_token(gk, -60)
    saved = msal_path(gk).read_bytes()
    assert len(saved) > 3000
    before = op.token_requests()
    r = run_with_file_size_limit(gk, 3000, "background")
    r.assert_clean_failure(1)
    assert "could not save the sign-in" in r.err
    assert op.token_requests() == before + 1
    assert msal_path(gk).read_bytes() == saved  # the old state, intact (atomic replace)


@pytest.mark.slow
def test_debug_runs_never_show_tokens(gk: Env, make_oidc_provider: Callable[..., OidcProvider]):
    """stdout exact and stderr free of every token, on every successful path, at --debug."""
    op = make_oidc_provider()
    gk.write_config(idp_profile(op))
    errs = [login(gk, op, "--debug").err]
    hit = gk.run("--debug", context="background", GATEKEY_NO_FASTPATH="1")
    printed_token(hit)
    errs.append(hit.err)
    drop_token_cache(gk)
    msal_hit = gk.run("--debug", context="background")
    printed_token(msal_hit)
    errs.append(msal_hit.err)
    rt_before = refresh_token(read_msal(gk))
    make_stale(gk)
    age_msal_access_token(gk, 400)
    refreshed = gk.run("--debug", context="mid-session-refresh")
    printed_token(refreshed)
    errs.append(refreshed.err)
    assert "debug" in "".join(errs).lower()
    cache = read_msal(gk)
    secrets = [
        hit.out.strip(),
        refreshed.out.strip(),
        rt_before,
        refresh_token(cache),
        *secrets_of(cache, "IdToken"),
    ]
    for err in errs:
        assert_no_secrets(err, *secrets)


# ==============================================================================================
# 5. Revoked grant
# ==============================================================================================
@pytest.mark.slow
def test_revoked_refresh_token_exits_4_and_drops_the_account(gk: Env, signed_in: OidcProvider):
    op = signed_in
    printed_token(gk.run(context="background"))
    revoke(op, refresh_token(read_msal(gk)))
    make_expired(gk)
    age_msal_access_token(gk, -60)
    before = op.token_requests()
    r = gk.run(context="background")
    r.assert_clean_failure(4)
    # one line: why, and the command to run
    [error] = r.err.splitlines()
    assert "no longer accepts the saved sign-in (invalid_grant)" in error
    assert "gatekey login -p user" in error
    assert r.elapsed < deadline_of("background")  # the answer ended it, not the deadline
    assert op.token_requests() == before + 1  # one refresh attempt, no loop
    # the account is dropped: MSAL's state holds no refresh token or account any more
    cache = read_msal(gk)
    assert not secrets_of(cache, "RefreshToken")
    assert not cache.get("Account")
    # a later silent run (after the backoff) asks nobody and says the same
    forget_failures(gk)
    again = gk.run(context="scheduled-task")
    again.assert_clean_failure(4)
    assert "gatekey login -p user" in again.err
    assert op.token_requests() == before + 1
    # and a new login works again
    login(gk, op)
    printed_token(gk.run(context="background"))


@pytest.mark.slow
def test_replayed_refresh_token_revokes_the_grant(gk: Env, signed_in: OidcProvider):
    """Rotation made the old refresh token dead; replaying it makes the provider revoke the
    whole grant; gatekey's next refresh then exits 4 with the login hint, once."""
    op = signed_in
    printed_token(gk.run(context="background"))
    rt0 = refresh_token(read_msal(gk))
    make_stale(gk)
    age_msal_access_token(gk, 400)
    printed_token(gk.run(context="background"))
    assert refresh_token(read_msal(gk)) != rt0
    assert replay(op, rt0)["error"] == "invalid_grant"
    make_expired(gk)
    age_msal_access_token(gk, -60)
    before = op.token_requests()
    r = gk.run(context="mid-session-refresh")
    r.assert_clean_failure(4)
    assert "invalid_grant" in r.err
    assert "gatekey login -p user" in r.err.splitlines()[-1]
    assert op.token_requests() == before + 1


# ==============================================================================================
# 6. Logout
# ==============================================================================================
@pytest.mark.slow
@pytest.mark.parametrize("all_accounts", [False, True], ids=["one", "all"])
def test_logout_then_silent_runs_exit_4(gk: Env, signed_in: OidcProvider, all_accounts: bool):
    op = signed_in
    printed_token(gk.run(context="background"))
    args = ["logout", "-p", "user", *(["--all"] if all_accounts else [])]
    r = gk.run(*args)
    assert r.code == 0, r.err
    assert r.stdout == b""
    assert 'profile "user": signed out' in r.err
    assert token_files(gk) == []
    before = op.token_requests()
    for ctx in ("background", "mid-session-refresh"):
        out = gk.run(context=ctx)
        out.assert_clean_failure(4)
        assert "gatekey login -p user" in out.err
    assert op.token_requests() == before
    # logging out twice is harmless
    r = gk.run(*args)
    assert r.code == 0, r.err
    assert 'profile "user": was not signed in' in r.err


# ==============================================================================================
# 7. Where the sign-in is kept: the Secret Service, or a file when there is none
# ==============================================================================================
def keychain_state(bus: str) -> dict[str, Any] | None:
    """gatekey's saved sign-in from the Secret Service (service gatekey-idp), reassembled from
    its chunks (manifest ``gatekey-chunked:v1:{gen, n, sha256}``), via secretstorage."""
    import secretstorage
    from jeepney.io.blocking import open_dbus_connection

    conn = open_dbus_connection(bus=bus)
    try:
        collection = secretstorage.get_default_collection(conn)
        items = {
            item.get_attributes()["username"]: item.get_secret().decode()
            for item in collection.search_items({"service": "gatekey-idp"})
        }
    finally:
        conn.close()
    heads = [name for name in items if "#gatekey-chunk-" not in name]
    if not heads:
        return None
    [head] = heads
    value = items[head]
    prefix = "gatekey-chunked:v1:"
    if value.startswith(prefix):
        manifest = json.loads(value[len(prefix) :])
        value = "".join(
            items[f"{head}#gatekey-chunk-{manifest['gen']}-{i}"] for i in range(manifest["n"])
        )
    state: dict[str, Any] = json.loads(value)
    return state


@pytest.mark.slow
@pytest.mark.keychain
def test_sign_in_kept_in_the_secret_service(
    secret_service: Env, make_oidc_provider: Callable[..., OidcProvider]
):
    gk = secret_service
    # Access tokens living 299 s are expired for MSAL (it wants 5 minutes), so every run that
    # gets past gatekey's cache redeems the refresh token kept in the keychain.
    op = make_oidc_provider(AT_TTL="299")
    gk.write_config(idp_profile(op, token_cache=None, min_ttl="4m"))
    r = login(gk, op)
    assert "warning" not in r.err
    assert not list((gk.cache_dir / "msal").glob("*")), "the sign-in must not be in a file"
    state = keychain_state(gk.vars["DBUS_SESSION_BUS_ADDRESS"])
    assert state is not None
    rt0 = refresh_token(json.loads(state["msal"]))
    first = printed_token(gk.run(context="background"))
    for path in gk.cache_dir.rglob("*"):
        if path.is_file():
            assert rt0 not in path.read_text(errors="replace"), path
    make_expired(gk)
    before = op.token_requests()
    r = gk.run(context="background")
    token = printed_token(r)
    assert r.err == ""
    assert token != first
    assert op.token_requests() == before + 1
    state = keychain_state(gk.vars["DBUS_SESSION_BUS_ADDRESS"])
    assert state is not None
    assert refresh_token(json.loads(state["msal"])) != rt0
    assert not list((gk.cache_dir / "msal").glob("*"))
    # logout removes it from the keychain
    assert gk.run("logout", "-p", "user").code == 0
    state = keychain_state(gk.vars["DBUS_SESSION_BUS_ADDRESS"])
    assert state is None or not json.loads(state["msal"]).get("RefreshToken")


@pytest.mark.slow
def test_no_secret_service_falls_back_to_a_file_with_a_warning(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider]
):
    op = make_oidc_provider()
    gk.write_config(idp_profile(op, token_cache=None))  # keychain, the default
    assert "DBUS_SESSION_BUS_ADDRESS" not in gk.vars
    r = login(gk, op)
    warnings = [line for line in r.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, r.err
    assert "file" in warnings[0]
    assert 'token_cache = "file"' in warnings[0]
    assert stat.S_IMODE(msal_path(gk).stat().st_mode) == 0o600
    rt0 = refresh_token(read_msal(gk))
    make_stale(gk)
    age_msal_access_token(gk, 400)
    before = op.token_requests()
    r = gk.run(context="background")
    printed_token(r)
    assert op.token_requests() == before + 1
    assert refresh_token(read_msal(gk)) != rt0
    assert len([line for line in r.err.splitlines() if "warning" in line]) == 1, r.err
    assert "file" in r.err


def test_status_shows_the_file_fallback(gk: Env, oidc_provider: OidcProvider):
    """The issue: the file fallback without a Secret Service is "visible in status"."""
    gk.write_config(idp_profile(oidc_provider, token_cache=None))
    login(gk, oidc_provider)
    assert msal_path(gk).exists()  # the sign-in is in a file ...
    r = gk.run("status", "--json")
    assert r.code == 0, r.err
    [row] = json.loads(r.stdout)["profiles"]
    sign_in = row["storage"].split("sign-in", 1)[1]
    assert "file" in sign_in, row  # ... and status must say so
    assert "keychain" not in sign_in, row


# ==============================================================================================
# 8. token = "id"
# ==============================================================================================
def test_id_token(gk: Env, oidc_provider: OidcProvider):
    op = oidc_provider
    gk.write_config(idp_profile(op, extra='token = "id"'))
    login(gk, op)
    token = printed_token(gk.run(context="background"))
    c = claims(token)
    assert c["aud"] == PUBLIC_CLIENT
    assert c["iss"] == op.issuer
    assert c["sub"] == "alice"
    assert token in secrets_of(read_msal(gk), "IdToken")


def test_id_token_after_gatekeys_cache_is_gone_is_redeemed_anew(
    gk: Env, oidc_provider: OidcProvider
):
    """MSAL answers silent calls from its cache with access tokens only, so an ID token that
    gatekey no longer has is obtained with one refresh-token grant (never an error)."""
    op = oidc_provider
    gk.write_config(idp_profile(op, extra='token = "id"'))
    login(gk, op)
    printed_token(gk.run(context="background"))
    drop_token_cache(gk)
    before = op.token_requests()
    r = gk.run(context="background")
    assert r.err == ""
    claims = json.loads(base64.urlsafe_b64decode(printed_token(r).split(".")[1] + "=="))
    assert claims["aud"] == "public-client"
    assert op.token_requests() == before + 1


def test_id_token_refreshed_in_the_refresh_window(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider]
):
    """gatekey's ID token is inside the refresh window while MSAL still holds a usable access
    token: the run must get a new ID token (one refresh), not fail over to the old one."""
    op = make_oidc_provider()
    gk.write_config(idp_profile(op, extra='token = "id"'))
    login(gk, op)
    first = printed_token(gk.run(context="background"))
    make_stale(gk)
    age_msal_access_token(gk, 400)
    time.sleep(1.1)  # ID tokens issued in the same second as the first one are byte-identical
    before = op.token_requests()
    r = gk.run(context="background")
    token = printed_token(r)
    assert r.err == ""
    assert token != first
    assert op.token_requests() == before + 1


# ==============================================================================================
# 9. Configuration errors
# ==============================================================================================
@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("issuer", 'issuer = "http://127.0.0.1:1/oidc"'), "issuer"),
        (("issuer", 'issuer = "https://127.0.0.1:1"'), "issuer"),
        (("issuer", 'issuer = "https://127.0.0.1:1/"'), "issuer"),
        (("scopes", 'scopes = ["openid", "api.read"]'), "scopes"),
        (("scopes", 'scopes = ["api.read", "offline_access"]'), "scopes"),
        (("flow", 'flow = "client-credentials"'), "client_secret"),
        (("flow", 'flow = "password"'), "flow"),
        (("token_cache", 'token_cache = "plaintext"'), "token_cache"),
    ],
    ids=[
        "http-issuer",
        "issuer-without-path",
        "issuer-root-slash",
        "scope-openid",
        "scope-offline_access",
        "cc-without-secret",
        "unknown-flow",
        "unknown-token-cache",
    ],
)
def test_config_errors(gk: Env, oidc_provider: OidcProvider, change: tuple[str, str], key: str):
    lines = idp_profile(oidc_provider).splitlines()
    name, line = change
    lines = [line if entry.startswith(f"{name} =") else entry for entry in lines]
    gk.write_config("\n".join(lines) + "\n")
    before = oidc_provider.requests_log()
    for args in [(), ("login", "-p", "user")]:
        r = gk.run(*args, context="background")
        r.assert_clean_failure(78)
        assert f'key "{key}"' in r.err, r.err
        assert 'profile "user"' in r.err
    assert oidc_provider.requests_log() == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('authorize_params = { state = "x" }', "state"),
        ('authorize_params = { redirect_uri = "https://evil.test" }', "redirect_uri"),
        ('authorize_params = { login_hint = "bob" }', "use the login_hint key"),
        ('audience = "a"\nauthorize_params = { audience = "b" }', "keep the audience key"),
        ("authorize_params = { prompt = 1 }", 'entry "prompt" must be a string'),
    ],
    ids=["state", "redirect_uri", "login_hint", "audience-twice", "not-a-string"],
)
def test_authorize_params_the_flow_owns_are_refused(
    gk: Env, oidc_provider: OidcProvider, extra: str, named: str
):
    gk.write_config(idp_profile(oidc_provider, flow="browser", extra=extra))
    for args in [("config", "validate"), ("login", "-p", "user")]:
        r = gk.run(*args, context="background")
        r.assert_clean_failure(78)
        assert 'key "authorize_params"' in r.err, r.err
        assert named in r.err


def test_entra_authority_host_must_be_https(gk: Env, entra_provider: OidcProvider):
    profile = idp_profile(entra_provider, kind="entra")
    gk.write_config(profile.replace('authority_host = "https://', 'authority_host = "http://'))
    r = gk.run(context="background")
    r.assert_clean_failure(78)
    assert 'key "authority_host"' in r.err


@pytest.mark.parametrize(
    "line",
    ['issuer = "https://127.0.0.1:1"', 'scopes = ["openid"]', 'flow = "client-credentials"'],
)
def test_config_validate_catches_idp_errors(gk: Env, oidc_provider: OidcProvider, line: str):
    name = line.split(" ", 1)[0]
    lines = idp_profile(oidc_provider).splitlines()
    lines = [line if entry.startswith(f"{name} =") else entry for entry in lines]
    gk.write_config("\n".join(lines) + "\n")
    assert gk.run(context="background").code == 78
    r = gk.run("config", "validate")
    assert r.code == 78, r.err


@pytest.mark.slow
def test_browser_sign_in_url_carries_audience_resource_and_authorize_params(
    gk: Env, oidc_provider_auto: OidcProvider, browsers: Browsers
):
    """Auth0-style providers need ``audience`` on the authorize URL, not only on token
    requests; ``authorize_params`` add anything else. The provider receives them on its
    authorize endpoint, the sign-in completes, and the token is for the requested API."""
    op = oidc_provider_auto
    extra = (
        'audience = "https://api.example.test"\nresource = "https://api.example.test"\n'
        'authorize_params = { ui_locales = "de", organization = "org 1&2" }\n'
    )
    gk.write_config(idp_profile(op, flow="browser", extra=extra))
    before = len(op.requests_log())
    r = gk.run("login", "-p", "user", **browsers.env())
    assert r.code == 0, r.err
    [auth] = [
        parse_qs(urlsplit(path).query)
        for method, path in op.requests_log()[before:]
        if method == "GET" and urlsplit(path).path == f"{op.issuer_path}/auth"
    ]
    assert auth["audience"] == ["https://api.example.test"]
    assert auth["resource"] == ["https://api.example.test"]
    assert auth["ui_locales"] == ["de"]
    assert auth["organization"] == ["org 1&2"]  # encoded, not spliced into the URL
    assert auth["code_challenge_method"] == ["S256"]
    assert auth["response_mode"] == ["form_post"]
    token = printed_token(gk.run(context="background"))
    assert claims(token)["aud"] == "https://api.example.test"


# ==============================================================================================
# Entra-style authority: the user flows too
# ==============================================================================================
@pytest.mark.slow
def test_entra_device_code_and_refresh(gk: Env, entra_provider: OidcProvider):
    op = entra_provider
    gk.write_config(idp_profile(op, kind="entra"))
    login(gk, op)
    first = printed_token(gk.run(context="background"))
    assert claims(first)["iss"] == op.issuer
    make_stale(gk)
    age_msal_access_token(gk, 400)
    before = op.token_requests()
    token = printed_token(gk.run(context="background"))
    assert token != first
    assert op.token_requests() == before + 1


# ==============================================================================================
# Contexts after sign-in
# ==============================================================================================
def test_mid_session_refresh_gets_a_new_token(gk: Env, signed_in: OidcProvider):
    """mid-session-refresh: the app's token was just rejected. gatekey bypasses its own cache
    (the token is older than 60 s), and must not hand back the very same token from MSAL's."""
    op = signed_in
    first = printed_token(gk.run(context="background"))
    now = time.time()
    gk.edit_entry(obtained_at=now - 120, expires_at=now + 3480)  # fresh, not recent
    before = op.token_requests()
    token = printed_token(gk.run(context="mid-session-refresh"))
    assert token != first
    assert op.token_requests() == before + 1


# ==============================================================================================
# Extra token-request parameters (oidc): resource (RFC 8707) and audience
# ==============================================================================================
@pytest.mark.parametrize("flow", ["client-credentials", "device-code"])
def test_flows_work_with_resource_and_audience_set(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], flow: str
):
    """The parameters ride along on every token request (test_idp_unit shows them in the
    request body); the provider accepts them, so every flow still signs in and refreshes."""
    op = make_oidc_provider()
    extra = 'resource = "https://api.example.test"\naudience = "https://api.example.test"\n'
    if flow == "client-credentials":
        gk.write_config(
            idp_profile(
                op,
                flow=flow,
                client_id="conf-client",
                extra=extra + 'client_secret = { env = "CONF_SECRET" }\n',
            )
        )
        r = gk.run(context="background", CONF_SECRET="conf-secret")
    else:
        gk.write_config(idp_profile(op, flow=flow, extra=extra))
        assert device_sign_in(gk, op, ("login", "-p", "user")).code == 0
        make_stale(gk)
        age_msal_access_token(gk, 400)
        r = gk.run(context="background")  # the refresh-token grant, with the parameters
    assert r.code == 0, r.err
    claims = json.loads(base64.urlsafe_b64decode(printed_token(r).split(".")[1] + "=="))
    assert claims["aud"] == "https://api.example.test"
