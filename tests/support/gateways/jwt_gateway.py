"""An in-house style JWT gateway, the kind Envoy's jwt_authn, Kong's jwt plugin, Azure APIM's
validate-jwt or a team's own proxy are: a test peer that validates tokens and forwards.

Run as ``python -m gateways.jwt_gateway CONFIG.json`` with tests/support on PYTHONPATH
(``JwtGateway`` below starts it in its own process group and reads its ready line). It listens
on 127.0.0.1 only, over HTTPS (``tls``) or HTTP, and for each request picks the route with the
longest matching path ``prefix``. A route says:

- ``issuer`` and ``audience`` the token must carry, checked by PyJWT with NO leeway: ``exp``,
  ``nbf`` and a future ``iat`` are judged on this machine's clock to the second; ``exp``,
  ``iat``, ``iss`` and ``aud`` are required; only asymmetric algorithms (RS/PS/ES) are allowed.
- where the keys are: ``jwks_uri``, else the issuer's OpenID discovery document, fetched over
  HTTPS trusting ``ca``. Keys are held by ``kid``; a token naming an unknown ``kid`` makes the
  gateway fetch the set again (key rotation), at most once per ``jwks_cooldown`` seconds.
- ``scope``: a scope the token must hold (``scp`` as Entra writes it, or ``scope``; a
  space-separated string or a list), else 403.
- ``schemes``: ``bearer`` (``Authorization: Bearer``) and/or ``x-api-key`` (the JWT itself in
  ``x-api-key``, as some gateways take it from clients that only send API keys).
- ``subscription``: a header name (Azure API Management's ``Ocp-Apim-Subscription-Key``) that must
  carry the subscription key (environment ``JWT_GATEWAY_SUBSCRIPTION_KEY``), checked before the
  token as APIM does: missing or wrong, 401 with APIM's "Access denied due to …" message. The
  header is not forwarded.

Refusals follow RFC 6750 section 3 with an Anthropic-style error body: no credential (or only one
in a scheme the route does not take): 401 ``WWW-Authenticate: Bearer realm="…"`` with no error
code; a token that fails validation: 401 ``error="invalid_token", error_description="…"``; a
credential in two places at once: 400 ``error="invalid_request"``; a missing scope: 403
``error="insufficient_scope", scope="…"``.

An accepted request goes to ``upstream`` (or the route's own ``upstream``) with the route prefix
removed, the caller's credential removed and the gateway's own ``x-api-key`` (environment
``JWT_GATEWAY_UPSTREAM_KEY``) in its place, plus ``x-gateway-subject: <sub>`` (Envoy's
claim_to_headers); every other header is passed on. GET, POST and DELETE are taken (DELETE: an
MCP client ending its streamable HTTP session). The answer comes back as it arrives: a
streamed answer is relayed chunk by chunk, flushed, never buffered whole. The log (stderr) has
one line per request: method, path, status and the refusal's description; never a header value.
"""

from __future__ import annotations

import hmac
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gateways.serving import PeerProcess, QuietHandler

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip
MAX_BODY = 4 << 20
UPSTREAM_TIMEOUT = 30.0
FETCH_TIMEOUT = 10.0
# Measured: ~0.3 s from start to the ready line (PyJWT and cryptography imports, one JWKS fetch
# per route). The fixture waits READY_S, as the OIDC provider's does: a busy machine, never a
# slow gateway, is what the margin is for.
READY_S = 20.0
UPSTREAM_KEY_ENV = "JWT_GATEWAY_UPSTREAM_KEY"
SUBSCRIPTION_KEY_ENV = "JWT_GATEWAY_SUBSCRIPTION_KEY"


class Refusal(Exception):
    """A request the gateway refuses: HTTP status, RFC 6750 error code and description."""

    def __init__(
        self,
        status: int,
        error: str = "",
        description: str = "",
        scope: str = "",
        *,
        challenge: bool = True,
    ) -> None:
        super().__init__(description or error or "no credential")
        self.status, self.error, self.description, self.scope = status, error, description, scope
        self.challenge = challenge  # a WWW-Authenticate: Bearer challenge (RFC 6750)


# --- keys ---------------------------------------------------------------------------------------
class KeySet:
    """A route's signing keys by ``kid``, fetched again when a token names one it lacks."""

    def __init__(self, route: dict[str, Any], context: ssl.SSLContext) -> None:
        self.route, self.context = route, context
        self.cooldown = float(route.get("jwks_cooldown", 5.0))
        self.uri = str(route.get("jwks_uri") or self._discover())
        self.keys: dict[str, Any] = {}
        self.fetched_at = 0.0
        self.fetches = 0
        self._lock = threading.Lock()
        self._fetch()

    def _get(self, url: str) -> Any:
        if urllib.parse.urlsplit(url).scheme != "https":
            raise ValueError(f"{url}: keys are fetched over https only")
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT, context=self.context) as r:  # noqa: S310
            return json.load(r)

    def _discover(self) -> str:
        issuer = str(self.route["issuer"]).rstrip("/")
        return str(self._get(f"{issuer}/.well-known/openid-configuration")["jwks_uri"])

    def _fetch(self) -> None:
        import jwt

        keys = jwt.PyJWKSet.from_dict(self._get(self.uri)).keys
        self.keys = {str(k.key_id): k for k in keys if k.key_id}
        self.fetched_at = time.monotonic()
        self.fetches += 1

    def key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self.keys and time.monotonic() - self.fetched_at >= self.cooldown:
                try:
                    self._fetch()
                except (OSError, ValueError) as e:
                    raise Refusal(401, "invalid_token", "the signing keys are unavailable") from e
            if kid not in self.keys:
                raise Refusal(401, "invalid_token", "the token's signing key is unknown")
            return self.keys[kid]


# --- validation ---------------------------------------------------------------------------------
def credential(route: dict[str, Any], headers: http.client.HTTPMessage) -> str:
    """The token in the schemes the route takes (RFC 6750 section 2: one method only)."""
    schemes = route.get("schemes", ["bearer"])
    auth = headers.get_all("Authorization") or []
    keys = headers.get_all("x-api-key") or []
    found = []
    if "bearer" in schemes:
        found += [a[7:].strip() for a in auth if a[:7].lower() == "bearer "]
    if "x-api-key" in schemes:
        found += [k.strip() for k in keys]
    if len(found) > 1:
        raise Refusal(400, "invalid_request", "more than one credential in the request")
    if not found or not found[0]:
        raise Refusal(401)
    return found[0]


def validate(route: dict[str, Any], keys: KeySet, token: str) -> dict[str, Any]:
    """The token's claims, or a Refusal saying which check failed."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise Refusal(401, "invalid_token", "the token's algorithm is not accepted")
        key = keys.key(str(header.get("kid") or ""))
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=route["audience"],
            issuer=route["issuer"],
            leeway=0,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise Refusal(401, "invalid_token", "the token has expired") from e
    except jwt.ImmatureSignatureError as e:
        raise Refusal(401, "invalid_token", "the token is not yet valid") from e
    except jwt.InvalidAudienceError as e:
        raise Refusal(401, "invalid_token", "the token's audience is not this API") from e
    except jwt.InvalidIssuerError as e:
        raise Refusal(401, "invalid_token", "the token's issuer is not trusted") from e
    except jwt.MissingRequiredClaimError as e:
        raise Refusal(401, "invalid_token", f"the token has no {e.claim} claim") from e
    except jwt.InvalidSignatureError as e:
        raise Refusal(401, "invalid_token", "the token's signature is invalid") from e
    except jwt.InvalidTokenError as e:
        raise Refusal(401, "invalid_token", "the token is malformed") from e
    need = route.get("scope")
    if need:
        held = claims.get("scp", claims.get("scope", ""))
        held = held.split() if isinstance(held, str) else [str(s) for s in held or []]
        if need not in held:
            raise Refusal(403, "insufficient_scope", f"the token lacks scope {need}", need)
    return claims


# --- the server ---------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    config: dict[str, Any]
    routes: list[tuple[dict[str, Any], KeySet]]
    upstream_key: str
    subscription_key: str
    tls: ssl.SSLContext | None

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that drops the connection or refuses the certificate

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake in the request's own thread: a client that never completes one
        # must not stop the accept loop.
        if self.tls is not None:
            request.settimeout(10)
            request = self.tls.wrap_socket(request, server_side=True)
            request.settimeout(None)
        super().finish_request(request, client_address)


class _Handler(QuietHandler):  # one log line per request, written by _log
    server: _Server

    def _log(self, status: int, note: str = "") -> None:
        path = self.path.split("?")[0]
        sys.stderr.write(f"{self.command} {path} {status}{' ' + note if note else ''}\n")
        sys.stderr.flush()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:  # an MCP client ends its streamable HTTP session with one
        self._handle()

    def _route(self) -> tuple[dict[str, Any], KeySet, str]:
        path = self.path.split("?")[0]
        best = None
        for route, keys in self.server.routes:
            prefix = route.get("prefix", "").rstrip("/")
            if (path == prefix or path.startswith(prefix + "/")) and (
                best is None or len(prefix) > len(best[0].get("prefix", ""))
            ):
                best = (route, keys)
        if best is None:
            raise Refusal(404, "", "no route")
        return best[0], best[1], self.path[len(best[0].get("prefix", "").rstrip("/")) :]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        try:
            route, keys, rest = self._route()
            self._subscribed(route)
            claims = validate(route, keys, credential(route, self.headers))
        except Refusal as r:
            self._refuse(r)
            return
        self._forward(route, rest, body, claims)

    def _subscribed(self, route: dict[str, Any]) -> None:
        """APIM's subscription check, before any token is looked at (no challenge header)."""
        header = route.get("subscription")
        if not header:
            return
        offered = (self.headers.get(header) or "").encode()
        if not offered:
            raise Refusal(
                401, "", "Access denied due to missing subscription key. Make sure to include "
                "subscription key when making requests to an API.", challenge=False
            )  # fmt: skip
        if not hmac.compare_digest(offered, self.server.subscription_key.encode()):
            raise Refusal(
                401, "", "Access denied due to invalid subscription key. Make sure to provide "
                "a valid key for an active subscription.", challenge=False
            )  # fmt: skip

    def _refuse(self, r: Refusal) -> None:
        realm = self.server.config.get("realm", "llm-gateway")
        challenge = f'Bearer realm="{realm}"'
        if r.error:
            challenge += f', error="{r.error}", error_description="{r.description}"'
        if r.scope:
            challenge += f', scope="{r.scope}"'
        kind = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error"}
        error = {"type": kind.get(r.status, "authentication_error"), "message": str(r)}
        challenged = r.status in (400, 401, 403) and r.challenge
        headers = {"WWW-Authenticate": challenge} if challenged else {}
        self.send_json(r.status, {"type": "error", "error": error}, headers)
        self._log(r.status, str(r))

    def _forward(
        self, route: dict[str, Any], rest: str, body: bytes, claims: dict[str, Any]
    ) -> None:
        up = urllib.parse.urlsplit(route.get("upstream") or self.server.config["upstream"])
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in HOP_BY_HOP | {"authorization", "x-api-key"}
            and k.lower() != str(route.get("subscription", "")).lower()
        }
        headers["x-api-key"] = self.server.upstream_key
        headers["x-gateway-subject"] = str(claims.get("sub", ""))
        conn = http.client.HTTPConnection(up.hostname or "", up.port, timeout=UPSTREAM_TIMEOUT)
        try:
            target = up.path.rstrip("/") + (rest or "/")
            conn.request(self.command, target, body or None, headers)
            answer = conn.getresponse()
        except OSError:
            conn.close()
            self._refuse(Refusal(502, "", "the upstream is unreachable"))
            return
        try:
            self.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            size = answer.getheader("Content-Length")
            if size is not None:
                self.send_header("Content-Length", size)
            else:  # streamed: relay each chunk as it comes, then close
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            while chunk := answer.read1(65536):
                self.wfile.write(chunk)
                self.wfile.flush()
        finally:
            conn.close()
        self._log(answer.status)


def serve(config: dict[str, Any]) -> None:
    """Start the gateway, print its ready line ``{"port": N}`` on stdout, serve until killed."""
    trust = ssl.create_default_context(cafile=config.get("ca"))
    server = _Server(("127.0.0.1", int(config.get("port", 0))), _Handler)
    server.config = config
    server.routes = [(route, KeySet(route, trust)) for route in config["routes"]]
    server.upstream_key = os.environ.get(UPSTREAM_KEY_ENV, "")
    server.subscription_key = os.environ.get(SUBSCRIPTION_KEY_ENV, "")
    server.tls = None
    if config.get("tls"):
        server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.tls.load_cert_chain(config["tls"]["cert"], config["tls"]["key"])
    sys.stdout.write(json.dumps({"port": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.1)


# --- the test side: start it, know where it is, stop it -----------------------------------------
class JwtGateway(PeerProcess):
    """The gateway in its own process group (``config`` as in the module docstring; its
    upstream key goes through the environment). ``config["tls"]`` may hold the ``ca`` that signed
    its certificate, for clients (``.ca``). ``url(prefix)`` is a base URL as
    inferenceGatewayBaseUrl holds it."""

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        *,
        upstream_key: str,
        subscription_key: str = "",
    ) -> None:
        self.ca: str | None = (config.get("tls") or {}).get("ca")
        env = {UPSTREAM_KEY_ENV: upstream_key, SUBSCRIPTION_KEY_ENV: subscription_key}
        super().__init__(
            "jwt_gateway", "the JWT gateway", config, workdir, env=env, ready_s=READY_S
        )

    def url(self, prefix: str = "") -> str:
        scheme = "https" if self.config.get("tls") else "http"
        return f"{scheme}://127.0.0.1:{self.port}{prefix}"


def missing() -> str | None:
    """Why the gateway cannot start here (PyJWT with cryptography missing), else None."""
    try:
        import jwt.algorithms

        if not jwt.algorithms.has_crypto:
            return "cryptography"
    except ImportError:
        return "PyJWT"
    return None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m gateways.jwt_gateway CONFIG.json")
    serve(json.loads(Path(sys.argv[1]).read_text()))
