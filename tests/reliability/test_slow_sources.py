"""A source that answers without end keeps nobody from their cached credential (issue 12,
item 4), and a profile that never signed in says so without asking the network (issue 12, gap).

Black box: the installed ``gatekey``, run as the app runs it, in front of each network kind's
peer behind support/fault_proxy.py:

- ``oidc`` / ``entra``: the real OpenID provider (node-oidc-provider; the Entra-style issuer for
  ``entra``), client credentials;
- ``vault`` and ``azure-key-vault``: contract tests against a fake (support/fake_vault.py,
  support/fake_keyvault.py; Key Vault's bearer token from an ``entra`` profile at the real
  provider, not behind the proxy);
- ``aws-secrets-manager``: moto (support/moto_peer.py), trusted through AWS_CA_BUNDLE.

The faults answer without end while every single read is quick: ``drip`` (the headers, then a
body byte every 0.5 s), ``drip-headers`` (a header line that never ends, a byte every 0.5 s),
``flood`` (a body without end, as fast as it is read). A per-read timeout never fires on them;
the README's whole-request deadline does: every network call must be over by the run's deadline
minus the reserve (a tenth of the deadline, at most 1 s), kept to print what follows.

(a) a cached credential still valid but due for a refresh, ``background``: exit 0, the cached
    credential byte-exact on stdout, exactly one line on stderr, a warning;
(b) nothing cached (a new cache directory), ``mid-session-refresh``: exit 75, nothing on
    stdout, exactly one line naming what happened.
Both inside the deadline this module's config sets (DEADLINE_S, for both contexts), measured
as gatekey measures it (the run log's ``duration_ms``, from process start), and, for the
endless trickles, not before the source's share of it (the deadline minus the reserve) was
spent waiting: the deadline and the reserve are the product's documented numbers, not this
machine's speed.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env, Result
from fault_peers import SECRET, VAULT_TOKEN, Budget, Peer, start_peer
from fault_proxy import FaultProxy
from hygiene import Recorder
from moto_peer import moto_server
from oidc_peer import API_AUDIENCE, PUBLIC_CLIENT
from vault_cases import drop_kernel_keys

pytestmark = [pytest.mark.blackbox, pytest.mark.slow]

DEADLINE_S = 4.0  # timeouts.silent and timeouts.mid_session_refresh of every config here
# README: every network call ends by the deadline minus a reserve, a tenth of it, at most 1 s.
RESERVE_S = min(DEADLINE_S / 10, 1.0)
BUDGET = Budget(DEADLINE_S, DEADLINE_S)  # both of them, as the first line of every config
TIMEOUTS = BUDGET.toml()
DRIP_INTERVAL_S = 0.5
NEW_CACHE = "new-cache"  # the (b) runs' cache directory: nothing cached, not even discovery
ENDLESS = frozenset({"drip", "drip-headers"})  # they take the source's whole share of the time
# What the (b) line names: the deadline it ran into, or the size limit (README: 4 MiB).
SAYS = {"drip": "time limit", "drip-headers": "time limit", "flood": "larger than 4 MiB"}


# ================================================================================================
# What the runs must show
# ================================================================================================
def logged(gk: Env) -> dict[str, dict[str, Any]]:
    """The run log's last line per context (each test runs each context once per step)."""
    entries = [json.loads(line) for line in gk.run_log.read_text().splitlines()]
    return {entry["context"]: entry for entry in entries}


def assert_in_time(entry: dict[str, Any], fault: str) -> None:
    """Inside the deadline as gatekey counts it (from process start); for an endless trickle,
    not before the source's share was spent (it was asked, and waited for)."""
    seconds = entry["duration_ms"] / 1000
    assert seconds <= DEADLINE_S, f"{seconds:.3f} s for a {DEADLINE_S:g} s deadline"
    if fault in ENDLESS:
        assert seconds >= DEADLINE_S - RESERVE_S, f"{seconds:.3f} s: the source was cut short"


def assert_served(r: Result, credential: str, entry: dict[str, Any], fault: str) -> None:
    """(a): exit 0, the cached credential byte-exact, one warning line and nothing else."""
    assert r.code == 0, f"exit {r.code}; stderr: {r.err}"
    assert r.stdout == f"{credential}\n".encode(), r.stdout[:200]
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("gatekey: warning: "), r.err
    assert "could not refresh" in lines[0], r.err
    assert "printing the cached token" in lines[0], r.err
    assert SAYS[fault] in lines[0], r.err
    assert (entry["outcome"], entry["exit"]) == ("fallback", 0), entry
    assert_in_time(entry, fault)


def assert_failed(r: Result, code: int, entry: dict[str, Any], fault: str, *words: str) -> None:
    """(b): the code, nothing on stdout, exactly one ``gatekey:`` line holding ``words``."""
    assert r.code == code, f"exit {r.code}, expected {code}; stderr: {r.err}"
    assert r.stdout == b"", r.stdout[:200]
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("gatekey: "), r.err
    assert not lines[0].startswith("gatekey: warning"), r.err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert entry["exit"] == code, entry
    assert_in_time(entry, fault)


def run_together(gk: Env, runs: dict[str, tuple[str, dict[str, str]]]) -> dict[str, Result]:
    """One no-argument run per entry ``{case: (context, extra environment)}``, all at once."""
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {
            case: pool.submit(gk.run, context=ctx, **extra) for case, (ctx, extra) in runs.items()
        }
        return {case: future.result() for case, future in futures.items()}


# ================================================================================================
# The peers, each behind a fault proxy (support/fault_peers.py)
# ================================================================================================
@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        server.reset()
        yield server


@pytest.fixture
def peer(
    gk: Env, tmp_path: Path, request: pytest.FixtureRequest, secret_hygiene: Recorder
) -> Iterator[Peer]:
    """The kind named by indirect parametrization, configured in ``gk``, behind a forwarding
    proxy. Everything it started stops, and its cached secrets leave the kernel keyring."""
    secret_hygiene.register(SECRET, "the vault-like secret")
    secret_hygiene.register(VAULT_TOKEN, "the Vault token")
    kind = request.param
    with ExitStack() as stack:
        for cache in (gk.cache_dir, gk.root / NEW_CACHE):
            stack.callback(drop_kernel_keys, cache)  # last, after the peers have stopped
        made = start_peer(kind, gk, tmp_path, stack, request, BUDGET)
        made.warm()  # what the source needs first (Key Vault's bearer token), before prime()
        yield made


# ================================================================================================
# (a) and (b) for answers without end
# ================================================================================================
SLOW_CASES = [
    pytest.param(kind, fault, id=f"{kind}-{fault}", marks=marks)
    for kind, fault, marks in [
        ("oidc", "drip", [pytest.mark.oidc]),
        ("oidc", "drip-headers", [pytest.mark.oidc]),
        ("oidc", "flood", [pytest.mark.oidc]),
        ("entra", "drip", [pytest.mark.oidc]),
        ("vault", "drip", []),
        ("vault", "drip-headers", []),
        ("vault", "flood", []),
        ("azure", "drip", [pytest.mark.oidc]),
        ("aws", "drip", []),
        ("aws", "drip-headers", []),
    ]
]


@pytest.mark.parametrize(("peer", "fault"), SLOW_CASES, indirect=["peer"])
def test_an_endless_answer_serves_the_cached_credential(
    peer: Peer, fault: str, record_property: Callable[[str, object], None]
) -> None:
    """(a) and (b) at once, the source answering without end (for the IdPs, (b) starts from
    an empty cache: the discovery document is what trickles). Each run asks the source once."""
    gk = peer.gk
    credential = peer.prime()
    peer.make_due()
    (gk.root / NEW_CACHE).mkdir()
    peer.proxy.drip_interval = DRIP_INTERVAL_S
    peer.proxy.mode = fault
    before = peer.proxy.connections
    results = run_together(
        gk,
        {
            "a": ("background", {}),
            "b": ("mid-session-refresh", {"GATEKEY_CACHE_DIR": str(gk.root / NEW_CACHE)}),
        },
    )
    entries = logged(gk)
    for case, ctx in (("a", "background"), ("b", "mid-session-refresh")):
        record_property(f"duration_ms_{case}", entries[ctx]["duration_ms"])
    print(
        f"\n[{peer.kind} {fault}] (a) {entries['background']['duration_ms']:.0f} ms, "
        f"(b) {entries['mid-session-refresh']['duration_ms']:.0f} ms for {DEADLINE_S:g} s"
    )
    assert_served(results["a"], credential, entries["background"], fault)
    assert_failed(results["b"], 75, entries["mid-session-refresh"], fault, SAYS[fault])
    assert peer.proxy.connections - before == 2, "one request per run, no retry"


# ================================================================================================
# Never signed in, the identity provider unreachable: "sign in", decided offline
# ================================================================================================
@pytest.mark.parametrize(
    ("kind", "fault", "context"),
    [
        ("oidc", "refuse", "background"),
        ("oidc", "hang-tcp", "mid-session-refresh"),
        ("entra", "hang-tcp", "scheduled-task"),
        ("entra", "refuse", "setup-test"),
    ],
)
def test_never_signed_in_says_sign_in_without_asking_the_network(
    gk: Env, tmp_path: Path, kind: str, fault: str, context: str
) -> None:
    """A device-code profile that never signed in (no MSAL state at all), the identity
    provider refusing connections or accepting and never answering: in a silent context the
    truth is "sign in", exit 4 naming ``gatekey login -p user`` at once, and the provider is
    not contacted (the proxy sees no connection). It used to exit 75, "check the network or
    VPN", or wait for the whole deadline."""
    with FaultProxy(tmp_path / "proxy", mode=fault) as proxy:  # no upstream: nobody answers
        if kind == "oidc":
            where = f'issuer = "{proxy.origin}/oidc"\nscopes = ["api.read"]\n'
        else:
            where = (
                f'tenant = "00000000-1111-2222-3333-444444444444"\n'
                f'authority_host = "{proxy.origin}"\nscopes = ["{API_AUDIENCE}/.default"]\n'
            )
        gk.write_config(
            TIMEOUTS + f'default_profile = "user"\n\n[profiles.user]\nsource = "{kind}"\n'
            f'{where}client_id = "{PUBLIC_CLIENT}"\nflow = "device-code"\n'
            f'token_cache = "file"\nca_bundle = "{proxy.ca}"\n'
        )
        r = gk.run(context=context)
        connections = proxy.connections
    entry = logged(gk)[context]
    assert_failed(r, 4, entry, "refuse", "not signed in", "gatekey login -p user")
    assert connections == 0, f"{connections} connection(s) to the identity provider"


# ================================================================================================
# The faults themselves
# ================================================================================================
@contextmanager
def asking(proxy: FaultProxy) -> Iterator[ssl.SSLSocket]:
    """A TLS connection to ``proxy`` that has sent one GET request."""
    context = ssl.create_default_context(cafile=proxy.ca)
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"GET /x HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        yield conn


@pytest.mark.parametrize("fault", ["drip", "drip-headers"])
def test_the_drip_faults_answer_a_byte_at_a_time(tmp_path: Path, fault: str) -> None:
    """The proxy's trickle is what this module claims: every read returns within about one
    interval, and the answer is still going after several of them."""
    with FaultProxy(tmp_path / "proxy", mode=fault) as proxy:
        proxy.drip_interval = 0.2
        with asking(proxy) as conn:
            received = b""
            while received.count(b"\n") < (1 if fault == "drip-headers" else 4):
                received += conn.recv(65536)  # the status line (and headers)
            trickle = [conn.recv(65536) for _ in range(5)]
    assert received.startswith(b"HTTP/1.0 200 OK\r\n"), received
    assert all(len(piece) == 1 for piece in trickle), trickle  # one byte per read, not closed
    if fault == "drip":
        assert b"Content-Length: 1000000" in received


def test_the_flood_fault_answers_without_end(tmp_path: Path) -> None:
    with FaultProxy(tmp_path / "proxy", mode="flood") as proxy, asking(proxy) as conn:
        received = 0
        while received < 8 * 1024 * 1024:  # twice what gatekey reads
            piece = conn.recv(1 << 20)
            assert piece, "the flood ended"
            received += len(piece)
