"""The fake Vault itself (tests/support/fake_vault.py): contract tests against a fake, because no
Vault or OpenBao binary can be installed here.

Plain requests against the fake, no gatekey: each test pins down that the fake answers as
Vault's HTTP API documents (envelopes, status codes, error bodies, namespaces, JWT and AppRole
logins), so gatekey's vault source can be tested against it with some confidence. The JWT login
tests verify real tokens from the OpenID provider peer (support/oidc_peer.py).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fake_vault import (
    ACL_DENIED,
    DEFAULT_LEASE_TTL,
    KV2_INVALID_PATH,
    UNSUPPORTED_OPERATION,
    FakeVault,
    fake_vault,
)
from oidc_peer import API_AUDIENCE, CONF_CLIENT, OidcProvider

ENVELOPE = {
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
    "mount_type",
}
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
DENIED = {"errors": ["permission denied"]}
STOP_JOIN_S = 10  # FakeVault.stop() joins its connection threads for up to this long


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[FakeVault]:
    with fake_vault(tmp_path / "vault") as v:
        yield v


def call(
    v: FakeVault,
    method: str,
    path: str,
    *,
    token: str | None = None,
    namespace: str | None = None,
    timeout: float = 5,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """One request to ``/v1/<path>``; ``verify`` is passed per call, so the machine-wide
    REQUESTS_CA_BUNDLE cannot replace the fake's CA (and trust_env is off besides)."""
    sent = dict(headers or {})
    if token is not None:
        sent["X-Vault-Token"] = token
    if namespace is not None:
        sent["X-Vault-Namespace"] = namespace
    verify: str | bool = v.ca if v.address.startswith("https:") else True
    with requests.Session() as s:
        s.trust_env = False
        return s.request(
            method,
            f"{v.address}/v1/{path}",
            headers=sent,
            verify=verify,
            timeout=timeout,
            **kwargs,
        )


def parse_time(text: str) -> datetime:
    """An RFC3339Nano time (Python 3.10's fromisoformat takes neither nanoseconds nor Z)."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    assert m, text
    whole = datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc)
    return whole.replace(microsecond=int((m.group(2) or "0")[:6].ljust(6, "0")))


# --- health and seal --------------------------------------------------------------------------
def test_health_answers_200_unsealed_and_503_sealed(vault: FakeVault) -> None:
    r = call(vault, "GET", "sys/health")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["initialized"] is True
    assert body["sealed"] is False
    assert body["standby"] is False
    assert isinstance(body["version"], str)
    assert isinstance(body["server_time_utc"], int)
    assert uuid.UUID(body["cluster_id"])

    vault.seal()
    r = call(vault, "GET", "sys/health")
    assert r.status_code == 503
    assert r.json()["sealed"] is True
    assert "cluster_id" not in r.json()
    assert call(vault, "GET", "sys/health?sealedcode=200").status_code == 200
    head = call(vault, "HEAD", "sys/health")
    assert (head.status_code, head.content) == (503, b"")

    vault.unseal()
    assert call(vault, "GET", "sys/health").status_code == 200
    assert call(vault, "GET", "sys/health?activecode=204").status_code == 204


def test_sealed_vault_answers_503_to_everything_but_health(vault: FakeVault) -> None:
    root = vault.add_token(policies=["root"])
    vault.put_secret("app", {"k": "v"})
    vault.add_approle("rid", "sid")
    vault.seal()
    for method, path, kwargs in (
        ("GET", "secret/data/app", {"token": root}),
        ("GET", "auth/token/lookup-self", {"token": root}),
        ("POST", "auth/approle/login", {"json": {"role_id": "rid", "secret_id": "sid"}}),
        ("GET", "secret/data/app", {}),
    ):
        r = call(vault, method, path, **kwargs)
        assert (r.status_code, r.json()) == (503, {"errors": ["Vault is sealed"]}), path
    vault.unseal()
    assert call(vault, "GET", "secret/data/app", token=root).status_code == 200


# --- KV v2 and v1 -------------------------------------------------------------------------------
def test_kv2_read_has_vaults_envelope_and_versions(vault: FakeVault) -> None:
    root = vault.add_token(policies=["root"])
    assert vault.put_secret("app", {"api_key": "first"}) == 1
    vault.advance(5)
    assert vault.put_secret("app", {"api_key": "second"}, custom_metadata={"owner": "t"}) == 2

    r = call(vault, "GET", "secret/data/app", token=root)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ENVELOPE
    assert uuid.UUID(body["request_id"])
    assert (body["lease_id"], body["renewable"], body["lease_duration"]) == ("", False, 0)
    assert (body["wrap_info"], body["warnings"], body["auth"]) == (None, None, None)
    assert body["mount_type"] == "kv"
    assert body["data"]["data"] == {"api_key": "second"}
    meta = body["data"]["metadata"]
    assert set(meta) == {"version", "created_time", "deletion_time", "destroyed", "custom_metadata"}
    assert (meta["version"], meta["deletion_time"], meta["destroyed"]) == (2, "", False)
    assert meta["custom_metadata"] == {"owner": "t"}
    assert RFC3339_NANO.match(meta["created_time"]), meta["created_time"]

    first = call(vault, "GET", "secret/data/app?version=1", token=root).json()["data"]
    assert first["data"] == {"api_key": "first"}
    assert first["metadata"]["version"] == 1
    assert parse_time(first["metadata"]["created_time"]) < parse_time(meta["created_time"])

    r = call(vault, "GET", "secret/data/app?version=3", token=root)
    assert (r.status_code, r.json()) == (404, {"errors": []})

    # a soft-deleted version: 404 with the metadata, as Vault answers
    vault.delete_secret("app")
    r = call(vault, "GET", "secret/data/app", token=root)
    assert r.status_code == 404
    deleted = r.json()["data"]
    assert deleted["data"] is None
    assert deleted["metadata"]["version"] == 2
    assert RFC3339_NANO.match(deleted["metadata"]["deletion_time"])
    assert call(vault, "GET", "secret/data/app?version=1", token=root).status_code == 200


def test_kv2_paths_outside_data_are_not_secrets(vault: FakeVault) -> None:
    root = vault.add_token(policies=["root"])
    vault.put_secret("app", {"k": "v"})
    r = call(vault, "GET", "secret/app", token=root)  # a KV v1-style read on a v2 mount
    assert r.status_code == 404
    assert r.json()["warnings"] == [KV2_INVALID_PATH]
    assert r.json()["data"] is None
    r = call(vault, "GET", "secret/metadata/app", token=root)
    assert (r.status_code, r.json()) == (405, {"errors": [UNSUPPORTED_OPERATION]})


def test_kv1_read_is_flat_with_the_mounts_lease(vault: FakeVault) -> None:
    root = vault.add_token(policies=["root"])
    vault.put_secret("db", {"password": "pw"}, mount="kv", kv_version=1)
    vault.enable_kv("short", version=1, default_lease_ttl=60)
    vault.put_secret("db", {"password": "pw"}, mount="short", kv_version=1)
    vault.put_secret("hinted", {"password": "pw", "ttl": "1h"}, mount="kv", kv_version=1)

    body = call(vault, "GET", "kv/db", token=root).json()
    assert set(body) == ENVELOPE
    assert body["data"] == {"password": "pw"}
    assert (body["lease_duration"], body["lease_id"], body["renewable"]) == (
        DEFAULT_LEASE_TTL,
        "",
        False,
    )
    assert DEFAULT_LEASE_TTL == 2764800
    assert call(vault, "GET", "short/db", token=root).json()["lease_duration"] == 60
    assert call(vault, "GET", "kv/hinted", token=root).json()["lease_duration"] == 3600
    r = call(vault, "GET", "kv/nope", token=root)
    assert (r.status_code, r.json()) == (404, {"errors": []})


def test_missing_secrets_and_unmounted_paths(vault: FakeVault) -> None:
    root = vault.add_token(policies=["root"])
    vault.put_secret("app", {"k": "v"})
    r = call(vault, "GET", "secret/data/nope", token=root)
    assert (r.status_code, r.json()) == (404, {"errors": []})
    r = call(vault, "GET", "nomount/data/app", token=root)
    assert r.status_code == 404
    assert r.json() == {
        "errors": ['no handler for route "nomount/data/app". route entry not found.']
    }
    r = call(vault, "POST", "secret/data/app", token=root, json={"data": {}})
    assert (r.status_code, r.json()) == (405, {"errors": [UNSUPPORTED_OPERATION]})


# --- tokens and policies ------------------------------------------------------------------------
def test_policies_allow_paths_by_glob(vault: FakeVault) -> None:
    vault.put_secret("team/app", {"k": "team"})
    vault.put_secret("team/sub/app", {"k": "deep"})
    vault.put_secret("other/app", {"k": "other"})
    vault.add_policy("team-read", ["secret/data/team/*"])
    vault.add_policy("one-level", ["secret/data/+/app"])
    team = vault.add_token(policies=["team-read"])
    one = vault.add_token(policies=["one-level"])

    assert call(vault, "GET", "secret/data/team/app", token=team).status_code == 200
    assert call(vault, "GET", "secret/data/team/sub/app", token=team).status_code == 200
    r = call(vault, "GET", "secret/data/other/app", token=team)
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})
    assert ACL_DENIED == "1 error occurred:\n\t* permission denied\n\n"
    assert call(vault, "GET", "secret/data/other/app", token=one).status_code == 200
    assert call(vault, "GET", "secret/data/team/sub/app", token=one).status_code == 403

    for token in (None, "hvs.not-a-token"):
        r = call(vault, "GET", "secret/data/team/app", token=token)
        assert (r.status_code, r.json()) == (403, DENIED)
    bearer = {"Authorization": f"Bearer {team}"}
    assert call(vault, "GET", "secret/data/team/app", headers=bearer).status_code == 200


def test_lookup_self_describes_the_token(vault: FakeVault) -> None:
    issued = vault.now()
    token = vault.add_token(policies=["team-read"], ttl=600, meta={"purpose": "test"})
    r = call(vault, "GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ENVELOPE
    assert body["lease_duration"] == 0
    data = body["data"]
    assert data["id"] == token
    assert data["accessor"] == vault.accessor(token)
    assert data["policies"] == ["default", "team-read"]
    assert 595 <= data["ttl"] <= 600
    assert data["creation_ttl"] == 600
    assert data["type"] == "service"
    assert data["renewable"] is True
    assert data["meta"] == {"purpose": "test"}
    assert abs(data["creation_time"] - issued) < 2
    assert RFC3339_NANO.match(data["expire_time"])
    assert abs(parse_time(data["expire_time"]).timestamp() - (issued + 600)) < 2

    root = vault.add_token(policies=["root"], ttl=0)
    data = call(vault, "GET", "auth/token/lookup-self", token=root).json()["data"]
    assert (data["policies"], data["ttl"], data["expire_time"]) == (["root"], 0, None)

    # lookup-self comes with the default policy; without it Vault refuses
    bare = vault.add_token(policies=["team-read"], no_default_policy=True)
    r = call(vault, "GET", "auth/token/lookup-self", token=bare)
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})


def test_tokens_expire_after_their_ttl_and_can_be_revoked(vault: FakeVault) -> None:
    vault.put_secret("app", {"k": "v"})
    token = vault.add_token(policies=["root"], ttl=60)
    assert call(vault, "GET", "auth/token/lookup-self", token=token).status_code == 200
    vault.advance(61)
    for path in ("auth/token/lookup-self", "secret/data/app"):
        r = call(vault, "GET", path, token=token)
        assert (r.status_code, r.json()) == (403, DENIED)

    by_value = vault.add_token(policies=["root"])
    by_accessor = vault.add_token(policies=["root"])
    vault.revoke_token(by_value)
    vault.revoke_token(vault.accessor(by_accessor))
    for t in (by_value, by_accessor):
        assert call(vault, "GET", "secret/data/app", token=t).status_code == 403

    itself = vault.add_token(policies=["nothing"])
    r = call(vault, "POST", "auth/token/revoke-self", token=itself)
    assert (r.status_code, r.content) == (204, b"")
    assert call(vault, "GET", "auth/token/lookup-self", token=itself).status_code == 403


# --- namespaces ---------------------------------------------------------------------------------
def test_namespaces_hold_their_own_secrets_policies_and_tokens(vault: FakeVault) -> None:
    vault.put_secret("app", {"who": "root"})
    vault.put_secret("app", {"who": "team"}, namespace="team")
    vault.put_secret("app", {"who": "dev"}, namespace="team/dev")
    vault.add_policy("read", ["secret/data/*"], namespace="team")
    vault.add_policy("read-dev", ["dev/secret/data/*"], namespace="team")
    team = vault.add_token(policies=["read"], namespace="team")
    team_dev = vault.add_token(policies=["read-dev"], namespace="team")
    root = vault.add_token(policies=["root"])

    def who(r: requests.Response) -> str:
        assert r.status_code == 200, r.text
        return str(r.json()["data"]["data"]["who"])

    assert who(call(vault, "GET", "secret/data/app", token=team, namespace="team")) == "team"
    assert who(call(vault, "GET", "secret/data/app", token=team, namespace="/team/")) == "team"
    # the namespace may also lead the path, as Vault allows
    assert who(call(vault, "GET", "team/secret/data/app", token=team)) == "team"
    assert who(call(vault, "GET", "secret/data/app", token=root, namespace="team")) == "team"
    assert who(call(vault, "GET", "secret/data/app", token=root)) == "root"

    # a team token is no token in the root namespace
    r = call(vault, "GET", "secret/data/app", token=team)
    assert (r.status_code, r.json()) == (403, DENIED)
    # in a child namespace its policies see the child's path in front
    r = call(vault, "GET", "secret/data/app", token=team, namespace="team/dev")
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})
    r = call(vault, "GET", "secret/data/app", token=team_dev, namespace="team/dev")
    assert who(r) == "dev"
    # a policy of the same name elsewhere does not count
    root_read = vault.add_token(policies=["read"])
    assert call(vault, "GET", "secret/data/app", token=root_read).status_code == 403

    # a namespace that does not exist is part of the path in its nearest ancestor (see docstring)
    r = call(vault, "GET", "secret/data/app", token=team, namespace="nope")
    assert (r.status_code, r.json()) == (403, DENIED)
    r = call(vault, "GET", "secret/data/app", token=root, namespace="nope")
    assert r.status_code == 404
    assert r.json()["errors"] == [
        'no handler for route "nope/secret/data/app". route entry not found.'
    ]
    r = call(vault, "GET", "secret/data/app", token=team, namespace="team/nope")
    assert (r.status_code, r.json()) == (403, {"errors": [ACL_DENIED]})


# --- JWT login with the real OpenID provider -----------------------------------------------------
def access_token(op: OidcProvider) -> str:
    with op.session() as s:
        r = s.post(
            op.token_endpoint,
            data={
                "grant_type": "client_credentials",
                "client_id": CONF_CLIENT[0],
                "client_secret": CONF_CLIENT[1],
                "scope": "api.read",
            },
            timeout=10,
        )
    r.raise_for_status()
    return str(r.json()["access_token"])


def claims_of(jwt: str) -> dict[str, Any]:
    body = jwt.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_provider_keys(
    vault: FakeVault, op: OidcProvider, mount: str = "jwt", **config: Any
) -> None:
    vault.enable_jwt(
        mount,
        jwks_url=op.discovery()["jwks_uri"],
        jwks_ca_pem=Path(op.ca).read_text(),
        bound_issuer=config.pop("bound_issuer", op.issuer),
    )
    vault.add_jwt_role(
        "gatekey",
        bound_audiences=[API_AUDIENCE],
        token_ttl=600,
        token_policies=["team-read"],
        mount=mount,
    )


def login(vault: FakeVault, body: dict[str, Any], mount: str = "jwt") -> requests.Response:
    return call(vault, "POST", f"auth/{mount}/login", json=body)


@pytest.mark.oidc
def test_jwt_login_with_a_token_from_the_real_provider(
    vault: FakeVault, oidc_provider: OidcProvider
) -> None:
    vault.put_secret("team/app", {"k": "v"})
    vault.add_policy("team-read", ["secret/data/team/*"])
    with_provider_keys(vault, oidc_provider)
    jwt = access_token(oidc_provider)

    r = login(vault, {"role": "gatekey", "jwt": jwt})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ENVELOPE
    assert (body["data"], body["lease_duration"], body["mount_type"]) == (None, 0, "jwt")
    auth = body["auth"]
    assert re.fullmatch(r"hvs\.[A-Za-z0-9]{24}", auth["client_token"])
    assert auth["policies"] == auth["token_policies"] == ["default", "team-read"]
    assert (auth["lease_duration"], auth["renewable"]) == (600, True)
    assert auth["metadata"] == {"role": "gatekey"}
    assert auth["accessor"]
    assert auth["token_type"] == "service"

    client_token = auth["client_token"]
    assert call(vault, "GET", "secret/data/team/app", token=client_token).status_code == 200
    data = call(vault, "GET", "auth/token/lookup-self", token=client_token).json()["data"]
    assert data["path"] == "auth/jwt/login"
    assert data["display_name"] == "jwt-conf-client"  # mount + the user_claim ("sub")
    assert 595 <= data["ttl"] <= 600

    # the keys came over HTTPS from the provider's JWKS endpoint
    jwks_path = oidc_provider.issuer_path + "/jwks"
    assert ("GET", jwks_path) in oidc_provider.requests_log()
    # role names are case-insensitive in Vault's JWT method
    assert login(vault, {"role": "GateKey", "jwt": jwt}).status_code == 200
    logins = [e for e in vault.requests if e.api_path == "auth/jwt/login"]
    assert [(e.role, e.status) for e in logins] == [("gatekey", 200), ("gatekey", 200)]
    assert logins[0].accessor == auth["accessor"]


@pytest.mark.oidc
def test_jwt_login_refusals_match_vaults(vault: FakeVault, oidc_provider: OidcProvider) -> None:
    with_provider_keys(vault, oidc_provider)
    with_provider_keys(vault, oidc_provider, mount="jwt-iss", bound_issuer="https://other.test")
    vault.add_jwt_role("other-api", bound_audiences=["https://other.example.test"])
    vault.add_jwt_role("no-aud", bound_audiences=[], bound_subject="conf-client")
    jwt = access_token(oidc_provider)
    header, payload, signature = jwt.split(".")

    def refused(body: dict[str, Any], mount: str = "jwt") -> str:
        r = login(vault, body, mount)
        assert r.status_code == 400, r.text
        errors = r.json()["errors"]
        assert len(errors) == 1
        return str(errors[0])

    assert refused({"role": "nope", "jwt": jwt}) == 'role "nope" could not be found'
    assert refused({"jwt": jwt}) == "missing role"
    assert refused({"role": "gatekey"}) == "missing token"
    assert refused({"role": "other-api", "jwt": jwt}) == (
        "error validating token: invalid audience (aud) claim: "
        "audience claim does not match any expected audience"
    )
    assert refused({"role": "no-aud", "jwt": jwt}) == (
        "audience claim found in JWT but no audiences bound to the role"
    )
    assert refused({"role": "gatekey", "jwt": jwt}, mount="jwt-iss") == (
        "error validating token: invalid issuer (iss) claim"
    )
    bad_signature = "error validating token: error verifying token signature: "
    bad_signature += "failed to verify id token signature"
    # forged: claims changed under the provider's signature
    tampered = b64(json.dumps(dict(claims_of(jwt), sub="mallory")).encode())
    assert refused({"role": "gatekey", "jwt": f"{header}.{tampered}.{signature}"}) == bad_signature
    # forged: signed by another key under the provider's kid
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed = f"{header}.{payload}".encode()
    forged = b64(forger.sign(signed, padding.PKCS1v15(), hashes.SHA256()))
    assert refused({"role": "gatekey", "jwt": f"{header}.{payload}.{forged}"}) == bad_signature
    assert refused({"role": "gatekey", "jwt": "not-a-jwt"}).startswith(
        "error validating token: error verifying token signature: oidc: malformed jwt"
    )

    # expiry, with Vault's 60 s clock-skew leeway on exp
    exp = claims_of(jwt)["exp"]
    vault.advance(exp + 45 - vault.now())
    assert login(vault, {"role": "gatekey", "jwt": jwt}).status_code == 200
    vault.advance(30)
    assert refused({"role": "gatekey", "jwt": jwt}) == (
        "error validating token: invalid expiration time (exp) claim: token is expired"
    )
    # refusals issue no token; an unknown auth mount is no login path at all
    assert all(e.accessor is None for e in vault.requests if e.status == 400)
    r = login(vault, {"role": "gatekey", "jwt": jwt}, mount="nope")
    assert (r.status_code, r.json()) == (403, DENIED)


# --- JWT signatures of every kind, from a JWKS the test serves ----------------------------------
def jwk_of(key: Any, kid: str) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        to = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))  # noqa: E731
        return {"kty": "RSA", "kid": kid, "n": to(n.n), "e": to(n.e), "use": "sig"}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        size = (pub.curve.key_size + 7) // 8
        n = pub.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[pub.curve.name]
        x, y = n.x.to_bytes(size, "big"), n.y.to_bytes(size, "big")
        return {"kty": "EC", "kid": kid, "crv": crv, "x": b64(x), "y": b64(y)}
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(raw)}


def sign_jwt(key: Any, alg: str, claims: dict[str, Any], kid: str | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    data = signed.encode()
    digest = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}.get(alg[2:])
    if alg.startswith("RS") and digest:
        sig = key.sign(data, padding.PKCS1v15(), digest())
    elif alg.startswith("PS") and digest:
        pss = padding.PSS(mgf=padding.MGF1(digest()), salt_length=padding.PSS.DIGEST_LENGTH)
        sig = key.sign(data, pss, digest())
    elif alg.startswith("ES") and digest:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest())))
        size = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        sig = key.sign(data)
    return f"{signed}.{b64(sig)}"


@contextmanager
def jwks_server(doc: dict[str, Any]) -> Iterator[str]:
    """A plain-HTTP JWKS endpoint on loopback serving ``doc`` as it is at each request."""

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            raw = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_jwt_signatures_rs_ps_es_eddsa_and_key_rotation(vault: FakeVault) -> None:
    keys = {
        "rs": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec256": ec.generate_private_key(ec.SECP256R1()),
        "ec384": ec.generate_private_key(ec.SECP384R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }
    doc = {"keys": [jwk_of(k, kid) for kid, k in keys.items()]}
    now = int(vault.now())
    claims = {"iss": "https://issuer.test", "aud": "vault", "sub": "svc", "iat": now}
    claims |= {"exp": now + 300}
    with jwks_server(doc) as url:
        vault.enable_jwt(jwks_url=url, bound_issuer="https://issuer.test")
        vault.add_jwt_role("r", bound_audiences=["vault"], bound_claims={"sub": ["svc"]})
        vault.add_jwt_role("by-email", bound_audiences=["vault"], user_claim="email")
        vault.enable_jwt("rs-only", jwks_url=url, jwt_supported_algs=["RS256"])
        vault.add_jwt_role("r", bound_audiences=["vault"], mount="rs-only")

        for kid, alg in (("rs", "RS256"), ("rs", "PS256"), ("ec256", "ES256"), ("ec384", "ES384")):
            r = login(vault, {"role": "r", "jwt": sign_jwt(keys[kid], alg, claims, kid)})
            assert r.status_code == 200, (alg, r.text)
        eddsa = sign_jwt(keys["ed"], "EdDSA", claims, "ed")
        assert login(vault, {"role": "r", "jwt": eddsa}).status_code == 200

        def error(role: str, jwt: str, mount: str = "jwt") -> str:
            r = login(vault, {"role": role, "jwt": jwt}, mount)
            assert r.status_code == 400, r.text
            return str(r.json()["errors"][0])

        # a key published after the JWKS was cached: fetched again, as go-oidc does
        keys["new"] = ec.generate_private_key(ec.SECP256R1())
        doc["keys"].append(jwk_of(keys["new"], "new"))
        rotated = sign_jwt(keys["new"], "ES256", claims, "new")
        assert login(vault, {"role": "r", "jwt": rotated}).status_code == 200
        # ES256 signature with the P-384 key, alg none, wrong algorithm for the mount
        assert error("r", sign_jwt(keys["ec384"], "ES384", claims, "ec256")).endswith(
            "failed to verify id token signature"
        )
        none_header = b64(json.dumps({"alg": "none"}).encode())
        unsigned = f"{none_header}.{b64(json.dumps(claims).encode())}."
        assert error("r", unsigned).endswith("failed to verify id token signature")
        assert error("r", sign_jwt(keys["ec256"], "ES256", claims, "ec256"), "rs-only") == (
            "error validating token: invalid algorithm (alg) header parameter: "
            "token signed with unexpected algorithm"
        )
        # time claims
        later = dict(claims, nbf=now + 120, iat=now)
        assert error("r", sign_jwt(keys["rs"], "RS256", later, "rs")) == (
            "error validating token: invalid not before (nbf) claim: token not yet valid"
        )
        timeless = {k: v for k, v in claims.items() if k not in ("iat", "exp")}
        assert error("r", sign_jwt(keys["rs"], "RS256", timeless, "rs")) == (
            "error validating token: no issued at (iat), not before (nbf), or expiration time "
            "(exp) claims in token"
        )
        # claims the role needs
        assert error("by-email", sign_jwt(keys["rs"], "RS256", claims, "rs")) == (
            'claim "email" not found in token'
        )
        stranger = sign_jwt(keys["rs"], "RS256", dict(claims, sub="other"), "rs")
        assert error("r", stranger) == (
            'error validating claims: claim "sub" does not match any associated bound claim values'
        )


def test_jwt_with_static_validation_keys(vault: FakeVault) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    vault.enable_jwt(jwt_validation_pubkeys=[pem.decode()])
    vault.add_jwt_role("r", bound_audiences=["vault"])
    now = int(vault.now())
    claims = {"aud": ["vault", "other"], "sub": "svc", "iat": now, "exp": now + 60}
    assert login(vault, {"role": "r", "jwt": sign_jwt(key, "ES256", claims)}).status_code == 200
    # a list claim matches a bound claim when any of its values does
    vault.add_jwt_role("admins", bound_audiences=["vault"], bound_claims={"groups": "admins"})
    grouped = sign_jwt(key, "ES256", dict(claims, groups=["devs", "admins"]))
    assert login(vault, {"role": "admins", "jwt": grouped}).status_code == 200
    ungrouped = sign_jwt(key, "ES256", claims)
    assert login(vault, {"role": "admins", "jwt": ungrouped}).status_code == 400
    stranger = ec.generate_private_key(ec.SECP256R1())
    r = login(vault, {"role": "r", "jwt": sign_jwt(stranger, "ES256", claims)})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        "error validating token: error verifying token signature: "
        "no known key successfully validated the token signature"
    ]
    with pytest.raises(ValueError, match="bound constraint"):
        vault.add_jwt_role("unbound", bound_audiences=[])
    with pytest.raises(ValueError, match="PEM text"):
        vault.enable_jwt("j2", jwks_url="https://x.test/jwks", jwks_ca_pem="/path/to/ca.pem")


# --- AppRole --------------------------------------------------------------------------------------
def test_approle_login(vault: FakeVault) -> None:
    vault.put_secret("team/app", {"k": "v"})
    vault.add_policy("team-read", ["secret/data/team/*"])
    vault.add_approle("role-id-1", "secret-id-1", ["team-read"], 300, role_name="ci")

    r = login(vault, {"role_id": "role-id-1", "secret_id": "secret-id-1"}, "approle")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == ENVELOPE
    assert body["mount_type"] == "approle"
    auth = body["auth"]
    assert auth["policies"] == auth["token_policies"] == ["default", "team-read"]
    assert (auth["lease_duration"], auth["renewable"]) == (300, True)
    assert auth["metadata"] == {"role_name": "ci"}
    assert call(vault, "GET", "secret/data/team/app", token=auth["client_token"]).status_code == 200

    for sent, message in (
        ({"role_id": "role-id-1", "secret_id": "wrong"}, "invalid role or secret ID"),
        ({"role_id": "unknown", "secret_id": "secret-id-1"}, "invalid role or secret ID"),
        ({"role_id": "role-id-1"}, "missing secret_id"),
        ({"secret_id": "secret-id-1"}, "missing role_id"),
    ):
        r = login(vault, sent, "approle")
        assert (r.status_code, r.json()) == (400, {"errors": [message]}), sent
    r = call(vault, "POST", "auth/approle/login", data=b"{not json")
    assert (r.status_code, r.json()) == (400, {"errors": ["error parsing JSON"]})
    r = call(vault, "GET", "auth/approle/login")
    assert r.status_code == 405


# --- faults ---------------------------------------------------------------------------------------
def test_status_override_for_the_next_requests(vault: FakeVault) -> None:
    vault.status_override(429, headers={"Retry-After": "2"}, times=2)
    for _ in range(2):
        r = call(vault, "GET", "sys/health")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "2"
        assert r.json() == {"errors": ['request path "sys/health": rate limit quota exceeded']}
    assert call(vault, "GET", "sys/health").status_code == 200

    vault.status_override(500)
    r = call(vault, "GET", "sys/health")
    assert (r.status_code, r.json()) == (500, {"errors": ["internal error"]})

    vault.status_override(502, "<html>Bad Gateway</html>", path_prefix="secret/")
    assert call(vault, "GET", "sys/health").status_code == 200
    r = call(vault, "GET", "secret/data/app")
    assert (r.status_code, r.text) == (502, "<html>Bad Gateway</html>")
    assert r.headers["Content-Type"].startswith("text/html")
    assert call(vault, "GET", "sys/health").status_code == 200


def test_delay_slows_every_answer(vault: FakeVault) -> None:
    vault.delay = 0.5
    t0 = time.monotonic()
    assert call(vault, "GET", "sys/health").status_code == 200
    delayed = time.monotonic() - t0
    assert delayed >= 0.5
    vault.delay = 0
    t0 = time.monotonic()
    call(vault, "GET", "sys/health")
    # Faster than the delayed call on the same machine a moment ago (not "under 0.5 s", which
    # would be a claim about this machine's speed).
    assert time.monotonic() - t0 < delayed


def test_hang_accepts_and_never_answers_until_stop(tmp_path: Path) -> None:
    vault = FakeVault(tmp_path).start()
    try:
        vault.hang = True
        with pytest.raises(requests.ReadTimeout):
            call(vault, "GET", "sys/health", timeout=0.3)
        assert vault.requests[-1].status is None  # received, never answered

        outcome: list[BaseException | int] = []

        def waiting_client() -> None:
            try:
                outcome.append(call(vault, "GET", "sys/health", timeout=10).status_code)
            except requests.RequestException as e:
                outcome.append(e)

        client = threading.Thread(target=waiting_client)
        client.start()
        deadline = time.monotonic() + 5
        while len(vault.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        vault.stop()
        # Not cut, the request would hold stop() for its join limit (10 s), then the client
        # would wait for its own 10 s timeout.
        assert time.monotonic() - t0 < STOP_JOIN_S / 2, "stop() must cut hung requests"
        client.join(5)
        assert len(outcome) == 1
        assert isinstance(outcome[0], requests.ConnectionError), outcome
    finally:
        vault.stop()


# --- life cycle -----------------------------------------------------------------------------------
def test_stop_closes_the_socket_and_joins_its_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    vault = FakeVault(tmp_path).start()
    port = vault.port
    assert vault.address == f"https://127.0.0.1:{port}"
    with requests.Session() as kept_alive:
        kept_alive.trust_env = False
        r = kept_alive.get(f"{vault.address}/v1/sys/health", verify=vault.ca, timeout=5)
        assert r.status_code == 200  # its connection stays open in the pool
        t0 = time.monotonic()
        vault.stop()
        assert time.monotonic() - t0 < STOP_JOIN_S / 2  # it did not wait for the idle connection
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    # the port can be listened on again (SO_REUSEADDR, as servers do, for TIME_WAIT)
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
    vault.stop()  # idempotent
    with pytest.raises(RuntimeError):
        vault.start()


def test_plain_http_mode_on_loopback() -> None:
    with fake_vault(tls=False) as vault:
        assert vault.address.startswith("http://127.0.0.1:")
        assert call(vault, "GET", "sys/health").status_code == 200
        with pytest.raises(RuntimeError):
            _ = vault.ca


def test_the_certificate_is_trusted_only_through_the_fakes_ca(vault: FakeVault) -> None:
    with requests.Session() as s:
        s.trust_env = False  # so requests uses certifi's bundle, not the fake's CA
        with pytest.raises(requests.exceptions.SSLError):
            s.get(f"{vault.address}/v1/sys/health", timeout=5)
    assert call(vault, "GET", "sys/health").status_code == 200


# --- the request log ------------------------------------------------------------------------------
def test_request_log_names_ids_never_secrets(
    vault: FakeVault, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    vault.put_secret("team/app", {"password": "s3cr3t-value"}, namespace="team")
    vault.add_policy("read", ["secret/data/team/*"], namespace="team")
    vault.add_approle("the-role-id", "the-secret-id", ["read"], role_name="ci", namespace="team")
    # the AppRole mount is in "team": in the root namespace this is no login path at all
    r = login(vault, {"role_id": "the-role-id", "secret_id": "the-secret-id"}, "approle")
    assert (r.status_code, r.json()) == (403, DENIED)
    r = call(
        vault,
        "POST",
        "auth/approle/login",
        namespace="team",
        json={"role_id": "the-role-id", "secret_id": "the-secret-id"},
    )
    token = r.json()["auth"]["client_token"]
    assert call(vault, "GET", "secret/data/team/app", token=token, namespace="team").ok
    assert (
        call(vault, "GET", "secret/data/team/app", token="hvs.bogus", namespace="team").status_code
        == 403
    )

    seen = [(e.method, e.api_path, e.namespace, e.role, e.status) for e in vault.requests]
    assert seen == [
        ("POST", "auth/approle/login", None, None, 403),
        ("POST", "auth/approle/login", "team", "ci", 200),
        ("GET", "secret/data/team/app", "team", None, 200),
        ("GET", "secret/data/team/app", "team", None, 403),
    ]
    accessors = [e.accessor for e in vault.requests]
    assert accessors == [None, vault.accessor(token), vault.accessor(token), None]
    assert [e.token_sent for e in vault.requests] == [False, False, True, True]
    assert vault.count("secret/data/") == 2
    assert vault.count("/v1/auth/", method="POST") == 2
    assert vault.count("", namespace="team") == 3

    out, err = capsys.readouterr()
    shown = repr(vault.requests) + caplog.text + out + err
    for secret in (token, "the-secret-id", "the-role-id", "s3cr3t-value", "hvs.bogus"):
        assert secret not in shown
