"""An LLM gateway stand-in for `gatekey doctor` tests: HTTPS (or HTTP) on 127.0.0.1, answering
``GET <prefix>/v1/models`` and ``POST <prefix>/v1/messages`` the way a gateway would, and
remembering what it was sent.

- ``status`` (changeable while it runs): 200 answers an Anthropic-style model list; any other
  status answers an Anthropic-style error body ``{"type": "error", "error": {"type", "message"}}``
  with ``message`` (or exactly ``body`` when one is given: another gateway's error shape), plus
  ``WWW-Authenticate: <challenge>`` when a challenge is set (401). The same status and error
  answer ``POST /v1/messages`` unless it is 200.
- ``POST /v1/messages`` with status 200, by ``messages`` mode (``answer_messages``):
  "stream" the Anthropic Messages event stream (HTTP/1.1, chunked, one chunk per event:
  message_start ... message_stop); "broken" message_start and content_block_start, then the
  connection is cut mid-body; "unfinished" the stream ends properly but without message_stop;
  "error-event" message_start then an ``event: error`` (overloaded_error); "json" a 200
  application/json message body, as a non-streaming route answers; "status" ``messages_status``
  with an Anthropic error body (``messages_message``); "stall" message_start, then nothing
  until the stub stops (at most STALL_S); "flood" ping events without end (at most FLOOD_BYTES).
  A model not in MODELS: 404
  not_found_error naming it, as Anthropic's API answers.
- Any other path or method answers 404.
- ``requests``: ``(method, path, headers)`` per request, header names lower-cased; ``posted``:
  the JSON bodies of POST /v1/messages. Tests compare a header with what they expect
  (``got(name, value)``) and never print it: it holds a token.
"""

from __future__ import annotations

import hmac
import json
import ssl
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = {
    "data": [
        {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"},
        {"type": "model", "id": "claude-opus-4-1", "display_name": "Claude Opus 4.1"},
    ],
    "has_more": False,
}
STALL_S = 60.0  # how long "stall" holds its stream open: far past doctor's 30 s for the probe
FLOOD_BYTES = 4 * 1024 * 1024  # what "flood" sends at most: far past doctor's 256 KiB
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

    def do_POST(self) -> None:
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner.record("POST", self.path, headers)
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(size, 1 << 20))
        if self.path.split("?")[0] != f"{owner.prefix}/v1/messages":
            self._send(404, _error(404, "no such route"))
            return
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        owner.post(body)
        if owner.status != 200:
            extra = {"WWW-Authenticate": owner.challenge} if owner.challenge else {}
            self._send(owner.status, owner.error_body(), extra)
            return
        model = body.get("model") if isinstance(body, dict) else None
        if model not in {m["id"] for m in MODELS["data"]}:
            self._send(404, _error(404, f"model: {model}"))
            return
        mode = owner.messages
        if mode == "status":
            self._send(owner.messages_status, _error(owner.messages_status, owner.messages_message))
        elif mode == "json":
            self._send(200, _message(str(model)))
        else:
            self._stream(mode, str(model))

    def _stream(self, mode: str, model: str) -> None:
        """The event stream of ``mode`` (see the module docstring), chunked as gateways send it."""
        events = _events(model)
        if mode == "broken":
            events = events[:2]
        elif mode == "unfinished":
            events = events[:-1]
        elif mode == "error-event":
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            events = [*events[:1], ("error", error)]
        self.protocol_version = "HTTP/1.1"  # chunked needs it; the connection closes after
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if mode in ("stall", "flood"):
            events = events[:1]
        for name, data in events:
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        if mode == "stall":
            self.server.owner.stopping.wait(STALL_S)
            return
        sent = 0
        while mode == "flood" and sent < FLOOD_BYTES:
            ping = b'event: ping\ndata: {"type": "ping"}\n\n' * 100
            try:
                self._chunk(ping)
            except OSError:
                return  # the client stopped reading, as it should
            sent += len(ping)
        if mode != "broken":
            self.wfile.write(b"0\r\n\r\n")  # the end of a chunked body; "broken" never sends it

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

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
        self._send(status, owner.error_body(), extra)

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


def _message(model: str) -> dict[str, object]:
    return {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }


def _events(model: str) -> list[tuple[str, dict[str, Any]]]:
    """The Anthropic Messages stream of a one-token answer."""
    start = {**_message(model), "content": [], "stop_reason": None}
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "ok"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


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
        messages: str = "stream",
    ) -> None:
        self.status = status
        self.challenge = challenge
        self.message = message
        self.body: object | None = None
        self.prefix = prefix.rstrip("/")
        self.messages, self.messages_status, self.messages_message = messages, 500, "failed"
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.posted: list[Any] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()  # ends a "stall" stream
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
        self,
        status: int,
        *,
        challenge: str | None = None,
        message: str = "refused",
        body: object | None = None,
    ) -> None:
        """Answer ``status`` from now on; an error with ``message`` in Anthropic's shape, or
        exactly ``body`` (JSON) when given."""
        self.status, self.challenge, self.message, self.body = status, challenge, message, body

    def answer_messages(self, mode: str, *, status: int = 500, message: str = "failed") -> None:
        """How POST /v1/messages answers from now on (see the module docstring)."""
        modes = (
            "stream",
            "broken",
            "unfinished",
            "error-event",
            "json",
            "status",
            "stall",
            "flood",
        )
        assert mode in modes
        self.messages, self.messages_status, self.messages_message = mode, status, message

    def error_body(self) -> object:
        return self.body if self.body is not None else _error(self.status, self.message)

    def post(self, body: Any) -> None:
        with self._lock:
            self.posted.append(body)

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
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> GatewayStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
