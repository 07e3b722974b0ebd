"""The OpenID provider test peer itself (tests/support/oidc_peer.py, node-oidc-provider 9.13.3).

No gatekey here: plain requests (and MSAL, as gatekey's oidc/entra sources will use it) against
the provider, to show that the fixtures work and to pin down which requests, scopes and clients
it accepts. Read these with the comment block at the top of support/oidc_peer.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from oidc_peer import (
    API_AUDIENCE,
    CONF_CLIENT,
    DEVICE_GRANT,
    ENTRA_TENANT,
    PUBLIC_CLIENT,
    USER_SCOPES,
    OidcProvider,
    approve,
    session,
)

pytestmark = pytest.mark.oidc


def claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the provider is the one under test here)."""
    body = jwt.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload


def client_credentials(op: OidcProvider, scope: str | None = "api.read") -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": CONF_CLIENT[0]}
    data["client_secret"] = CONF_CLIENT[1]
    if scope is not None:
        data["scope"] = scope
    with op.session() as s:
        return s.post(op.token_endpoint, data=data, timeout=10)


def device_login(op: OidcProvider, scope: str = USER_SCOPES) -> dict[str, Any]:
    """The whole device-code flow for public-client, with ``approve`` as the user."""
    with op.session() as s:
        r = s.post(
            op.device_authorization_endpoint,
            data={"client_id": PUBLIC_CLIENT, "scope": scope},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        grant = r.json()
        poll = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"]}
        poll["client_id"] = PUBLIC_CLIENT
        pending = s.post(op.token_endpoint, data=poll, timeout=10)
        assert pending.status_code == 400
        assert pending.json()["error"] == "authorization_pending"
        approve(grant["verification_uri_complete"], op.ca)
        r = s.post(op.token_endpoint, data=poll, timeout=10)
        assert r.status_code == 200, r.text
        tokens: dict[str, Any] = r.json()
        return tokens


def refresh(op: OidcProvider, refresh_token: str) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    data["client_id"] = PUBLIC_CLIENT
    with op.session() as s:
        return s.post(op.token_endpoint, data=data, timeout=10)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# ============================================================================================
# Start-up, discovery, TLS
# ============================================================================================
def test_startup_time(oidc_provider: OidcProvider, make_oidc_provider: Callable[..., OidcProvider]):
    t0 = time.monotonic()
    fresh = make_oidc_provider()
    started = time.monotonic() - t0
    t0 = time.monotonic()
    fresh.stop()
    stopped = time.monotonic() - t0
    print(
        f"\n[oidc peer] session provider ready in {oidc_provider.startup_s * 1000:.0f} ms; "
        f"a fresh one in {started * 1000:.0f} ms (ready line {fresh.startup_s * 1000:.0f} ms), "
        f"stopped in {stopped * 1000:.0f} ms"
    )
    # What the peer promises, not how fast this machine is: ready (its ready line seen) when
    # the constructor returns, and stopped (the process group gone) when stop() returns.
    assert 0 < fresh.startup_s <= started
    assert fresh.proc.poll() is not None, "stop() returned with the provider still running"


def test_discovery_over_https(oidc_provider: OidcProvider):
    op = oidc_provider
    assert op.issuer == f"https://127.0.0.1:{op.port}/oidc"
    doc = op.discovery()
    assert doc["issuer"] == op.issuer
    assert doc["token_endpoint"] == op.token_endpoint == f"{op.issuer}/token"
    assert doc["device_authorization_endpoint"] == op.device_authorization_endpoint
    assert doc["authorization_endpoint"] == f"{op.issuer}/auth"
    assert doc["jwks_uri"] == f"{op.issuer}/jwks"
    assert doc["revocation_endpoint"] == f"{op.issuer}/token/revocation"
    assert DEVICE_GRANT in doc["grant_types_supported"]
    assert "client_credentials" in doc["grant_types_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    with op.session() as s:
        keys = s.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert keys
    assert keys[0]["kty"] == "RSA"
    assert ("GET", "/oidc/.well-known/openid-configuration") in op.requests_log()


def test_tls_needs_the_test_ca(oidc_provider: OidcProvider):
    """Real HTTPS: a client without the test CA refuses the certificate."""
    with requests.Session() as s:
        s.trust_env = False  # the system bundle, not REQUESTS_CA_BUNDLE
        with pytest.raises(requests.exceptions.SSLError):
            s.get(f"{oidc_provider.issuer}/.well-known/openid-configuration", timeout=10)


def test_listens_on_loopback_only(oidc_provider: OidcProvider):
    """Its one listening socket is bound to 127.0.0.1 (Linux: read from /proc/net/tcp*)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        pytest.skip("no /proc/net/tcp on this system")
    listening = []
    for table in tables:
        for line in table.read_text().splitlines()[1:] if table.exists() else []:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == oidc_provider.port:  # 0A: LISTEN
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex


def test_outside_the_issuer_path_is_404(oidc_provider: OidcProvider):
    with oidc_provider.session() as s:
        assert s.get(f"{oidc_provider.origin}/token", timeout=10).status_code == 404


# ============================================================================================
# Client credentials (conf-client)
# ============================================================================================
def test_client_credentials(oidc_provider: OidcProvider):
    before = oidc_provider.token_requests()
    r = client_credentials(oidc_provider, "api.read")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "api.read"
    assert "refresh_token" not in body
    at = claims(body["access_token"])
    assert at["aud"] == API_AUDIENCE
    assert at["iss"] == oidc_provider.issuer
    assert at["client_id"] == at["sub"] == "conf-client"
    assert at["scope"] == "api.read"
    assert at["exp"] - at["iat"] == 3600
    assert oidc_provider.token_requests() == before + 1


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        ("api.read api.write", "api.read api.write"),
        (None, None),
        # unknown scopes are dropped, not refused (MSAL's ".default" scopes get a token)
        (f"{API_AUDIENCE}/.default", None),
        ("api.read bogus", "api.read"),
        ("openid", None),
    ],
)
def test_client_credentials_scopes(oidc_provider: OidcProvider, scope: str | None, granted: str):
    r = client_credentials(oidc_provider, scope)
    assert r.status_code == 200, r.text
    assert r.json().get("scope") == granted
    assert claims(r.json()["access_token"])["aud"] == API_AUDIENCE


def test_client_credentials_wrong_secret(oidc_provider: OidcProvider):
    with oidc_provider.session() as s:
        r = s.post(
            oidc_provider.token_endpoint,
            data={
                "grant_type": "client_credentials",
                "client_id": "conf-client",
                "client_secret": "wrong",
            },
            timeout=10,
        )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_client_credentials_basic_auth(oidc_provider: OidcProvider):
    with oidc_provider.session() as s:
        r = s.post(
            oidc_provider.token_endpoint,
            data={"grant_type": "client_credentials", "scope": "api.read"},
            auth=CONF_CLIENT,
            timeout=10,
        )
    assert r.status_code == 200, r.text


def test_public_client_has_no_client_credentials(oidc_provider: OidcProvider):
    with oidc_provider.session() as s:
        r = s.post(
            oidc_provider.token_endpoint,
            data={"grant_type": "client_credentials", "client_id": PUBLIC_CLIENT},
            timeout=10,
        )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


# ============================================================================================
# Device code, refresh (public-client)
# ============================================================================================
def test_device_code_flow(oidc_provider: OidcProvider):
    before = oidc_provider.token_requests()
    with oidc_provider.session() as s:
        grant = s.post(
            oidc_provider.device_authorization_endpoint,
            data={"client_id": PUBLIC_CLIENT, "scope": USER_SCOPES},
            timeout=10,
        ).json()
    assert grant["verification_uri"] == f"{oidc_provider.issuer}/device"
    assert grant["verification_uri_complete"].startswith(
        f"{oidc_provider.issuer}/device?user_code="
    )
    assert grant["interval"] == 1
    assert grant["expires_in"] == 600
    assert "message" not in grant  # MSAL users: print verification_uri and user_code yourself
    tokens = device_login(oidc_provider)
    assert {"access_token", "refresh_token", "id_token"} <= tokens.keys()
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == "api.read"  # the API scopes; openid/offline_access are implied
    at = claims(tokens["access_token"])
    assert at["aud"] == API_AUDIENCE
    assert at["sub"] == "alice"
    assert at["client_id"] == PUBLIC_CLIENT
    idt = claims(tokens["id_token"])
    assert idt["aud"] == PUBLIC_CLIENT
    assert idt["sub"] == "alice"
    # one pending poll and one successful poll
    assert oidc_provider.token_requests() == before + 2


@pytest.mark.parametrize(
    ("scope", "expected", "absent"),
    [
        ("openid api.read", {"access_token", "id_token"}, "refresh_token"),
        ("offline_access api.read", {"access_token", "refresh_token"}, "id_token"),
    ],
)
def test_device_code_scopes(
    oidc_provider: OidcProvider, scope: str, expected: set[str], absent: str
):
    tokens = device_login(oidc_provider, scope=scope)
    assert expected <= tokens.keys()
    assert absent not in tokens


def test_jwt_access_tokens_are_for_the_api_only(oidc_provider: OidcProvider):
    """/me wants a token for itself; JWT access tokens cannot be revoked or introspected."""
    token = client_credentials(oidc_provider).json()["access_token"]
    user_token = device_login(oidc_provider)["access_token"]
    with oidc_provider.session() as s:
        me = s.get(
            f"{oidc_provider.issuer}/me",
            headers={"Authorization": f"Bearer {user_token}"},
            timeout=10,
        )
        assert me.status_code == 401
        for endpoint in ("revocation", "introspection"):
            r = s.post(
                f"{oidc_provider.issuer}/token/{endpoint}",
                data={"token": token, "client_id": CONF_CLIENT[0], "client_secret": CONF_CLIENT[1]},
                timeout=10,
            )
            assert r.status_code == 400
            assert r.json()["error"] == "unsupported_token_type"


def test_device_code_other_user(oidc_provider: OidcProvider):
    with oidc_provider.session() as s:
        grant = s.post(
            oidc_provider.device_authorization_endpoint,
            data={"client_id": PUBLIC_CLIENT, "scope": USER_SCOPES},
            timeout=10,
        ).json()
        approve(grant["verification_uri_complete"], oidc_provider.ca, user="bob")
        r = s.post(
            oidc_provider.token_endpoint,
            data={
                "grant_type": DEVICE_GRANT,
                "device_code": grant["device_code"],
                "client_id": PUBLIC_CLIENT,
            },
            timeout=10,
        )
        assert claims(r.json()["access_token"])["sub"] == "bob"
        reused = s.post(
            oidc_provider.token_endpoint,
            data={
                "grant_type": DEVICE_GRANT,
                "device_code": grant["device_code"],
                "client_id": PUBLIC_CLIENT,
            },
            timeout=10,
        )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_replay_revokes_the_grant(fresh_oidc_provider: OidcProvider):
    op = fresh_oidc_provider
    tokens = device_login(op)
    first = refresh(op, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert claims(rotated["access_token"])["sub"] == "alice"
    before = op.token_requests()
    replay = refresh(op, tokens["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # reuse detection: the whole grant is gone, the newest refresh token too
    newest = refresh(op, rotated["refresh_token"])
    assert newest.status_code == 400
    assert newest.json()["error"] == "invalid_grant"
    assert op.token_requests() == before + 2


def test_refresh_token_revocation(fresh_oidc_provider: OidcProvider):
    op = fresh_oidc_provider
    tokens = device_login(op)
    with op.session() as s:
        r = s.post(
            f"{op.issuer}/token/revocation",
            data={
                "token": tokens["refresh_token"],
                "token_type_hint": "refresh_token",
                "client_id": PUBLIC_CLIENT,
            },
            timeout=10,
        )
    assert r.status_code == 200
    assert refresh(op, tokens["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "fresh_oidc_provider", [{"AT_TTL": "400", "DEVICE_INTERVAL": "2"}], indirect=True
)
def test_fresh_provider_env(fresh_oidc_provider: OidcProvider):
    op = fresh_oidc_provider
    assert op.env == {"AT_TTL": "400", "DEVICE_INTERVAL": "2"}
    assert client_credentials(op).json()["expires_in"] == 400
    with op.session() as s:
        grant = s.post(
            op.device_authorization_endpoint,
            data={"client_id": PUBLIC_CLIENT, "scope": USER_SCOPES},
            timeout=10,
        ).json()
    assert grant["interval"] == 2


def test_stop_ends_the_provider(make_oidc_provider: Callable[..., OidcProvider]):
    op = make_oidc_provider()
    op.stop()
    assert op.proc is not None
    assert op.proc.returncode is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", op.port), 1).close()
    op.stop()  # idempotent


# ============================================================================================
# Authorization code + PKCE with AUTO_LOGIN (no browser: the redirects are followed by hand)
# ============================================================================================
def test_auth_code_pkce_auto_login(oidc_provider_auto: OidcProvider):
    op = oidc_provider_auto
    verifier, challenge = pkce_pair()
    # a loopback redirect matches on any port, but only without a path ("/cb" is refused)
    redirect = "http://127.0.0.1:5555"
    params = {
        "client_id": PUBLIC_CLIENT,
        "response_type": "code",
        "redirect_uri": redirect,
        "scope": USER_SCOPES,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st4te",
    }
    with op.session() as s:
        for wrong in (f"{redirect}/cb", f"{redirect}/"):
            bad = s.get(f"{op.issuer}/auth", params={**params, "redirect_uri": wrong}, timeout=10)
            assert bad.status_code == 400
            assert "invalid_redirect_uri" in bad.text
        other = {**params, "redirect_uri": "http://localhost:61234"}
        ok = s.get(f"{op.issuer}/auth", params=other, allow_redirects=False, timeout=10)
        assert ok.status_code == 303  # on to the (automatic) sign-in
        r = s.get(f"{op.issuer}/auth", params=params, allow_redirects=False, timeout=10)
        for _ in range(10):
            assert r.status_code in (302, 303), r.text
            location = r.headers["location"]
            if location.startswith(redirect):
                break
            r = s.get(urljoin(r.url, location), allow_redirects=False, timeout=10)
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == ["st4te"]
        assert query["iss"] == [op.issuer]
        r = s.post(
            op.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect,
                "client_id": PUBLIC_CLIENT,
                "code_verifier": verifier,
            },
            timeout=10,
        )
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert {"access_token", "refresh_token", "id_token"} <= tokens.keys()
    assert claims(tokens["access_token"])["aud"] == API_AUDIENCE
    assert claims(tokens["access_token"])["sub"] == "alice"


def test_device_code_auto_login(oidc_provider_auto: OidcProvider):
    """With AUTO_LOGIN the device code still needs its one confirmation form."""
    tokens = device_login(oidc_provider_auto)
    assert claims(tokens["access_token"])["sub"] == "alice"
    assert "refresh_token" in tokens


# ============================================================================================
# Entra-style issuer, and MSAL against it
# ============================================================================================
def test_entra_style_issuer(entra_provider: OidcProvider):
    op = entra_provider
    assert op.tenant == ENTRA_TENANT
    assert op.authority == f"https://127.0.0.1:{op.port}/{ENTRA_TENANT}"
    assert op.issuer == f"{op.authority}/v2.0"
    with op.session() as s:
        doc = s.get(f"{op.authority}/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == op.issuer
    assert doc["token_endpoint"] == f"{op.issuer}/token"
    r = client_credentials(op, "api.read")
    assert r.status_code == 200, r.text
    assert claims(r.json()["access_token"])["iss"] == op.issuer
    assert op.token_requests() >= 1
    assert device_login(op)["refresh_token"]


def test_msal_against_the_entra_provider(entra_provider: OidcProvider):
    """How MSAL talks to the peer: Entra-style authority, no instance discovery, and an
    http_client session that trusts the test CA whatever REQUESTS_CA_BUNDLE says."""
    import msal

    op = entra_provider
    http = session(op.ca)
    before = op.token_requests()
    app = msal.ConfidentialClientApplication(
        CONF_CLIENT[0],
        client_credential=CONF_CLIENT[1],
        authority=op.authority,
        instance_discovery=False,
        http_client=http,
    )
    result = app.acquire_token_for_client(scopes=[f"{API_AUDIENCE}/.default"])
    assert "access_token" in result, result
    assert claims(result["access_token"])["aud"] == API_AUDIENCE
    # the second call is answered from MSAL's in-memory cache: the provider sees one request
    assert app.acquire_token_for_client(scopes=[f"{API_AUDIENCE}/.default"])["token_source"] == (
        "cache"
    )
    assert op.token_requests() == before + 1

    public = msal.PublicClientApplication(
        PUBLIC_CLIENT, authority=op.authority, instance_discovery=False, http_client=http
    )
    flow = public.initiate_device_flow(scopes=["api.read"])  # MSAL adds openid, offline_access
    assert "user_code" in flow, flow
    approve(flow["verification_uri_complete"], op.ca)
    result = public.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert result["refresh_token"]
    assert result["id_token_claims"]["sub"] == "alice"
    http.close()
