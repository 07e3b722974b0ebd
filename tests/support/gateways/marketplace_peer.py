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
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateways.serving import LocalServer, QuietHandler, connection, same
from gateways.sibling_helpers import (
    MCP_LIMIT_S,
    HelperRun,
    marketplace_credential,
    read_output,
    run_helper,
)

TIMEOUT = 30.0  # one request to a local server through a local gateway: well under 1 s
CATALOGUE = {
    "name": "acme-plugins",
    "owner": {"name": "ACME IT"},
    "plugins": [{"name": "expense-report", "source": "./plugins/expense-report"}],
}


class _Handler(QuietHandler):
    server: Any  # its owner: Marketplace

    def do_GET(self) -> None:
        owner = self.server.owner
        offered = (self.headers.get("x-api-key") or "").encode()
        if not hmac.compare_digest(offered, owner.gateway_key.encode()):
            self.send_json(401, {"error": "not through the gateway"})
            return
        if not self.path.split("?")[0].endswith("/marketplace.json"):
            self.send_json(404, {"error": "no such file"})
            return
        owner.record({k.lower(): v for k, v in self.headers.items()})
        self.send_json(200, CATALOGUE)


class Marketplace(LocalServer):
    """See the module docstring. Use as a context manager; ``url`` is ``http://127.0.0.1:P``."""

    def __init__(self, *, gateway_key: str) -> None:
        self.gateway_key = gateway_key
        self.seen: list[dict[str, str]] = []
        super().__init__(_Handler)

    def record(self, headers: dict[str, str]) -> None:
        with self._lock:
            self.seen.append(headers)

    def saw(self, name: str, expected: str) -> bool:
        """Whether the last catalogue served went with header ``name`` equal to ``expected``
        (constant time; the value is never shown)."""
        with self._lock:
            value = self.seen[-1].get(name.lower()) if self.seen else None
        return same(value, expected)


def get(url: str, token: str, *, ca: str | None = None) -> tuple[int, object]:
    """``GET url`` with ``Authorization: Bearer <token>``: (status, parsed JSON body or None)."""
    conn = connection(url, timeout=TIMEOUT, ca=ca)
    try:
        conn.request(
            "GET", urllib.parse.urlsplit(url).path, headers={"Authorization": f"Bearer {token}"}
        )
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
    credential, outcome.helper_error = read_output(run, marketplace_credential)
    if credential is None:
        return outcome
    outcome.username, token = credential
    outcome.status, outcome.catalogue = get(url, token, ca=ca)
    return outcome
