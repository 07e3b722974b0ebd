"""The JWT gateway test peer (tests/support/gateways/jwt_gateway.py) refuses what a strict
gateway must, so a gateway test that passes through it proves something.

Its issuer here is the peer tests' small HTTPS issuer (gateways/jwt_issuer.py: discovery and a
JWKS whose keys the tests change) and the tokens are signed here with PyJWT, so each claim can
be made exactly wrong: one second expired, a foreign audience, a key the issuer never
published, ``alg: none``... The gateway runs as a process of its own, in front of the
Anthropic upstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateways import app_client
from gateways.jwt_gateway import JwtGateway, missing
from gateways.jwt_issuer import AUDIENCE, Issuer, new_key
from gateways.serving import LocalServer, QuietHandler
from gateways.upstream import MODEL, AnthropicUpstream
from oidc_peer import make_tls

UPSTREAM_KEY = "upstream-key-jwt-peer-51c2"
REALM = 'Bearer realm="llm-gateway"'
STALL_S = 10.0  # spent only when the gateway buffers (the test then fails)


class _Stalling(QuietHandler):
    server: Any  # its owner: StallingUpstream

    def do_POST(self) -> None:
        owner = self.server.owner
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(b'event: message_start\ndata: {"type": "message_start"}\n\n')
        self.wfile.flush()
        owner.timed_out = not owner.gate.wait(STALL_S)
        self.wfile.write(b'event: message_stop\ndata: {"type": "message_stop"}\n\n')


class StallingUpstream(LocalServer):
    """Streams ``message_start``, then holds the rest of the answer until ``gate`` is set (or
    STALL_S passes: ``timed_out``). A gateway that buffers the answer delivers nothing before."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.timed_out = False
        super().__init__(_Stalling)

    def stop(self) -> None:
        self.gate.set()
        super().stop()


KEY_A = new_key()
KEY_UNPUBLISHED = new_key()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    with Issuer(make_tls(tmp_path_factory.mktemp("jwt-peer-tls")), key=KEY_A, kid="a") as peer:
        yield peer


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[UPSTREAM_KEY]) as peer:
        yield peer


@pytest.fixture(scope="module")
def stalling() -> Iterator[StallingUpstream]:
    with StallingUpstream() as peer:
        yield peer


@pytest.fixture(scope="module")
def gateway(
    issuer: Issuer,
    upstream: AnthropicUpstream,
    stalling: StallingUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JwtGateway]:
    assert missing() is None, f"{missing()} missing: run scripts/test.sh (gatekey's test extras)"
    tls = make_tls(tmp_path_factory.mktemp("jwt-gateway-tls"))
    route = {"issuer": issuer.issuer, "audience": AUDIENCE, "jwks_cooldown": 0}
    config = {
        "ca": issuer.ca,
        "tls": tls,
        "upstream": upstream.url,
        "routes": [
            dict(route, prefix="", schemes=["bearer", "x-api-key"]),
            dict(route, prefix="/scoped", scope="api.write"),
            dict(route, prefix="/bearer-only", schemes=["bearer"]),
            dict(route, prefix="/stalling", upstream=stalling.url),
        ],
    }
    workdir = tmp_path_factory.mktemp("jwt-gateway")
    with JwtGateway(config, workdir, upstream_key=UPSTREAM_KEY) as gw:
        yield gw


def token(
    issuer: Issuer,
    *,
    key: rsa.RSAPrivateKey = KEY_A,
    kid: str = "a",
    alg: str = "RS256",
    drop: tuple[str, ...] = (),
    **claims: object,
) -> str:
    now = int(time.time())
    body: dict[str, object] = {
        "iss": issuer.issuer,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
        "scope": "api.read",
        **claims,
    }
    for name in drop:
        body.pop(name)
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def call(gw: JwtGateway, headers: dict[str, str], prefix: str = "") -> app_client.Answer:
    return app_client.models(gw.url(prefix), headers, ca=gw.ca)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def challenge(answer: app_client.Answer) -> str:
    return answer.headers.get("www-authenticate", "")


# --- what it lets through ---------------------------------------------------------------------
def test_a_valid_token_reaches_the_upstream_with_the_gateways_own_key(
    gateway: JwtGateway, issuer: Issuer, upstream: AnthropicUpstream
) -> None:
    tok = token(issuer)
    headers = {**bearer(tok), "X-Team": "blue"}
    listed = call(gateway, headers)
    assert listed.status == 200, gateway.log()
    assert [m["id"] for m in listed.json()["data"]] == [MODEL]  # type: ignore[index]
    answer = app_client.stream_message(gateway.url(), headers, model=MODEL, ca=gateway.ca)
    assert answer.status == 200, gateway.log()
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.event_names == app_client.COMPLETE_STREAM
    assert answer.text == "pong"
    assert upstream.saw("x-api-key", UPSTREAM_KEY)
    assert upstream.saw("x-gateway-subject", "alice")
    assert upstream.saw("x-team", "blue")
    sent = [v for _, _, h in upstream.seen for v in h.values()]
    assert not any(tok in v for v in sent), "the caller's token went on to the upstream"


def test_a_streamed_answer_is_relayed_as_it_arrives(
    gateway: JwtGateway, issuer: Issuer, stalling: StallingUpstream
) -> None:
    context = ssl.create_default_context(cafile=gateway.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=context, timeout=30)
    try:
        body = json.dumps({"model": MODEL, "stream": True, "messages": []})
        conn.request("POST", "/stalling/v1/messages", body, bearer(token(issuer)))
        response = conn.getresponse()
        assert response.status == 200, gateway.log()
        first = response.read1(65536)
        stalling.gate.set()
        rest = response.read()
    finally:
        conn.close()
    assert not stalling.timed_out, "the gateway held the stream until the upstream finished"
    assert b"message_start" in first
    assert b"message_stop" in rest


def test_the_token_in_x_api_key_is_taken_where_the_route_allows_it(
    gateway: JwtGateway, issuer: Issuer
) -> None:
    tok = token(issuer)
    assert call(gateway, {"x-api-key": tok}).status == 200, gateway.log()
    refused = call(gateway, {"x-api-key": tok}, "/bearer-only")
    assert refused.status == 401
    assert challenge(refused) == REALM  # no credential it takes: no error code (RFC 6750 3.1)


def test_a_required_scope_is_enforced(gateway: JwtGateway, issuer: Issuer) -> None:
    lacking = call(gateway, bearer(token(issuer)), "/scoped")
    assert lacking.status == 403
    assert challenge(lacking) == (
        f'{REALM}, error="insufficient_scope", '
        'error_description="the token lacks scope api.write", scope="api.write"'
    )
    assert call(gateway, bearer(token(issuer, scope="api.read api.write")), "/scoped").status == 200
    entra_style = token(issuer, drop=("scope",), scp=["api.write"])
    assert call(gateway, bearer(entra_style), "/scoped").status == 200


def test_a_rotated_key_is_fetched_by_its_kid(gateway: JwtGateway, issuer: Issuer) -> None:
    key_b = new_key()
    rotated = token(issuer, key=key_b, kid="b")
    assert call(gateway, bearer(rotated)).status == 401  # not published yet
    issuer.published["b"] = key_b
    before = issuer.jwks_fetches
    assert call(gateway, bearer(rotated)).status == 200, gateway.log()
    assert issuer.jwks_fetches == before + 1
    assert call(gateway, bearer(token(issuer))).status == 200  # the old key still works
    assert issuer.jwks_fetches == before + 1  # known kids need no fetch


# --- what it refuses -----------------------------------------------------------------------------
def test_no_credential_gets_a_bare_challenge(
    gateway: JwtGateway, upstream: AnthropicUpstream
) -> None:
    before = len(upstream.seen)
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, bearer("")):
        answer = call(gateway, headers)
        assert answer.status == 401
        assert challenge(answer) == REALM
        assert answer.json()["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert len(upstream.seen) == before


def test_two_credentials_at_once_are_a_bad_request(gateway: JwtGateway, issuer: Issuer) -> None:
    tok = token(issuer)
    answer = call(gateway, {**bearer(tok), "x-api-key": tok})
    assert answer.status == 400
    assert 'error="invalid_request"' in challenge(answer)


NOW = int(time.time())
BAD = {
    # exp one second ago: a gateway with any leeway (Envoy's default is 60 s) would take it
    "expired by a second": ({"exp": NOW - 1}, "the token has expired"),
    "not yet valid": ({"nbf": NOW + 120}, "the token is not yet valid"),
    "issued in the future": ({"iat": NOW + 120}, "the token is not yet valid"),
    "another audience": ({"aud": "https://other.example.test"}, "audience is not this API"),
    "another issuer": ({"iss": "https://evil.example.test/iss"}, "issuer is not trusted"),
    "no exp": ({"drop": ("exp",)}, "the token has no exp claim"),
    "no aud": ({"drop": ("aud",)}, "the token has no aud claim"),
    "an unpublished key": ({"key": KEY_UNPUBLISHED}, "the token's signature is invalid"),
    "an unknown kid": ({"kid": "zz"}, "the token's signing key is unknown"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_an_invalid_token_is_refused_naming_why(
    gateway: JwtGateway, issuer: Issuer, upstream: AnthropicUpstream, case: str
) -> None:
    changes, description = BAD[case]
    changes = dict(changes)
    if "exp" in changes or "nbf" in changes or "iat" in changes:  # relative to now, not import
        shift = int(time.time()) - NOW
        changes = {k: v + shift if k in ("exp", "nbf", "iat") else v for k, v in changes.items()}
    before = len(upstream.seen)
    answer = call(gateway, bearer(token(issuer, **changes)))  # type: ignore[arg-type]
    assert answer.status == 401, gateway.log()
    assert challenge(answer).startswith(f'{REALM}, error="invalid_token", error_description="')
    assert description in challenge(answer)
    assert len(upstream.seen) == before


def test_unsigned_and_symmetric_tokens_are_refused(gateway: JwtGateway, issuer: Issuer) -> None:
    claims = jwt.decode(token(issuer), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "a"})
    public_pem = KEY_A.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The classic confusion: HS256 keyed with the RSA public key the JWKS publishes (built by
    # hand: PyJWT itself refuses to sign with a PEM key as an HMAC secret).
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "a"}).encode())
    signing_input = f"{head}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hmac_signed = f"{signing_input}.{b64url(mac)}"
    for forged in (unsigned, unsigned.rstrip("."), hmac_signed, "not-a-jwt"):
        answer = call(gateway, bearer(forged))
        assert answer.status == 401
        assert 'error="invalid_token"' in challenge(answer)


def test_the_log_names_requests_and_refusals_but_no_credential(
    gateway: JwtGateway, issuer: Issuer
) -> None:
    tok = token(issuer, exp=int(time.time()) - 5)
    call(gateway, bearer(tok))
    log = gateway.log()
    assert "GET /v1/models 401 the token has expired" in log
    assert tok.rsplit(".", 1)[1] not in log
    assert UPSTREAM_KEY not in log
