"""Faults at the source, for every source kind (issue 7, item 1), black box.

The installed ``gatekey`` runs as the app runs it (no arguments, stdin closed,
CLAUDE_HELPER_CONTEXT set, a private HOME / config / cache) while its source fails:

- ``oidc`` / ``entra``: the real OpenID provider (node-oidc-provider; the Entra-style issuer
  for ``entra``), client credentials, behind support/fault_proxy.py;
- ``vault``: contract tests against a fake (support/fake_vault.py: no Vault binary runs here),
  behind the fault proxy;
- ``aws-secrets-manager``: moto behind its counting proxy (support/moto_peer.py), behind the
  fault proxy (HTTPS, trusted through AWS_CA_BUNDLE);
- ``azure-key-vault``: contract tests against a fake (support/fake_keyvault.py), behind the
  fault proxy; its bearer tokens come from an ``entra`` profile at the real provider;
- ``onepassword``: support/fake_op (hang, slow, signed out, garbage output);
- ``command``: a small script of this module (hang, slow, non-zero exit, malformed JSON, no
  ``expires_in``);
- ``keychain``: the real Secret Service (gnome-keyring on a private D-Bus), absent or stopped
  with SIGSTOP (not answering). A keychain secret is never cached, so only (b) applies.

Network faults (fault proxy modes): connection refused, DNS failure (a ``*.invalid`` host),
TLS failure (a certificate from another CA, an expired one), accepting but never answering
(before and after the TLS handshake), answering past the deadline, 429 with Retry-After,
500, 503, malformed JSON; for the identity providers also a token response without
``expires_in`` and a refresh token revoked at the provider mid-run.

For each (kind, fault):

(a) a cached token still valid but due for a refresh (IdPs: 5 min left, below min_ttl; vault
    likes: a copy older than cache_ttl, within max_stale) is printed: exit 0, the token
    byte-exact on stdout, exactly one warning line of gatekey's own on stderr (a command's or
    op's own stderr is relayed above it, masked, as the README documents);
(b) with nothing usable cached (an empty cache directory: a new machine), the documented exit
    code (75 for unreachable, timed out, TLS, 429 and 5xx; 4 when a sign-in is needed; 1 for
    what only a person can fix), empty stdout, exactly one ``gatekey:`` line of gatekey's own,
    no traceback, TLS errors naming ``ca_bundle``, inside the context's deadline.

(a) runs in ``background`` (deadline ``silent``), (b) in ``mid-session-refresh`` (deadline
``mid_session_refresh``), at the same time, so the hanging cases cost one deadline, not three.
Where the source hangs (or answers after the deadline), the config sets short deadlines (SHORT:
1.5 s and 2 s) and every run waits them out; everywhere else it keeps the documented ones
(10 s and 15 s), so that the work a run must finish (a TLS handshake, an error answer, a
sign-in) never races a deadline on a busy machine. Time margins: tests/support/deadlines.py.

(c) rapid sequential runs during an outage (503, connection refused; ``GATEKEY_OUTAGE_RUNS``: 50
in benchmarks/figures.py, 12 in CI) ask the source at most once per backoff step (5 s,
doubling): see ``test_an_outage_spares_the_source``. The counts go
to the junit XML as ``outage_requests_<kind>_<fault>`` / ``outage_runs_<kind>_<fault>``.

Where gatekey breaks one of these rules, the breach is pinned in ``KNOWN`` (with the evidence)
and the test is marked ``xfail(strict=True, raises=KnownBreach)``: it is an expected failure
only if each pinned case breaks the contract exactly as pinned and nothing else breaks; if a
pinned breach stops happening, the test fails and asks for KNOWN to be updated. Found so far:
a non-JSON or cut-off token response (oidc, entra: internal error, exit 1, MSAL's traceback and
the body on stderr, no fallback to the cached token); 429 from an IdP (exit 1, not 75); a
non-JSON answer from Secrets Manager (exit 1 "binary, not text"); TLS failures to Secrets
Manager that do not name the CA setting; a revoked refresh token (two lines); a session bus
that does not answer (exit 69, not 75).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env, Result
from deadlines import EARLY_S, HANG_S, asks_allowed, deadline_of, ends_by
from fault_peers import (
    AWS_CODES,
    DOCUMENTED,
    SECRET,
    VAULT_TOKEN,
    Budget,
    Peer,
    age_secret,
    prime,
    start_peer,
)
from idp_helpers import (
    age_msal_access_token,
    idp_profile,
    login,
    read_msal,
    refresh_token,
    revoke,
)
from moto_peer import moto_server
from oidc_peer import ENTRA_TENANT, OidcProvider
from peers import SecretService
from rounds import rounds
from vault_cases import drop_kernel_keys

pytestmark = [pytest.mark.blackbox, pytest.mark.slow]


# For a source that hangs: every run waits these out, so they are short. Only the runs that end
# at their deadline use them: whatever must finish before a deadline gets the documented ones.
SHORT = Budget(1.5, 2.0)
SLOW_S = HANG_S  # "slow" answers come long after ends_by() of any deadline here
# 50 runs in benchmarks/figures.py (the README's outage counts). CI's 12 still catch a regression:
# a gatekey that forgot the outage would ask on every run (12 requests), and one whose backoff
# covered only a few runs would ask several times within the first 5 s backoff step, where one
# request is allowed; the later steps show in the longer figures run.
OUTAGE_RUNS = rounds("GATEKEY_OUTAGE_RUNS", ci=12)
B_CACHE, NEW_CACHE = "b-cache", "empty-cache"  # the cache directories of the (b) runs


# ================================================================================================
# What a breach of the contract is (so that an xfail can name exactly the one it expects)
# ================================================================================================
class Breach(AssertionError):
    """A run broke the contract."""


class WrongExit(Breach):
    pass


class NotOneLine(Breach):
    pass


class Unclear(Breach):
    """The one line does not say what the issue asks it to say (e.g. ca_bundle for TLS)."""


class OverDeadline(Breach):
    pass


class RetryStorm(Breach):
    pass


class Leak(Breach):
    pass


class KnownBreach(Breach):
    """Exactly the breaches pinned in KNOWN happened: the test is an expected failure."""


def check(condition: bool, breach: type[Breach], message: str) -> None:
    if not condition:
        raise breach(message)


def outcome(checker: Callable[..., None], *args: Any) -> Breach | None:
    """The breach ``checker`` raises, or None. Any other assertion fails the test at once."""
    try:
        checker(*args)
    except Breach as e:
        return e
    return None


def settle(key: tuple[str, str], outcomes: dict[str, Breach | None]) -> None:
    """Pass, fail, or raise KnownBreach: only when each case pinned in KNOWN[key] broke the
    contract the way it is pinned, and no other case broke it at all."""
    known = KNOWN[key][0] if key in KNOWN else {}
    surprises = [
        f"{case}: {type(o).__name__}: {o}"
        for case, o in outcomes.items()
        if o is not None and not isinstance(o, known.get(case, ()))
    ]
    if surprises:
        raise AssertionError("; ".join(surprises))
    fixed = [case for case in known if outcomes.get(case) is None]
    if fixed:
        raise AssertionError(f"the breach pinned for {fixed} no longer happens: update KNOWN")
    if known:
        raise KnownBreach("; ".join(f"{case}: {outcomes[case]}" for case in known))


def assert_no_leak(r: Result) -> None:
    """No piece of the vault-like secret or the Vault token, no JWT on stderr."""
    for secret in (SECRET, VAULT_TOKEN):
        pieces = {secret[i : i + 12] for i in range(0, len(secret) - 11, 4)}
        check(not any(p in r.err for p in pieces), Leak, "a piece of a secret is on stderr")
    check("eyJ" not in r.err, Leak, "a piece of a JWT is on stderr")


def own_lines(r: Result) -> list[str]:
    """gatekey's own stderr lines: without a command's (or op's) relayed stderr."""
    return [line for line in r.err.splitlines() if not _relayed(line)]


def _relayed(line: str) -> bool:
    return line.startswith('gatekey: warning: profile "') and '" (' in line.split(":", 3)[2]


def assert_served(r: Result, token: str, deadline: float) -> None:
    """(a): exit 0, the token byte-exact, exactly one warning of gatekey's own."""
    check(r.code == 0, WrongExit, f"exit {r.code}, expected 0; stderr: {r.err}")
    assert r.stdout == f"{token}\n".encode(), r.stdout
    assert "Traceback" not in r.err, r.err
    assert all(line.startswith("gatekey: ") for line in r.err.splitlines()), r.err
    lines = own_lines(r)
    check(len(lines) == 1, NotOneLine, f"{len(lines)} lines of gatekey's own: {r.err!r}")
    assert lines[0].startswith("gatekey: warning: "), r.err
    check(r.elapsed < ends_by(deadline), OverDeadline, f"{r.elapsed:.2f} s for {deadline:g} s")
    assert_no_leak(r)


def assert_failed(r: Result, code: int, deadline: float, *words: str) -> None:
    """(b): the code, empty stdout, no traceback, one line of gatekey's own (a relayed command
    stderr above it is allowed), holding one of ``words`` (if any), inside the deadline."""
    check(r.code == code, WrongExit, f"exit {r.code}, expected {code}; stderr: {r.err}")
    assert r.stdout == b"", f"stdout must be empty on failure, got {r.stdout!r}"
    assert "Traceback" not in r.err, r.err
    assert r.err.endswith("\n"), r.err
    assert all(line.startswith("gatekey: ") for line in r.err.splitlines()), r.err
    lines = own_lines(r)
    check(len(lines) == 1, NotOneLine, f"{len(lines)} lines of gatekey's own: {r.err!r}")
    assert not lines[0].startswith("gatekey: warning:"), r.err
    if words:
        check(any(w in lines[0] for w in words), Unclear, f"none of {words} in {lines[0]!r}")
    check(r.elapsed < ends_by(deadline), OverDeadline, f"{r.elapsed:.2f} s for {deadline:g} s")
    assert_no_leak(r)


def run_together(gk: Env, runs: dict[str, tuple[str, dict[str, str]]]) -> dict[str, Result]:
    """One no-argument run per entry ``{case: (context, extra environment)}``, all at once."""
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {
            case: pool.submit(gk.run, context=ctx, **extra) for case, (ctx, extra) in runs.items()
        }
        return {case: future.result() for case, future in futures.items()}


def run_both(gk: Env) -> tuple[Result, Result]:
    """(a) in background with the test's cache; (b) in mid-session-refresh with an empty cache
    directory, at the same time."""
    (gk.root / NEW_CACHE).mkdir(exist_ok=True)
    runs = {
        "a": ("background", {}),
        "b": ("mid-session-refresh", {"GATEKEY_CACHE_DIR": str(gk.root / NEW_CACHE)}),
    }
    results = run_together(gk, runs)
    return results["a"], results["b"]


# ================================================================================================
# Known breaches: what gatekey does today that the issue does not allow (each an xfail)
# ================================================================================================
# (kind, fault) -> ({case: the breach that case shows}, the evidence). Cases of
# test_network_fault: "a" (cached copy due), "b" (nothing usable: for IdPs an expired token with
# discovery cached), "new" (IdPs: an empty cache, so discovery is the first request), "storm"
# (requests per run); of test_refresh_token_revoked_mid_run: "a", "b"; of test_keychain_fault:
# the context.
KNOWN: dict[tuple[str, str], tuple[dict[str, type[Breach]], str]] = {}
# None today. The six pinned here when this suite was written (IdP token responses that are not
# JSON, 429 from an IdP, a malformed or TLS-failing AWS answer, the two-line revoked sign-in, a
# hung session bus) were fixed in the product; a new one goes here as
# KNOWN[(kind, fault)] = ({case: Breach subclass}, "BUG: ...").


def known_cases(values: list[str], key: Callable[[str], tuple[str, str]]) -> list[Any]:
    """``values`` as parameters, each marked xfail(strict) if KNOWN pins a breach for its key."""
    cases = []
    for value in values:
        marks = []
        if key(value) in KNOWN:
            why = KNOWN[key(value)][1]
            marks.append(pytest.mark.xfail(strict=True, raises=KnownBreach, reason=why))
        cases.append(pytest.param(value, marks=marks))
    return cases


# ================================================================================================
# The network peers, each behind a fault proxy (support/fault_peers.py)
# ================================================================================================
NETWORK_KINDS = [
    pytest.param("oidc", marks=pytest.mark.oidc),
    pytest.param("entra", marks=pytest.mark.oidc),
    pytest.param("vault"),
    pytest.param("aws"),
    pytest.param("azure", marks=pytest.mark.oidc),
]


@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        server.reset()
        yield server


@pytest.fixture
def peer(gk: Env, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Peer]:
    """The kind named by indirect parametrization, configured in ``gk``, behind a proxy in
    ``forward`` mode. Everything it started is stopped, and cached secrets are dropped from the
    kernel keyring (the test's cache directory and its empty one)."""
    kind = request.param
    with ExitStack() as stack:
        for cache in (gk.cache_dir, gk.root / B_CACHE, gk.root / NEW_CACHE):
            stack.callback(drop_kernel_keys, cache)  # last, after the peers have stopped
        yield start_peer(kind, gk, tmp_path, stack, request)


# ================================================================================================
# (a) and (b) for every network fault
# ================================================================================================
NETWORK_FAULTS = [
    "refused",
    "hang-tcp",
    "hang",
    "slow",
    "429",
    "500",
    "503",
    "malformed-json",
    "truncated",
    "wrong-ca",
    "expired-cert",
]
# Faults where the source never answers in time (network, command, op, keychain): their runs end
# at the deadline, so their configs set SHORT deadlines (budget_for).
HANGING = frozenset({"hang-tcp", "hang", "slow", "daemon-stopped", "bus-stopped"})
IDPS = frozenset({"oidc", "entra"})


def says(kind: str, fault: str) -> tuple[str, ...]:
    """What the one line must name (any of these)."""
    if fault in ("wrong-ca", "expired-cert"):
        return ("ca_bundle", "AWS_CA_BUNDLE") if kind == "aws" else ("ca_bundle",)
    if fault.isdigit():
        aws = AWS_CODES[int(fault)]
        return (fault, aws) if kind == "aws" else (fault,)
    return ()


def break_source(peer: Peer, fault: str) -> None:
    proxy = peer.proxy
    if fault == "refused":
        proxy.mode = "refuse"
    elif fault == "slow":
        proxy.delay = SLOW_S
        proxy.mode = "slow"
    elif fault.isdigit():
        status = int(fault)
        proxy.fail_with(
            status, peer.error_body(status), retry_after="30" if status == 429 else None
        )
    else:
        proxy.mode = fault


def network_cases() -> list[Any]:
    cases = []
    for kind_param in NETWORK_KINDS:
        kind = str(kind_param.values[0])
        for fault in NETWORK_FAULTS:
            marks = list(kind_param.marks)
            if (kind, fault) in KNOWN:
                why = KNOWN[(kind, fault)][1]
                marks.append(pytest.mark.xfail(strict=True, raises=KnownBreach, reason=why))
            cases.append(pytest.param(kind, fault, id=f"{kind}-{fault}", marks=marks))
    return cases


def expire_tokens(cache: Path) -> None:
    """Every cached token in the file cache ``cache``: expired, as time passing would."""
    now = time.time()
    for path in (cache / "tokens").glob("*.json"):
        data = json.loads(path.read_text())
        data.update(expires_at=now - 10, obtained_at=now - 3610)
        path.write_text(json.dumps(data))


def budget_for(fault: str) -> Budget:
    """Short deadlines where the runs wait them out; the documented ones where they must not."""
    return SHORT if fault in HANGING else DOCUMENTED


def check_a(r: Result, token: str, fault: str) -> None:
    deadline = budget_for(fault).silent
    assert_served(r, token, deadline)
    # The fallback's warning: the request's own deadline (the run's minus the reserve) ran out
    # first, or, on a busy machine, the run's deadline did and the watchdog printed it.
    assert "could not refresh" in r.err or "did not answer within" in r.err, r.err
    if fault in HANGING:  # it did ask, and waited for its own context's budget
        assert r.elapsed > deadline - EARLY_S, f"{r.elapsed:.2f} s"


def check_b(r: Result, kind: str, fault: str) -> None:
    deadline = budget_for(fault).mid
    assert_failed(r, 75, deadline, *says(kind, fault))
    if fault in HANGING:
        assert r.elapsed > deadline - EARLY_S, f"{r.elapsed:.2f} s"


@pytest.mark.parametrize(("peer", "fault"), network_cases(), indirect=["peer"])
def test_network_fault(peer: Peer, fault: str) -> None:
    """(a), (b) and, for the IdPs, a new machine (empty cache: discovery is what fails), at
    once; for ``vault`` and ``azure`` these are contract tests against a fake. Every run asks
    the source once at most (connections seen by the proxy)."""
    gk = peer.gk
    peer.configure(peer.proxy.origin, budget_for(fault))
    token = peer.prime()
    peer.make_due()
    b_cache = gk.root / B_CACHE
    runs: dict[str, tuple[str, dict[str, str]]] = {"a": ("background", {})}
    if peer.kind in IDPS:
        shutil.copytree(gk.cache_dir, b_cache)
        expire_tokens(b_cache)
        (gk.root / NEW_CACHE).mkdir()
        runs["new"] = ("mid-session-refresh", {"GATEKEY_CACHE_DIR": str(gk.root / NEW_CACHE)})
    else:
        b_cache.mkdir()  # the secret is in the kernel keyring, under the cache directory's name
    runs["b"] = ("mid-session-refresh", {"GATEKEY_CACHE_DIR": str(b_cache)})
    before = peer.proxy.connections
    break_source(peer, fault)
    results = run_together(gk, runs)
    outcomes = {"a": outcome(check_a, results["a"], token, fault)}
    for case in ("b", "new"):
        if case in results:
            outcomes[case] = outcome(check_b, results[case], peer.kind, fault)
    seen = peer.proxy.connections - before  # one attempt per run, no retry within a run
    outcomes["storm"] = outcome(check, seen <= len(runs), RetryStorm, f"{seen} for {len(runs)}")
    settle((peer.kind, fault), outcomes)


# ================================================================================================
# DNS failure: a *.invalid host (nothing can be cached for a host that never resolved)
# ================================================================================================
@pytest.mark.parametrize("peer", NETWORK_KINDS, indirect=True)
def test_dns_failure(peer: Peer) -> None:
    """(b) only: the cache key includes the host, so no copy can be cached for a name that never
    resolved; a name that stops resolving takes the path of ``refused`` (both are "cannot
    reach"), whose (a) is in test_network_fault."""
    peer.configure(f"https://{peer.kind}.gatekey-test.invalid")
    r = peer.gk.run(context="background")
    assert_failed(r, 75, DOCUMENTED.silent, "gatekey-test.invalid", "cannot reach")
    assert peer.proxy.connections == 0


# ================================================================================================
# Identity providers: a token response without expires_in, a refresh token revoked mid-run
# ================================================================================================
@pytest.mark.oidc
@pytest.mark.parametrize("peer", ["oidc", "entra"], indirect=True)
def test_token_response_without_expires_in(peer: Peer) -> None:
    """The provider states no lifetime: gatekey assumes a short one (600 s; it never decodes a
    token), prints the new token with one warning, and serves it from the cache afterwards
    instead of asking on every run."""
    old = peer.prime()
    peer.make_due()
    peer.proxy.mode = "no-expires-in"
    a, b = run_both(peer.gk)
    for r in (a, b):
        check(r.code == 0, WrongExit, f"exit {r.code}; stderr: {r.err}")
        assert r.stdout.count(b".") == 2, r.stdout  # a JWT
        assert r.stdout.endswith(b"\n")
        check(len(own_lines(r)) == 1, NotOneLine, r.err)
        assert r.err.startswith("gatekey: warning: "), r.err
    assert a.out.rstrip("\n") != old
    before = peer.proxy.count()
    again = peer.gk.run(context="background")
    assert (again.code, again.stdout, again.err) == (0, a.stdout, "")
    assert peer.proxy.count() == before, "a token without expires_in was fetched again at once"


@pytest.mark.oidc
@pytest.mark.parametrize("kind", known_cases(["oidc", "entra"], lambda kind: (kind, "revoked")))
def test_refresh_token_revoked_mid_run(
    gk: Env, make_oidc_provider: Callable[..., OidcProvider], kind: str
) -> None:
    """A person's sign-in (device code); the provider revokes the refresh token (an admin, a
    password change). (a) gatekey's copy is still valid for 200 s: printed, one warning;
    (b) expired: exit 4 naming ``gatekey login -p user``, inside the deadline."""
    env = {"ISSUER_PATH": f"/{ENTRA_TENANT}/v2.0"} if kind == "entra" else {}
    op = make_oidc_provider(**env)
    gk.write_config(idp_profile(op, kind=kind))  # the documented deadlines: a sign-in is work
    login(gk, op)
    token = gk.run(context="background").out.rstrip("\n")
    assert token.count(".") == 2
    revoke(op, refresh_token(read_msal(gk)))
    now = time.time()
    gk.edit_entry(expires_at=now + 200, obtained_at=now - 3400)
    age_msal_access_token(gk, 200)  # MSAL's own copy is too short as well: a refresh is due
    a = gk.run(context="background")
    outcomes = {"a": outcome(assert_served, a, token, DOCUMENTED.silent)}
    assert "gatekey login -p user" in a.err, a.err

    login(gk, op)  # signed in again, then revoked again, with nothing usable cached
    revoke(op, refresh_token(read_msal(gk)))
    now = time.time()
    gk.edit_entry(expires_at=now - 10, obtained_at=now - 3610)
    age_msal_access_token(gk, -60)
    gk.forget_failures()
    b = gk.run(context="mid-session-refresh")
    outcomes["b"] = outcome(assert_failed, b, 4, DOCUMENTED.mid, "gatekey login -p user")
    settle((kind, "revoked"), outcomes)


# ================================================================================================
# (c) rapid runs during an outage (50 in figures.py)
# ================================================================================================
def source_requests(gk: Env, since: int) -> int:
    """What gatekey itself counted as asking the source (the run log's source_requests)."""
    entries = [json.loads(line) for line in gk.run_log.read_text().splitlines()[since:]]
    return sum(int(e.get("source_requests") or 0) for e in entries)


def log_length(gk: Env) -> int:
    return len(gk.run_log.read_text().splitlines()) if gk.run_log.exists() else 0


OUTAGES = [
    pytest.param(kind.values[0], "503", id=f"{kind.values[0]}-503", marks=kind.marks)
    for kind in NETWORK_KINDS
] + [  # refused: the same remembered failure; one IdP and one vault-like keep the file fast
    pytest.param("oidc", "refused", id="oidc-refused", marks=pytest.mark.oidc),
    pytest.param("vault", "refused", id="vault-refused"),
]


@pytest.mark.parametrize(("peer", "fault"), OUTAGES, indirect=["peer"])
def test_an_outage_spares_the_source(
    peer: Peer, fault: str, record_property: Callable[[str, object], None]
) -> None:
    """OUTAGE_RUNS sequential no-argument runs (background and mid-session-refresh alternating),
    nothing cached, the source answering 503 or refusing connections. Every run exits 75 with one
    line; the source is asked at most once per backoff step (5 s, then 10 s...), however long
    the runs take (deadlines.asks_allowed; observed: 1 request when the 50 runs take under 5 s, 2
    when they take longer on a loaded machine, 4-9 s). For 503 the count is what the proxy saw;
    a refused connection is seen by nobody, so there it is gatekey's own count (the run log's
    ``source_requests``)."""
    peer.warm()
    break_source(peer, fault)
    before, logged = peer.proxy.count(), log_length(peer.gk)
    t0 = time.monotonic()
    contexts = ["background" if i % 2 else "mid-session-refresh" for i in range(OUTAGE_RUNS)]
    results = [peer.gk.run(context=ctx) for ctx in contexts]
    wall = time.monotonic() - t0
    own = source_requests(peer.gk, logged)
    asked = peer.proxy.count() - before if fault == "503" else own
    record_property(f"outage_requests_{peer.kind}_{fault}", asked)
    record_property(f"outage_runs_{peer.kind}_{fault}", OUTAGE_RUNS)
    print(f"\n[outage {peer.kind} {fault}] {OUTAGE_RUNS} runs in {wall:.1f} s: {asked} request(s)")
    for ctx, r in zip(contexts, results, strict=True):
        assert_failed(r, 75, deadline_of(ctx))  # the documented deadlines: no [timeouts] here
    remembered = [r for r in results if "not asking again until" in r.err]
    assert len(remembered) >= OUTAGE_RUNS - asked, [r.err for r in results]
    check(1 <= asked <= asks_allowed(wall), RetryStorm, f"{asked} in {wall:.1f} s")
    if fault == "503":
        assert own == asked, (own, asked)


# ================================================================================================
# command: hang, slow, non-zero exit, malformed JSON, no expires_in
# ================================================================================================
COMMAND_SCRIPT = """\
import json, os, secrets, sys, time
mode_file, count_file = sys.argv[1], sys.argv[2]
with open(count_file, "a") as f:
    f.write(f"{os.getpid()}\\n")
mode = open(mode_file).read().strip() if os.path.exists(mode_file) else ""
if mode == "hang":
    time.sleep(60)
if mode == "slow":
    time.sleep(float(sys.argv[3]))
if mode == "exit":
    sys.stderr.write("token service: upstream unavailable\\n")
    sys.exit(2)
if mode == "malformed-json":
    print("<html>502 Bad Gateway</html>")
    sys.exit(0)
doc = {"access_token": "cmd-" + secrets.token_urlsafe(18), "expires_in": 7200}
if mode == "no-expires-in":
    del doc["expires_in"]
print(json.dumps(doc))
"""
COMMAND_FAULTS = {
    # fault: the exit code with nothing usable cached, and what the line must name
    "hang": (75, ("time limit",)),
    "slow": (75, ("time limit",)),
    "exit": (1, ("exited with status 2",)),
    "malformed-json": (1, ("did not print JSON",)),
    "no-expires-in": (1, ("expires_in",)),
}


@dataclass
class Command:
    gk: Env
    mode_file: Path
    count_file: Path
    argv: str

    def configure(self, budget: Budget) -> None:
        # The file cache (allow_insecure_cache), where a test can age the token as time would.
        self.gk.write_config(
            budget.toml() + '[profiles.cmd]\nsource = "command"\n'
            f'command = {self.argv}\nparse = "json"\ntoken_path = "access_token"\n'
            'expires_in_path = "expires_in"\nallow_insecure_cache = true\n'
        )

    def set(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    def count(self) -> int:
        return len(self.count_file.read_text().splitlines()) if self.count_file.exists() else 0


@pytest.fixture
def command(gk: Env, tmp_path: Path) -> Command:
    script = tmp_path / "token_source.py"
    script.write_text(COMMAND_SCRIPT)
    mode_file, count_file = tmp_path / "mode", tmp_path / "invocations"
    argv = json.dumps([sys.executable, str(script), str(mode_file), str(count_file), f"{SLOW_S:g}"])
    made = Command(gk, mode_file, count_file, argv)
    made.configure(DOCUMENTED)
    return made


@pytest.mark.parametrize("fault", list(COMMAND_FAULTS))
def test_command_fault(command: Command, fault: str) -> None:
    """A command that hangs (its process group is stopped at the deadline), answers after the
    deadline, exits non-zero (its stderr is relayed above gatekey's line, masked), prints no
    JSON, or prints JSON without the configured ``expires_in``. The last three are the
    source's mistakes a person must fix: exit 1, not 75."""
    gk = command.gk
    budget = budget_for(fault)
    command.configure(budget)
    token = prime(gk)
    now = time.time()
    gk.edit_entry(expires_at=now + 300, obtained_at=now - 3600)  # below min_ttl (65 min)
    command.set(fault)
    before = command.count()
    a, b = run_both(gk)
    assert_served(a, token, budget.silent)
    code, words = COMMAND_FAULTS[fault]
    assert_failed(b, code, budget.mid, *words)
    assert command.count() - before == 2  # one invocation per run
    if fault == "exit":
        assert "token service: upstream unavailable" in b.err  # relayed


# ================================================================================================
# onepassword: hang, slow, signed out (op exits 1), garbage output
# ================================================================================================
OP_REFERENCE = "op://Engineering/LiteLLM/credential"
OP_FAULTS = {
    # fault: (environment for the failing runs, garbage value or None, exit code, words)
    "hang": ({"FAKE_OP_HANG": "1", "FAKE_OP_HANG_SECONDS": "30"}, None, 75, ("time limit",)),
    "slow": ({"FAKE_OP_DELAY": f"{SLOW_S:g}"}, None, 75, ("time limit",)),
    "signed-out": ({"FAKE_OP_SIGNED_OUT": "1"}, None, 4, ("op signin",)),
    "garbage": ({}, "line one\nline\ttwo \x01", 1, ("whitespace or control",)),
}


@pytest.fixture
def onepassword(gk: Env, tmp_path: Path) -> Iterator[Path]:
    """The fake op first on PATH; its data file (returned) holds SECRET at OP_REFERENCE."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "op").symlink_to(Path(__file__).parent.parent / "support" / "fake_op")
    data = tmp_path / "op-data.json"
    data.write_text(json.dumps({"Engineering/LiteLLM/credential": SECRET}))
    gk.vars.update(
        PATH=f"{bin_dir}{os.pathsep}{gk.vars['PATH']}",
        FAKE_OP_PYTHON=sys.executable,
        FAKE_OP_DATA=str(data),
        FAKE_OP_LOG=str(tmp_path / "op-log.jsonl"),
    )
    yield data
    for cache in (gk.cache_dir, gk.root / B_CACHE, gk.root / NEW_CACHE):
        drop_kernel_keys(cache)


@pytest.mark.parametrize("fault", list(OP_FAULTS))
def test_onepassword_fault(gk: Env, onepassword: Path, fault: str) -> None:
    env, garbage, code, words = OP_FAULTS[fault]
    budget = budget_for(fault)
    gk.write_config(
        budget.toml() + 'default_profile = "llm"\n\n[profiles.llm]\nsource = "onepassword"\n'
        f'reference = "{OP_REFERENCE}"\n'
    )
    r = gk.run(context="interactive")
    assert (r.code, r.out, r.err) == (0, f"{SECRET}\n", "")
    age_secret(gk)
    if garbage is not None:
        onepassword.write_text(json.dumps({"Engineering/LiteLLM/credential": garbage}))
    gk.vars.update(env)
    a, b = run_both(gk)
    assert_served(a, SECRET, budget.silent)
    assert_failed(b, code, budget.mid, *words)
    for r in (a, b):
        assert "line one" not in r.err, r.err  # what op printed is never echoed


# ================================================================================================
# keychain: the Secret Service absent, or not answering
# ================================================================================================
@pytest.fixture
def keychain(gk: Env) -> Iterator[SecretService]:
    """The real Secret Service holding a key for profile ``kc``; stopped (and continued, if a
    test stopped it) at the end."""
    missing = SecretService.missing_tools()
    if missing:
        pytest.fail(f"{missing} not installed; run the README's test command (it installs them)")
    service = SecretService(gk.vars)
    gk.vars["DBUS_SESSION_BUS_ADDRESS"] = service.start()
    try:
        gk.write_config('[profiles.kc]\nsource = "keychain"\n')
        stored = gk.run("store", "-p", "kc", stdin=SECRET.encode())
        assert stored.code == 0, stored.err
        yield service
    finally:
        for proc in service.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        service.stop()


@pytest.mark.keychain
@pytest.mark.parametrize(
    "fault",
    known_cases(["absent", "daemon-stopped", "bus-stopped"], lambda fault: ("keychain", fault)),
)
def test_keychain_fault(gk: Env, keychain: SecretService, fault: str) -> None:
    """No Secret Service (a session bus address nothing listens on): exit 69 at once, naming
    what to start. The keyring daemon or the session bus stopped (SIGSTOP: connected, never
    answering): exit 75, the daemon's at the context's deadline. A keychain secret is never
    cached, so there is no (a)."""
    budget = budget_for(fault)
    gk.write_config(budget.toml() + '[profiles.kc]\nsource = "keychain"\n')
    r = gk.run(context="interactive")  # the keychain answers (SHORT has no interactive deadline)
    assert (r.code, r.out, r.err) == (0, f"{SECRET}\n", "")
    env: dict[str, str] = {}
    if fault == "absent":
        env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={gk.root / 'no-bus'}"
    else:
        bus, daemon = keychain.procs
        os.kill((daemon if fault == "daemon-stopped" else bus).pid, signal.SIGSTOP)
    contexts = ("background", "mid-session-refresh")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda ctx: gk.run(context=ctx, **env), contexts))
    outcomes = {}
    for ctx, r in zip(contexts, results, strict=True):
        deadline = budget.silent if ctx == "background" else budget.mid
        if fault == "absent":
            outcomes[ctx] = outcome(assert_failed, r, 69, deadline, "Secret Service")
            assert r.elapsed < deadline  # at once: it did not wait for a bus that is not there
        else:
            outcomes[ctx] = outcome(assert_failed, r, 75, deadline, "did not answer")
            if fault == "daemon-stopped":
                assert r.elapsed > deadline - EARLY_S, r.elapsed
    settle(("keychain", fault), outcomes)
