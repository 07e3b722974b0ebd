"""A fake HashiCorp Vault / OpenBao HTTP server for contract tests: no Vault binary can be
installed here, so this follows Vault's documented HTTP API for the parts gatekey uses.

It is a stdlib ``ThreadingHTTPServer`` in a background thread of the test process, on
127.0.0.1 with an OS-assigned port, over HTTPS with a throwaway trustme CA (``.ca``) or plain
HTTP (``tls=False``). Use ``with fake_vault(tmp_path) as vault:`` (or ``FakeVault(...).start()``
and ``stop()``), set it up through the admin methods, and point the client at ``vault.address``.

What it answers (paths under ``/v1/``; bodies and status codes as Vault / OpenBao send them):

- ``GET|HEAD sys/health``: 200 unsealed, 503 ``{"sealed": true, ...}`` sealed; ``activecode``
  and ``sealedcode`` query parameters as in Vault.
- ``GET auth/token/lookup-self`` (``X-Vault-Token`` or ``Authorization: Bearer``),
  ``POST auth/token/revoke-self`` (204).
- KV v2 ``GET <mount>/data/<path>[?version=N]`` and KV v1 ``GET <mount>/<path>``, in the full
  response envelope (``request_id``, ``lease_id``, ``renewable``, ``lease_duration``, ``data``,
  ``wrap_info``, ``warnings``, ``auth``, ``mount_type``). KV v1 ``lease_duration`` is the mount's
  ``default_lease_ttl`` (Vault's default 2764800) or the secret's own ``ttl`` key, as Vault does.
  A soft-deleted v2 version answers 404 with ``data: {"data": null, "metadata": {...}}``; a v2
  mount read outside ``data/`` answers 404 with Vault's "Invalid path for a versioned K/V
  secrets engine" warning.
- ``POST|PUT auth/<mount>/login`` for JWT mounts (``{"role", "jwt"}``; keys from ``jwks_url``
  fetched over HTTPS with ``jwks_ca_pem``, or static ``jwt_validation_pubkeys``; RS/PS/ES
  256-512 and EdDSA; ``iss``, ``aud``, ``sub``, ``exp``/``nbf``/``iat`` with Vault's leeways) and
  AppRole mounts (``{"role_id", "secret_id"}``). Error texts are those of
  vault-plugin-auth-jwt / hashicorp/cap and the approle backend.
- Errors: missing secret 404 ``{"errors": []}``; no/unknown/expired token 403
  ``{"errors": ["permission denied"]}``; a valid token its policies do not allow 403
  ``{"errors": ["1 error occurred:\\n\\t* permission denied\\n\\n"]}``; sealed 503
  ``{"errors": ["Vault is sealed"]}``; a path with no mount 404 ``no handler for route``.
- Namespaces (Vault Enterprise / OpenBao): ``X-Vault-Namespace`` and a path prefix combine, and
  the longest existing namespace wins, as Vault resolves them. So a namespace that does not exist
  is just part of the path in its closest existing ancestor: with no token valid there 403
  "permission denied", with a token whose policies do not cover that path the ACL 403, with one
  that does (root) 404 "no handler for route". Mounts, auth methods, policies and tokens are per
  namespace; a token works in its namespace and its children, and its policies see child paths
  with the child's relative path in front (``team/secret/data/x``), as in Vault.

Policies are lists of path globs, Vault style: a trailing ``*`` is a prefix match, a ``+``
segment matches exactly one segment. A listed path allows every operation the fake supports on
it. Every token has the ``default`` policy (lookup-self, renew-self, revoke-self) unless
``no_default_policy``; ``root`` allows everything.

Deliberate deviations from real Vault (the parts gatekey does not use, or that would only slow
tests down):

- Only reads and logins: KV writes, LIST, metadata/undelete/destroy and other endpoints answer 405
  ``unsupported operation`` (after the ACL check); state is set up through the admin methods.
- Token values are ``hvs.`` + 24 random characters (real ones are longer and, in namespaces,
  carry a namespace suffix); time stamps are in UTC (``Z``) with nanosecond precision like Go's
  RFC3339Nano, where Vault uses the server's local offset for ``expire_time``.
- Time comes from ``clock`` (default ``time.time``) plus ``advance()``, so tests can expire
  tokens and JWTs without sleeping. Vault would use the wall clock.
- No leases to renew, no entities/identity, no response wrapping, no CIDR bindings, no
  ``claim_mappings``/``groups_claim``; ``bound_claims`` compare strings exactly.
- Faults for resilience tests: ``hang`` (accept and never answer until stop), ``delay``
  (seconds before each answer) and ``status_override()`` (the next N requests get a chosen
  status, body and headers, e.g. 429 with Retry-After).

Nothing here prints; the request log (``requests``, ``count()``) names tokens only by accessor
and logins only by role name, never a token, secret_id, JWT or secret value.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import re
import secrets
import shutil
import socket
import ssl
import string
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

log = logging.getLogger(__name__)

# Vault's system default_lease_ttl (768h): KV v1 lease_duration and token TTL when none is set.
DEFAULT_LEASE_TTL = 2764800
# Error texts exactly as Vault sends them.
PERMISSION_DENIED = "permission denied"
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
UNSUPPORTED_OPERATION = "1 error occurred:\n\t* unsupported operation\n\n"
SEALED = "Vault is sealed"
KV2_INVALID_PATH = (
    "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API "
    "endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."
)
# What Vault's built-in "default" policy lets every token do (the parts the fake serves).
DEFAULT_POLICY_PATHS = ("auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self")
# vault-plugin-auth-jwt accepts these when jwt_supported_algs is empty (JWT roles).
JWT_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_ES_CURVE = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_KV2_OTHER_PATHS = ("metadata", "delete", "undelete", "destroy", "config", "subkeys")
_BASE62 = string.ascii_letters + string.digits

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
JsonBody = dict[str, Any]


# --- what the test can inspect ------------------------------------------------------------------
@dataclass
class LoggedRequest:
    """One request as the fake saw it: never a token, secret or JWT, only ids."""

    method: str
    path: str  # URL path without the query, e.g. /v1/secret/data/app
    namespace: str | None  # the X-Vault-Namespace header as sent
    token_sent: bool = False
    accessor: str | None = None  # the accessor of the token used, if it was a known token
    role: str | None = None  # the role name of a login
    status: int | None = None  # None while unanswered (hang)

    @property
    def api_path(self) -> str:
        """The path after ``/v1/``."""
        return self.path[4:] if self.path.startswith("/v1/") else self.path


# --- state --------------------------------------------------------------------------------------
@dataclass
class _Token:
    value: str = field(repr=False)
    accessor: str
    namespace: str
    policies: list[str]
    ttl: int  # 0: never expires (root-like)
    created: float
    path: str
    display_name: str
    meta: dict[str, str] | None
    renewable: bool
    orphan: bool
    entity_id: str = ""

    def expires_at(self) -> float | None:
        return None if self.ttl == 0 else self.created + self.ttl


@dataclass
class _Version:
    data: dict[str, Any] = field(repr=False)
    created: float
    deleted: float | None = None


@dataclass
class _KvMount:
    version: int
    default_lease_ttl: int
    v1: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    v2: dict[str, list[_Version]] = field(default_factory=dict, repr=False)
    custom_metadata: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class _JwtRole:
    name: str
    bound_audiences: list[str]
    user_claim: str
    token_ttl: int
    token_policies: list[str]
    bound_subject: str
    bound_claims: dict[str, list[str]]
    clock_skew_leeway: int
    expiration_leeway: int
    not_before_leeway: int


@dataclass
class _JwtMount:
    jwks_url: str | None
    jwks_ca_pem: str = field(repr=False)
    static_keys: list[PublicKey]
    bound_issuer: str
    supported_algs: tuple[str, ...]
    default_role: str
    roles: dict[str, _JwtRole] = field(default_factory=dict)
    jwks: list[dict[str, Any]] | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class _AppRole:
    name: str
    role_id: str = field(repr=False)
    secret_id: str = field(repr=False)
    policies: list[str]
    token_ttl: int


@dataclass
class _AppRoleMount:
    roles: dict[str, _AppRole] = field(default_factory=dict)  # by role_id


@dataclass
class _Namespace:
    path: str  # "" is the root namespace
    kv: dict[str, _KvMount] = field(default_factory=dict)
    auth: dict[str, _JwtMount | _AppRoleMount] = field(default_factory=dict)
    policies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Override:
    status: int
    body: Mapping[str, Any] | str | None
    headers: dict[str, str]
    remaining: int
    path_prefix: str | None


@dataclass
class _Reply:
    status: int
    body: Mapping[str, Any] | str | None
    headers: dict[str, str] = field(default_factory=dict)


class _LoginError(Exception):
    """A login refused with 400 and this message (never containing the JWT)."""


# --- small helpers ------------------------------------------------------------------------------
def _norm_ns(namespace: str | None) -> str:
    return (namespace or "").strip("/")


def _within(child: str, parent: str) -> bool:
    return parent == "" or child == parent or child.startswith(parent + "/")


def _random(n: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(n))


def rfc3339(t: float) -> str:
    """Go's RFC3339Nano in UTC: nanoseconds, trailing zeros dropped, ``Z``."""
    ns = round(t * 1e9)
    secs, frac = divmod(ns, 10**9)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{frac:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def _envelope(
    *,
    data: Any = None,
    auth: Any = None,
    lease_duration: int = 0,
    warnings: list[str] | None = None,
    mount_type: str | None = None,
) -> JsonBody:
    body: JsonBody = {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": None,
        "warnings": warnings,
        "auth": auth,
    }
    if mount_type is not None:
        body["mount_type"] = mount_type
    return body


def _errors(status: int, *messages: str) -> _Reply:
    return _Reply(status, {"errors": list(messages)})


def _policy_matches(pattern: str, path: str) -> bool:
    """Vault's path globs: a trailing ``*`` matches any suffix, a ``+`` segment one segment."""
    prefix = pattern.endswith("*")
    body = pattern[:-1] if prefix else pattern
    regex = "/".join("[^/]+" if seg == "+" else re.escape(seg) for seg in body.split("/"))
    return re.fullmatch(regex + (".*" if prefix else ""), path) is not None


def _duration_seconds(value: Any) -> int | None:
    """A KV v1 ``ttl`` value: seconds, or a Go duration such as ``90s``, ``30m``, ``1h30m``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value)
        if parts and value:
            h, m, s = (int(p or 0) for p in parts.groups())
            return h * 3600 + m * 60 + s
    return None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey | None:
    """An RSA, EC (P-256/384/521) or Ed25519 public key from a JWK; None for anything else."""
    try:
        kty = jwk.get("kty")
        if kty == "RSA":
            n = int.from_bytes(_b64url(str(jwk["n"])), "big")
            e = int.from_bytes(_b64url(str(jwk["e"])), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "EC" and jwk.get("crv") in _EC_CURVES:
            point = b"\x04" + _b64url(str(jwk["x"])) + _b64url(str(jwk["y"]))
            return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[jwk["crv"]], point)
        if kty == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(_b64url(str(jwk["x"])))
    except (KeyError, ValueError, TypeError):
        return None
    return None


def _public_key_from_pem(pem: str) -> PublicKey:
    data = pem.encode()
    if b"CERTIFICATE" in data:
        from cryptography import x509

        key: Any = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ValueError("jwt_validation_pubkeys: only RSA, EC and Ed25519 keys are supported")
    return key


def _signature_ok(alg: Any, key: PublicKey, signed: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``signed`` verifies with ``key`` under JWS algorithm ``alg``."""
    if not isinstance(alg, str):
        return False
    digest = _HASHES.get(alg[2:])
    try:
        if alg[:2] == "RS" and digest and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), digest())
        elif alg[:2] == "PS" and digest and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(digest()), salt_length=padding.PSS.AUTO)
            key.verify(signature, signed, pss, digest())
        elif alg[:2] == "ES" and digest and isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name != _ES_CURVE.get(alg):
                return False
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(digest()))
        elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _fetch_jwks(url: str, ca_pem: str) -> list[dict[str, Any]]:
    """The keys at ``url``, trusting exactly ``ca_pem`` (system CAs when empty), no proxies."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    with opener.open(url, timeout=10) as response:
        doc = json.load(response)
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise ValueError("no keys in the JWKS document")
    return [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]


def _leeway(configured: int, default: int) -> int:
    """cap/jwt: negative disables the leeway, zero means the default."""
    return 0 if configured < 0 else (configured or default)


def _numeric(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _check_claims(claims: Mapping[str, Any], mount: _JwtMount, role: _JwtRole, now: float) -> None:
    """hashicorp/cap jwt.Validator.Validate after the signature: iss, sub, aud, then times."""
    if mount.bound_issuer and claims.get("iss") != mount.bound_issuer:
        raise _LoginError("error validating token: invalid issuer (iss) claim")
    if role.bound_subject and claims.get("sub") != role.bound_subject:
        raise _LoginError("error validating token: invalid subject (sub) claim")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else [a for a in aud or () if isinstance(a, str)]
    if role.bound_audiences and not set(role.bound_audiences) & set(audiences):
        raise _LoginError(
            "error validating token: invalid audience (aud) claim: "
            "audience claim does not match any expected audience"
        )
    iat, exp, nbf = (_numeric(claims.get(k)) for k in ("iat", "exp", "nbf"))
    if iat == exp == nbf == 0:
        raise _LoginError(
            "error validating token: no issued at (iat), not before (nbf), or expiration time "
            "(exp) claims in token"
        )
    if exp == 0:
        exp = max(iat, nbf) + _leeway(role.expiration_leeway, 150)
    if nbf == 0:
        nbf = iat if iat else exp - _leeway(role.not_before_leeway, 150)
    skew = _leeway(role.clock_skew_leeway, 60)
    if now + skew < nbf:
        raise _LoginError(
            "error validating token: invalid not before (nbf) claim: token not yet valid"
        )
    if now - skew > exp:
        raise _LoginError(
            "error validating token: invalid expiration time (exp) claim: token is expired"
        )
    if now + skew < iat:
        raise _LoginError(
            "error validating token: invalid issued at (iat) claim: token issued in the future"
        )
    # vault-plugin-auth-jwt, after cap's validation: an audience the role does not bind is refused.
    if audiences and not role.bound_audiences:
        raise _LoginError("audience claim found in JWT but no audiences bound to the role")


# --- HTTP plumbing ------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    """Wraps each connection in TLS in its own thread (a slow client never blocks accept) and
    remembers open connections so stop() can cut idle keep-alive ones."""

    # Daemon threads that stop() joins itself, with a deadline: socketserver's own join skips
    # daemon threads, and non-daemon ones could keep a test run alive if stop() is forgotten.
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeVault, context: ssl.SSLContext | None) -> None:
        self.fake = fake
        self.context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"fake-vault-connection-{client_address[1]}",
            daemon=True,
        )
        with self.connections_lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            self.threads.append(thread)
        thread.start()

    def join_threads(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.connections_lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        with self.connections_lock:
            self.connections.add(conn)
        try:
            if self.fake.stopping.is_set():
                return
            if self.context is not None:
                conn.settimeout(10)
                tls_conn = self.context.wrap_socket(conn, server_side=True)
                with self.connections_lock:
                    self.connections.discard(conn)
                    self.connections.add(tls_conn)
                conn = tls_conn
                if self.fake.stopping.is_set():  # stop() may have missed the swapped socket
                    return
            _Handler(conn, client_address, self)
        except (OSError, ValueError):
            pass  # handshake refused, client gone, or the connection cut by stop()
        finally:
            with self.connections_lock:
                self.connections.discard(conn)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def cut_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                # the plain socket method: SSLSocket.shutdown would unwrap under a reading thread
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake vault: a connection failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Vault's Go server
    server_version = "fake-vault"
    sys_version = ""
    timeout = 60

    def _serve(self) -> None:
        cast(_Server, self.server).fake._serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_LIST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the base class would print every request line to stderr."""

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, reply: _Reply) -> None:
        body = reply.body
        if isinstance(body, str):
            raw, content_type = body.encode(), "text/html; charset=utf-8"
        else:
            raw, content_type = (b"" if body is None else json.dumps(body).encode()), None
        self.send_response(reply.status)
        if reply.status != 204:
            self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)


# --- the fake -----------------------------------------------------------------------------------
class FakeVault:
    """A fake Vault server and its in-process admin API (see the module docstring).

    ``tls``: True for a fresh trustme CA, False for plain HTTP, or a mapping of PEM paths
    ``ca``/``cert``/``key`` (e.g. the OIDC provider's, so one CA serves both).
    ``clock``: seconds since the epoch; ``advance()`` adds to it.

    Admin API: ``put_secret``/``delete_secret``/``enable_kv``, ``add_namespace``,
    ``add_policy``, ``add_token``/``revoke_token``/``accessor``/``issued_tokens``,
    ``enable_jwt``/``add_jwt_role``, ``enable_approle``/``add_approle``, ``seal``/``unseal``,
    ``advance``; faults: the ``hang`` and ``delay`` attributes, ``status_override()``,
    ``clear_faults()``; the request log: ``requests``, ``count()``, ``clear_log()``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        tls: bool | Mapping[str, str] = True,
        clock: Callable[[], float] = time.time,
        version: str = "1.17.2",
    ) -> None:
        self._tmp: str | None = None
        if directory is None and tls is True:
            self._tmp = tempfile.mkdtemp(prefix="fake-vault-")
            directory = Path(self._tmp)
        self.directory = directory
        self._tls_setting = tls
        self._clock = clock
        self._offset = 0.0
        self.version = version
        self.cluster_id = str(uuid.uuid4())
        self._state = threading.RLock()
        self._namespaces: dict[str, _Namespace] = {"": _Namespace("")}
        self._tokens: dict[str, _Token] = {}
        self._issued: list[str] = []  # every token value ever issued, for leak checks
        self._sealed = False
        self._overrides: list[_Override] = []
        self._log: list[LoggedRequest] = []
        self.hang = False
        self.delay = 0.0
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tls_paths: dict[str, str] = {}
        self._started = False

    # --- life cycle ------------------------------------------------------------------------------
    def start(self) -> FakeVault:
        if self._started:
            raise RuntimeError("a FakeVault starts once; make a new one")
        self._started = True
        context = None
        if self._tls_setting is not False:
            if self._tls_setting is True:
                from oidc_peer import make_tls

                assert self.directory is not None
                self._tls_paths = make_tls(self.directory)
            else:
                self._tls_paths = dict(self._tls_setting)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self._tls_paths["cert"], self._tls_paths["key"])
        self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits at most this long for the loop
            name=f"fake-vault-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: answer nothing more, cut open connections (hung ones included), close
        the listening socket and join every thread. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.cut_connections()
        server.server_close()
        server.join_threads(10)
        if self._thread is not None:
            self._thread.join(10)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FakeVault:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- where it is -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Vault is not running")
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """``https://127.0.0.1:<port>`` (``http://`` with ``tls=False``)."""
        scheme = "http" if self._tls_setting is False else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        """PEM path of the CA that signed the server certificate."""
        if not self._tls_paths:
            raise RuntimeError("no CA: the fake Vault serves plain HTTP or has not started")
        return self._tls_paths["ca"]

    # --- time ------------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (tokens and JWTs expire by it)."""
        self._offset += seconds

    # --- admin: namespaces, mounts and secrets ---------------------------------------------------
    def add_namespace(self, path: str) -> None:
        """Create a namespace and its parents (admin calls with ``namespace=`` do this too)."""
        self._ns(path)

    def _ns(self, namespace: str | None) -> _Namespace:
        path = _norm_ns(namespace)
        with self._state:
            parts = path.split("/") if path else []
            for i in range(1, len(parts) + 1):
                self._namespaces.setdefault("/".join(parts[:i]), _Namespace("/".join(parts[:i])))
            return self._namespaces[path]

    def enable_kv(
        self,
        mount: str = "secret",
        *,
        version: int = 2,
        default_lease_ttl: int = DEFAULT_LEASE_TTL,
        namespace: str | None = None,
    ) -> None:
        """Mount a KV engine (put_secret mounts one with the defaults when missing)."""
        if version not in (1, 2):
            raise ValueError("KV version must be 1 or 2")
        with self._state:
            ns = self._ns(namespace)
            existing = ns.kv.get(mount.strip("/"))
            if existing is not None and existing.version != version:
                raise ValueError(f"{mount!r} is already a KV v{existing.version} mount")
            ns.kv[mount.strip("/")] = existing or _KvMount(version, default_lease_ttl)
            if existing is not None:
                existing.default_lease_ttl = default_lease_ttl

    def put_secret(
        self,
        path: str,
        data: Mapping[str, Any],
        *,
        mount: str = "secret",
        kv_version: int = 2,
        namespace: str | None = None,
        custom_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Write a secret; returns its new KV v2 version (0 for KV v1)."""
        with self._state:
            ns = self._ns(namespace)
            if mount.strip("/") not in ns.kv:
                self.enable_kv(mount, version=kv_version, namespace=namespace)
            kv = ns.kv[mount.strip("/")]
            if kv.version != kv_version:
                raise ValueError(f"{mount!r} is a KV v{kv.version} mount")
            key = path.strip("/")
            if kv.version == 1:
                kv.v1[key] = json.loads(json.dumps(dict(data)))
                return 0
            kv.v2.setdefault(key, []).append(
                _Version(json.loads(json.dumps(dict(data))), self.now())
            )
            if custom_metadata is not None:
                kv.custom_metadata[key] = dict(custom_metadata)
            return len(kv.v2[key])

    def delete_secret(
        self, path: str, *, mount: str = "secret", namespace: str | None = None
    ) -> None:
        """KV v1: remove the secret. KV v2: soft-delete its latest version, as
        ``DELETE /v1/<mount>/data/<path>`` does (reads then answer 404 with the metadata)."""
        with self._state:
            kv = self._ns(namespace).kv[mount.strip("/")]
            key = path.strip("/")
            if kv.version == 1:
                kv.v1.pop(key, None)
            elif kv.v2.get(key):
                kv.v2[key][-1].deleted = self.now()

    # --- admin: policies and tokens --------------------------------------------------------------
    def add_policy(self, name: str, paths: Sequence[str], *, namespace: str | None = None) -> None:
        """A policy: the API paths (globs, without ``/v1/``) its tokens may use."""
        if isinstance(paths, str):
            raise TypeError("paths is a list of path globs")
        with self._state:
            self._ns(namespace).policies[name] = list(paths)

    def add_token(
        self,
        token: str | None = None,
        *,
        policies: Sequence[str],
        ttl: int = 3600,
        namespace: str | None = None,
        renewable: bool = True,
        no_default_policy: bool = False,
        meta: Mapping[str, str] | None = None,
    ) -> str:
        """Create a token (``ttl=0``: never expires) and return its value."""
        return self._issue(
            namespace=_norm_ns(namespace),
            policies=policies,
            ttl=ttl,
            value=token,
            path="auth/token/create",
            display_name="token",
            meta=dict(meta) if meta else None,
            renewable=renewable,
            orphan=False,
            default_policy=not no_default_policy,
        ).value

    def revoke_token(self, token: str) -> None:
        """Revoke a token, given its value or its accessor."""
        with self._state:
            for value, t in list(self._tokens.items()):
                if token in (value, t.accessor):
                    del self._tokens[value]

    def issued_tokens(self) -> list[str]:
        """Every token value issued so far, revoked and expired ones included: what a test
        checks gatekey never shows (the request log names tokens only by accessor)."""
        with self._state:
            return list(self._issued)

    def accessor(self, token: str) -> str:
        """The accessor of a token (what the request log names it by)."""
        with self._state:
            return self._tokens[token].accessor

    def _issue(
        self,
        *,
        namespace: str,
        policies: Sequence[str],
        ttl: int,
        path: str,
        display_name: str,
        meta: dict[str, str] | None,
        renewable: bool,
        orphan: bool,
        value: str | None = None,
        default_policy: bool = True,
        entity_id: str = "",
    ) -> _Token:
        names = set(policies)
        if "root" in names:
            names = {"root"}
        elif default_policy:
            names.add("default")
        with self._state:
            self._ns(namespace)
            token = _Token(
                value=value or f"hvs.{_random(24)}",
                accessor=_random(24),
                namespace=namespace,
                policies=sorted(names),
                ttl=ttl,
                created=self.now(),
                path=path,
                display_name=display_name,
                meta=meta,
                renewable=renewable and ttl != 0,
                orphan=orphan,
                entity_id=entity_id,
            )
            self._tokens[token.value] = token
            self._issued.append(token.value)
            return token

    # --- admin: auth methods ---------------------------------------------------------------------
    def enable_jwt(
        self,
        mount: str = "jwt",
        *,
        jwks_url: str | None = None,
        jwks_ca_pem: str = "",
        jwt_validation_pubkeys: Sequence[str] = (),
        bound_issuer: str = "",
        jwt_supported_algs: Sequence[str] = (),
        default_role: str = "",
        namespace: str | None = None,
    ) -> None:
        """A JWT auth mount: keys from ``jwks_url`` (``jwks_ca_pem`` is PEM text, as in Vault's
        config, not a path) or from PEM ``jwt_validation_pubkeys``."""
        if bool(jwks_url) == bool(jwt_validation_pubkeys):
            raise ValueError("exactly one of 'jwks_url', 'jwt_validation_pubkeys' must be set")
        if jwks_ca_pem and "-----BEGIN" not in jwks_ca_pem:
            raise ValueError("jwks_ca_pem is the PEM text, e.g. Path(ca).read_text()")
        unknown = set(jwt_supported_algs) - set(JWT_ALGS)
        if unknown:
            raise ValueError(f"unsupported jwt_supported_algs: {sorted(unknown)}")
        with self._state:
            self._ns(namespace).auth[mount.strip("/")] = _JwtMount(
                jwks_url=jwks_url,
                jwks_ca_pem=jwks_ca_pem,
                static_keys=[_public_key_from_pem(p) for p in jwt_validation_pubkeys],
                bound_issuer=bound_issuer,
                supported_algs=tuple(jwt_supported_algs) or JWT_ALGS,
                default_role=default_role.lower(),
            )

    def add_jwt_role(
        self,
        name: str,
        *,
        bound_audiences: Sequence[str],
        user_claim: str = "sub",
        token_ttl: int = 0,
        token_policies: Sequence[str] = (),
        bound_subject: str = "",
        bound_claims: Mapping[str, str | Sequence[str]] | None = None,
        clock_skew_leeway: int = 0,
        expiration_leeway: int = 0,
        not_before_leeway: int = 0,
        mount: str = "jwt",
        namespace: str | None = None,
    ) -> None:
        """A role on a JWT mount (``token_ttl=0``: Vault's default, 2764800 s). Leeways as in
        Vault: 0 for the default (60 s skew, 150 s exp/nbf), negative to disable."""
        if not (bound_audiences or bound_subject or bound_claims):
            # what Vault answers when writing such a JWT role
            raise ValueError(
                "must have at least one bound constraint when creating/updating a role"
            )
        claims = {
            k: [v] if isinstance(v, str) else list(v) for k, v in (bound_claims or {}).items()
        }
        with self._state:
            jwt_mount = self._ns(namespace).auth.get(mount.strip("/"))
            if not isinstance(jwt_mount, _JwtMount):
                raise KeyError(f"no JWT auth mount {mount!r}: call enable_jwt first")
            role_name = name.lower()  # Vault lower-cases JWT role names
            jwt_mount.roles[role_name] = _JwtRole(
                name=role_name,
                bound_audiences=list(bound_audiences),
                user_claim=user_claim,
                token_ttl=token_ttl,
                token_policies=list(token_policies),
                bound_subject=bound_subject,
                bound_claims=claims,
                clock_skew_leeway=clock_skew_leeway,
                expiration_leeway=expiration_leeway,
                not_before_leeway=not_before_leeway,
            )

    def enable_approle(self, mount: str = "approle", *, namespace: str | None = None) -> None:
        with self._state:
            auth = self._ns(namespace).auth
            if not isinstance(auth.get(mount.strip("/")), _AppRoleMount):
                auth[mount.strip("/")] = _AppRoleMount()

    def add_approle(
        self,
        role_id: str,
        secret_id: str,
        policies: Sequence[str] = (),
        token_ttl: int = 0,
        *,
        role_name: str | None = None,
        mount: str = "approle",
        namespace: str | None = None,
    ) -> None:
        """An AppRole (the mount is enabled if needed; ``token_ttl=0``: Vault's default)."""
        with self._state:
            self.enable_approle(mount, namespace=namespace)
            approle = cast(_AppRoleMount, self._ns(namespace).auth[mount.strip("/")])
            approle.roles[role_id] = _AppRole(
                name=role_name or f"role-{len(approle.roles) + 1}",
                role_id=role_id,
                secret_id=secret_id,
                policies=list(policies),
                token_ttl=token_ttl,
            )

    # --- admin: seal and faults ------------------------------------------------------------------
    def seal(self) -> None:
        self._sealed = True

    def unseal(self) -> None:
        self._sealed = False

    def status_override(
        self,
        status: int,
        body: Mapping[str, Any] | str | None = None,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (matching ``path_prefix``, if given) with
        ``status``: a JSON ``body``, a string (sent as HTML, like a proxy's error page), or
        None for Vault's own body for that status (429: the rate-limit quota error)."""
        with self._state:
            self._overrides.append(_Override(status, body, dict(headers or {}), times, path_prefix))

    def clear_faults(self) -> None:
        with self._state:
            self._overrides.clear()
        self.hang = False
        self.delay = 0.0

    # --- the request log -------------------------------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        with self._state:
            return list(self._log)

    def count(
        self, path_prefix: str = "", *, method: str | None = None, namespace: str | None = None
    ) -> int:
        """Requests whose path starts with ``path_prefix`` (with or without ``/v1/``)."""

        def matches(r: LoggedRequest) -> bool:
            path = r.path if path_prefix.startswith("/") else r.api_path
            return (
                path.startswith(path_prefix)
                and (method is None or r.method == method)
                and (namespace is None or _norm_ns(r.namespace) == _norm_ns(namespace))
            )

        return sum(1 for r in self.requests if matches(r))

    def clear_log(self) -> None:
        with self._state:
            self._log.clear()

    # --- serving ---------------------------------------------------------------------------------
    def _serve(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        entry = LoggedRequest(handler.command, url.path, handler.headers.get("X-Vault-Namespace"))
        with self._state:
            self._log.append(entry)
        try:
            body = handler.read_body()
        except (OSError, ValueError):
            handler.close_connection = True
            return
        try:
            if self.hang:
                handler.close_connection = True
                self.stopping.wait()  # accept, read, never answer: stop() ends it
                return
            if self.delay and self.stopping.wait(self.delay):
                handler.close_connection = True
                return
            reply = self._take_override(url.path)
            if reply is None:
                reply = self._route(handler, url.path, url.query, body, entry)
        except Exception:
            log.exception("fake vault: internal error on %s %s", handler.command, url.path)
            reply = _errors(500, "internal error")
        entry.status = reply.status
        handler.reply(reply)

    def _take_override(self, path: str) -> _Reply | None:
        with self._state:
            for o in self._overrides:
                if o.path_prefix is not None and not (
                    path.startswith(o.path_prefix) or path[4:].startswith(o.path_prefix)
                ):
                    continue
                o.remaining -= 1
                if o.remaining <= 0:
                    self._overrides.remove(o)
                body = o.body
                if body is None:
                    if o.status == 429:
                        message = f'request path "{path[4:]}": rate limit quota exceeded'
                        body = {"errors": [message]}
                    else:
                        body = {"errors": ["internal error"] if o.status >= 500 else []}
                return _Reply(o.status, body, dict(o.headers))
        return None

    def _route(
        self, handler: _Handler, url_path: str, query: str, raw: bytes, entry: LoggedRequest
    ) -> _Reply:
        method = handler.command
        if not url_path.startswith("/v1/"):
            return _errors(404)
        api_path = url_path[4:]
        params = parse_qs(query)
        if api_path == "sys/health":
            return self._health(method, params)
        if self._sealed:
            return _errors(503, SEALED)
        ns, path = self._resolve(handler.headers.get("X-Vault-Namespace"), api_path)

        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "auth" and parts[2] == "login" and parts[1] in ns.auth:
            if method not in ("POST", "PUT"):
                return _errors(405, UNSUPPORTED_OPERATION)
            return self._login(ns, parts[1], raw, entry)

        value = handler.headers.get("X-Vault-Token") or ""
        auth_header = handler.headers.get("Authorization") or ""
        if not value and auth_header.startswith("Bearer "):
            value = auth_header[7:].strip()
        entry.token_sent = bool(value)
        token = self._token(value, ns.path)
        if token is None:
            return _errors(403, PERMISSION_DENIED)
        entry.accessor = token.accessor
        if not self._allowed(token, ns.path, path):
            return _errors(403, ACL_DENIED)

        if path == "auth/token/lookup-self":
            return (
                self._lookup_self(token) if method == "GET" else _errors(405, UNSUPPORTED_OPERATION)
            )
        if path == "auth/token/revoke-self" and method in ("POST", "PUT"):
            self.revoke_token(token.value)
            return _Reply(204, None)
        mount_path, kv = self._kv_mount(ns, path)
        if kv is None:
            return _errors(404, f'no handler for route "{path}". route entry not found.')
        if method != "GET" or params.get("list"):
            return _errors(405, UNSUPPORTED_OPERATION)
        return self._kv_read(kv, path[len(mount_path) :].strip("/"), params)

    def _resolve(self, header: str | None, api_path: str) -> tuple[_Namespace, str]:
        """Vault's namespace resolution: header + path, the longest existing namespace wins."""
        full = "/".join(p for p in (_norm_ns(header), api_path) if p)
        parts = full.split("/")
        with self._state:
            best, rest = self._namespaces[""], full
            for i in range(1, len(parts)):
                candidate = self._namespaces.get("/".join(parts[:i]))
                if candidate is not None:
                    best, rest = candidate, "/".join(parts[i:])
            return best, rest

    def _token(self, value: str, ns_path: str) -> _Token | None:
        if not value:
            return None
        with self._state:
            token = self._tokens.get(value)
            if token is None:
                return None
            expires = token.expires_at()
            if expires is not None and self.now() >= expires:
                del self._tokens[value]  # Vault revokes expired tokens
                return None
            return token if _within(ns_path, token.namespace) else None

    def _allowed(self, token: _Token, ns_path: str, path: str) -> bool:
        if "root" in token.policies:
            return True
        relative = ns_path[len(token.namespace) :].strip("/")
        acl_path = f"{relative}/{path}" if relative else path
        with self._state:
            policies = self._namespaces[token.namespace].policies
            for name in token.policies:
                globs = list(policies.get(name, ()))
                if name == "default":
                    globs += DEFAULT_POLICY_PATHS
                if any(_policy_matches(g, acl_path) for g in globs):
                    return True
        return False

    def _kv_mount(self, ns: _Namespace, path: str) -> tuple[str, _KvMount | None]:
        with self._state:
            for mount in sorted(ns.kv, key=len, reverse=True):
                if path == mount or path.startswith(mount + "/"):
                    return mount, ns.kv[mount]
        return "", None

    # --- endpoints -------------------------------------------------------------------------------
    def _health(self, method: str, params: dict[str, list[str]]) -> _Reply:
        if method not in ("GET", "HEAD"):
            return _errors(405)
        sealed = self._sealed
        status = 503 if sealed else 200
        code = params.get("sealedcode" if sealed else "activecode")
        if code and code[0].isdigit():
            status = int(code[0])
        body: JsonBody = {
            "initialized": True,
            "sealed": sealed,
            "standby": sealed,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(self.now()),
            "version": self.version,
            "enterprise": False,
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
        }
        if not sealed:
            body["cluster_name"] = "vault-cluster-fake"
            body["cluster_id"] = self.cluster_id
        return _Reply(status, body)

    def _lookup_self(self, token: _Token) -> _Reply:
        expires = token.expires_at()
        data = {
            "accessor": token.accessor,
            "creation_time": int(token.created),
            "creation_ttl": token.ttl,
            "display_name": token.display_name,
            "entity_id": token.entity_id,
            "expire_time": None if expires is None else rfc3339(expires),
            "explicit_max_ttl": 0,
            "id": token.value,
            "issue_time": rfc3339(token.created),
            "meta": token.meta,
            "num_uses": 0,
            "orphan": token.orphan,
            "path": token.path,
            "policies": list(token.policies),
            "renewable": token.renewable,
            "ttl": 0 if expires is None else max(0, int(expires - self.now())),
            "type": "service",
        }
        return _Reply(200, _envelope(data=data, mount_type="token"))

    def _kv_read(self, kv: _KvMount, key: str, params: dict[str, list[str]]) -> _Reply:
        with self._state:
            if kv.version == 1:
                secret = kv.v1.get(key)
                if not key or secret is None:
                    return _errors(404)
                lease = _duration_seconds(secret.get("ttl")) if "ttl" in secret else None
                data = json.loads(json.dumps(secret))
                return _Reply(
                    200,
                    _envelope(
                        data=data,
                        lease_duration=kv.default_lease_ttl if lease is None else lease,
                        mount_type="kv",
                    ),
                )
            if not key.startswith("data/"):
                if key.split("/")[0] in _KV2_OTHER_PATHS:
                    return _errors(405, UNSUPPORTED_OPERATION)
                return _Reply(404, _envelope(warnings=[KV2_INVALID_PATH]))
            versions = kv.v2.get(key[5:].strip("/"))
            if not versions:
                return _errors(404)
            wanted = params.get("version", ["0"])[0]
            try:
                number = int(wanted)
            except ValueError:
                return _errors(400, f'error converting input {wanted} for field "version"')
            number = number if number > 0 else len(versions)
            if number > len(versions):
                return _errors(404)
            version = versions[number - 1]
            deleted = version.deleted is not None and version.deleted <= self.now()
            metadata = {
                "version": number,
                "created_time": rfc3339(version.created),
                "deletion_time": "" if version.deleted is None else rfc3339(version.deleted),
                "destroyed": False,
                "custom_metadata": kv.custom_metadata.get(key[5:].strip("/")),
            }
            data = None if deleted else json.loads(json.dumps(version.data))
            status = 404 if deleted else 200
            return _Reply(
                status, _envelope(data={"data": data, "metadata": metadata}, mount_type="kv")
            )

    def _login(self, ns: _Namespace, mount_name: str, raw: bytes, entry: LoggedRequest) -> _Reply:
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return _errors(400, "error parsing JSON")
        if not isinstance(body, dict):
            return _errors(400, "error parsing JSON")
        mount = ns.auth[mount_name]
        try:
            if isinstance(mount, _JwtMount):
                token = self._jwt_login(ns, mount_name, mount, body, entry)
                mount_type = "jwt"
            else:
                token = self._approle_login(ns, mount_name, mount, body, entry)
                mount_type = "approle"
        except _LoginError as e:
            return _errors(400, str(e))
        entry.accessor = token.accessor
        auth = {
            "client_token": token.value,
            "accessor": token.accessor,
            "policies": list(token.policies),
            "token_policies": list(token.policies),
            "metadata": token.meta,
            "lease_duration": token.ttl,
            "renewable": token.renewable,
            "entity_id": token.entity_id,
            "token_type": "service",
            "orphan": True,
            "mfa_requirement": None,
            "num_uses": 0,
        }
        return _Reply(200, _envelope(auth=auth, mount_type=mount_type))

    def _jwt_login(
        self,
        ns: _Namespace,
        mount_name: str,
        mount: _JwtMount,
        body: JsonBody,
        entry: LoggedRequest,
    ) -> _Token:
        role_name = str(body.get("role") or mount.default_role).lower()
        if not role_name:
            raise _LoginError("missing role")
        role = mount.roles.get(role_name)
        if role is None:
            raise _LoginError(f"role {json.dumps(role_name)} could not be found")
        entry.role = role_name
        jwt = body.get("jwt")
        if not isinstance(jwt, str) or not jwt:
            raise _LoginError("missing token")
        claims = self._verified_claims(mount, jwt)
        _check_claims(claims, mount, role, self.now())
        user = claims.get(role.user_claim)
        if user is None:
            raise _LoginError(f"claim {json.dumps(role.user_claim)} not found in token")
        if not isinstance(user, str):
            raise _LoginError(
                f"claim {json.dumps(role.user_claim)} could not be converted to string"
            )
        for claim, allowed in role.bound_claims.items():
            value = claims.get(claim)
            values = value if isinstance(value, list) else [value]
            if not any(isinstance(v, str) and v in allowed for v in values):
                raise _LoginError(
                    f"error validating claims: claim {json.dumps(claim)} does not match any "
                    "associated bound claim values"
                )
        return self._issue(
            namespace=ns.path,
            policies=role.token_policies,
            ttl=role.token_ttl or DEFAULT_LEASE_TTL,
            path=f"auth/{mount_name}/login",
            display_name=f"{mount_name}-{user}",
            meta={"role": role_name},
            renewable=True,
            orphan=True,
            entity_id=str(uuid.uuid4()),
        )

    def _verified_claims(self, mount: _JwtMount, jwt: str) -> dict[str, Any]:
        """The claims of ``jwt`` once its signature verifies (go-oidc's RemoteKeySet: cached
        keys first, then the JWKS fetched again, e.g. after a key rotation)."""
        prefix = "error validating token: error verifying token signature: "
        try:
            header_b64, payload_b64, signature_b64 = jwt.split(".")
            header = json.loads(_b64url(header_b64))
            claims = json.loads(_b64url(payload_b64))
            signature = _b64url(signature_b64)
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:  # binascii.Error and JSONDecodeError are ValueErrors
            raise _LoginError(f"{prefix}oidc: malformed jwt: {type(e).__name__}") from None
        alg, kid = header.get("alg"), header.get("kid")
        signed = f"{header_b64}.{payload_b64}".encode()
        if mount.static_keys:
            if not any(_signature_ok(alg, k, signed, signature) for k in mount.static_keys):
                raise _LoginError(
                    f"{prefix}no known key successfully validated the token signature"
                )
        else:
            for refresh in (False, True):
                try:
                    jwks = self._jwks(mount, refresh)
                except (OSError, ValueError) as e:
                    raise _LoginError(f"{prefix}fetching keys oidc: get keys failed: {e}") from None
                keys = [public_key_from_jwk(k) for k in jwks if kid is None or k.get("kid") == kid]
                if any(k and _signature_ok(alg, k, signed, signature) for k in keys):
                    break
            else:
                raise _LoginError(f"{prefix}failed to verify id token signature")
        if alg not in mount.supported_algs:
            raise _LoginError(
                "error validating token: invalid algorithm (alg) header parameter: "
                "token signed with unexpected algorithm"
            )
        return claims

    def _jwks(self, mount: _JwtMount, refresh: bool) -> list[dict[str, Any]]:
        with mount.lock:
            if mount.jwks is None or refresh:
                assert mount.jwks_url is not None
                mount.jwks = _fetch_jwks(mount.jwks_url, mount.jwks_ca_pem)
            return mount.jwks

    def _approle_login(
        self,
        ns: _Namespace,
        mount_name: str,
        mount: _AppRoleMount,
        body: JsonBody,
        entry: LoggedRequest,
    ) -> _Token:
        role_id = str(body.get("role_id") or "").strip()
        if not role_id:
            raise _LoginError("missing role_id")
        with self._state:
            role = mount.roles.get(role_id)
        if role is None:
            raise _LoginError("invalid role or secret ID")
        entry.role = role.name
        secret_id = str(body.get("secret_id") or "").strip()
        if not secret_id:
            raise _LoginError("missing secret_id")
        if not hmac.compare_digest(secret_id.encode(), role.secret_id.encode()):
            raise _LoginError("invalid role or secret ID")
        return self._issue(
            namespace=ns.path,
            policies=role.policies,
            ttl=role.token_ttl or DEFAULT_LEASE_TTL,
            path=f"auth/{mount_name}/login",
            display_name=mount_name,
            meta={"role_name": role.name},
            renewable=True,
            orphan=True,
            entity_id=str(uuid.uuid4()),
        )


@contextlib.contextmanager
def fake_vault(
    directory: Path | None = None,
    *,
    tls: bool | Mapping[str, str] = True,
    clock: Callable[[], float] = time.time,
) -> Iterator[FakeVault]:
    """A started FakeVault, stopped (port freed, threads joined) when the block ends::

    @pytest.fixture
    def vault(tmp_path):
        with fake_vault(tmp_path / "vault") as v:
            yield v
    """
    server = FakeVault(directory, tls=tls, clock=clock).start()
    try:
        yield server
    finally:
        server.stop()
