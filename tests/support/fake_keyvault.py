"""A fake Azure Key Vault secrets endpoint for contract tests: the documented "Get Secret" over
HTTPS on 127.0.0.1, with bearer tokens checked against the real OIDC test provider's JWKS.

No Key Vault emulator runs on our machines (see the shared test-peers notes), so this follows
the REST API instead: ``GET {vault}/secrets/{name}[/{version}]?api-version=7.5``, the version
optional (latest = the last one set; a trailing ``/`` as the JS SDK sends it is the same). Tests
that use it are contract tests against a fake, not against Key Vault.

A request meets, in this order:

1. the request log: (method, path, api-version, bearer present, the token's ``sub`` read without
   verification, status). Never the token, never a secret value.
2. the fault switches: ``hang`` (holds the request until cleared or ``stop()``), ``delay``
   (seconds), ``status_override = (status, headers, body, count)`` (``count`` None = until
   cleared; ``body`` None = a Key Vault-style error body for that status).
3. ``api-version``: missing or unknown -> 400 ``BadParameter``.
4. the bearer challenge: no ``Authorization: Bearer`` -> 401 ``Unauthorized`` AKV10000 with
   ``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<resource>"``.
   Every 401 carries the challenge, as Key Vault's do.
5. the token: a JWS (RS/PS/ES 256/384/512) signed by a key of the configured JWKS (fetched over
   HTTPS with the provider's CA; fetched again once for an unknown ``kid``), not expired, ``iss``
   equal to the issuer, ``aud`` one of the audiences. Else 401.
6. the route: only GET ``/secrets/{name}[/{version}]``; anything else 501 (not in the fake).
7. access: the token's ``oid`` or ``sub`` must have been ``allow()``-ed, else 403 ``Forbidden``
   with innererror ``AccessDenied`` (checked before the lookup, so a refused caller cannot tell a
   missing secret from a present one).
8. the lookup: unknown name/version -> 404 ``SecretNotFound``; disabled version -> 403
   ``Forbidden`` with innererror ``SecretDisabled``; else 200 and the SecretBundle.

Error wording, and where it comes from:

- seen in recorded Key Vault responses / SDK issues: AKV10000 (no token), AKV10022 (audience),
  AKV10032 (issuer), AKV10046 (signing key not found), ``Error validating token: IDX10223``
  (expired), the AccessDenied and SecretDisabled 403s, the SecretNotFound 404 with ``(name/id)``.
- chosen here, following Microsoft.IdentityModel's codes as Key Vault surfaces them: IDX10222 (not
  yet valid), IDX10225 (no ``exp``), IDX10504 (no signature / ``alg`` none), IDX10511 (signature
  does not verify), IDX12741 (not a JWT).
- not found documented anywhere: the 400 for a missing api-version. We answer ``BadParameter``
  "The request URI contains an invalid api-version query parameter: it is missing. ..."; an unknown
  version gets "The specified version (X) is not recognized. Consider using the latest supported
  version (7.5)." (remembered, not verified).

Secrets follow the docs where they are not the point of a contract test: names are
case-insensitive; ``exp`` / ``nbf`` are informational for secrets (Key Vault still returns the
value), so the fake returns them too; ``tags`` appears only when set, as in recorded responses.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from oidc_peer import API_AUDIENCE, make_tls

if TYPE_CHECKING:
    from oidc_peer import OidcProvider

KEY_VAULT_RESOURCE = "https://vault.azure.net"
LATEST_API_VERSION = "7.5"
API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"}
)
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
FORBIDDEN_HELP = "https://go.microsoft.com/fwlink/?linkid=2125287"
NOT_FOUND_HELP = "https://go.microsoft.com/fwlink/?linkid=2125182"
SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")

# 401 messages (see the module docstring for which are seen and which are chosen).
MISSING_TOKEN = "AKV10000: Request is missing a Bearer or PoP token."
UNKNOWN_KEY = "AKV10046: Unable to resolve the key used for signature validation."
EXPIRED = "Error validating token: IDX10223"
NOT_YET_VALID = "Error validating token: IDX10222"
NO_EXPIRY = "Error validating token: IDX10225"
NO_SIGNATURE = "Error validating token: IDX10504"
BAD_SIGNATURE = "Error validating token: IDX10511"
MALFORMED = "Error validating token: IDX12741"

StatusOverride = tuple[int, Mapping[str, str], Any, int | None]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


# --- JWT verification (pure: no I/O, the JWKS comes in) ------------------------------------------
class TokenRejected(Exception):
    """A bearer token Key Vault would refuse; ``str(e)`` is the Key Vault-style message."""


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES: dict[str, tuple[ec.EllipticCurve, int, str]] = {
    "P-256": (ec.SECP256R1(), 32, "ES256"),
    "P-384": (ec.SECP384R1(), 48, "ES384"),
    "P-521": (ec.SECP521R1(), 66, "ES512"),
}


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_part(text: str) -> dict[str, Any]:
    value = json.loads(b64url_decode(text))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT without any check (for the request log only), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return _json_part(parts[1])
    except ValueError:
        return None


def _public_key(jwk: Mapping[str, Any]) -> PublicKey:
    if jwk.get("kty") == "RSA":
        n = int.from_bytes(b64url_decode(jwk["n"]), "big")
        e = int.from_bytes(b64url_decode(jwk["e"]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if jwk.get("kty") == "EC" and jwk.get("crv") in _CURVES:
        curve = _CURVES[jwk["crv"]][0]
        x = int.from_bytes(b64url_decode(jwk["x"]), "big")
        y = int.from_bytes(b64url_decode(jwk["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    raise ValueError(f"unsupported JWK kty={jwk.get('kty')!r} crv={jwk.get('crv')!r}")


def _verify(alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes) -> bool:
    """True if ``signature`` verifies under ``jwk`` with ``alg``; False for any mismatch."""
    family, bits = alg[:2], alg[2:]
    digest = _HASHES.get(bits)
    if digest is None or jwk.get("alg") not in (None, alg) or jwk.get("use") not in (None, "sig"):
        return False
    try:
        key = _public_key(jwk)
        if family in ("RS", "PS") and isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if family == "RS"
                else padding.PSS(mgf=padding.MGF1(digest()), salt_length=digest().digest_size)
            )
            key.verify(signature, signing_input, pad, digest())
            return True
        if family == "ES" and isinstance(key, ec.EllipticCurvePublicKey):
            _, size, curve_alg = _CURVES[jwk["crv"]]
            if curve_alg != alg or len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest()))
            return True
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return False


def _candidates(jwks: Mapping[str, Any], kid: str | None, alg: str) -> list[Mapping[str, Any]]:
    kty = "EC" if alg.startswith("ES") else "RSA"
    keys = [k for k in jwks.get("keys", []) if isinstance(k, Mapping) and k.get("kty") == kty]
    return [k for k in keys if k.get("kid") == kid] if kid is not None else keys


def verify_jwt(
    token: str,
    jwks: Mapping[str, Any],
    *,
    issuer: str,
    audiences: Sequence[str],
    now: float,
    leeway: float = 300.0,
    refresh_jwks: Callable[[], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The verified claims of ``token``, or TokenRejected with Key Vault's message.

    Order as in IdentityModel: signature, lifetime, then issuer and audience. ``refresh_jwks``
    is called once when no key matches the token's ``kid`` (key rotation)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected(MALFORMED)
    try:
        header, claims = _json_part(parts[0]), _json_part(parts[1])
        signature = b64url_decode(parts[2])
    except ValueError:
        raise TokenRejected(MALFORMED) from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg == "none" or not signature:
        raise TokenRejected(NO_SIGNATURE)
    if alg[:2] not in ("RS", "PS", "ES") or alg[2:] not in _HASHES:
        raise TokenRejected(BAD_SIGNATURE)  # HS*: Key Vault has no shared key to try
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    keys = _candidates(jwks, kid, alg)
    if not keys and refresh_jwks is not None:
        keys = _candidates(refresh_jwks(), kid, alg)
    if not keys:
        raise TokenRejected(UNKNOWN_KEY)
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not any(_verify(alg, k, signing_input, signature) for k in keys):
        raise TokenRejected(BAD_SIGNATURE)

    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)):
        raise TokenRejected(NO_EXPIRY)
    if now > exp + leeway:
        raise TokenRejected(EXPIRED)
    if isinstance(nbf, (int, float)) and now + leeway < nbf:
        raise TokenRejected(NOT_YET_VALID)
    if claims.get("iss") != issuer:
        raise TokenRejected(
            f"AKV10032: Invalid issuer. Expected one of {issuer}, found {claims.get('iss')}."
        )
    aud = claims.get("aud")
    found = [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]
    if not set(found) & set(audiences):
        raise TokenRejected(
            f"AKV10022: Invalid audience. Expected {' or '.join(audiences)}, "
            f"found: {', '.join(found)}."
        )
    return claims


# --- the JWKS, fetched over HTTPS from the provider ----------------------------------------------
class _Jwks:
    def __init__(self, url: str, ca_pem: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the JWKS URL must be https: {url}")
        self.url = url
        self._context = ssl.create_default_context(cafile=ca_pem)
        self._keys: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self) -> Mapping[str, Any]:
        with self._lock:
            if self._keys is None:
                self._keys = self._fetch()
            return self._keys

    def refresh(self) -> Mapping[str, Any]:
        with self._lock:
            self._keys = self._fetch()
            return self._keys

    def _fetch(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, context=self._context, timeout=5
        )
        try:
            conn.request("GET", path or "/", headers={"Accept": "application/json"})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        self.fetches += 1
        if response.status != 200:
            raise OSError(f"JWKS {self.url} answered {response.status}")
        keys: dict[str, Any] = json.loads(body)
        return keys


@dataclass(frozen=True)
class _AuthConfig:
    issuer: str
    jwks: _Jwks
    audiences: tuple[str, ...]
    authorization: str  # the challenge's authorization= value
    resource: str


# --- state ---------------------------------------------------------------------------------------
@dataclass
class _Version:
    id: str
    value: str = field(repr=False)
    enabled: bool
    created: int
    updated: int
    exp: int | None = None
    nbf: int | None = None
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Secret:
    name: str  # as first set: Key Vault keeps the case it was given
    versions: list[_Version] = field(default_factory=list)


@dataclass
class LoggedRequest:
    """One request as the fake saw it: never the token, never a secret value."""

    method: str
    path: str
    api_version: str | None
    bearer: bool
    sub: str | None  # read from the token WITHOUT verification: who it claims to be
    status: int | None = None  # None while it is still being answered (e.g. held by ``hang``)


class _Reject(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def _default_fault_body(status: int) -> dict[str, Any]:
    known = {
        429: ("Throttled", "Request was not processed because too many requests were received."),
        500: ("InternalServerError", "The server encountered an internal error."),
        503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    }
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code, message = known.get(status, (phrase.replace(" ", ""), f"{phrase} (fake fault)."))
    return {"error": {"code": code, "message": message}}


# --- the HTTPS server ----------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # held requests are released by FakeKeyVault.stop()
    fake: FakeKeyVault

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up (timeouts, refused certificates) are part of the fault tests, and
        # a traceback on stderr must never be a place where request data shows up.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        fake = self.server.fake
        fake._track(self.request)
        self.request.settimeout(10)
        self.request = self.connection = fake._tls.wrap_socket(self.request, server_side=True)
        fake._track(self.request)
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the default writes request lines to stderr

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        received = {name.lower(): value for name, value in self.headers.items()}
        status, headers, body = self.server.fake._respond(self.command, self.path, received)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True


class FakeKeyVault:
    """See the module docstring. ``directory`` receives the throwaway CA (``.ca``) and the
    server certificate. ``clock`` (epoch seconds) drives token lifetime checks and secret
    timestamps: hand in a shifted clock to make a real token look expired. ``leeway`` is the
    clock skew allowed on ``exp``/``nbf`` (IdentityModel's default, 5 min)."""

    def __init__(
        self,
        directory: Path,
        *,
        vault_name: str = "fake-vault",
        location: str = "local",
        api_versions: Iterable[str] = API_VERSIONS,
        leeway: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tls = make_tls(Path(directory))
        self.vault_name = vault_name
        self.location = location
        self.api_versions = frozenset(api_versions)
        self.leeway = leeway
        self.clock = clock
        self.hang = False
        self.delay = 0.0
        self._override: StatusOverride | None = None  # the count is what remains
        self._auth: _AuthConfig | None = None
        self._allowed: set[str] = set()
        self._secrets: dict[str, _Secret] = {}
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(self.tls["cert"], self.tls["key"])
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- where it is -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Key Vault is not running: call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The vault base URL, ``https://127.0.0.1:<port>`` (no trailing slash)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        """PEM path of the CA that signed the fake's certificate."""
        return self.tls["ca"]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- life cycle ------------------------------------------------------------------------------
    def start(self) -> FakeKeyVault:
        """Listen on 127.0.0.1, a free port, in a background thread. Secrets survive a restart;
        the port does not."""
        if self.running:
            raise RuntimeError("the fake Key Vault is already running")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-keyvault-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests, stop listening, join the thread, free the port. Idempotent."""
        self._stopping.set()
        server, thread = self._server, self._thread
        if server is not None:
            if thread is not None and thread.is_alive():
                server.shutdown()
                thread.join(5)
            server.server_close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._server = self._thread = None

    def __enter__(self) -> FakeKeyVault:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    # --- admin API -------------------------------------------------------------------------------
    def configure_auth(
        self,
        issuer: str,
        jwks_url: str,
        jwks_ca_pem: str,
        audience: str | Sequence[str] = API_AUDIENCE,
        tenant: str | None = None,
        *,
        authority: str | None = None,
        resource: str | None = None,
    ) -> None:
        """Trust tokens from ``issuer`` signed by a key at ``jwks_url`` (HTTPS, ``jwks_ca_pem``)
        for ``audience`` (one or several). The challenge says ``authorization="<authority>/
        <tenant>"`` (authority: the issuer's origin when a tenant is given, else the issuer
        itself) and ``resource="<resource>"`` (default: the first audience, so a client that
        follows the challenge asks for a token this fake accepts, as with the real service)."""
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences:
            raise ValueError("at least one audience")
        if authority is None:
            origin = urlsplit(issuer)
            authority = f"{origin.scheme}://{origin.netloc}" if tenant else issuer
        authorization = f"{authority.rstrip('/')}/{tenant}" if tenant else authority
        config = _AuthConfig(
            issuer=issuer,
            jwks=_Jwks(jwks_url, jwks_ca_pem),
            audiences=audiences,
            authorization=authorization,
            resource=resource or audiences[0],
        )
        with self._lock:
            self._auth = config

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value every 401 carries."""
        auth = self._auth
        authorization = auth.authorization if auth else "https://login.microsoftonline.com/common"
        resource = auth.resource if auth else KEY_VAULT_RESOURCE
        return f'Bearer authorization="{authorization}", resource="{resource}"'

    @property
    def jwks_fetches(self) -> int:
        """How many times the JWKS was fetched (once, plus once per unknown ``kid``)."""
        return self._auth.jwks.fetches if self._auth else 0

    def allow(self, *principals: str) -> None:
        """Grant secrets/get to these ``oid`` or ``sub`` claim values."""
        with self._lock:
            self._allowed.update(principals)

    def deny(self, *principals: str) -> None:
        """Take secrets/get away again."""
        with self._lock:
            self._allowed.difference_update(principals)

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        enabled: bool = True,
        exp: float | None = None,
        nbf: float | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Add a new version (it becomes the latest); returns its 32-hex version id."""
        if not SECRET_NAME.fullmatch(name):
            raise ValueError(f"invalid Key Vault secret name {name!r}: 1-127 of [0-9a-zA-Z-]")
        now = int(self.clock())
        version = _Version(
            id=secrets.token_hex(16),
            value=value,
            enabled=enabled,
            created=now,
            updated=now,
            exp=None if exp is None else int(exp),
            nbf=None if nbf is None else int(nbf),
            content_type=content_type,
            tags=dict(tags or {}),
        )
        with self._lock:
            self._secrets.setdefault(name.lower(), _Secret(name)).versions.append(version)
        return version.id

    def disable(self, name: str, version: str | None = None) -> None:
        """Disable one version (default: the latest). KeyError if there is no such version."""
        self._set_enabled(name, version, False)

    def enable(self, name: str, version: str | None = None) -> None:
        self._set_enabled(name, version, True)

    def _set_enabled(self, name: str, version: str | None, enabled: bool) -> None:
        with self._lock:
            found = self._find(name, version)
            if found is None:
                raise KeyError(f"{name}/{version}" if version else name)
            found.enabled = enabled
            found.updated = int(self.clock())

    def versions(self, name: str) -> list[str]:
        """The version ids of ``name``, oldest first."""
        with self._lock:
            secret = self._secrets.get(name.lower())
            return [v.id for v in secret.versions] if secret else []

    # --- fault switches --------------------------------------------------------------------------
    @property
    def status_override(self) -> StatusOverride | None:
        with self._lock:
            return self._override

    @status_override.setter
    def status_override(self, value: StatusOverride | None) -> None:
        """``(status, headers, body, count)``: the next ``count`` requests (None: all, until
        cleared) get this answer before any other check. ``body``: dict (JSON), str, bytes, or
        None for a Key Vault-style error body."""
        if value is not None:
            status, headers, body, count = value
            if count is not None and count < 1:
                raise ValueError("count must be >= 1, or None for every request")
            value = (int(status), dict(headers), body, count)
        with self._lock:
            self._override = value

    def clear_faults(self) -> None:
        self.hang = False
        self.delay = 0.0
        self.status_override = None

    def _take_override(self) -> tuple[int, dict[str, str], Any] | None:
        with self._lock:
            if self._override is None:
                return None
            status, headers, body, remaining = self._override
            if remaining is not None:
                left = remaining - 1
                self._override = (status, headers, body, left) if left > 0 else None
            return status, dict(headers), body

    # --- the request log -------------------------------------------------------------------------
    @property
    def requests(self) -> list[LoggedRequest]:
        """Copies of every logged request, in order."""
        with self._lock:
            return [replace(r) for r in self._log]

    def count(
        self,
        secret: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        bearer: bool | None = None,
        sub: str | None = None,
    ) -> int:
        """How many logged requests match every filter given (``secret``: its name, any case,
        any version)."""

        def matches(r: LoggedRequest) -> bool:
            parts = r.path.lower().strip("/").split("/")
            return (
                (secret is None or (parts[0] == "secrets" and parts[1:2] == [secret.lower()]))
                and (method is None or r.method == method)
                and (status is None or r.status == status)
                and (bearer is None or r.bearer == bearer)
                and (sub is None or r.sub == sub)
            )

        with self._lock:
            return sum(1 for r in self._log if matches(r))

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # --- answering -------------------------------------------------------------------------------
    def _respond(
        self, method: str, target: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """``headers``: the request's, names in lower case."""
        split = urlsplit(target)
        path = unquote(split.path)
        api_versions = parse_qs(split.query).get("api-version")
        api_version = api_versions[0] if api_versions else None
        token = _bearer(headers.get("authorization"))
        claims = unverified_claims(token) if token else None
        sub = claims.get("sub") if claims else None
        entry = LoggedRequest(
            method, path, api_version, token is not None, sub if isinstance(sub, str) else None
        )
        with self._lock:
            self._log.append(entry)

        while self.hang and not self._stopping.wait(0.02):
            pass
        if self.delay > 0:
            self._stopping.wait(self.delay)

        out = {
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Expires": "-1",
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-keyvault-region": self.location,
            "x-ms-keyvault-service-version": "fake",
            "X-Content-Type-Options": "nosniff",
        }
        if headers.get("x-ms-client-request-id"):
            out["x-ms-client-request-id"] = headers["x-ms-client-request-id"]

        override = self._take_override()
        if override is not None:
            status, extra, body = override
            out.update(extra)
            payload = _default_fault_body(status) if body is None else body
        else:
            try:
                status, payload = 200, self._get_secret(method, path, api_version, token)
            except _Reject as reject:
                status, payload = reject.status, reject.body()
                out.update(reject.headers)
        with self._lock:
            entry.status = status
        if isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        return status, out, data

    def _get_secret(
        self, method: str, path: str, api_version: str | None, token: str | None
    ) -> dict[str, Any]:
        if api_version is None:
            supported = ", ".join(sorted(self.api_versions))
            raise _Reject(
                400,
                "BadParameter",
                "The request URI contains an invalid api-version query parameter: it is "
                f"missing. Supported versions: {supported}.",
            )
        if api_version not in self.api_versions:
            raise _Reject(
                400,
                "BadParameter",
                f"The specified version ({api_version}) is not recognized. Consider using the "
                f"latest supported version ({LATEST_API_VERSION}).",
            )
        claims = self._authenticate(token)

        parts = path.strip("/").split("/")
        if parts[0] != "secrets" or len(parts) not in (2, 3) or not parts[1]:
            raise _Reject(501, "NotImplemented", f"fake Key Vault: {path} is not implemented")
        if method != "GET":
            raise _Reject(501, "NotImplemented", f"fake Key Vault: only GET on {path}")
        name, version = parts[1], (parts[2] if len(parts) == 3 else "") or None

        self._authorize(claims)
        with self._lock:
            found = self._find(name, version)
            secret = self._secrets.get(name.lower())
            if found is None or secret is None:
                name_id = f"{name}/{version}" if version else name
                raise _Reject(
                    404,
                    "SecretNotFound",
                    f"A secret with (name/id) {name_id} was not found in this key vault. If you "
                    "recently deleted this secret you may be able to recover it using the "
                    f"correct recovery command. For help resolving this issue, please see "
                    f"{NOT_FOUND_HELP}",
                )
            if not found.enabled:
                raise _Reject(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    inner="SecretDisabled",
                )
            return self._bundle(secret.name, found)

    def _authenticate(self, token: str | None) -> dict[str, Any]:
        challenge = {"WWW-Authenticate": self.challenge}
        if token is None:
            raise _Reject(401, "Unauthorized", MISSING_TOKEN, headers=challenge)
        auth = self._auth
        if auth is None:
            message = "fake Key Vault: configure_auth() was not called"
            raise _Reject(401, "Unauthorized", message, headers=challenge)
        try:
            return verify_jwt(
                token,
                auth.jwks.get(),
                issuer=auth.issuer,
                audiences=auth.audiences,
                now=self.clock(),
                leeway=self.leeway,
                refresh_jwks=auth.jwks.refresh,
            )
        except TokenRejected as e:
            raise _Reject(401, "Unauthorized", str(e), headers=challenge) from None
        except (OSError, ValueError) as e:  # the provider is down or its JWKS is not JSON
            message = f"{UNKNOWN_KEY} (fake: JWKS fetch failed: {type(e).__name__}: {e})"
            raise _Reject(401, "Unauthorized", message, headers=challenge) from None

    def _authorize(self, claims: Mapping[str, Any]) -> None:
        ids = {str(claims[k]) for k in ("oid", "sub") if isinstance(claims.get(k), str)}
        with self._lock:
            allowed = bool(ids & self._allowed)
        if allowed:
            return
        appid = next((str(claims[k]) for k in ("appid", "azp", "client_id") if claims.get(k)), "")
        oid = claims.get("oid") or claims.get("sub") or ""
        raise _Reject(
            403,
            "Forbidden",
            f"The user, group or application 'appid={appid};oid={oid};iss={claims.get('iss')}' "
            f"does not have secrets get permission on key vault "
            f"'{self.vault_name};location={self.location}'. For help resolving this issue, "
            f"please see {FORBIDDEN_HELP}",
            inner="AccessDenied",
        )

    def _find(self, name: str, version: str | None) -> _Version | None:
        """Caller holds the lock."""
        secret = self._secrets.get(name.lower())
        if secret is None or not secret.versions:
            return None
        if version is None:
            return secret.versions[-1]
        return next((v for v in secret.versions if v.id == version.lower()), None)

    def _bundle(self, name: str, version: _Version) -> dict[str, Any]:
        attributes: dict[str, Any] = {"enabled": version.enabled}
        if version.nbf is not None:
            attributes["nbf"] = version.nbf
        if version.exp is not None:
            attributes["exp"] = version.exp
        attributes.update(
            created=version.created,
            updated=version.updated,
            recoveryLevel=RECOVERY_LEVEL,
            recoverableDays=RECOVERABLE_DAYS,
        )
        bundle: dict[str, Any] = {
            "value": version.value,
            "id": f"{self.url}/secrets/{name}/{version.id}",
            "attributes": attributes,
        }
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        if version.tags:
            bundle["tags"] = dict(version.tags)
        return bundle


def _bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None (PoP is not faked)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


@contextlib.contextmanager
def fake_keyvault(
    tmp_path: Path,
    provider: OidcProvider,
    *,
    allow: Iterable[str] = ("conf-client",),
    audience: str | Sequence[str] = API_AUDIENCE,
    resource: str | None = None,
    **options: Any,
) -> Iterator[FakeKeyVault]:
    """A running fake that trusts ``provider``'s tokens (its issuer, its JWKS, its tenant for
    the challenge) and lets ``allow`` read (default: the client-credentials client). ``options``
    go to FakeKeyVault (vault_name, leeway, clock...)."""
    fake = FakeKeyVault(tmp_path / "fake-keyvault", **options)
    fake.configure_auth(
        issuer=provider.issuer,
        jwks_url=str(provider.discovery()["jwks_uri"]),
        jwks_ca_pem=provider.ca,
        audience=audience,
        tenant=provider.tenant,
        resource=resource,
    )
    fake.allow(*allow)
    with fake:
        yield fake
