"""A real OpenID provider for the tests: panva/node-oidc-provider 9.13.3 (OpenID-certified),
run by ``node tests/peers/oidc/server.mjs`` over HTTPS on 127.0.0.1 with a throwaway trustme CA.
scripts/test.sh installs its npm packages (``ensure_npm_deps``); the fixtures are in conftest.py.

What works against it (each line is exercised by tests/peers/test_oidc_peer.py):

- Endpoints, under the issuer ``https://127.0.0.1:<port><ISSUER_PATH>`` (ISSUER_PATH ``/oidc``;
  Entra-style ``/<tenant>/v2.0``). Read them from ``<issuer>/.well-known/openid-configuration``;
  today they are: ``/token`` (every grant), ``/device/auth`` (device authorization), ``/device``
  (user-code page), ``/auth`` (authorization), ``/jwks``, ``/me`` (userinfo),
  ``/token/revocation``, ``/token/introspection``, ``/session/end``.
- Clients:
  ``conf-client`` / ``conf-secret``: client_credentials, secret in the body (client_secret_post;
  HTTP Basic is accepted too). Scope ``api.read`` and/or ``api.write``; unknown scopes
  (``openid``, ``https://api.example.test/.default``, typos) are silently dropped, not refused,
  and no scope at all also gets a token (then the response has no ``scope``). A wrong secret
  answers 401 ``invalid_client``.
  ``public-client`` (no secret, ``token_endpoint_auth_method=none``): device code, authorization
  code + PKCE (S256 only), refresh_token; not client_credentials. Loopback redirect URIs match
  on any port but only WITHOUT a path: ``http://127.0.0.1:<port>`` or ``http://localhost:<port>``
  (MSAL's form); ``http://127.0.0.1:<port>/cb`` or a trailing ``/`` is invalid_redirect_uri.
  Scope ``openid offline_access api.read`` (+ ``profile``, ``email``, ``api.write``) gives an
  access token, an ID token (``aud`` public-client) and a refresh token; the response's
  ``scope`` lists only the API scopes (``api.read``). Without ``offline_access``: no refresh
  token; without ``openid``: no ID token.
- Access tokens are JWTs (RS256, keys at ``/jwks``) with ``aud`` ``https://api.example.test``
  (the default resource: no ``resource`` parameter needed), ``iss`` the issuer, ``scope`` the
  granted API scopes, ``client_id``; ``sub`` is the user (``alice`` by default) for user grants.
  The token response has ``expires_in`` (AT_TTL, default 3600). ``/me`` refuses these tokens
  (their audience is the API), and ``/token/revocation`` / ``/token/introspection`` refuse JWT
  access tokens (unsupported_token_type); revoking a REFRESH token works (then invalid_grant).
- Device code: POST ``/device/auth`` (client_id, scope) gives ``device_code``, ``user_code``,
  ``verification_uri`` (``<issuer>/device``), ``verification_uri_complete``, ``expires_in`` (600)
  and ``interval`` (DEVICE_INTERVAL, default 1 s), no ``message``. Poll ``/token`` with
  ``grant_type=urn:ietf:params:oauth:grant-type:device_code``, ``device_code``, ``client_id``:
  400 ``authorization_pending`` before approval, the tokens after, invalid_grant on reuse.
  ``approve(verification_uri_complete, ca, user=...)`` below plays the user (any password).
- Refresh tokens rotate on every use; replaying an old one answers 400 ``invalid_grant`` AND
  revokes the whole grant (the newest refresh token then fails too): use ``fresh_oidc_provider``
  / ``make_oidc_provider`` for tests that do this, so other tests keep a clean provider.
- AUTO_LOGIN=1: the login and consent interactions complete with no HTML (user ``alice``), so an
  authorization request is answered by redirects alone; device codes still need the one
  "Continue" form on ``/device``, which ``approve`` submits.
- The provider logs ``REQ <METHOD> <path>`` for every request (``requests_log()``), so tests can
  count token-endpoint calls (``token_requests()``: POSTs to exactly ``<issuer path>/token``) as
  the IdP sees them. Anything outside the issuer path is a 404.
- MSAL (see test_msal_against_the_entra_provider): ``authority=provider.authority`` with
  ``instance_discovery=False`` and ``http_client=session(ca)``; client credentials with
  ``scopes=["https://api.example.test/.default"]``; device flow with ``scopes=["api.read"]``.
- Start-up: ~0.25 s to the ready line (Node 20 logs "Unsupported runtime", harmless).
- requests: this machine sets ``REQUESTS_CA_BUNDLE`` globally and requests lets it override
  ``Session.verify``; use ``session(ca)`` (``trust_env=False``) or pass the CA through the
  environment of the process under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests

from peers import stop_group

PEER_DIR = Path(__file__).resolve().parent.parent / "peers" / "oidc"
SERVER = PEER_DIR / "server.mjs"
API_AUDIENCE = "https://api.example.test"
ENTRA_TENANT = "11111111-2222-3333-4444-555555555555"
CONF_CLIENT = ("conf-client", "conf-secret")
PUBLIC_CLIENT = "public-client"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_SCOPES = "openid offline_access api.read"


def make_tls(directory: Path) -> dict[str, str]:
    """A throwaway CA and a leaf for 127.0.0.1 and localhost: PEM paths ca, cert and key."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {
        k: directory / f
        for k, f in (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"))
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(paths["cert"]), append=True)
    return {k: str(v) for k, v in paths.items()}


def missing_tools() -> list[str]:
    """What must be installed before a provider can start (scripts/test.sh installs it)."""
    missing = [] if shutil.which("node") else ["node"]
    if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
        missing.append(f"{PEER_DIR / 'node_modules'} (npm ci)")
    return missing


def session(ca: str) -> requests.Session:
    """A requests session that trusts exactly ``ca`` (the environment cannot override it)."""
    s = requests.Session()
    s.verify = ca
    s.trust_env = False  # else REQUESTS_CA_BUNDLE, set globally here, beats s.verify
    return s


class OidcProvider:
    """node-oidc-provider in its own process group; ready once it prints ``{"issuer", "port"}``.

    ``env``: ISSUER_PATH (default /oidc), AUTO_LOGIN, AUTO_LOGIN_USER, AT_TTL, RT_TTL,
    DEVICE_INTERVAL, STRICT_OFFLINE_ACCESS, DEBUG_EVENTS (see the top of server.mjs).
    """

    def __init__(
        self,
        tls: Mapping[str, str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 20,
    ) -> None:
        self.tls = dict(tls)
        self.env = {k: str(v) for k, v in (env or {}).items()}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_log = log_dir / "provider.out"
        self.stderr_log = log_dir / "provider.err"
        self.info: dict[str, Any] = {}
        self.startup_s = 0.0
        self._files: list[IO[bytes]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._start(timeout)

    # --- life cycle ---------------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        environ = dict(
            os.environ,
            TLS_CERT=self.tls["cert"],
            TLS_KEY=self.tls["key"],
            PORT="0",
            LOG_REQUESTS="1",
            **self.env,
        )
        out, err = open(self.stdout_log, "wb"), open(self.stderr_log, "wb")  # noqa: SIM115
        self._files = [out, err]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["node", str(SERVER)],
            env=environ,
            cwd=PEER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: stop() kills all of it
        )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            info = self._ready_line()
            if info:
                self.info = info
                self.startup_s = time.monotonic() - t0
                return
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"the OIDC provider exited with {code}:\n{self.logs()}")
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"the OIDC provider was not ready in {timeout} s:\n{self.logs()}")

    def _ready_line(self) -> dict[str, Any] | None:
        for line in self.stdout_log.read_text(errors="replace").splitlines():
            if line.startswith("{") and line.endswith("}"):
                info: dict[str, Any] = json.loads(line)
                if "issuer" in info and "port" in info:
                    return info
        return None

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 5 s. Idempotent."""
        stop_group(self.proc)
        for f in self._files:
            f.close()
        self._files = []

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- where it is ----------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return str(self.info["issuer"])

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def ca(self) -> str:
        """PEM path of the CA that signed the provider's certificate."""
        return self.tls["ca"]

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def issuer_path(self) -> str:
        return urlsplit(self.issuer).path

    @property
    def tenant(self) -> str | None:
        """The tenant of an Entra-style issuer (``/<tenant>/v2.0``), else None."""
        parts = self.issuer_path.strip("/").split("/")
        return parts[0] if len(parts) == 2 and parts[1] == "v2.0" else None

    @property
    def authority(self) -> str:
        """The MSAL authority: ``https://127.0.0.1:<port>/<tenant>`` for an Entra-style issuer
        (use with ``instance_discovery=False``), else the issuer itself."""
        return f"{self.origin}/{self.tenant}" if self.tenant else self.issuer

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.issuer}/device/auth"

    def session(self) -> requests.Session:
        return session(self.ca)

    def discovery(self) -> dict[str, Any]:
        with self.session() as s:
            r = s.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
            r.raise_for_status()
            doc: dict[str, Any] = r.json()
            return doc

    # --- what it saw ----------------------------------------------------------------------------
    def logs(self) -> str:
        out = self.stdout_log.read_text(errors="replace") if self.stdout_log.exists() else ""
        err = self.stderr_log.read_text(errors="replace") if self.stderr_log.exists() else ""
        return f"--- stdout ---\n{out}--- stderr ---\n{err}"

    def requests_log(self) -> list[tuple[str, str]]:
        """Every request so far as (method, path with query), in order."""
        seen = []
        for line in self.stderr_log.read_text(errors="replace").splitlines():
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "REQ":
                seen.append((parts[1], parts[2]))
        return seen

    def token_requests(self) -> int:
        """How many POSTs reached the token endpoint (any grant) so far."""
        path = f"{self.issuer_path}/token"
        return sum(
            1 for method, p in self.requests_log() if method == "POST" and p.split("?")[0] == path
        )


# --- playing the user -------------------------------------------------------------------------
class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._current = {"action": a.get("action") or "", "id": a.get("id"), "fields": {}}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and a.get("name"):
            self._current["fields"][a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def approve(
    url: str,
    ca: str,
    user: str = "alice",
    max_steps: int = 10,
    log: Callable[[str], None] | None = None,
) -> requests.Response:
    """Play the user at ``url`` (a device ``verification_uri_complete``, or an authorization URL
    whose redirect target is not needed): submit the provider's first form on each page (device
    code confirmation, devInteractions login as ``user`` with any password, consent) until a page
    has no form. Returns the last response (the device flow's "Sign-in Success" page)."""
    with session(ca) as s:
        r = s.get(url, timeout=10)
        for step in range(max_steps):
            parser = _Forms()
            parser.feed(r.text)
            if log:
                ids = [f["id"] or f["action"] for f in parser.forms]
                log(f"approve step {step}: {r.status_code} {r.url} forms={ids}")
            if not parser.forms:
                r.raise_for_status()
                return r
            form = parser.forms[0]
            data = dict(form["fields"])
            if "login" in data:
                data["login"] = user
            if "password" in data:
                data["password"] = "any"
            r = s.post(urljoin(r.url, form["action"]), data=data, timeout=10)
    raise RuntimeError(f"approve: still on a form after {max_steps} steps at {r.url}")
