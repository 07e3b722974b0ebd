"""Azure managed identity, black-box: the entra flow ``managed-identity`` and the azure-key-vault
source's ``credential_from = "managed-identity"``, which share one MSAL client
(gatekey.sources.idp.managed).

No Azure machine runs here. The stand-in is Azure App Service's identity endpoint as MSAL speaks
to it: ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` in the environment; a GET with
``api-version=2019-08-01``, ``resource`` (and ``client_id`` for a user-assigned identity) and the
``X-IDENTITY-HEADER`` header; an answer with ``access_token`` and ``expires_on``. It is plain HTTP
on 127.0.0.1, as App Service serves it to its own machine. The token it hands out is a real one
from the Entra-style provider (client credentials of conf-client), so the fake Key Vault accepts
it. These are contract tests against a fake.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from blackbox_env import Env
from fake_keyvault import FakeKeyVault, fake_keyvault
from oidc_peer import CONF_CLIENT, OidcProvider
from vault_cases import assert_fails, assert_prints, drop_kernel_keys

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

SECRET_NAME = "db-pass"
SECRET = "akv-mi-" + secrets.token_urlsafe(24)
IDENTITY_HEADER = "identity-header-" + secrets.token_hex(8)


class IdentityEndpoint:
    """App Service's managed identity endpoint on 127.0.0.1, handing out ``token``."""

    def __init__(self, token: str) -> None:
        self.token = token
        # The answer's expiry is the token's own: gatekey compares the two to find clock skew.
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        self.expires_on = int(claims["exp"])
        self.requests: list[dict[str, Any]] = []  # query parameters, and whether the header held
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                header_ok = self.headers.get("X-IDENTITY-HEADER") == IDENTITY_HEADER
                endpoint.requests.append(dict(query, header_ok=header_ok))
                status, body = endpoint.answer(query, header_ok)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, query: dict[str, str], header_ok: bool) -> tuple[int, dict[str, Any]]:
        if not header_ok:
            return 400, {"statusCode": 400, "message": "bad identity header"}
        return 200, {
            "access_token": self.token,
            "expires_on": str(self.expires_on),
            "resource": query.get("resource"),
            "token_type": "Bearer",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def identity(entra_provider: OidcProvider, secret_hygiene: Any) -> Iterator[IdentityEndpoint]:
    """The stand-in, handing out a fresh conf-client token for the provider's API audience."""
    data = {
        "grant_type": "client_credentials",
        "client_id": CONF_CLIENT[0],
        "client_secret": CONF_CLIENT[1],
        "scope": "api.read",
    }
    with entra_provider.session() as s:
        answer = s.post(entra_provider.token_endpoint, data=data, timeout=10)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    secret_hygiene.register(token, "the managed identity's access token")
    endpoint = IdentityEndpoint(token)
    yield endpoint
    endpoint.stop()


def on_azure(gk: Env, endpoint: IdentityEndpoint) -> None:
    """As on an App Service machine: MSAL finds the identity endpoint in the environment."""
    gk.vars["IDENTITY_ENDPOINT"] = endpoint.url
    gk.vars["IDENTITY_HEADER"] = IDENTITY_HEADER


@pytest.fixture
def kv(tmp_path: Path, entra_provider: OidcProvider, gk: Env) -> Iterator[FakeKeyVault]:
    """The fake vault holding SECRET; conf-client may read. Cached secrets go afterwards."""
    with fake_keyvault(tmp_path, entra_provider) as fake:
        fake.set_secret(SECRET_NAME, SECRET)
        yield fake
    drop_kernel_keys(gk.cache_dir)


def key_vault_profile(fake: FakeKeyVault) -> str:
    # localhost, not 127.0.0.1: Key Vault's resource is the vault host's domain.
    return (
        f'[profiles.kv]\nsource = "azure-key-vault"\nvault_url = "https://localhost:{fake.port}"\n'
        f'secret_name = "{SECRET_NAME}"\ncredential_from = "managed-identity"\n'
        f'ca_bundle = "{fake.ca}"\n'
    )


ENTRA_MI = """
[profiles.gw]
source = "entra"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
scopes = ["api://llm-gateway/.default"]
flow = "managed-identity"
min_ttl = "10m"
"""


def test_key_vault_reads_the_secret_with_the_machines_identity(
    gk: Env, kv: FakeKeyVault, identity: IdentityEndpoint
):
    on_azure(gk, identity)
    gk.write_config(key_vault_profile(kv))
    assert_prints(gk.run(exe_name="gatekey-vault", context="background"), SECRET)
    [asked] = identity.requests
    assert asked == {
        "api-version": "2019-08-01",
        "resource": "https://localhost",
        "header_ok": True,
    }  # the system-assigned identity: no client_id
    assert kv.requests[-1].sub == CONF_CLIENT[0]  # the bearer was the identity's token


def test_an_entra_profile_prints_the_machines_identity_token(gk: Env, identity: IdentityEndpoint):
    on_azure(gk, identity)
    gk.write_config(ENTRA_MI + 'managed_identity_client_id = "mi-client"\n')
    assert_prints(gk.run(context="background"), identity.token)
    [asked] = identity.requests
    assert asked == {
        "api-version": "2019-08-01",
        "resource": "api://llm-gateway",  # the scope without /.default
        "client_id": "mi-client",  # the user-assigned identity
        "header_ok": True,
    }


@pytest.mark.parametrize("kind", ["entra", "azure-key-vault"])
def test_no_identity_endpoint_answering_is_exit_69(
    gk: Env, kv: FakeKeyVault, identity: IdentityEndpoint, kind: str
):
    identity.stop()  # nothing listens on its port any more: connection refused
    on_azure(gk, identity)
    gk.write_config(ENTRA_MI if kind == "entra" else key_vault_profile(kv))
    exe_name = "gatekey" if kind == "entra" else "gatekey-vault"
    r = gk.run(exe_name=exe_name, context="background")
    assert_fails(r, 69, "no managed identity endpoint answers on this machine")
    assert kv.requests == []


@pytest.mark.parametrize("kind", ["entra", "azure-key-vault"])
def test_an_identity_endpoint_msal_cannot_use_is_exit_69(
    gk: Env, kv: FakeKeyVault, identity: IdentityEndpoint, kind: str
):
    """IDENTITY_SERVER_THUMBPRINT beside the endpoint says Service Fabric, whose endpoint MSAL
    refuses to use (ManagedIdentityError): the same answer for both kinds, not an internal error."""
    on_azure(gk, identity)
    gk.vars["IDENTITY_SERVER_THUMBPRINT"] = "bad"
    gk.write_config(ENTRA_MI if kind == "entra" else key_vault_profile(kv))
    exe_name = "gatekey" if kind == "entra" else "gatekey-vault"
    r = gk.run(exe_name=exe_name, context="background")
    assert_fails(r, 69, "no managed identity is available on this machine")
    assert kv.requests == []
