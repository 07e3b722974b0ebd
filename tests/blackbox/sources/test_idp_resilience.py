"""Resilience of the identity-provider sources (``oidc`` / ``entra``), black box.

The installed ``gatekey`` runs as the app runs it (no arguments, stdin closed, a
CLAUDE_HELPER_CONTEXT) against the real OpenID provider (node-oidc-provider over HTTPS, see
support/oidc_peer.py) and against ``support/faulty_idp.py``: an HTTPS server on 127.0.0.1 that
forwards to the real provider until it is told to fail (HTTP 500, hang after TLS, hang before
TLS) or is stopped (connection refused).

What is covered:
1. no usable sign-in in a non-interactive context: exit 4 at once, naming
   ``gatekey login -p user``; no browser, no notification, no device code;
2. IdP down / hanging / answering 500: a still-valid cached token is printed with one warning,
   otherwise exit 75 within the context's deadline; the negative cache spares the IdP;
3. 16 processes at once on an expired token: one token request, one token for all, no
   ``invalid_grant`` (client credentials, and a public client whose refresh token rotates);
4. TLS: the profile's ``ca_bundle`` wins over REQUESTS_CA_BUNDLE & co; an untrusted CA is exit
   75 naming TLS and ca_bundle; ``http://`` issuers are a config error;
5. discovery is cached: a later refresh is one POST to the token endpoint;
6. no access, ID or refresh token on stderr, also at ``--debug``, on success and failure paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import certifi
import pytest
import requests

from blackbox_env import Env, Result, exe
from deadlines import EARLY_S, HARNESS_S, asks_allowed, deadline_of, ends_by
from faulty_idp import FaultyIdp
from oidc_peer import PUBLIC_CLIENT, OidcProvider, approve

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

# Short budgets keep the hanging-IdP tests fast; each context has its own so that a test can
# tell which one bounded the run. Only runs that wait out their deadline get them: a run that
# must finish some work (a TLS handshake, an answer to read, a sign-in) gets the documented
# deadlines (no [timeouts]), so that a busy machine cannot make it miss one. Time margins:
# tests/support/deadlines.py.
SILENT_S, MID_S, INTERACTIVE_S = 1.0, 2.0, 30.0
FAST_TIMEOUTS = (
    f'[timeouts]\nsilent = "{SILENT_S:g}s"\nmid_session_refresh = "{MID_S:g}s"\n'
    f'interactive = "{INTERACTIVE_S:g}s"\n'
)
NON_INTERACTIVE = ("mid-session-refresh", "scheduled-task", "setup-test", "background", None)
LAUNCHERS = (
    "xdg-open",
    "gio",
    "x-www-browser",
    "www-browser",
    "sensible-browser",
    "firefox",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "notify-send",
    "osascript",
    "recording-browser",
)
LOGIN_URL = re.compile(r"\(or open (\S+)\)")
N = 16


def ctx_id(ctx: str | None) -> str:
    return ctx or "unset"


def fast_deadline(ctx: str | None) -> float:
    """The deadline of ``ctx`` under FAST_TIMEOUTS."""
    if ctx == "interactive":
        return INTERACTIVE_S
    return MID_S if ctx == "mid-session-refresh" else SILENT_S


# --- profiles ------------------------------------------------------------------------------------
def oidc_profile(
    issuer: str,
    *,
    name: str = "user",
    flow: str = "device-code",
    ca: str | None = None,
    extra: str = "",
) -> str:
    lines = [f"[profiles.{name}]", 'source = "oidc"', f'issuer = "{issuer}"']
    if flow == "client-credentials":
        lines += ['client_id = "conf-client"', 'client_secret = { env = "CONF_SECRET" }']
    else:
        lines += [f'client_id = "{PUBLIC_CLIENT}"', 'token_cache = "file"']
    lines += ['scopes = ["api.read"]', f'flow = "{flow}"', 'min_ttl = "10m"']
    if ca is not None:
        lines.append(f'ca_bundle = "{ca}"')
    return "\n".join(lines) + "\n" + extra


def use_client_credentials(gk: Env, issuer: str, ca: str | None, timeouts: str = "") -> None:
    gk.vars["CONF_SECRET"] = "conf-secret"
    gk.write_config(timeouts + oidc_profile(issuer, name="svc", flow="client-credentials", ca=ca))


def use_public_client(gk: Env, issuer: str, ca: str, timeouts: str = "") -> None:
    gk.write_config(timeouts + oidc_profile(issuer, ca=ca))


# --- cache states ------------------------------------------------------------------------------
def prime(gk: Env) -> str:
    """One successful run (with a person's budget); returns the token it printed."""
    r = gk.run(context="interactive")
    assert r.code == 0, r.err
    assert r.err == ""
    return r.out.rstrip("\n")


def cached_token(gk: Env) -> str:
    return str(json.loads(gk.entry_path().read_text())["token"])


def make_stale(gk: Env) -> None:
    """Still valid for 5 min, below min_ttl (10 min), not obtained recently: refresh, or serve."""
    now = time.time()
    gk.edit_entry(expires_at=now + 300, obtained_at=now - 3300)


def make_expired(gk: Env) -> None:
    now = time.time()
    gk.edit_entry(expires_at=now - 100, obtained_at=now - 3700)


def forget_failures(gk: Env) -> None:
    gk.forget_failures()


def msal_state(gk: Env) -> dict:
    """MSAL's serialized cache for the (only) signed-in profile (token_cache = "file")."""
    files = sorted((gk.cache_dir / "msal").glob("*.json"))
    assert len(files) == 1, files
    blob = json.loads(json.loads(files[0].read_text())["blob"])
    return dict(json.loads(blob["msal"]))


def msal_secrets(gk: Env, section: str) -> set[str]:
    return {str(item["secret"]) for item in msal_state(gk).get(section, {}).values()}


# --- processes -----------------------------------------------------------------------------------
def sign_in(gk: Env, ca: str, *flags: str, rewrite: tuple[str, str] | None = None) -> Result:
    """``gatekey [flags] login -p user`` with the device code approved as alice, as a person
    would: read stderr until the verification link appears, then submit the provider's forms.
    ``rewrite``: (origin seen, origin to approve at), when gatekey talks through a proxy."""
    argv = [exe(), *flags, "login", "-p", "user"]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(gk.vars),
        cwd=gk.root,
    )
    assert proc.stderr is not None
    seen: list[bytes] = []
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            match = LOGIN_URL.search(line.decode("utf-8", "replace"))
            if match:
                url = match.group(1)
                if rewrite:
                    url = url.replace(*rewrite)
                approve(url, ca)
                break
        out, rest = proc.communicate(timeout=HARNESS_S)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    result = Result(argv, proc.returncode, out, b"".join(seen) + rest, time.monotonic() - t0)
    assert result.code == 0, result.err
    assert "signed in as alice" in result.err
    return result


def run_together(
    gk: Env, contexts: list[str | None], *args: str, **extra: str
) -> list[tuple[int, str, str, float]]:
    """Start one gatekey per entry of ``contexts`` at once; outputs decoded."""
    return [
        (code, out.decode(), err.decode(), t)
        for code, out, err, t in gk.run_together(contexts, *args, **extra)
    ]


def recording_launchers(gk: Env) -> Path:
    """$BROWSER and every opener gatekey (or Python's webbrowser) could fall back to, on PATH,
    replaced by a script that appends its name and arguments to a marker file. Returns it."""
    bindir = gk.root / "launchers"
    bindir.mkdir(exist_ok=True)
    marker = gk.root / "launched.txt"
    script = f'#!/bin/sh\necho "$(basename "$0") $*" >>"{marker}"\nexit 0\n'
    for name in LAUNCHERS:
        path = bindir / name
        path.write_text(script)
        path.chmod(0o755)
    gk.vars["BROWSER"] = str(bindir / "recording-browser")
    gk.vars["PATH"] = f"{bindir}{os.pathsep}{gk.vars.get('PATH', os.defpath)}"
    return marker


def launched(marker: Path, until: Callable[[str], bool] | None = None) -> str:
    """What was launched. Detached launchers may write just after gatekey exits: with
    ``until``, wait for the record to satisfy it (up to a silent run's documented deadline, so
    that a slow machine only makes it wait longer); without, give them 0.3 s (a check that
    nothing was launched cannot wait for nothing to happen)."""
    if until is None:
        time.sleep(0.3)
        return marker.read_text() if marker.exists() else ""
    deadline = time.monotonic() + deadline_of("background")
    while True:
        record = marker.read_text() if marker.exists() else ""
        if until(record) or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def assert_one_line_failure(r: Result, code: int, *fragments: str) -> None:
    r.assert_clean_failure(code)
    assert r.err.count("\n") == 1, r.err
    for fragment in fragments:
        assert fragment in r.err, f"{fragment!r} not in {r.err!r}"
    assert "to see what it is waiting for" not in r.err  # a real cause, not the watchdog's


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def faulty(oidc_provider: OidcProvider, oidc_tls: dict[str, str]) -> Iterator[FaultyIdp]:
    """A misbehaving IdP in front of the shared provider (starts in proxy mode)."""
    idp = FaultyIdp(oidc_tls, upstream=oidc_provider.origin, upstream_ca=oidc_tls["ca"])
    yield idp
    idp.stop()


@pytest.fixture
def other_ca(tmp_path: Path) -> str:
    """A valid CA bundle that does not contain the test CA (a fresh trustme CA)."""
    import trustme

    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


# ================================================================================================
# 1. No usable sign-in, nobody present: exit 4 at once, no browser, no device code
# ================================================================================================
@pytest.mark.parametrize("ctx", NON_INTERACTIVE, ids=ctx_id)
@pytest.mark.parametrize("flow", ["browser", "device-code"])
def test_not_signed_in_silently_exits_4_without_a_browser(
    gk: Env, oidc_provider: OidcProvider, flow: str, ctx: str | None
):
    """Default deadlines (10 s / 15 s): the answer must come inside them (it has nothing to wait
    for), without opening a browser, a notification, or asking the provider for a device code."""
    marker = recording_launchers(gk)
    gk.write_config(oidc_profile(oidc_provider.issuer, flow=flow, ca=oidc_provider.ca))
    log_before = len(oidc_provider.requests_log())
    r = gk.run(context=ctx)
    assert_one_line_failure(r, 4, "gatekey login -p user", "not signed in")
    assert r.elapsed < deadline_of(ctx), f"{r.elapsed:.1f} s: not 'at once'"
    lowered = r.err.lower()
    for leak in ("enter the code", "user_code", "/device", "open http", "to sign in to profile"):
        assert leak not in lowered, r.err
    assert launched(marker) == ""
    asked = [p for _, p in oidc_provider.requests_log()[log_before:]]
    assert not [p for p in asked if "/device" in p or p.split("?")[0].endswith("/auth")], asked


def unfinished_browser_sign_in(gk: Env, issuer: str, ca: str) -> tuple[Result, Path]:
    """An interactive run with flow browser that nobody completes (interactive = 2s)."""
    marker = recording_launchers(gk)
    gk.write_config(
        '[timeouts]\ninteractive = "2s"\n' + oidc_profile(issuer, flow="browser", ca=ca)
    )
    r = gk.run(context="interactive")
    return r, marker


def test_recording_browser_does_record_an_interactive_sign_in(gk: Env, oidc_provider: OidcProvider):
    """Control for the test above: in the interactive context the same setup launches
    $BROWSER (with the authorization URL), so 'nothing recorded' there means something."""
    r, marker = unfinished_browser_sign_in(gk, oidc_provider.issuer, oidc_provider.ca)
    record = launched(marker, until=lambda t: "recording-browser " in t and "notify-send " in t)
    assert r.code != 0
    assert r.stdout == b""
    assert r.elapsed < ends_by(2)  # its interactive = "2s"
    browsers = [line for line in record.splitlines() if line.startswith("recording-browser ")]
    assert len(browsers) == 1, record
    assert browsers[0].startswith(f"recording-browser {oidc_provider.issuer}/auth?"), record
    # and, with no terminal, a desktop notification carrying the same URL
    assert any(line.startswith("notify-send ") for line in record.splitlines()), record
    assert "to sign in to profile user, open https://127.0.0.1:" in r.err  # the fallback URL


def test_unfinished_browser_sign_in_is_exit_4_not_an_internal_error(
    gk: Env, oidc_provider: OidcProvider
):
    """Regression: at 367e911 MSAL's BrowserInteractionTimeoutError escaped _browser and the
    run ended in 'internal error', exit 1."""
    r, _ = unfinished_browser_sign_in(gk, oidc_provider.issuer, oidc_provider.ca)
    assert r.code == 4, r.err
    assert r.stdout == b""
    assert "internal error" not in r.err
    assert "Traceback" not in r.err
    last = r.err.splitlines()[-1]
    assert "did not finish" in last
    assert "gatekey login -p user" in last
    assert r.elapsed < ends_by(2)  # its interactive = "2s"


# ================================================================================================
# 2. IdP down, hanging, answering 500
# ================================================================================================
FAILURE_TEXT = {
    "down": "cannot reach 127.0.0.1:",
    "500": "answered HTTP 500",
    "hang": "did not answer within",
    "hang-tcp": "did not answer within",
}
OUTAGE_CASES = [
    pytest.param(
        mode,
        state,
        ctx,
        id=f"{mode}-{state}-{ctx_id(ctx)}",
        marks=[pytest.mark.slow] if mode.startswith("hang") else [],
    )
    for mode, state, ctx in [
        (mode, state, ctx)
        for mode in ("down", "500", "hang-tcp")
        for state, ctx in (
            ("stale", "background"),
            ("stale", "mid-session-refresh"),
            ("expired", "background"),
            ("expired", "mid-session-refresh"),
            ("none", "scheduled-task"),
            ("none", "setup-test"),
            ("none", None),
        )
    ]
    + [
        ("hang", "stale", "background"),
        ("hang", "expired", "mid-session-refresh"),
        ("hang", "none", "background"),
    ]
]


def break_idp(idp: FaultyIdp, mode: str) -> None:
    if mode == "down":
        idp.stop()  # nothing listens on its port any more: connection refused
    else:
        idp.mode = mode


def check_elapsed(r: Result, mode: str, ctx: str | None) -> None:
    if mode.startswith("hang"):
        # bounded by this context's own budget (FAST_TIMEOUTS), not another's
        limit = fast_deadline(ctx)
        assert limit - EARLY_S < r.elapsed < ends_by(limit), f"{r.elapsed:.2f} s for {limit} s"
    else:
        limit = deadline_of(ctx)  # documented: the refusal or the 500 ends the run, not this
        assert r.elapsed < limit, f"{r.elapsed:.2f} s: a refused/500 answer should end at once"


@pytest.mark.parametrize(("mode", "state", "ctx"), OUTAGE_CASES)
def test_idp_outage(gk: Env, faulty: FaultyIdp, mode: str, state: str, ctx: str | None):
    """Short deadlines (FAST_TIMEOUTS) where the IdP hangs; the documented ones where it
    answers 500 or refuses, so that it is that answer, not a deadline, which ends the run."""
    timeouts = FAST_TIMEOUTS if mode.startswith("hang") else ""
    use_client_credentials(gk, faulty.issuer, faulty.tls_ca, timeouts)
    token = None
    if state != "none":
        token = prime(gk)  # also caches the discovery document: the next run goes to /token
        (make_stale if state == "stale" else make_expired)(gk)
    before, connections = len(faulty.requests), faulty.connections
    break_idp(faulty, mode)
    r = gk.run(context=ctx)
    check_elapsed(r, mode, ctx)
    if state == "stale":
        assert r.code == 0, r.err
        assert r.stdout == f"{token}\n".encode()
        assert r.err.count("\n") == 1, r.err
        # The fetch gives up at the deadline, or (when starting up took part of it, on a busy
        # machine) the watchdog does first: the same outcome, each saying which it was.
        watchdog = "did not answer within the background time limit" in r.err
        if not watchdog:
            assert r.err.startswith("gatekey: warning: could not refresh"), r.err
            assert FAILURE_TEXT[mode] in r.err
        assert r.err.startswith("gatekey: warning: "), r.err
        assert "printing the cached token, which expires in" in r.err
    else:
        assert_one_line_failure(r, 75, FAILURE_TEXT[mode], 'profile "svc"')
    # what reached the IdP: one attempt, no retry storm within the run
    discovery = ("GET", f"{faulty.issuer_path}/.well-known/openid-configuration")
    token_request = ("POST", f"{faulty.issuer_path}/token")
    asked = faulty.requests[before:]
    if mode == "500":  # discovery is answered, the token endpoint is not
        assert asked == ([discovery] if state == "none" else []) + [token_request]
    elif mode == "hang":
        assert asked == [discovery if state == "none" else token_request]
    elif mode == "hang-tcp":
        assert (asked, faulty.connections - connections) == ([], 1)
    assert "Traceback" not in r.err


@pytest.mark.slow
def test_hang_before_tls_in_the_interactive_context_reports_what_happened(
    gk: Env, oidc_tls: dict[str, str]
):
    with FaultyIdp(oidc_tls, mode="hang-tcp") as idp:  # no upstream needed: it never answers
        use_client_credentials(gk, idp.issuer, idp.tls_ca, FAST_TIMEOUTS)
        r = gk.run(context="interactive")
    assert_one_line_failure(r, 75, "did not complete a connection")
    assert r.elapsed < INTERACTIVE_S - 5  # it gave up at the 5 s connect timeout...
    assert f"time limit ({INTERACTIVE_S:g} s)" not in r.err  # ...so it must not blame the limit


def test_fresh_token_is_served_while_the_idp_is_down(gk: Env, faulty: FaultyIdp):
    use_client_credentials(gk, faulty.issuer, faulty.tls_ca)
    token = prime(gk)
    faulty.stop()
    r = gk.run(context="background")
    assert (r.code, r.out, r.err) == (0, f"{token}\n", "")


def test_real_provider_stopped(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], oidc_tls: dict[str, str]
):
    """The real provider process gone (connection refused): stale → served with one warning;
    expired → 75 at once; nothing cached at all → 75 at once."""
    op = make_oidc_provider()
    use_client_credentials(gk, op.issuer, op.ca)
    token = prime(gk)
    op.stop()
    make_stale(gk)
    r = gk.run(context="background")
    assert (r.code, r.out) == (0, f"{token}\n"), r.err
    assert r.err.count("\n") == 1
    assert "could not refresh" in r.err
    assert f"cannot reach 127.0.0.1:{op.port}" in r.err
    forget_failures(gk)
    make_expired(gk)
    r = gk.run(context="mid-session-refresh")
    assert_one_line_failure(r, 75, f"cannot reach 127.0.0.1:{op.port}", "check the network")
    assert r.elapsed < deadline_of("mid-session-refresh")  # refused: it did not wait
    shutil.rmtree(gk.cache_dir)
    gk.cache_dir.mkdir()
    r = gk.run(context="background")
    assert_one_line_failure(r, 75, f"cannot reach 127.0.0.1:{op.port}")
    assert r.elapsed < deadline_of("background")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["500", "hang-tcp", "down"])
def test_negative_cache_spares_the_idp_during_an_outage(gk: Env, faulty: FaultyIdp, mode: str):
    """20 rapid silent runs during an outage contact the IdP at most once per backoff step; a
    person (interactive) and ``get --force-refresh`` retry at once; recovery is immediate.

    The documented deadlines where the IdP answers (500, refused: the answer ends each run);
    short ones where it hangs (hang-tcp: a run that asks waits its deadline out, and a person's
    retry below need not wait out the 5 s TLS connect timeout)."""
    use_client_credentials(gk, faulty.issuer, faulty.tls_ca)
    prime(gk)
    make_expired(gk)
    if mode == "hang-tcp":
        fast = FAST_TIMEOUTS.replace("30s", "2s")
        use_client_credentials(gk, faulty.issuer, faulty.tls_ca, fast)
    break_idp(faulty, mode)
    connections, requests_before = faulty.connections, len(faulty.requests)
    t0 = time.monotonic()
    results = [gk.run(context="background") for _ in range(20)]
    wall = time.monotonic() - t0
    for r in results:
        assert_one_line_failure(r, 75, FAILURE_TEXT[mode])
    remembered = [r for r in results if "not asking again until" in r.err]
    contacts = faulty.connections - connections
    # A run either reports the remembered failure at once or asks the IdP (and only then can it
    # wait for it): at most once per backoff step, however long the runs take.
    allowed = asks_allowed(wall)
    asked = len(results) - len(remembered)
    assert 1 <= asked <= allowed, ([r.err for r in results], f"{wall:.1f} s")
    assert "gatekey get -p svc --force-refresh" in remembered[0].err
    if mode != "down":
        assert 1 <= contacts <= allowed, (
            f"{contacts} connections in {wall:.1f} s, {allowed} allowed"
        )
        assert len(faulty.requests) - requests_before == (contacts if mode == "500" else 0)
    print(f"\n[outage {mode}] 20 runs in {wall:.1f} s, {contacts} connection(s) to the IdP")

    if mode == "down":
        return
    # a person present retries at once, and so does --force-refresh
    r = gk.run(context="interactive")
    assert r.code == 75, r.err
    assert "not asking again" not in r.err
    r = gk.run("get", "-p", "svc", "--force-refresh", context="background")
    assert r.code == 75, r.err
    assert "not asking again" not in r.err
    assert faulty.connections - connections == contacts + 2
    # the IdP recovers: --force-refresh gets a token and forgets the failure (with the
    # documented deadlines: a sign-in is work a short deadline could cut on a busy machine)
    faulty.mode = "proxy"
    use_client_credentials(gk, faulty.issuer, faulty.tls_ca)
    r = gk.run("get", "-p", "svc", "--force-refresh", context="background")
    assert r.code == 0, r.err
    assert not list((gk.cache_dir / "failures").glob("*.json"))
    again = gk.run(context="background")
    assert (again.code, again.out, again.err) == (0, r.out, "")


# ================================================================================================
# 3. Sixteen processes at once on an expired token: one token request
# ================================================================================================
def assert_single_flight(
    results: list[tuple[int, str, str, float]], old: str, ctx: str | None
) -> str:
    failures = [(code, err) for code, _, err, _ in results if code != 0]
    assert not failures, failures
    tokens = {out for _, out, _, _ in results}
    assert len(tokens) == 1, f"{len(tokens)} different tokens printed"
    token = tokens.pop()
    assert token.endswith("\n")
    assert token.count("\n") == 1
    assert token.rstrip("\n") != old, "the expired token was printed again"
    for _, _, err, _ in results:
        assert "invalid_grant" not in err, err
        assert "Traceback" not in err, err
        assert all(line.startswith("gatekey: ") for line in err.splitlines()), err
    # The documented deadline (no [timeouts] here), counted from the first start: waiting in line
    # for the lock behind 15 others is part of each run's budget.
    slowest = max(elapsed for *_, elapsed in results)
    assert slowest < ends_by(deadline_of(ctx)), slowest
    return token.rstrip("\n")


@pytest.mark.slow
@pytest.mark.parametrize("ctx", ["background", "mid-session-refresh"])
def test_sixteen_client_credential_runs_make_one_token_request(
    gk: Env, oidc_provider: OidcProvider, ctx: str
):
    use_client_credentials(gk, oidc_provider.issuer, oidc_provider.ca, timeouts="")
    old = prime(gk)
    make_expired(gk)
    before = oidc_provider.token_requests()
    results = run_together(gk, [ctx] * N)
    token = assert_single_flight(results, old, ctx)
    assert oidc_provider.token_requests() - before == 1
    assert all(err == "" for _, _, err, _ in results), [r[2] for r in results]
    print(f"\n[stampede cc {ctx}] 16 runs, 1 token request, {results[-1][3]:.2f} s wall")
    assert cached_token(gk) == token


@pytest.mark.slow
def test_sixteen_runs_refresh_a_rotating_refresh_token_once(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider]
):
    """A signed-in person's tabs all refreshing at once, twice (background, then
    mid-session-refresh): each wave redeems the refresh token exactly once, the rotated one is
    persisted and works for the next wave, and nobody sees invalid_grant.

    AT_TTL=400 with min_ttl 10m: MSAL's own copy of the access token is valid but too short,
    so a refresh means the refresh-token grant (a real POST), not MSAL's cache."""
    op = make_oidc_provider(AT_TTL="400")
    use_public_client(gk, op.issuer, op.ca)
    sign_in(gk, op.ca)
    token = cached_token(gk)
    refresh_tokens = msal_secrets(gk, "RefreshToken")
    assert len(refresh_tokens) == 1
    token_path = f"{op.issuer_path}/token"
    for ctx in ("background", "mid-session-refresh"):
        make_expired(gk)
        log_before = len(op.requests_log())
        results = run_together(gk, [ctx] * N)
        new = assert_single_flight(results, token, ctx)
        # exactly one request reached the provider: the refresh (discovery came from the cache)
        assert op.requests_log()[log_before:] == [("POST", token_path)]
        rotated = msal_secrets(gk, "RefreshToken")
        assert len(rotated) == 1
        assert rotated != refresh_tokens, "the refresh token did not rotate"
        assert cached_token(gk) == new
        # the one run that refreshed warns that 400 s is below min_ttl; the rest are silent
        warned = [err for _, _, err, _ in results if err]
        assert len(warned) <= 1, warned
        wall = max(r[3] for r in results)
        print(f"\n[stampede rotating RT {ctx}] 16 runs, 1 refresh, {wall:.2f} s wall")
        token, refresh_tokens = new, rotated


# ================================================================================================
# 4. TLS
# ================================================================================================
@pytest.mark.parametrize("bundle", ["certifi", "trustme"])
def test_ca_bundle_wins_over_the_environment(
    gk: Env, oidc_provider: OidcProvider, other_ca: str, bundle: str
):
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE / SSL_CERT_FILE name another valid CA file (as CI and
    this machine set REQUESTS_CA_BUNDLE globally): the profile's ca_bundle still verifies."""
    use_client_credentials(gk, oidc_provider.issuer, oidc_provider.ca)
    other = certifi.where() if bundle == "certifi" else other_ca
    env = {"REQUESTS_CA_BUNDLE": other, "CURL_CA_BUNDLE": other, "SSL_CERT_FILE": other}
    for ctx in ("background", "interactive"):
        r = gk.run("get", "-p", "svc", "--force-refresh", context=ctx, **env)
        assert r.code == 0, r.err
        assert r.out.count(".") == 2  # a JWT
        assert r.err == ""


@pytest.mark.parametrize("ca", ["none", "other"])
@pytest.mark.parametrize("env_bundle", ["unset", "certifi"])
def test_untrusted_idp_certificate_is_exit_75_naming_ca_bundle(
    gk: Env, oidc_provider: OidcProvider, other_ca: str, ca: str, env_bundle: str
):
    """Without the test CA (no ca_bundle, or a ca_bundle naming another CA) the provider's
    certificate is refused: exit 75, one line naming TLS and ca_bundle, no traceback."""
    use_client_credentials(gk, oidc_provider.issuer, other_ca if ca == "other" else None)
    env = {} if env_bundle == "unset" else {"REQUESTS_CA_BUNDLE": certifi.where()}
    r = gk.run(context="background", **env)
    assert_one_line_failure(r, 75, "TLS verification failed", "ca_bundle", f":{oidc_provider.port}")
    assert r.elapsed < deadline_of("background")  # the documented one: no [timeouts] here


def test_http_issuer_is_a_config_error_before_any_connection(gk: Env):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        use_client_credentials(gk, f"http://127.0.0.1:{port}/oidc", None)
        for ctx in ("background", "interactive"):
            r = gk.run(context=ctx)
            assert_one_line_failure(r, 78, "issuer", "https")
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody tried to connect
    finally:
        listener.close()


@pytest.mark.parametrize("bad", ["missing", "directory", "not-pem"])
def test_unusable_ca_bundle_is_a_config_error(gk: Env, oidc_provider: OidcProvider, bad: str):
    path = gk.root / "ca.pem"
    if bad == "directory":
        path.mkdir()
    elif bad == "not-pem":
        path.write_text("not a certificate\n")
    use_client_credentials(gk, oidc_provider.issuer, str(path))
    r = gk.run(context="background")
    assert_one_line_failure(r, 78, "ca_bundle")


# ================================================================================================
# 5. Discovery is cached: a refresh is one request
# ================================================================================================
@pytest.mark.parametrize("kind", ["oidc", "entra"])
def test_discovery_is_cached_across_processes(
    gk: Env, oidc_provider: OidcProvider, entra_provider: OidcProvider, kind: str
):
    if kind == "oidc":
        op = oidc_provider
        use_client_credentials(gk, op.issuer, op.ca)
    else:
        op = entra_provider
        gk.vars["CONF_SECRET"] = "conf-secret"
        gk.write_config(
            "[profiles.svc]\n"
            'source = "entra"\n'
            f'tenant = "{op.tenant}"\n'
            f'authority_host = "{op.origin}"\n'
            'client_id = "conf-client"\n'
            'client_secret = { env = "CONF_SECRET" }\n'
            'flow = "client-credentials"\n'
            'scopes = ["https://api.example.test/.default"]\n'
            f'ca_bundle = "{op.ca}"\n'
            'min_ttl = "10m"\n'
        )
    token_path = f"{op.issuer_path}/token"
    log_before = len(op.requests_log())
    first = prime(gk)
    first_requests = op.requests_log()[log_before:]
    assert first_requests[-1] == ("POST", token_path)
    assert any(p.endswith("/.well-known/openid-configuration") for _, p in first_requests)
    make_expired(gk)
    log_before = len(op.requests_log())
    r = gk.run(context="background")
    assert r.code == 0, r.err
    assert r.out.rstrip("\n") != first
    assert op.requests_log()[log_before:] == [("POST", token_path)]


# ================================================================================================
# 6. No token on stderr, also at --debug
# ================================================================================================
def jwt_signature(token: str) -> str:
    parts = token.split(".")
    return parts[2] if len(parts) == 3 else token


def leaked(text: str, secrets: set[str]) -> list[str]:
    """Secrets (or a 16-character piece of a refresh token or JWT signature) found in text."""
    found = []
    for secret in secrets:
        if secret in text:
            found.append(f"whole {secret[:6]}...")
            continue
        piece = jwt_signature(secret)
        for i in range(0, max(len(piece) - 16, 0) + 1):
            if piece[i : i + 16] in text:
                found.append(f"piece of {secret[:6]}...")
                break
    return found


@pytest.mark.slow
def test_no_token_or_refresh_token_on_stderr(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], oidc_tls: dict[str, str]
):
    """Sign in, refresh, fall back, fail (500 and a revoked grant), all at --debug (or
    GATEKEY_LOG_LEVEL=debug): stderr never shows an access, ID or refresh token."""
    op = make_oidc_provider(AT_TTL="400")
    idp = FaultyIdp(oidc_tls, upstream=op.origin, upstream_ca=op.ca)
    try:
        use_public_client(gk, idp.issuer, op.ca)
        secrets: set[str] = set()
        stderr: list[tuple[str, str]] = []

        def collect(step: str, r: Result) -> None:
            stderr.append((step, r.err))
            if r.code == 0 and r.out:
                secrets.add(r.out.rstrip("\n"))
            for section in ("AccessToken", "RefreshToken", "IdToken"):
                secrets.update(msal_secrets(gk, section))

        r = sign_in(gk, op.ca, "--debug", rewrite=(idp.origin, op.origin))
        collect("login --debug", r)
        secrets.add(cached_token(gk))
        first_refresh_tokens = msal_secrets(gk, "RefreshToken")

        make_expired(gk)
        r = gk.run("--debug", "get", "-p", "user", context="background")
        assert r.code == 0, r.err
        assert "debug:" in r.err  # debug output was on
        collect("refresh --debug", r)

        make_expired(gk)
        r = gk.run(context="background", GATEKEY_LOG_LEVEL="debug")
        assert r.code == 0, r.err
        collect("refresh GATEKEY_LOG_LEVEL=debug", r)

        idp.mode = "500"
        make_stale(gk)
        r = gk.run("--debug", "get", "-p", "user", context="background")
        assert r.code == 0, r.err
        assert "could not refresh" in r.err
        collect("500, fallback --debug", r)

        make_expired(gk)
        r = gk.run("--debug", "get", "-p", "user", "--force-refresh", context="background")
        assert r.code == 75, r.err
        collect("500, failure --debug", r)

        # The grant is revoked: replaying the first (rotated-away) refresh token kills it.
        idp.mode = "proxy"
        with op.session() as s:
            replay = s.post(
                op.token_endpoint,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": next(iter(first_refresh_tokens)),
                    "client_id": PUBLIC_CLIENT,
                },
                timeout=10,
            )
        assert replay.json().get("error") == "invalid_grant"
        make_expired(gk)
        r = gk.run("--debug", "get", "-p", "user", "--force-refresh", context="background")
        assert r.code == 4, r.err
        assert "gatekey login -p user" in r.err
        collect("invalid_grant --debug", r)

        assert len(secrets) >= 6, "too few secrets collected for the test to mean anything"
        for step, err in stderr:
            assert not leaked(err, secrets), (step, leaked(err, secrets), err)
    finally:
        idp.stop()


def test_no_client_secret_or_token_on_stderr_at_debug(gk: Env, faulty: FaultyIdp):
    """Client credentials: neither the client secret nor the tokens show at --debug, when the
    token endpoint fails with a stale token (fallback) or with an expired one (exit 75)."""
    use_client_credentials(gk, faulty.issuer, faulty.tls_ca)
    secret = gk.vars["CONF_SECRET"]
    token = prime(gk)
    faulty.mode = "500"
    make_stale(gk)
    fallback = gk.run("--debug", "get", "-p", "svc", context="background")
    assert (fallback.code, fallback.out) == (0, f"{token}\n"), fallback.err
    make_expired(gk)
    failed = gk.run("--debug", "get", "-p", "svc", "--force-refresh", context="background")
    assert failed.code == 75, failed.err
    assert "Traceback" in failed.err  # --debug did show the detail
    for r in (fallback, failed):
        assert secret not in r.err
        assert not leaked(r.err, {token}), r.err


def test_the_faulty_idp_itself(faulty: FaultyIdp, oidc_provider: OidcProvider):
    """The fake IdP's own contract: it forwards, rewrites its origin in, and counts."""
    with requests.Session() as s:
        s.trust_env = False
        s.verify = faulty.tls_ca
        doc = s.get(f"{faulty.issuer}/.well-known/openid-configuration", timeout=5).json()
        assert doc["issuer"] == faulty.issuer
        assert doc["token_endpoint"] == f"{faulty.issuer}/token"
        faulty.mode = "500"
        assert s.post(doc["token_endpoint"], data={}, timeout=5).status_code == 500
        faulty.mode = "hang"
        with pytest.raises(requests.exceptions.ReadTimeout):
            s.get(f"{faulty.issuer}/jwks", timeout=0.3)
        faulty.mode = "hang-tcp"
        with pytest.raises(requests.exceptions.Timeout):
            s.get(f"{faulty.issuer}/jwks", timeout=0.3)
    assert faulty.requests[0] == ("GET", "/oidc/.well-known/openid-configuration")
    assert faulty.count("POST", "/token") == 1
    assert faulty.connections == 4
