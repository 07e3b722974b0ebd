"""The fault proxy's own contract (support/fault_proxy.py): it forwards and rewrites, fails in
each mode the way it says, counts what it sees, and stops cleanly."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from deadlines import SILENT_S
from fault_proxy import MALFORMED_BODY, FaultProxy


class _Upstream(BaseHTTPRequestHandler):
    """A plain-HTTP token endpoint that names its own origin in its answer."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        body = json.dumps(
            {"access_token": "at-0123456789abcdef", "expires_in": 3600, "issuer": origin}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[FaultProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(
        target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    made = FaultProxy(tmp_path, f"http://127.0.0.1:{upstream.server_address[1]}")
    yield made
    made.stop()
    upstream.shutdown()
    upstream.server_close()
    thread.join(5)


def post(proxy: FaultProxy, timeout: float = 5, verify: str | None = None) -> requests.Response:
    with requests.Session() as s:
        s.trust_env = False  # REQUESTS_CA_BUNDLE (set on this machine) must not replace verify
        return s.post(
            f"{proxy.origin}/token", data={"a": "b"}, verify=verify or proxy.ca, timeout=timeout
        )


def test_forward_rewrites_the_upstream_origin_and_counts(proxy: FaultProxy) -> None:
    doc = post(proxy).json()
    assert doc == {
        "access_token": "at-0123456789abcdef",
        "expires_in": 3600,
        "issuer": proxy.origin,
    }
    proxy.mode = "no-expires-in"
    assert "expires_in" not in post(proxy).json()
    assert proxy.requests == [("POST", "/token")] * 2
    assert proxy.count("POST", "/token") == 2
    assert proxy.connections == 2


def test_status_malformed_and_truncated(proxy: FaultProxy) -> None:
    proxy.fail_with(429, b'{"error": "slow down"}', retry_after="30")
    r = post(proxy)
    assert (r.status_code, r.headers["Retry-After"], r.json()) == (
        429,
        "30",
        {"error": "slow down"},
    )
    proxy.mode = "malformed-json"
    r = post(proxy)
    assert (r.status_code, r.content) == (200, MALFORMED_BODY)
    proxy.mode = "truncated"
    r = post(proxy)
    assert r.status_code == 200
    assert r.content.startswith(b'{"access_token": "at-')
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()
    proxy.applies = lambda method, path: path != "/token"  # faults for other paths only
    assert post(proxy).json()["expires_in"] == 3600


@pytest.mark.parametrize("mode", ["hang", "hang-tcp", "slow"])
def test_never_answering(proxy: FaultProxy, mode: str) -> None:
    proxy.delay = 5
    proxy.mode = mode
    with pytest.raises(requests.exceptions.Timeout):
        post(proxy, timeout=0.3)
    assert proxy.connections == 1
    # The proxy's thread may read the request after the client gave up, on a busy machine.
    deadline = time.monotonic() + SILENT_S
    while mode != "hang-tcp" and proxy.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.count() == (0 if mode == "hang-tcp" else 1)  # hang-tcp reads nothing


def test_refuse_closes_the_port_and_reopens_it(proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.mode = "refuse"
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    proxy.mode = "forward"
    assert proxy.port == port
    assert post(proxy).status_code == 200


@pytest.mark.parametrize(
    ("mode", "reason"), [("wrong-ca", "unable to get local issuer"), ("expired-cert", "expired")]
)
def test_bad_certificates(proxy: FaultProxy, mode: str, reason: str) -> None:
    proxy.mode = mode
    context = ssl.create_default_context(cafile=proxy.ca)
    with (
        socket.create_connection(("127.0.0.1", proxy.port), 5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match=reason),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert proxy.count() == 0


def test_stop_releases_held_connections(tmp_path: Path) -> None:
    proxy = FaultProxy(tmp_path, None, mode="hang-tcp")
    held = socket.create_connection(("127.0.0.1", proxy.port), 5)
    try:
        held.settimeout(5)
        proxy.stop()
        with contextlib.suppress(ConnectionResetError):  # reset is closed too
            assert held.recv(1) == b""  # closed by the proxy, not left hanging
    finally:
        held.close()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", proxy.port), 1),
    ):
        pass
