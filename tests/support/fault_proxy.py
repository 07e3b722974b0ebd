"""A reverse proxy for fault tests: HTTPS (or plain HTTP) on 127.0.0.1, in front of any HTTP peer
(the OpenID provider, the fake Vault, moto's counting proxy, the fake Key Vault), switchable while
it runs between forwarding and failing the ways sources fail.

support/faulty_idp.py does four of these modes for the OpenID provider only; this one serves
every source kind, and adds slow answers, chosen status codes, malformed bodies, bad
certificates and token responses without ``expires_in``.

Modes (``FaultProxy.mode``, changeable at any time; a change applies to the next connection):

- ``forward``: relays every request to ``upstream`` and, with ``rewrite``, replaces the
  upstream's origin by its own in answers (so an OpenID discovery document names the proxy).
- ``refuse``: the listening socket is closed: connection refused. Back to any other mode, it
  listens again on the same port.
- ``hang-tcp``: accepts the TCP connection and never says a word (not even a TLS handshake).
- ``hang``: completes the TLS handshake, reads the request, never answers.
- ``slow``: reads the request, waits ``delay`` seconds, then forwards it.
- ``status``: answers ``status`` (default 503) with ``status_body`` and, if set, a
  ``Retry-After: retry_after`` header.
- ``malformed-json``: answers 200 with a JSON content type and a body that is not JSON.
- ``wrong-ca``: TLS with a certificate for 127.0.0.1 from another CA than ``.ca``.
- ``expired-cert``: TLS with a certificate from ``.ca`` whose validity ended yesterday.
- ``no-expires-in``: forwards, and drops ``expires_in`` from JSON answers that carry an
  ``access_token`` (a token endpoint that states no lifetime).
- ``truncated``: forwards, and passes on only the first half of the answer's body (with a
  matching Content-Length): a 200 whose JSON stops in the middle, secrets and all.
- ``drip``: reads the request, sends a 200's status line and headers (a JSON content type, a
  Content-Length of 1 MB) at once, then its body one byte every ``drip_interval`` seconds
  (0.5), forever: each read a client makes is quick, the answer never ends.
- ``drip-headers``: the same trickle one step earlier: the status line, then a header line
  that never ends, a byte every ``drip_interval`` seconds.
- ``flood``: sends a 200's headers with no Content-Length, then a body of spaces as fast as
  the client reads it, forever (an answer that would fill the client's memory).

``applies`` (a predicate on ``(method, path)``) limits the request-level faults (``hang``,
``slow``, ``status``, ``malformed-json``, ``truncated``, ``drip``, ``drip-headers``, ``flood``)
to some requests; others are forwarded.

Clients trust ``.ca`` (a throwaway trustme CA written to ``directory``). It counts what it sees:
``connections`` (TCP connections accepted), ``requests`` (``(method, path)`` of every request
read, whatever the mode did with it) and ``handshake_failures``. Every connection carries one
request (HTTP/1.0 semantics with ``Connection: close``), so counts are per request.
``stop()`` releases held connections, closes the listening socket and joins its threads.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from request_body import HOP_BY_HOP, read_body

MODES = (
    "forward",
    "refuse",
    "hang-tcp",
    "hang",
    "slow",
    "status",
    "malformed-json",
    "wrong-ca",
    "expired-cert",
    "no-expires-in",
    "truncated",
    "drip",
    "drip-headers",
    "flood",
)
REQUEST_FAULTS = frozenset(
    {"hang", "slow", "status", "malformed-json", "truncated", "drip", "drip-headers", "flood"}
)
STREAMING_FAULTS = frozenset({"drip", "drip-headers", "flood"})
# Re-framed here: the relayed body's length and encoding; 100-continue is answered here.
RELAY_DROPS = HOP_BY_HOP | {"content-length", "content-encoding", "accept-encoding", "expect"}
MALFORMED_BODY = b'<html><body>502 Bad Gateway</body></html>\n{"truncated": '


def _write_tls(directory: Path) -> dict[str, str]:
    """PEM paths: ``ca`` (what clients trust), and the key+chain files of three leaves for
    127.0.0.1/localhost: ``good`` (from ca), ``expired`` (from ca, ended yesterday) and
    ``wrong`` (from another CA)."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    leaves = {
        "good": ca.issue_cert("127.0.0.1", "localhost"),
        "expired": ca.issue_cert(
            "127.0.0.1",
            "localhost",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
        "wrong": other.issue_cert("127.0.0.1", "localhost"),
    }
    paths = {"ca": str(directory / "proxy-ca.pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    for name, leaf in leaves.items():
        path = str(directory / f"proxy-{name}.pem")
        leaf.private_key_and_cert_chain_pem.write_to_path(path)
        paths[name] = path
    return paths


def _server_context(pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection
    server: FaultProxy  # type: ignore[assignment]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _answer(self) -> None:
        proxy = self.server
        body = read_body(self)
        path = urlsplit(self.path).path
        proxy.record(self.command, path)
        mode = proxy.mode
        if mode in REQUEST_FAULTS and not proxy.applies(self.command, path):
            mode = "forward"
        if mode == "hang":
            proxy.stopping.wait()
            self.close_connection = True
            return
        if mode == "slow" and proxy.stopping.wait(proxy.delay):
            return
        if mode == "status":
            headers = {"Content-Type": proxy.status_type}
            if proxy.retry_after:
                headers["Retry-After"] = proxy.retry_after
            self._send(proxy.status, proxy.status_body, headers)
            return
        if mode == "malformed-json":
            self._send(200, MALFORMED_BODY, {"Content-Type": "application/json"})
            return
        if mode in STREAMING_FAULTS:
            self._stream(mode)
            return
        self._forward(body, mode)

    def _stream(self, mode: str) -> None:
        """``drip``, ``drip-headers`` and ``flood``: an answer that never ends, until the
        client goes away or the proxy stops."""
        proxy = self.server
        self.close_connection = True
        status = b"HTTP/1.0 200 OK\r\n"
        if mode == "drip-headers":
            head, unit, pause = status + b"X-Drip: ", b"a", proxy.drip_interval
        elif mode == "drip":
            head = status + b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            unit, pause = b" ", proxy.drip_interval
        else:
            head = status + b"Content-Type: application/json\r\nConnection: close\r\n\r\n"
            unit, pause = b" " * 65536, 0.0
        with contextlib.suppress(OSError, ValueError):  # the client went away, or stop() cut it
            self.wfile.write(head)
            while not (proxy.stopping.wait(pause) if pause else proxy.stopping.is_set()):
                self.wfile.write(unit)

    def _forward(self, body: bytes, mode: str) -> None:
        proxy = self.server
        try:
            status, headers, data = proxy.relay(self.command, self.path, self.headers, body)
        except OSError:
            self._send(502, b"bad gateway", {"Content-Type": "text/plain"})
            return
        if mode == "no-expires-in":
            data = _without_expires_in(data)
        elif mode == "truncated":
            data = data[: len(data) // 2]
        self._send(status, data, headers)

    def _send(self, status: int, data: bytes, headers: Mapping[str, str]) -> None:
        with contextlib.suppress(OSError):  # the client may have given up (its deadline)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        self.close_connection = True


def _without_expires_in(data: bytes) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    if not isinstance(doc, dict) or "access_token" not in doc:
        return data
    doc.pop("expires_in", None)
    return json.dumps(doc).encode()


class FaultProxy:
    """See the module docstring. ``upstream``: the peer's origin (``http://`` or ``https://``,
    trusted through ``upstream_ca``; None: no peer, only the fault modes answer).
    ``tls``: serve HTTPS (default) or plain HTTP. ``rewrite``: replace the upstream origin by
    the proxy's in answers. ``preserve_host``: relay the client's Host header unchanged (moto
    checks SigV4 signatures against it); else the upstream's host is sent."""

    def __init__(
        self,
        directory: Path,
        upstream: str | None = None,
        *,
        upstream_ca: str | None = None,
        tls: bool = True,
        rewrite: bool = True,
        preserve_host: bool = False,
        mode: str = "forward",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.upstream = upstream.rstrip("/") if upstream else None
        self.upstream_ca = upstream_ca
        self.tls = tls
        self.rewrite = rewrite
        self.preserve_host = preserve_host
        self.status = 503
        self.status_body = b'{"error": "service unavailable"}'
        self.status_type = "application/json"
        self.retry_after: str | None = None
        self.delay = 5.0
        self.drip_interval = 0.5
        self.applies: Callable[[str, str], bool] = lambda method, path: True
        self.connections = 0
        self.handshake_failures = 0
        self.requests: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._paths = _write_tls(directory) if tls else {}
        self._contexts = (
            {name: _server_context(self._paths[name]) for name in ("good", "expired", "wrong")}
            if tls
            else {}
        )
        self._listener: socket.socket | None = None
        self.port = 0
        self._mode = "forward"
        self._listen()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()
        self.mode = mode

    # --- where it is ---------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        """PEM path of the CA clients must trust (it signed the ``forward`` certificate)."""
        if not self.tls:
            raise RuntimeError("a plain-HTTP proxy has no CA")
        return self._paths["ca"]

    # --- switching -----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            listener = self._listener
            if mode == "refuse" and listener is not None:
                self._listener = None
                with contextlib.suppress(OSError):
                    listener.shutdown(socket.SHUT_RDWR)  # stops listening now, wakes accept()
                listener.close()
        if mode != "refuse" and listener is None and not self.stopping.is_set():
            self._listen()

    def fail_with(
        self,
        status: int,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        retry_after: str | None = None,
    ) -> None:
        """Switch to ``status`` mode with this answer."""
        self.status = status
        if body is not None:
            self.status_body = body
        self.status_type = content_type
        self.retry_after = retry_after
        self.mode = "status"

    # --- what it saw ---------------------------------------------------------------------------
    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def count(self, method: str | None = None, suffix: str = "") -> int:
        """Requests read so far (with this method, whose path ends with ``suffix``)."""
        with self._lock:
            return sum(
                1
                for m, p in self.requests
                if (method is None or m == method) and p.endswith(suffix)
            )

    # --- serving -------------------------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = int(listener.getsockname()[1])
        with self._lock:
            self._listener = listener

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self.stopping.wait(0.05)
                continue
            try:
                conn, address = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)
            thread = threading.Thread(target=self._connection, args=(conn, address), daemon=True)
            with self._lock:
                self.connections += 1
                self._held.append(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _connection(self, conn: socket.socket, address: Any) -> None:
        mode = self.mode
        try:
            if mode == "hang-tcp":
                self.stopping.wait()
                return
            if self.tls:
                context = self._contexts[
                    {"wrong-ca": "wrong", "expired-cert": "expired"}.get(mode, "good")
                ]
                conn.settimeout(10)
                try:
                    tls_conn = context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    with self._lock:
                        self.handshake_failures += 1
                    return
                with self._lock:
                    self._held.append(tls_conn)
                conn = tls_conn
            _Handler(conn, address, self)  # type: ignore[arg-type]
        except (OSError, ValueError):
            pass  # the client went away, or stop() cut the connection
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def relay(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request upstream; (status, headers to pass on, body), origins rewritten."""
        if self.upstream is None:
            return 404, {"Content-Type": "text/plain"}, b"no upstream"
        up = urlsplit(self.upstream)
        conn: http.client.HTTPConnection
        if up.scheme == "https":
            context = ssl.create_default_context(cafile=self.upstream_ca)
            conn = http.client.HTTPSConnection(up.hostname, up.port, timeout=30, context=context)
        else:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                lower = name.lower()
                if lower in RELAY_DROPS or (lower == "host" and not self.preserve_host):
                    continue
                conn.putheader(name, value)
            if not self.preserve_host:
                conn.putheader("Host", up.netloc)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            status, data = response.status, response.read()
            passed = {
                k: v for k, v in response.getheaders() if k.lower() not in RELAY_DROPS | {"host"}
            }
        finally:
            conn.close()
        if self.rewrite:
            data = data.replace(self.upstream.encode(), self.origin.encode())
            passed = {
                k: (v.replace(self.upstream, self.origin) if k.lower() == "location" else v)
                for k, v in passed.items()
            }
        return status, passed, data

    # --- life cycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Release held connections, close the listening socket, join the threads. Idempotent."""
        self.stopping.set()
        with self._lock:
            listener, self._listener = self._listener, None
            held, self._held = self._held, []
            threads = list(self._threads)
        if listener is not None:
            listener.close()
        for sock in held:
            with contextlib.suppress(OSError):
                # the plain socket method: SSLSocket.shutdown would unwrap under a reading thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._acceptor.join(5)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
