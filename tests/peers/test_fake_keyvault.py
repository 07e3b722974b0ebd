"""The fake Azure Key Vault (tests/support/fake_keyvault.py) itself, with plain requests.

Contract tests against a FAKE: there is no Key Vault emulator. Tokens are real ones from the OIDC
test provider (Entra-style issuer); forged ones are built here. Every call passes
``verify=fake.ca`` itself: REQUESTS_CA_BUNDLE is set globally and beats ``Session.verify``.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fake_keyvault import (
    KEY_VAULT_RESOURCE,
    FakeKeyVault,
    TokenRejected,
    fake_keyvault,
    verify_jwt,
)
from oidc_peer import API_AUDIENCE, CONF_CLIENT, ENTRA_TENANT, OidcProvider

pytestmark = pytest.mark.oidc

SECRET_VALUE = "s3cret-value-do-not-print"


# --- helpers --------------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: dict[str, Any]) -> str:
    return b64(json.dumps(obj).encode())


def claims_of(jwt: str) -> dict[str, Any]:
    body = jwt.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload


def client_credentials_token(provider: OidcProvider) -> str:
    data = {
        "grant_type": "client_credentials",
        "client_id": CONF_CLIENT[0],
        "client_secret": CONF_CLIENT[1],
        "scope": "api.read",
    }
    with provider.session() as s:
        r = s.post(provider.token_endpoint, data=data, timeout=10)
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def get(
    fake: FakeKeyVault,
    path: str,
    token: str | None = None,
    api_version: str | None = "7.5",
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> requests.Response:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    params = {"api-version": api_version} if api_version is not None else None
    return requests.get(
        f"{fake.url}{path}", params=params, headers=headers, verify=fake.ca, timeout=timeout
    )


def error(r: requests.Response) -> dict[str, Any]:
    err: dict[str, Any] = r.json()["error"]
    return err


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, alg: str | None = None) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }
    if alg:
        jwk["alg"] = alg
    return jwk


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }


def sign(claims: dict[str, Any], alg: str, key: Any, kid: str | None) -> str:
    header: dict[str, Any] = {"alg": alg, "typ": "at+jwt"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        sig = key.sign(signing_input, pss, hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        raise ValueError(alg)
    return f"{signing_input.decode()}.{b64(sig)}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def token(entra_provider: OidcProvider) -> str:
    """A real client-credentials access token: sub conf-client, aud https://api.example.test."""
    return client_credentials_token(entra_provider)


@pytest.fixture
def kv(tmp_path: Path, entra_provider: OidcProvider) -> Iterator[FakeKeyVault]:
    with fake_keyvault(tmp_path, entra_provider) as fake:
        yield fake


# --- the challenge --------------------------------------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "Basic Y29uZjpzZWNyZXQ=", "Bearer ", "PoP x"])
def test_no_bearer_gets_the_challenge(
    kv: FakeKeyVault, entra_provider: OidcProvider, authorization: str | None
) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    headers = {"Authorization": authorization} if authorization else {}
    r = get(kv, "/secrets/db-pass", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{entra_provider.authority}", resource="{API_AUDIENCE}"'
    )
    assert entra_provider.authority.endswith(f"/{ENTRA_TENANT}")
    assert r.json() == {
        "error": {
            "code": "Unauthorized",
            "message": "AKV10000: Request is missing a Bearer or PoP token.",
        }
    }
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert SECRET_VALUE not in r.text


def test_challenge_authority_and_resource_are_configurable(tmp_path: Path) -> None:
    fake = FakeKeyVault(tmp_path)
    assert fake.challenge == (
        'Bearer authorization="https://login.microsoftonline.com/common", '
        'resource="https://vault.azure.net"'
    )
    fake.configure_auth(
        "https://idp.example/t1/v2.0",
        "https://idp.example/t1/jwks",
        fake.ca,
        audience=KEY_VAULT_RESOURCE,
        tenant="t1",
        authority="https://login.microsoftonline.com",
    )
    assert fake.challenge == (
        'Bearer authorization="https://login.microsoftonline.com/t1", '
        'resource="https://vault.azure.net"'
    )
    # no tenant: the authority is the issuer itself (a non-Entra provider)
    fake.configure_auth("https://idp.example/oidc", "https://idp.example/oidc/jwks", fake.ca)
    assert fake.challenge == (
        f'Bearer authorization="https://idp.example/oidc", resource="{API_AUDIENCE}"'
    )
    with pytest.raises(ValueError, match="https"):
        fake.configure_auth("https://idp.example", "http://idp.example/jwks", fake.ca)


def test_unconfigured_fake_refuses_every_bearer(tmp_path: Path, token: str) -> None:
    with FakeKeyVault(tmp_path) as fake:
        fake.allow("conf-client")
        fake.set_secret("db-pass", SECRET_VALUE)
        r = get(fake, "/secrets/db-pass", token)
    assert r.status_code == 401
    assert "configure_auth" in error(r)["message"]
    assert "WWW-Authenticate" in r.headers


# --- success --------------------------------------------------------------------------------------
def test_latest_and_specific_versions(kv: FakeKeyVault, token: str) -> None:
    v1 = kv.set_secret("db-pass", "first")
    v2 = kv.set_secret("db-pass", SECRET_VALUE, content_type="text/plain")
    assert len(v1) == len(v2) == 32
    assert int(v1, 16) >= 0
    assert v1 != v2
    assert kv.versions("db-pass") == [v1, v2]

    latest = get(kv, "/secrets/db-pass", token)
    assert latest.status_code == 200, latest.text
    body = latest.json()
    assert body["value"] == SECRET_VALUE
    assert body["id"] == f"{kv.url}/secrets/db-pass/{v2}"
    assert body["contentType"] == "text/plain"
    attrs = body["attributes"]
    assert attrs["enabled"] is True
    assert attrs["recoveryLevel"] == "Recoverable+Purgeable"
    assert isinstance(attrs["created"], int)
    assert attrs["created"] == attrs["updated"]
    assert abs(attrs["created"] - time.time()) < 60
    assert "exp" not in attrs
    assert "nbf" not in attrs
    assert "tags" not in body

    # a trailing slash (as the JS SDK sends it) is "latest" too; names and versions ignore case
    assert get(kv, "/secrets/db-pass/", token).json()["value"] == SECRET_VALUE
    old = get(kv, f"/secrets/DB-PASS/{v1.upper()}", token)
    assert old.status_code == 200
    assert old.json()["value"] == "first"
    assert old.json()["id"] == f"{kv.url}/secrets/db-pass/{v1}"
    assert "contentType" not in old.json()


def test_optional_attributes_and_expired_secret_still_readable(
    kv: FakeKeyVault, token: str
) -> None:
    # exp/nbf are informational for secrets: Key Vault returns the value anyway
    past, future = int(time.time()) - 3600, int(time.time()) + 3600
    kv.set_secret("old", SECRET_VALUE, exp=past, nbf=past - 60, tags={"team": "a"})
    kv.set_secret("later", SECRET_VALUE, nbf=future)
    r = get(kv, "/secrets/old", token)
    assert r.status_code == 200
    assert r.json()["attributes"]["exp"] == past
    assert r.json()["attributes"]["nbf"] == past - 60
    assert r.json()["tags"] == {"team": "a"}
    assert get(kv, "/secrets/later", token).status_code == 200


def test_invalid_secret_name_is_refused_by_the_admin_api(tmp_path: Path) -> None:
    fake = FakeKeyVault(tmp_path)
    for bad in ("", "has_underscore", "a/b", "x" * 128):
        with pytest.raises(ValueError, match="secret name"):
            fake.set_secret(bad, "v")


# --- not found, forbidden, disabled ---------------------------------------------------------------
def test_missing_secret_and_missing_version_are_404(kv: FakeKeyVault, token: str) -> None:
    r = get(kv, "/secrets/nope", token)
    assert r.status_code == 404
    assert error(r)["code"] == "SecretNotFound"
    assert error(r)["message"].startswith(
        "A secret with (name/id) nope was not found in this key vault."
    )
    kv.set_secret("db-pass", SECRET_VALUE)
    missing = "0" * 32
    r = get(kv, f"/secrets/db-pass/{missing}", token)
    assert r.status_code == 404
    assert f"(name/id) db-pass/{missing} was not found" in error(r)["message"]
    assert SECRET_VALUE not in r.text


def test_principal_without_access_is_403_before_the_lookup(kv: FakeKeyVault, token: str) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    kv.deny("conf-client")
    kv.allow("alice")
    for path in ("/secrets/db-pass", "/secrets/does-not-exist"):
        r = get(kv, path, token)
        assert r.status_code == 403
        err = error(r)
        assert err["code"] == "Forbidden"
        assert err["innererror"] == {"code": "AccessDenied"}
        assert err["message"].startswith(
            "The user, group or application 'appid=conf-client;oid=conf-client;iss="
        )
        assert (
            "does not have secrets get permission on key vault 'fake-vault;location=local'"
            in (err["message"])
        )
        assert SECRET_VALUE not in r.text
    kv.allow("conf-client")
    assert get(kv, "/secrets/db-pass", token).status_code == 200


def test_disabled_versions_are_403_secret_disabled(kv: FakeKeyVault, token: str) -> None:
    v1 = kv.set_secret("db-pass", "first")
    kv.set_secret("db-pass", SECRET_VALUE, enabled=False)
    r = get(kv, "/secrets/db-pass", token)
    assert r.status_code == 403
    assert r.json() == {
        "error": {
            "code": "Forbidden",
            "message": "Operation get is not allowed on a disabled secret.",
            "innererror": {"code": "SecretDisabled"},
        }
    }
    assert get(kv, f"/secrets/db-pass/{v1}", token).json()["value"] == "first"
    kv.enable("db-pass")
    assert get(kv, "/secrets/db-pass", token).json()["value"] == SECRET_VALUE
    kv.disable("db-pass", v1)
    assert error(get(kv, f"/secrets/db-pass/{v1}", token))["innererror"]["code"] == (
        "SecretDisabled"
    )
    with pytest.raises(KeyError):
        kv.disable("nope")
    with pytest.raises(KeyError):
        kv.disable("db-pass", "f" * 32)


# --- token validation -----------------------------------------------------------------------------
def test_wrong_audience_is_akv10022(
    tmp_path: Path, entra_provider: OidcProvider, token: str
) -> None:
    with fake_keyvault(tmp_path, entra_provider, audience=KEY_VAULT_RESOURCE) as fake:
        fake.set_secret("db-pass", SECRET_VALUE)
        r = get(fake, "/secrets/db-pass", token)
    assert r.status_code == 401
    assert error(r) == {
        "code": "Unauthorized",
        "message": (
            "AKV10022: Invalid audience. Expected https://vault.azure.net, "
            "found: https://api.example.test."
        ),
    }
    assert r.headers["WWW-Authenticate"].endswith('resource="https://vault.azure.net"')


def test_wrong_issuer_is_akv10032(tmp_path: Path, entra_provider: OidcProvider, token: str) -> None:
    with FakeKeyVault(tmp_path) as fake:
        other = f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
        jwks_url = str(entra_provider.discovery()["jwks_uri"])
        fake.configure_auth(other, jwks_url, entra_provider.ca, tenant=ENTRA_TENANT)
        fake.allow("conf-client")
        r = get(fake, "/secrets/db-pass", token)
    assert r.status_code == 401
    assert error(r)["message"] == (
        f"AKV10032: Invalid issuer. Expected one of {other}, found {entra_provider.issuer}."
    )


def test_expired_token_by_the_clock_with_five_minutes_of_skew(kv: FakeKeyVault, token: str) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    exp = claims_of(token)["exp"]
    kv.clock = lambda: exp + 299  # inside the leeway: still accepted
    assert get(kv, "/secrets/db-pass", token).status_code == 200
    kv.clock = lambda: exp + 301
    r = get(kv, "/secrets/db-pass", token)
    assert r.status_code == 401
    assert error(r)["message"] == "Error validating token: IDX10223"
    assert r.headers["WWW-Authenticate"].startswith("Bearer authorization=")


def test_really_expired_token(
    tmp_path: Path, make_oidc_provider: Callable[..., OidcProvider]
) -> None:
    provider = make_oidc_provider(ISSUER_PATH=f"/{ENTRA_TENANT}/v2.0", AT_TTL="1")
    short = client_credentials_token(provider)
    with fake_keyvault(tmp_path, provider, leeway=0) as fake:
        fake.set_secret("db-pass", SECRET_VALUE)
        # The control, at a moment inside the token's 1 s life (the real clock may be past it
        # already on a busy machine): accepted.
        fake.clock = lambda: float(claims_of(short)["iat"])
        assert get(fake, "/secrets/db-pass", short).status_code == 200
        fake.clock = time.time
        while time.time() <= claims_of(short)["exp"]:
            time.sleep(0.05)
        r = get(fake, "/secrets/db-pass", short)
    assert r.status_code == 401
    assert error(r)["message"] == "Error validating token: IDX10223"


def _tampered(token: str) -> str:
    header, _, sig = token.split(".")
    return f"{header}.{b64json(dict(claims_of(token), sub='alice'))}.{sig}"


def _self_signed(token: str, key: rsa.RSAPrivateKey) -> str:
    kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
    return sign(claims_of(token), "RS256", key, kid)


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        ("tampered", "Error validating token: IDX10511"),
        ("self-signed", "Error validating token: IDX10511"),
        ("unknown-kid", "AKV10046: Unable to resolve the key used for signature validation."),
        ("alg-none", "Error validating token: IDX10504"),
        ("not-a-jwt", "Error validating token: IDX12741"),
    ],
)
def test_forged_tokens_are_401(
    kv: FakeKeyVault, token: str, rsa_key: rsa.RSAPrivateKey, forge: str, message: str
) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    kv.allow("alice")
    assert get(kv, "/secrets/db-pass", token).status_code == 200  # the JWKS is fetched now
    forgeries: dict[str, Callable[[], str]] = {
        "tampered": lambda: _tampered(token),
        "self-signed": lambda: _self_signed(token, rsa_key),
        "unknown-kid": lambda: sign(claims_of(token), "RS256", rsa_key, "not-a-provider-kid"),
        "alg-none": lambda: f"{b64json({'alg': 'none'})}.{token.split('.')[1]}.",
        "not-a-jwt": lambda: "opaque-token-value",
    }
    forged = forgeries[forge]()
    fetches = kv.jwks_fetches
    r = get(kv, "/secrets/db-pass", forged)
    assert r.status_code == 401, r.text
    assert error(r) == {"code": "Unauthorized", "message": message}
    assert "WWW-Authenticate" in r.headers
    assert SECRET_VALUE not in r.text
    if forge == "unknown-kid":  # fetched again once, as for a key rotation
        assert kv.jwks_fetches == fetches + 1


def test_jwks_unreachable_is_401_with_the_reason(tmp_path: Path, token: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with FakeKeyVault(tmp_path) as fake:
        fake.configure_auth("https://x", f"https://127.0.0.1:{closed_port}/jwks", fake.ca)
        r = get(fake, "/secrets/db-pass", token)
    assert r.status_code == 401
    assert error(r)["message"].startswith("AKV10046: ")
    assert "JWKS fetch failed" in error(r)["message"]


# --- the verifier on its own: every algorithm the brief names -------------------------------------
def test_verify_jwt_algorithms_and_lifetime(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    now = time.time()
    claims = {"iss": "https://iss", "aud": ["other", "aud"], "sub": "u", "exp": now + 60}
    jwks = {"keys": [rsa_jwk(rsa_key, "r1"), ec_jwk(ec_key, "e1")]}
    check: dict[str, Any] = {"issuer": "https://iss", "audiences": ["aud"], "now": now}
    signers: list[tuple[str, Any, str]] = [
        ("RS256", rsa_key, "r1"),
        ("PS256", rsa_key, "r1"),
        ("ES256", ec_key, "e1"),
    ]
    for alg, key, kid in signers:
        assert verify_jwt(sign(claims, alg, key, kid), jwks, **check)["sub"] == "u"
        # no kid in the header: every key of the right type is tried
        assert verify_jwt(sign(claims, alg, key, None), jwks, **check)["sub"] == "u"

    def rejected(tok: str, **over: Any) -> str:
        with pytest.raises(TokenRejected) as e:
            verify_jwt(tok, jwks, **{**check, **over})
        return str(e.value)

    # an RS256 JWK pinned to alg RS256 does not verify a PS256 signature
    pinned = {"keys": [rsa_jwk(rsa_key, "r1", alg="RS256")]}
    with pytest.raises(TokenRejected, match="IDX10511"):
        verify_jwt(sign(claims, "PS256", rsa_key, "r1"), pinned, **check)
    # an EC signature claimed under the RSA kid: no EC key with that kid
    assert rejected(sign(claims, "ES256", ec_key, "r1")) == (
        "AKV10046: Unable to resolve the key used for signature validation."
    )
    hs = f"{b64json({'alg': 'HS256', 'kid': 'r1'})}.{b64json(claims)}.{b64(b'x' * 32)}"
    assert rejected(hs) == "Error validating token: IDX10511"
    early = sign({**claims, "nbf": now + 400}, "ES256", ec_key, "e1")
    assert rejected(early) == "Error validating token: IDX10222"
    assert verify_jwt(early, jwks, **{**check, "leeway": 500})  # within the skew
    assert rejected(sign(claims, "RS256", rsa_key, "r1"), now=now + 361) == (
        "Error validating token: IDX10223"
    )
    no_exp = {k: v for k, v in claims.items() if k != "exp"}
    assert rejected(sign(no_exp, "RS256", rsa_key, "r1")).endswith("IDX10225")
    assert rejected(sign(claims, "RS256", rsa_key, "r1"), audiences=["x"]).startswith("AKV10022")


def test_verify_jwt_refreshes_the_jwks_once_for_a_rotated_key(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    now = time.time()
    claims = {"iss": "i", "aud": "a", "exp": now + 60}
    calls: list[int] = []

    def refresh() -> dict[str, Any]:
        calls.append(1)
        return {"keys": [rsa_jwk(rsa_key, "new")]}

    tok = sign(claims, "RS256", rsa_key, "new")
    old = {"keys": [ec_jwk(ec_key, "old")]}
    assert verify_jwt(tok, old, issuer="i", audiences=["a"], now=now, refresh_jwks=refresh)
    assert calls == [1]


# --- api-version ----------------------------------------------------------------------------------
def test_api_version_is_required_and_checked_first(kv: FakeKeyVault, token: str) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    for bearer in (None, token):  # before the challenge: a malformed request is just malformed
        r = get(kv, "/secrets/db-pass", bearer, api_version=None)
        assert r.status_code == 400
        assert error(r)["code"] == "BadParameter"
        assert error(r)["message"].startswith(
            "The request URI contains an invalid api-version query parameter"
        )
        assert "WWW-Authenticate" not in r.headers
    r = get(kv, "/secrets/db-pass", token, api_version="1.0")
    assert r.status_code == 400
    assert error(r)["message"] == (
        "The specified version (1.0) is not recognized. "
        "Consider using the latest supported version (7.5)."
    )
    for version in ("7.4", "7.5", "2016-10-01"):
        assert get(kv, "/secrets/db-pass", token, api_version=version).status_code == 200


def test_only_get_secret_is_implemented(kv: FakeKeyVault, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.put(
        f"{kv.url}/secrets/db-pass?api-version=7.5",
        json={"value": "x"},
        headers=auth,
        verify=kv.ca,
        timeout=10,
    )
    assert r.status_code == 501
    assert get(kv, "/secrets", token).status_code == 501
    assert get(kv, "/keys/k1", token).status_code == 501


# --- fault switches -------------------------------------------------------------------------------
def test_status_override_counts_down(kv: FakeKeyVault, token: str) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    kv.status_override = (429, {"Retry-After": "2"}, None, 2)
    for _ in range(2):
        r = get(kv, "/secrets/db-pass", token)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "2"
        assert error(r)["code"] == "Throttled"
    assert kv.status_override is None
    assert get(kv, "/secrets/db-pass", token).status_code == 200

    kv.status_override = (503, {}, None, 1)
    r = get(kv, "/secrets/db-pass", None, api_version=None)  # before any other check
    assert (r.status_code, error(r)["code"]) == (503, "ServiceUnavailable")
    kv.status_override = (500, {"Content-Type": "text/plain"}, "boom", None)
    for _ in range(3):
        r = get(kv, "/secrets/db-pass", token)
        assert (r.status_code, r.text, r.headers["Content-Type"]) == (500, "boom", "text/plain")
    kv.clear_faults()
    assert get(kv, "/secrets/db-pass", token).status_code == 200
    with pytest.raises(ValueError, match="count"):
        kv.status_override = (500, {}, None, 0)


def test_delay_and_hang(kv: FakeKeyVault, token: str) -> None:
    kv.set_secret("db-pass", SECRET_VALUE)
    kv.delay = 0.3
    t0 = time.monotonic()
    assert get(kv, "/secrets/db-pass", token).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    kv.delay = 0

    kv.hang = True
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(kv, "/secrets/db-pass", token, timeout=0.5)
    assert [r.status for r in kv.requests][-1] is None  # seen, still held
    kv.hang = False
    assert get(kv, "/secrets/db-pass", token).status_code == 200


def test_stop_releases_a_hanging_request(kv: FakeKeyVault, token: str) -> None:
    kv.hang = True
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(get(kv, "/secrets/db-pass", token, timeout=10).status_code)
        except requests.RequestException as e:
            outcome.append(type(e))

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 5
    while kv.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    kv.stop()
    client.join(5)
    # Released by stop(), not by the client's own 10 s timeout (the join gives up at 5 s).
    assert time.monotonic() - t0 < 5
    assert not client.is_alive()
    assert len(outcome) == 1
    assert outcome[0] != 200


# --- the request log ------------------------------------------------------------------------------
def test_request_log_never_holds_tokens_or_values(
    kv: FakeKeyVault, token: str, capfd: pytest.CaptureFixture[str]
) -> None:
    version = kv.set_secret("db-pass", SECRET_VALUE)
    get(kv, "/secrets/db-pass", None)
    get(kv, "/secrets/db-pass", token, headers={"x-ms-client-request-id": "abc"})
    get(kv, f"/secrets/db-pass/{version}", token, api_version="7.4")
    get(kv, "/secrets/other", token, api_version=None)

    log = kv.requests
    assert [(r.method, r.path, r.api_version, r.bearer, r.sub, r.status) for r in log] == [
        ("GET", "/secrets/db-pass", "7.5", False, None, 401),
        ("GET", "/secrets/db-pass", "7.5", True, "conf-client", 200),
        ("GET", f"/secrets/db-pass/{version}", "7.4", True, "conf-client", 200),
        ("GET", "/secrets/other", None, True, "conf-client", 400),
    ]
    assert kv.count() == 4
    assert kv.count("db-pass") == 3
    assert kv.count("DB-PASS", status=200) == 2
    assert kv.count(bearer=False) == 1
    assert kv.count(sub="conf-client", method="GET") == 3
    text = repr(log) + repr(kv.__dict__)
    assert token not in text
    assert SECRET_VALUE not in text
    assert token.split(".")[2] not in text
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
    kv.clear_log()
    assert kv.count() == 0


def test_client_request_id_is_echoed(kv: FakeKeyVault) -> None:
    r = get(kv, "/secrets/x", headers={"x-ms-client-request-id": "req-1"})
    assert r.headers["x-ms-client-request-id"] == "req-1"
    assert r.headers["x-ms-request-id"]


# --- life cycle -----------------------------------------------------------------------------------
def test_stop_joins_and_frees_the_port(tmp_path: Path, token: str) -> None:
    fake = FakeKeyVault(tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        _ = fake.url
    fake.start()
    port, thread = fake.port, fake._thread
    assert fake.url == f"https://127.0.0.1:{port}"
    assert get(fake, "/secrets/x").status_code == 401
    fake.stop()
    fake.stop()  # idempotent
    assert thread is not None
    assert not thread.is_alive()
    assert not fake.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.socket() as s:  # the port can be taken again
        s.bind(("127.0.0.1", port))
    # a restart keeps the secrets and gets a new port
    fake.set_secret("kept", SECRET_VALUE)
    with fake:
        assert fake.versions("kept")
        assert get(fake, "/secrets/kept").status_code == 401
    assert not fake.running
