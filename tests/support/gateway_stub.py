"""An LLM gateway stand-in for `gatekey doctor` tests: HTTPS (or HTTP) on 127.0.0.1, answering
``GET <prefix>/v1/models`` the way a gateway would, and remembering the headers it was sent.

- ``status`` (changeable while it runs): 200 answers an Anthropic-style model list; any other
  status answers an Anthropic-style error body ``{"type": "error", "error": {"type", "message"}}``
  with ``message``, plus ``WWW-Authenticate: <challenge>`` when a challenge is set (401).
- Any other path answers 404.
- ``requests``: ``(method, path, headers)`` per request, header names lower-cased. Tests compare
  a header with what they expect (``got(name, value)``) and never print it: it holds a token.
"""

from __future__ import annotations

import hmac
import json
import ssl
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = {
    "data": [
        {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"},
        {"type": "model", "id": "claude-opus-4-1", "display_name": "Claude Opus 4.1"},
    ],
    "has_more": False,
}
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: GatewayStub

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that refuse our certificate are part of the tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner.record("GET", self.path, headers)
        if self.path.split("?")[0] != f"{owner.prefix}/v1/models":
            self._send(404, _error(404, "no such route"))
            return
        status = owner.status
        if status == 200:
            self._send(200, MODELS)
            return
        extra = {"WWW-Authenticate": owner.challenge} if owner.challenge else {}
        self._send(status, _error(status, owner.message), extra)

    def _send(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


def _error(status: int, message: str) -> dict[str, object]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class GatewayStub:
    """See the module docstring. ``tls``: PEM paths ``cert`` and ``key`` (None: plain HTTP)."""

    def __init__(
        self,
        tls: Mapping[str, str] | None = None,
        *,
        status: int = 200,
        challenge: str | None = None,
        message: str = "",
        prefix: str = "",
    ) -> None:
        self.status = status
        self.challenge = challenge
        self.message = message
        self.prefix = prefix.rstrip("/")
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls["cert"], tls["key"])
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL, as inferenceGatewayBaseUrl would hold it."""
        return f"{self.scheme}://127.0.0.1:{self.port}{self.prefix}"

    def answer(
        self, status: int, *, challenge: str | None = None, message: str = "refused"
    ) -> None:
        self.status, self.challenge, self.message = status, challenge, message

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, headers))

    def got(self, name: str, expected: str) -> bool:
        """Whether the last request carried header ``name`` equal to ``expected`` (constant
        time; the value is never shown)."""
        with self._lock:
            if not self.requests:
                return False
            value = self.requests[-1][2].get(name.lower())
        return value is not None and hmac.compare_digest(value.encode(), expected.encode())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> GatewayStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
