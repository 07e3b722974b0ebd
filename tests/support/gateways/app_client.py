"""Requests as Claude Desktop sends them through a gateway, built from a helper's stdout.

The app reads the helper's whole stdout: a JSON object ``{"token", "headers"}`` or else a bare
token (trimmed). It sends the token under ``inferenceGatewayAuthScheme`` (``bearer``:
``Authorization: Bearer <token>``; ``x-api-key``: ``x-api-key: <token>``), and the helper's
headers merged over the static ``inferenceCustomHeaders``, the helper winning a conflict
(../shared/reference/contract.md). Then it calls ``<inferenceGatewayBaseUrl>/v1/models`` and
streams ``POST <base>/v1/messages``.

Nothing here prints a header value: they hold credentials.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateways.serving import connection

ANTHROPIC_VERSION = "2023-06-01"
TIMEOUT = 30.0  # per request; a gateway in front of a local upstream answers in well under 1 s
MAX_ANSWER = 4 << 20


def app_headers(
    stdout: bytes, *, scheme: str = "bearer", custom: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The credential headers the app sends for a helper's stdout (see the module docstring)."""
    text = stdout.decode("utf-8")
    token, helper_headers = text.strip(), {}
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("token"), str):
        token = parsed["token"]
        helper_headers = {str(k): str(v) for k, v in (parsed.get("headers") or {}).items()}
    merged: dict[str, str] = {}
    for name, value in [*(custom or {}).items(), *helper_headers.items()]:
        for old in [k for k in merged if k.lower() == name.lower()]:
            del merged[old]
        merged[name] = value
    if scheme == "x-api-key":
        merged["x-api-key"] = token
    else:
        merged["Authorization"] = f"Bearer {token}"
    return merged


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The streamed text, joined from its deltas."""
        return "".join(
            str(d.get("delta", {}).get("text", ""))  # type: ignore[union-attr]
            for name, d in self.events
            if name == "content_block_delta"
        )

    @property
    def tool_input(self) -> object:
        """The streamed tool_use input, parsed from its partial JSON deltas (None if none)."""
        parts = [
            str(d.get("delta", {}).get("partial_json", ""))  # type: ignore[union-attr]
            for name, d in self.events
            if name == "content_block_delta"
        ]
        joined = "".join(parts)
        return json.loads(joined) if joined else None

    @property
    def event_names(self) -> list[str]:
        return [name for name, _ in self.events if name != "ping"]


def request(
    base_url: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: object = None,
    *,
    ca: str | None = None,
) -> Answer:
    """One request to ``base_url + path``; a ``text/event-stream`` answer is parsed into events."""
    url = urllib.parse.urlsplit(base_url.rstrip("/") + path)
    conn = connection(url.geturl(), timeout=TIMEOUT, ca=ca)
    sent = {"anthropic-version": ANTHROPIC_VERSION, **headers}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["content-type"] = "application/json"
    target = url.path + (f"?{url.query}" if url.query else "")
    deadline = time.monotonic() + TIMEOUT
    try:
        conn.request(method, target, body=data, headers=sent)
        response = conn.getresponse()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        chunks: list[bytes] = []
        size = 0
        while time.monotonic() < deadline and size < MAX_ANSWER:
            chunk = response.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
    finally:
        conn.close()
    answer = Answer(response.status, answer_headers, raw)
    if answer_headers.get("content-type", "").startswith("text/event-stream"):
        answer.events = parse_sse(raw)
    return answer


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, object]]]:
    """Server-sent events as ``(event name, data)``; the name falls back to data's ``type``."""
    events: list[tuple[str, dict[str, object]]] = []
    for block in raw.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if not data:
            continue
        joined = "\n".join(data)
        if joined == "[DONE]":
            continue
        parsed = json.loads(joined)
        if isinstance(parsed, dict):
            events.append((name or str(parsed.get("type", "")), parsed))
    return events


def models(base_url: str, headers: Mapping[str, str], *, ca: str | None = None) -> Answer:
    return request(base_url, "GET", "/v1/models", headers, ca=ca)


def stream_message(
    base_url: str,
    headers: Mapping[str, str],
    *,
    model: str,
    tools: bool = False,
    ca: str | None = None,
) -> Answer:
    """A streaming ``POST /v1/messages`` as the app sends one (with a tool when ``tools``)."""
    body: dict[str, object] = {
        "model": model,
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "ping"}],
    }
    if tools:
        body["tools"] = [
            {
                "name": "get_weather",
                "description": "The weather in a city",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            }
        ]
    return request(base_url, "POST", "/v1/messages", headers, body, ca=ca)


COMPLETE_STREAM = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]
