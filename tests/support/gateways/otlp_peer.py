"""An OTLP/HTTP receiver (what an OpenTelemetry collector's otlphttp receiver serves) to put
behind the JWT gateway, and an exporter stand-in that sends as a managed Claude's exporter does
with its ``otlpHeadersHelper``'s headers. Standard library only.

``OtlpReceiver`` (a thread on 127.0.0.1, plain HTTP: the gateway in front terminates TLS and
validates the Bearer JWT) takes ``POST …/v1/traces``, ``…/v1/metrics`` and ``…/v1/logs`` (any
prefix) as the OTLP/HTTP specification says: ``application/x-protobuf`` or ``application/json``
bodies, optionally gzip-encoded. It checks the body is the signal's export request (JSON: its
``resource…`` list; protobuf: a well-formed message whose fields are field 1, the resource
list), answers 200 with an empty export response in the request's encoding, 400 for a malformed
body, 404 for another path, 415 for another content type. It serves only what came through the
gateway: a request without the gateway's own ``x-api-key`` gets 401. ``seen`` records
``(signal, encoding, headers)`` per accepted export (names lower-cased); tests compare values
with ``saw`` and never print them.

``export`` is the exporter's one request; ``exporter_run`` runs the helper as the app does
(sibling_helpers.run_helper) and exports with the header map it printed.
"""

from __future__ import annotations

import gzip
import hmac
import json
import os
import struct
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateways.serving import LocalServer, QuietHandler, connection, same
from gateways.sibling_helpers import MCP_LIMIT_S, HelperRun, header_map, read_output, run_helper

SIGNALS = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TIMEOUT = 30.0  # one request to a local receiver through a local gateway: well under 1 s
MAX_BODY = 4 << 20


# --- protobuf, the few bits OTLP needs ----------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fixed64_field(number: int, value: int) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<Q", value)


def top_level_fields(body: bytes) -> list[int]:
    """The field numbers of a protobuf message's fields, in order; ValueError if malformed."""
    numbers, i = [], 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            if i >= len(body) or shift > 63:
                raise ValueError("truncated varint")
            byte = body[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(body):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            varint()
        elif wire == 1:
            i += 8
        elif wire == 2:
            length = varint()  # not ``i += varint()``: that adds to i as it was before the read
            i += length
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
        if number == 0 or i > len(body):
            raise ValueError("truncated field")
        numbers.append(number)
    return numbers


def trace_request_protobuf(name: str = "claude.turn") -> bytes:
    """An ExportTraceServiceRequest with one span (opentelemetry-proto trace/v1)."""
    now = time.time_ns()
    span = (
        _bytes_field(1, os.urandom(16))  # trace_id
        + _bytes_field(2, os.urandom(8))  # span_id
        + _bytes_field(5, name.encode())  # name
        + _fixed64_field(7, now - 1_000_000)  # start_time_unix_nano
        + _fixed64_field(8, now)  # end_time_unix_nano
    )
    scope_spans = _bytes_field(2, span)  # ScopeSpans.spans
    resource_spans = _bytes_field(2, scope_spans)  # ResourceSpans.scope_spans
    return _bytes_field(1, resource_spans)  # ExportTraceServiceRequest.resource_spans


def request_json(signal: str) -> dict[str, object]:
    """A small export request of ``signal`` in OTLP's JSON encoding."""
    now = str(time.time_ns())
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "claude"}}]}
    if signal == "traces":
        span = {
            "traceId": os.urandom(16).hex(),
            "spanId": os.urandom(8).hex(),
            "name": "claude.turn",
            "kind": 1,
            "startTimeUnixNano": now,
            "endTimeUnixNano": now,
        }
        entry: dict[str, object] = {"resource": resource, "scopeSpans": [{"spans": [span]}]}
    elif signal == "metrics":
        point = {"asInt": "1", "timeUnixNano": now}
        metric = {"name": "claude.turns", "sum": {"dataPoints": [point], "isMonotonic": True}}
        entry = {"resource": resource, "scopeMetrics": [{"metrics": [metric]}]}
    else:
        record = {"timeUnixNano": now, "body": {"stringValue": "turn done"}}
        entry = {"resource": resource, "scopeLogs": [{"logRecords": [record]}]}
    return {SIGNALS[signal]: [entry]}


# --- the receiver ---------------------------------------------------------------------------------
class _Handler(QuietHandler):
    server: Any  # its owner: OtlpReceiver

    def _answer(self, status: int, content_type: str = JSON, body: bytes = b"") -> None:
        self.send_body(status, content_type, body)

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY))
        offered = (self.headers.get("x-api-key") or "").encode()
        if not hmac.compare_digest(offered, owner.gateway_key.encode()):
            self._answer(401, body=b'{"code": 16, "message": "not through the gateway"}')
            return
        signal = self.path.split("?")[0].rstrip("/").rsplit("/v1/", 1)[-1]
        if signal not in SIGNALS or "/v1/" not in self.path:
            self._answer(404)
            return
        encoding = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if encoding not in (PROTOBUF, JSON):
            self._answer(415)
            return
        try:
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            if encoding == JSON:
                parsed = json.loads(body)
                if not isinstance(parsed, dict) or not isinstance(
                    parsed.get(SIGNALS[signal]), list
                ):
                    raise ValueError(f"no {SIGNALS[signal]} list")
            elif set(top_level_fields(body)) - {1}:
                raise ValueError("fields other than the resource list")
        except (OSError, ValueError) as e:
            message = json.dumps({"code": 3, "message": str(e)}).encode()
            self._answer(400, body=message)
            return
        owner.record(signal, encoding, {k.lower(): v for k, v in self.headers.items()})
        # An empty Export…ServiceResponse: zero bytes in protobuf, {} in JSON.
        self._answer(200, encoding, b"" if encoding == PROTOBUF else b"{}")


class OtlpReceiver(LocalServer):
    """See the module docstring. Use as a context manager; ``url`` is ``http://127.0.0.1:P``."""

    def __init__(self, *, gateway_key: str) -> None:
        self.gateway_key = gateway_key
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(_Handler)

    def record(self, signal: str, encoding: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.seen.append((signal, encoding, headers))

    def saw(self, name: str, expected: str, *, signal: str = "traces") -> bool:
        """Whether the last accepted ``signal`` export carried header ``name`` equal to
        ``expected`` (constant time; the value is never shown)."""
        with self._lock:
            hits = [h for s, _, h in self.seen if s == signal]
        return same(hits[-1].get(name.lower()) if hits else None, expected)


# --- the exporter ---------------------------------------------------------------------------------
def export(
    endpoint: str,
    headers: Mapping[str, str],
    *,
    signal: str = "traces",
    encoding: str = PROTOBUF,
    ca: str | None = None,
) -> int:
    """One OTLP/HTTP export to ``endpoint/v1/<signal>`` with ``headers``: the HTTP status."""
    if encoding == PROTOBUF and signal != "traces":
        raise ValueError("the stand-in encodes traces only in protobuf")
    body = trace_request_protobuf() if encoding == PROTOBUF else json.dumps(request_json(signal))
    data = body.encode() if isinstance(body, str) else body
    url = f"{endpoint.rstrip('/')}/v1/{signal}"
    conn = connection(url, timeout=TIMEOUT, ca=ca)
    try:
        conn.request(
            "POST", urllib.parse.urlsplit(url).path, data, {**headers, "Content-Type": encoding}
        )
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


@dataclass
class Export:
    run: HelperRun
    statuses: list[int] = field(default_factory=list)
    helper_error: str = ""


def exporter_run(
    helper: str,
    endpoint: str,
    env: Mapping[str, str],
    *,
    ca: str | None = None,
    limit: float = MCP_LIMIT_S,
) -> Export:
    """The exporter's use of its otlpHeadersHelper: run it as the app does, then export a
    protobuf trace and a JSON metric with the header map it printed."""
    run = run_helper(helper, env, limit=limit)
    outcome = Export(run)
    headers, outcome.helper_error = read_output(run, header_map)
    if headers is None:
        return outcome
    outcome.statuses.append(export(endpoint, headers, ca=ca))
    outcome.statuses.append(export(endpoint, headers, signal="metrics", encoding=JSON, ca=ca))
    return outcome
