"""What a gateway's answer means (diagnostics/gateway_advice.py), in process: the rules written
for LiteLLM's answers match only what LiteLLM says, and quote it. Black-box:
tests/blackbox/commands/test_doctor_gateway_advice.py."""

from __future__ import annotations

import pytest

MODELS = "https://gw.example/v1/models"
MESSAGES = "https://gw.example/v1/messages"


def _answer(status: int, message: str = "", error_type: str = "", endpoint: str = MODELS):
    from gatekey import config
    from gatekey.diagnostics import gateway_advice

    table = {"source": "keychain", "account": "a"}
    profile = config.Config([("/t.toml", {"profiles": {"p": table}})]).profile("p")
    return gateway_advice.answer(
        status,
        endpoint=endpoint,
        profile=profile,
        claims=None,
        message=message,
        error_type=error_type,
        method="POST" if endpoint == MESSAGES else "GET",
    )


@pytest.mark.parametrize(
    ("message", "error_type"),
    [("No connected db.", "no_db_connection"), ("No connected db.", ""), ("", "no_db_connection")],
)
def test_litellm_without_a_database_is_recognised_by_its_type_or_its_message(
    message: str, error_type: str
):
    found = _answer(400, message, error_type)
    assert found.verdict == "fail"
    assert "master key" in found.detail
    assert "database" in found.fixes[0]


@pytest.mark.parametrize(
    "message", ["bad request: database busy", "no connected dbx", "model not found"]
)
def test_other_400s_keep_the_general_advice(message: str):
    found = _answer(400, message)
    assert "master key" not in found.detail
    assert found.fixes == ["check the gateway's logs for why it refused"]


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    "message",
    ["JWT Auth is an enterprise only feature.", "SSO requires an Enterprise license"],
)
def test_an_unlicensed_feature_is_named_with_what_the_gateway_said(status: int, message: str):
    found = _answer(status, message)
    assert found.verdict == "fail"
    assert f"({message})" in found.detail
    assert "licen" in found.detail
    assert "custom_auth" in found.fixes[0]


@pytest.mark.parametrize(
    "message", ["enterprise team has no access", "only enterprise keys may call this model"]
)
def test_a_403_that_mentions_enterprise_otherwise_is_an_ordinary_refusal(message: str):
    found = _answer(403, message)
    assert "refuses it access" in found.detail
    assert "request the scope or role" in found.fixes[0]


def test_a_404_for_messages_names_the_messages_route():
    found = _answer(404, "not here", endpoint=MESSAGES)
    assert found.detail.startswith(f"POST {MESSAGES} answered 404: no messages endpoint there")
    assert "/v1/models" not in found.fixes[0]


def test_a_proxy_that_is_not_tls_is_named():
    from gatekey.diagnostics import gateway_advice

    found = gateway_advice.not_tls("gw.example:443", "wrong version number", "proxy.corp:3128")
    assert "through the proxy proxy.corp:3128" in found.detail
    assert "HTTPS_PROXY" in found.fixes[0]
