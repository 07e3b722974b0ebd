"""A scripted OpenID provider for bad-input tests: an HTTPS server on 127.0.0.1 (a throwaway CA,
see ``oidc_peer.make_tls``) whose every answer is set by the test, byte for byte.

It serves the discovery document (``<issuer>/.well-known/openid-configuration``), the token
endpoint (``<issuer>/token``, every grant) and the device authorization endpoint
(``<issuer>/device/auth``). Each is a ``Reply`` (status, headers, body: anything, including
answers no real provider sends) or a function of the request's form fields returning one, and
can be swapped while the server runs (``idp.token = Reply(...)``); a function sees the form
fields, and the request's ``Authorization`` header under the key ``AUTHORIZATION``. The default
replies are those of a well-behaved provider: a valid discovery document, a token response with
an opaque access token, and (for ``public-client`` grants) an ID token and a refresh token.

Every answer is written raw (``HTTP/1.1``, ``Connection: close``), so a test can send a status
line with any code, any header (``Content-Encoding: gzip`` on a plain body, a ``Location`` that
loops) and a body that is not what its headers say. ``requests`` records (method, path, form)
for what the server saw. ``stop()`` closes the listening socket and joins the server thread.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

DISCOVERY = "/.well-known/openid-configuration"
PUBLIC_CLIENT = "scripted-public"
CONF_CLIENT = "scripted-conf"
CONF_SECRET = "scripted-secret-0123456789"
AUTHORIZATION = "(authorization header)"  # the form key under which answers see that header
STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 500: "Internal Server Error"}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: bool = True  # False: no Content-Length (the body ends with the connection)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode(), [("Content-Type", "application/json")])


Answer = Reply | Callable[[dict[str, str]], Reply]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def id_token(issuer: str, client_id: str, sub: str = "alice", lifetime: int = 3600) -> str:
    """An (unsigned: MSAL does not verify signatures) ID token MSAL accepts for ``client_id``."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "scripted"}
    claims = {
        "iss": issuer,
        "aud": client_id,
        "sub": sub,
        "iat": now,
        "exp": now + lifetime,
        "preferred_username": f"{sub}@example.test",
    }
    return ".".join(
        (_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(b"sig"))
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedIdp

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early are part of the point


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        form[AUTHORIZATION] = self.headers.get("Authorization", "")
        path = self.path.split("?", 1)[0]
        owner.record(self.command, path, form)
        if path == owner.issuer_path + DISCOVERY:
            answer: Answer = owner.discovery
        elif path == owner.issuer_path + "/token":
            answer = owner.token
        elif path == owner.issuer_path + "/device/auth":
            answer = owner.device
        else:
            answer = Reply(404, b"not found", [("Content-Type", "text/plain")])
        reply = answer(form) if callable(answer) else answer
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        reason = STATUS_TEXT.get(reply.status, "Whatever")
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if reply.content_length:
            lines.append(f"Content-Length: {len(reply.body)}")
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head + reply.body)
        self.wfile.flush()
        self.close_connection = True


class ScriptedIdp:
    """See the module docstring. ``tls``: PEM paths ``ca``, ``cert`` and ``key``."""

    def __init__(self, tls: Mapping[str, str], *, issuer_path: str = "/oidc") -> None:
        self.ca = tls["ca"]
        self.issuer_path = issuer_path
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls["cert"], tls["key"])
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.discovery: Answer = Reply.json(self.discovery_document())
        self.token: Answer = self.good_token
        self.device: Answer = self.good_device
        self.issued = 0
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.issuer_path}"

    def discovery_document(self) -> dict[str, object]:
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

    # --- the well-behaved answers ----------------------------------------------------------
    def next_access_token(self) -> str:
        with self._lock:
            self.issued += 1
            return f"at-{self.port}-{self.issued}-{time.monotonic_ns()}"

    def good_token(self, form: dict[str, str]) -> Reply:
        body: dict[str, object] = {
            "access_token": self.next_access_token(),
            "token_type": "Bearer",
            "expires_in": 7200,
        }
        if form.get("client_id") == PUBLIC_CLIENT:
            body["refresh_token"] = f"rt-{self.issued}"
            body["id_token"] = id_token(self.issuer, PUBLIC_CLIENT)
            body["scope"] = "api.read"
        return Reply.json(body)

    def good_device(self, form: dict[str, str]) -> Reply:
        return Reply.json(
            {
                "device_code": "scripted-device-code",
                "user_code": "ABCD-EFGH",
                "verification_uri": f"{self.issuer}/device",
                "expires_in": 600,
                "interval": 1,
            }
        )

    # --- what it saw ---------------------------------------------------------------------------
    def record(self, method: str, path: str, form: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, form))

    def count(self, suffix: str) -> int:
        with self._lock:
            return sum(1 for _, path, _ in self.requests if path.endswith(suffix))

    # --- life cycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop serving, close the listening socket, join the server thread. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> ScriptedIdp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
