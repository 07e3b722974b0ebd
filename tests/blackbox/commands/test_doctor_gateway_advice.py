"""`gatekey doctor`'s gateway advice where it used to mislead (issue 15): a URL whose scheme the
port does not speak, LiteLLM's answers without a database or a licence, and the clock check for
a token no server stands behind. The installed executable against the gateway stand-in
(support/gateway_stub.py), with a `command` profile (support/doctor_gateway.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blackbox_env import Env
from doctor_gateway import checks, command_setup, lines
from gateway_stub import GatewayStub

pytestmark = pytest.mark.blackbox

# LiteLLM 1.x without a database, asked with a key that is not its master key (issue 15).
LITELLM_NO_DB = {
    "error": {
        "message": "No connected db.",
        "type": "no_db_connection",
        "param": None,
        "code": "400",
    }
}
# LiteLLM 1.x with enable_jwt_auth and no licence (issue 15).
LITELLM_ENTERPRISE = {
    "error": {
        "message": "JWT Auth is an enterprise only feature.",
        "type": "auth_error",
        "param": "None",
        "code": "403",
    }
}


@pytest.fixture
def tls_gateway(oidc_tls: dict[str, str]) -> Iterator[GatewayStub]:
    with GatewayStub(oidc_tls) as stub:
        yield stub


@pytest.fixture
def http_gateway() -> Iterator[GatewayStub]:
    with GatewayStub(None) as stub:
        yield stub


# --- a port that speaks the other protocol ----------------------------------------------------
def test_https_to_a_plain_http_port_says_it_is_not_tls_not_to_add_a_ca(
    gk: Env, oidc_tls: dict[str, str], http_gateway: GatewayStub
):
    command_setup(gk, oidc_tls["ca"])
    host = f"127.0.0.1:{http_gateway.port}"
    r = gk.run("doctor", "--gateway-url", f"https://{host}")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["gateway"]
    assert verdict == "FAIL"
    assert f"the server at {host} answered in plain HTTP, not TLS" in text, text
    assert "TLS port" in text, text
    assert "not trusted" not in text, text
    assert "add the CA" not in text, text
    # Only a bare HEAD / asked what it speaks: the credential never went there.
    assert http_gateway.requests == []


def test_http_to_a_tls_port_says_it_speaks_tls(
    gk: Env, oidc_tls: dict[str, str], tls_gateway: GatewayStub
):
    command_setup(gk, oidc_tls["ca"])
    host = f"127.0.0.1:{tls_gateway.port}"
    r = gk.run("doctor", "--gateway-url", f"http://{host}")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["gateway"]
    assert verdict == "FAIL"
    assert f"the server at {host} speaks TLS, not plain HTTP" in text, text
    assert f"use https://{host}" in text, text
    assert "DNS" not in text, text


def test_a_plain_http_proxy_named_as_https_is_not_blamed_on_the_gateway(
    gk: Env, oidc_tls: dict[str, str], tls_gateway: GatewayStub, http_gateway: GatewayStub
):
    """HTTPS_PROXY=https://... naming a plain-HTTP proxy breaks the handshake with the proxy,
    while the gateway itself speaks TLS: doctor names the proxy."""
    command_setup(gk, oidc_tls["ca"])
    proxy = f"127.0.0.1:{http_gateway.port}"
    r = gk.run("doctor", "--gateway-url", tls_gateway.url, HTTPS_PROXY=f"https://{proxy}")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["gateway"]
    assert verdict == "FAIL"
    assert f"through the proxy {proxy}" in text, text
    assert "HTTPS_PROXY" in text, text
    assert "not trusted" not in text, text
    assert tls_gateway.requests == []


# --- LiteLLM's answers ---------------------------------------------------------------------------
def test_litellm_without_a_database_says_the_key_is_not_the_master_key(
    gk: Env, oidc_tls: dict[str, str], tls_gateway: GatewayStub
):
    tls_gateway.answer(400, body=LITELLM_NO_DB)
    command_setup(gk, oidc_tls["ca"], inferenceGatewayBaseUrl=tls_gateway.url)
    r = gk.run("doctor")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["gateway"]
    assert verdict == "FAIL"
    assert "answered 400" in text, text
    assert "(No connected db.)" in text, text  # what the gateway said
    assert "master key" in text, text
    assert "virtual keys" in text, text
    assert "database" in text, text
    assert "check the gateway's logs" not in text, text


def test_an_enterprise_only_feature_says_licence_not_scope(
    gk: Env, oidc_tls: dict[str, str], tls_gateway: GatewayStub
):
    tls_gateway.answer(403, body=LITELLM_ENTERPRISE)
    command_setup(gk, oidc_tls["ca"], inferenceGatewayBaseUrl=tls_gateway.url)
    r = gk.run("doctor")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["gateway"]
    assert verdict == "FAIL"
    assert "answered 403" in text, text
    assert "(JWT Auth is an enterprise only feature.)" in text, text
    assert "licen" in text, text
    assert "custom_auth" in text, text
    assert "request the scope or role" not in text, text


def test_an_ordinary_403_still_says_scope_or_role(
    gk: Env, oidc_tls: dict[str, str], tls_gateway: GatewayStub
):
    """The licence rule is narrow: a 403 that does not say "enterprise only" keeps its advice."""
    tls_gateway.answer(403, message="enterprise team has no access to this model")
    command_setup(gk, oidc_tls["ca"], inferenceGatewayBaseUrl=tls_gateway.url)
    r = gk.run("doctor")
    verdict, text = lines(r)["gateway"]
    assert verdict == "FAIL"
    assert "request the scope or role" in text, text
    assert "licen" not in text, text


# --- the clock ---------------------------------------------------------------------------------
def test_the_clock_is_checked_against_the_gateway_for_a_token_with_no_server(
    gk: Env, oidc_tls: dict[str, str], tls_gateway: GatewayStub
):
    command_setup(gk, oidc_tls["ca"], inferenceGatewayBaseUrl=tls_gateway.url)
    host = f"127.0.0.1:{tls_gateway.port}"
    r = gk.run("doctor")
    assert r.code == 0, r.out + r.err
    found = lines(r)
    assert found["gateway"][0] == "OK"
    verdict, text = found["clock"]
    assert verdict == "OK"
    assert host in text, text  # e.g. "in step with 127.0.0.1:PORT (its Date header)"
    as_json = checks(gk.run("doctor", "--json"))
    assert as_json["clock"]["verdict"] == "ok"
    assert as_json["clock"]["data"]["server"] == host
    # The same clock on both ends: well inside doctor's own 60 s warning threshold, however
    # long the request took on a busy machine.
    assert abs(as_json["clock"]["data"]["skew_seconds"]) < 60


def test_without_a_gateway_the_clock_is_still_skipped(gk: Env):
    command_setup(gk, None)
    r = gk.run("doctor")
    assert r.code == 0, r.out + r.err
    found = lines(r)
    assert found["gateway"][0] == "SKIP"
    assert found["clock"][0] == "SKIP"
    assert "no server answered with a Date" in found["clock"][1]
