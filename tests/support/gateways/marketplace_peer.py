"""A plugin marketplace for a managed Claude, on the gateway's origin (behind the JWT gateway),
and the app's use of a marketplace ``credentialHelper``. Standard library only.

``Marketplace`` (a thread on 127.0.0.1, plain HTTP; the gateway in front terminates TLS and
validates the token) serves ``GET …/marketplace.json``: a Claude Code plugin marketplace
catalogue (``name``, ``owner``, ``plugins``). It serves only what came through the gateway: a
request without the gateway's own ``x-api-key`` gets 401. ``seen`` records the headers (names
lower-cased) of each catalogue it served.

``fetch_catalogue`` runs the helper as the app runs a sibling helper (no arguments, no
CLAUDE_HELPER_CONTEXT, stdin closed), reads its stdout as the surface does (a bare token or
git-credential lines, never JSON: sibling_helpers.marketplace_credential), and fetches the
catalogue with the token as ``Authorization: Bearer`` (how a url marketplace sends the
credential is inferred, not documented: the gateway takes a bearer token).
"""

from __future__ import annotations

import hmac
import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gateways.sibling_helpers import (
    MCP_LIMIT_S,
    HelperOutputError,
    HelperRun,
    marketplace_credential,
    run_helper,
)

TIMEOUT = 30.0  # one request to a local server through a local gateway: well under 1 s
CATALOGUE = {
    "name": "acme-plugins",
    "owner": {"name": "ACME IT"},
    "plugins": [{"name": "expense-report", "source": "./plugins/expense-report"}],
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Marketplace


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def do_GET(self) -> None:
        owner = self.server.owner
        offered = (self.headers.get("x-api-key") or "").encode()
        if not hmac.compare_digest(offered, owner.gateway_key.encode()):
            self._answer(401, {"error": "not through the gateway"})
            return
        if not self.path.split("?")[0].endswith("/marketplace.json"):
            self._answer(404, {"error": "no such file"})
            return
        owner.record({k.lower(): v for k, v in self.headers.items()})
        self._answer(200, CATALOGUE)


class Marketplace:
    """See the module docstring. Use as a context manager; ``url`` is ``http://127.0.0.1:P``."""

    def __init__(self, *, gateway_key: str) -> None:
        self.gateway_key = gateway_key
        self.seen: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def record(self, headers: dict[str, str]) -> None:
        with self._lock:
            self.seen.append(headers)

    def saw(self, name: str, expected: str) -> bool:
        """Whether the last catalogue served went with header ``name`` equal to ``expected``
        (constant time; the value is never shown)."""
        with self._lock:
            value = self.seen[-1].get(name.lower()) if self.seen else None
        return value is not None and hmac.compare_digest(value.encode(), expected.encode())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> Marketplace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def get(url: str, token: str, *, ca: str | None = None) -> tuple[int, object]:
    """``GET url`` with ``Authorization: Bearer <token>``: (status, parsed JSON body or None)."""
    parts = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca)
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=TIMEOUT, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
    try:
        conn.request("GET", parts.path, headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse()
        raw = answer.read()
    finally:
        conn.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, None


@dataclass
class Fetch:
    run: HelperRun
    status: int = 0
    catalogue: object = None
    username: str = ""
    helper_error: str = ""


def fetch_catalogue(
    helper: str,
    url: str,
    env: Mapping[str, str],
    *,
    ca: str | None = None,
    limit: float = MCP_LIMIT_S,
) -> Fetch:
    """The app's use of a marketplace credentialHelper: see the module docstring."""
    run = run_helper(helper, env, limit=limit)
    outcome = Fetch(run)
    if not run.ok:
        outcome.helper_error = f"the helper failed: exit {run.code}"
        return outcome
    try:
        outcome.username, token = marketplace_credential(run.stdout)
    except HelperOutputError as e:
        outcome.helper_error = f"the helper's output: {e}"
        return outcome
    outcome.status, outcome.catalogue = get(url, token, ca=ca)
    return outcome
