"""A misbehaving identity provider for resilience tests: an HTTPS server on 127.0.0.1 that sits
in front of the real test provider (support/oidc_peer.py) and can be switched, while it runs,
between behaving and failing the ways real IdPs fail.

Modes (``FaultyIdp.mode``, changeable at any time):

- ``proxy``: forwards every request to the upstream provider and rewrites the upstream origin
  to its own in the answers, so its discovery document names itself (``issuer``,
  ``token_endpoint``...). gatekey configured with ``issuer = faulty.issuer`` works normally.
- ``500``: serves the (upstream's, rewritten) discovery document, answers everything else
  ``HTTP 500`` (a provider whose token endpoint is broken). Without an upstream it serves a
  minimal discovery document of its own.
- ``hang``: completes the TLS handshake, reads the request, never answers.
- ``hang-tcp``: accepts the TCP connection and never says a word (no TLS handshake either).

It counts what it sees: ``connections`` (TCP connections accepted) and ``requests``
(``(method, path)`` pairs, whatever the mode answered). ``stop()`` releases every held
connection, closes the listening socket and joins the server thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests

from request_body import HOP_BY_HOP

MODES = ("proxy", "500", "hang", "hang-tcp")
DISCOVERY = "/.well-known/openid-configuration"
RELAY_DROPS = HOP_BY_HOP | {"content-encoding", "content-length", "host"}  # requests re-frames


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # held connections are released by FaultyIdp.stop()
    owner: FaultyIdp

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up (timeouts, refused certificates) are the point of these tests.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: counting stays simple
    server: _Server

    def setup(self) -> None:
        owner = self.server.owner
        self.hold = owner.connection_opened(self.request, self.server)
        if self.hold:
            return
        self.request.settimeout(10)
        self.request = self.connection = owner.tls.wrap_socket(self.request, server_side=True)
        owner.track(self.request)
        super().setup()

    def handle(self) -> None:
        if self.hold:
            self.server.owner.stopping.wait()
            return
        super().handle()

    def finish(self) -> None:
        if not self.hold:
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner.record(self.command, self.path)
        mode = owner.mode
        if mode == "hang":
            owner.stopping.wait()
            self.close_connection = True
            return
        is_discovery = self.command == "GET" and self.path.split("?")[0].endswith(DISCOVERY)
        if mode == "500" and not is_discovery:
            self._send(500, b"Internal Server Error", "text/plain")
            return
        if owner.upstream is None:
            if is_discovery:
                self._send(200, json.dumps(owner.own_discovery()).encode(), "application/json")
            else:
                self._send(404, b"not found", "text/plain")
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        owner = self.server.owner
        headers = {k: v for k, v in self.headers.items() if k.lower() not in RELAY_DROPS}
        try:
            r = owner.upstream_session.request(
                self.command,
                owner.upstream + self.path,
                data=body or None,
                headers=headers,
                allow_redirects=False,
                timeout=10,
            )
        except requests.RequestException:
            self._send(502, b"bad gateway", "text/plain")
            return
        content = r.content.replace(owner.upstream.encode(), owner.origin.encode())
        extra = {k: v for k, v in r.headers.items() if k.lower() not in RELAY_DROPS}
        if "location" in {k.lower() for k in extra}:
            extra = {
                k: (v.replace(owner.upstream, owner.origin) if k.lower() == "location" else v)
                for k, v in extra.items()
            }
        self._send(r.status_code, content, None, extra)

    def _send(
        self,
        status: int,
        content: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(content)
        self.close_connection = True


class FaultyIdp:
    """See the module docstring. ``tls``: PEM paths ``cert`` and ``key`` (the conftest
    ``oidc_tls`` fixture: a leaf for 127.0.0.1 signed by the test CA, ``tls["ca"]``).
    ``upstream``: the real provider's origin (``https://127.0.0.1:<port>``) to forward to,
    trusted through ``upstream_ca``; ``issuer_path`` is appended to this server's origin."""

    def __init__(
        self,
        tls: Mapping[str, str],
        *,
        upstream: str | None = None,
        upstream_ca: str | None = None,
        issuer_path: str = "/oidc",
        mode: str = "proxy",
    ) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.upstream = upstream.rstrip("/") if upstream else None
        self.issuer_path = issuer_path
        self.tls_ca = tls.get("ca")  # the CA that signed its certificate (clients trust this)
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(tls["cert"], tls["key"])
        self.upstream_session = requests.Session()
        self.upstream_session.trust_env = False  # REQUESTS_CA_BUNDLE must not override verify
        self.upstream_session.verify = upstream_ca or True
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # --- where it is -------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.origin + self.issuer_path

    def own_discovery(self) -> dict[str, object]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "device_authorization_endpoint": f"{base}/device/auth",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # --- what it saw ---------------------------------------------------------------------------
    def connection_opened(self, sock: socket.socket, server: _Server) -> bool:
        """Count the connection; True if it is to be held silently (``hang-tcp``)."""
        with self._lock:
            self.connections += 1
            self._sockets.append(sock)
        return self.mode == "hang-tcp"

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, urlsplit(path).path))

    def count(self, method: str | None = None, suffix: str = "") -> int:
        with self._lock:
            return sum(
                1
                for m, p in self.requests
                if (method is None or m == method) and p.endswith(suffix)
            )

    # --- life cycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Release held connections, stop listening, join the server thread. Idempotent."""
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.upstream_session.close()

    def __enter__(self) -> FaultyIdp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
