"""A model provider stand-in speaking the Anthropic Messages API, for gateways to forward to.

Plain HTTP on 127.0.0.1 (gateways reach it as a custom upstream), standard library only:

- ``GET …/v1/models``: an Anthropic model list.
- ``POST …/v1/messages``: a message answering ``pong``; when the request carries ``tools``, a
  ``tool_use`` block calling the first tool instead. With ``"stream": true`` the answer is real
  server-sent events in the order the API documents (``message_start``, ``content_block_start``,
  ``ping``, ``content_block_delta``…, ``content_block_stop``, ``message_delta``,
  ``message_stop``), each flushed as its own chunk.
- ``keys``: when set, a request must carry one of them as ``x-api-key`` or ``Authorization:
  Bearer`` (what a gateway forwarding the caller's credential sends); otherwise 401 with an
  Anthropic error body. Any path ending in ``/v1/models`` or ``/v1/messages`` is served, so a
  gateway may add a prefix.

``seen`` records ``(method, path, headers)`` per request (names lower-cased). Header values may
be credentials: tests compare them (``saw``) and never print them.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any

from gateways.serving import LocalServer, QuietHandler, same

MODEL = "claude-sonnet-4-5"
MODELS = {
    "data": [
        {
            "type": "model",
            "id": MODEL,
            "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z",
        }
    ],
    "has_more": False,
    "first_id": MODEL,
    "last_id": MODEL,
}
MAX_BODY = 1 << 20


class _Handler(QuietHandler):
    server: Any  # its owner: AnthropicUpstream

    def do_GET(self) -> None:
        if not self._admit("GET", None):
            return
        if self.path.split("?")[0].endswith("/v1/models"):
            self.send_json(200, MODELS)
        else:
            self.send_json(404, _error("not_found_error", f"no route {self.path.split('?')[0]}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY)) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not self._admit("POST", body):
            return
        if not self.path.split("?")[0].endswith("/v1/messages"):
            self.send_json(404, _error("not_found_error", f"no route {self.path.split('?')[0]}"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self.send_json(400, _error("invalid_request_error", "messages: field required"))
            return
        model = str(body.get("model") or MODEL)
        tools = body.get("tools") or []
        if tools:
            tool = tools[0] if isinstance(tools[0], dict) else {}
            block: dict[str, object] = {
                "type": "tool_use",
                "id": "toolu_01upstream",
                "name": str(tool.get("name", "tool")),
                "input": {"city": "Paris"},
            }
            stop = "tool_use"
        else:
            block = {"type": "text", "text": "pong"}
            stop = "end_turn"
        if body.get("stream"):
            self._stream(model, block, stop)
        else:
            self.send_json(200, _message(model, [block], stop, output_tokens=1))

    def _admit(self, method: str, body: object) -> bool:
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner.record(method, self.path, headers, body)
        if owner.keys is None:
            return True
        offered = headers.get("x-api-key") or ""
        auth = headers.get("authorization") or ""
        if auth[:7].lower() == "bearer ":
            offered = offered or auth[7:].strip()
        if any(hmac.compare_digest(offered.encode(), k.encode()) for k in owner.keys):
            return True
        self.send_json(401, _error("authentication_error", "invalid x-api-key"))
        return False

    def _stream(self, model: str, block: dict[str, object], stop: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        start = dict(block, input={}) if block["type"] == "tool_use" else dict(block, text="")
        if block["type"] == "tool_use":
            deltas = [
                {"type": "input_json_delta", "partial_json": '{"city": '},
                {"type": "input_json_delta", "partial_json": '"Paris"}'},
            ]
        else:
            deltas = [{"type": "text_delta", "text": "po"}, {"type": "text_delta", "text": "ng"}]
        events: list[tuple[str, dict[str, object]]] = [
            ("message_start", {"message": _message(model, [], None, output_tokens=0)}),
            ("content_block_start", {"index": 0, "content_block": start}),
            ("ping", {}),
            *(("content_block_delta", {"index": 0, "delta": d}) for d in deltas),
            ("content_block_stop", {"index": 0}),
            (
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 1},
                },
            ),
            ("message_stop", {}),
        ]
        for name, data in events:
            payload = json.dumps({"type": name, **data})
            self.wfile.write(f"event: {name}\ndata: {payload}\n\n".encode())
            self.wfile.flush()


def _message(
    model: str, content: list[dict[str, object]], stop: str | None, *, output_tokens: int
) -> dict[str, object]:
    return {
        "id": "msg_01upstream",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": output_tokens},
    }


def _error(kind: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class AnthropicUpstream(LocalServer):
    """See the module docstring. Use as a context manager; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, *, keys: Iterable[str] | None = None) -> None:
        self.keys = None if keys is None else tuple(keys)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[object] = []
        super().__init__(_Handler)

    def record(self, method: str, path: str, headers: dict[str, str], body: object) -> None:
        with self._lock:
            self.seen.append((method, path, headers))
            self.bodies.append(body)

    def saw(self, name: str, expected: str, *, path_end: str = "/v1/messages") -> bool:
        """Whether the last request to a path ending in ``path_end`` carried header ``name``
        equal to ``expected`` (constant time; the value is never shown)."""
        with self._lock:
            hits = [h for _, p, h in self.seen if p.split("?")[0].endswith(path_end)]
        return same(hits[-1].get(name.lower()) if hits else None, expected)
