"""`gatekey doctor --probe-messages` (issue 15): one minimal streaming POST /v1/messages through
the gateway, opt-in because it is billable, read to message_stop or to a precise failure. The
installed executable against the gateway stand-in (support/gateway_stub.py: a good stream, one
cut mid-body, one without message_stop, an error event, JSON instead of SSE, a 500), with a
`command` profile (support/doctor_gateway.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from blackbox_env import Env
from deadlines import EARLY_S
from doctor_gateway import TOKEN, checks, command_setup, lines
from gateway_stub import MODELS, STALL_S, GatewayStub

pytestmark = pytest.mark.blackbox

FIRST_MODEL = MODELS["data"][0]["id"]
OTHER_MODEL = MODELS["data"][1]["id"]


@pytest.fixture
def gateway(oidc_tls: dict[str, str]) -> Iterator[GatewayStub]:
    with GatewayStub(oidc_tls) as stub:
        yield stub


@pytest.fixture
def doc(gk: Env, oidc_tls: dict[str, str], gateway: GatewayStub) -> Env:
    """Claude's settings name the stand-in, with a custom header Claude would add."""
    command_setup(
        gk,
        oidc_tls["ca"],
        inferenceGatewayBaseUrl=gateway.url,
        inferenceCustomHeaders=json.dumps({"X-Team": "blue"}),
    )
    return gk


def posts(gateway: GatewayStub) -> list[tuple[str, str, dict[str, str]]]:
    return [r for r in gateway.requests if r[0] == "POST"]


def test_without_the_flag_no_message_is_sent(doc: Env, gateway: GatewayStub):
    r = doc.run("doctor")
    assert r.code == 0, r.out + r.err
    assert "messages" not in lines(r)
    assert posts(gateway) == []
    assert gateway.posted == []


def test_the_help_says_the_probe_is_billable(gk: Env):
    r = gk.run("doctor", "--help")
    assert r.code == 0, r.err
    text = " ".join(r.out.split())
    assert "--probe-messages" in text
    assert "BILLABLE" in text
    assert "--model NAME" in text


def test_a_gateway_that_streams_passes_and_gets_what_claude_sends(doc: Env, gateway: GatewayStub):
    r = doc.run("doctor", "--probe-messages")
    assert r.code == 0, r.out + r.err
    verdict, text = lines(r)["messages"]
    assert verdict == "OK"
    assert f"POST {gateway.url}/v1/messages (model {FIRST_MODEL}, max_tokens 1" in text, text
    assert "message_start ... message_stop" in text, text
    assert "billable" in text, text
    # Exactly one message, as small as it can be, with the model the gateway listed first.
    assert len(posts(gateway)) == 1
    assert gateway.posted == [
        {
            "model": FIRST_MODEL,
            "max_tokens": 1,
            "stream": True,
            "messages": [{"role": "user", "content": gateway.posted[0]["messages"][0]["content"]}],
        }
    ]
    assert 0 < len(gateway.posted[0]["messages"][0]["content"]) < 100
    # The credential and headers exactly as for GET /v1/models, as Claude sends them.
    assert gateway.requests[-1][:2] == ("POST", "/v1/messages")
    assert gateway.got("authorization", f"Bearer {TOKEN}")
    assert gateway.got("anthropic-version", "2023-06-01")
    assert gateway.got("x-team", "blue")
    assert gateway.got("content-type", "application/json")


def test_model_names_the_model_asked(doc: Env, gateway: GatewayStub):
    r = doc.run("doctor", "--probe-messages", "--model", OTHER_MODEL)
    assert r.code == 0, r.out + r.err
    assert lines(r)["messages"][0] == "OK"
    assert [p["model"] for p in gateway.posted] == [OTHER_MODEL]


def test_a_model_the_gateway_does_not_serve_is_named(doc: Env, gateway: GatewayStub):
    r = doc.run("doctor", "--probe-messages", "--model", "claude-nonesuch-9")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["messages"]
    assert verdict == "FAIL"
    assert "answered 404: the gateway does not serve model claude-nonesuch-9" in text, text
    assert "--model NAME" in text, text


def test_model_without_probe_messages_is_a_usage_error(doc: Env, gateway: GatewayStub):
    r = doc.run("doctor", "--model", FIRST_MODEL)
    assert r.code == 2, r.out + r.err
    assert "--probe-messages" in r.err
    assert gateway.requests == []


# What a failing inference looks like: (stub mode, what the messages line must say).
FAILURES = {
    "broken": ["the stream broke after 2 event(s) (message_start content_block_start)"],
    "unfinished": ["the stream ended after 6 event(s)", "without message_stop"],
    "error-event": [
        "the stream sent an error event (overloaded_error: Overloaded)",
        "after 1 event(s) (message_start)",
    ],
    "json": ["answered 200 with application/json, not a text/event-stream"],
    "status": ["answered 500: the gateway failed (upstream exploded)"],
}


@pytest.mark.parametrize("mode", list(FAILURES))
def test_a_gateway_that_lists_models_but_fails_at_inference_fails(
    doc: Env, gateway: GatewayStub, mode: str
):
    gateway.answer_messages(mode, status=500, message="upstream exploded")
    r = doc.run("doctor", "--probe-messages")
    assert r.code == 1, r.out + r.err
    found = lines(r)
    assert found["gateway"][0] == "OK"  # the model list alone would have passed
    verdict, text = found["messages"]
    assert verdict == "FAIL"
    for part in FAILURES[mode]:
        assert part in text, text
    assert "\nfix: " in text, text
    assert "messages" in r.err.splitlines()[-1]  # doctor's failure line names the check
    assert len(gateway.posted) == 1


def test_a_refused_credential_sends_no_message(doc: Env, gateway: GatewayStub):
    gateway.answer(401, message="invalid api key")
    r = doc.run("doctor", "--probe-messages", "--json")
    assert r.code == 1, r.out + r.err
    found = checks(r)
    assert found["gateway"]["verdict"] == "fail"
    assert found["messages"]["verdict"] == "skip"
    assert "answered 401" in found["messages"]["detail"]
    assert posts(gateway) == []


# --- bounds: time and bytes --------------------------------------------------------------------
PROBE_S = 30.0  # doctor's bound on the whole probe (its --help and README say 30 s)


@pytest.mark.slow
def test_a_stream_that_stalls_fails_at_the_probes_bound(doc: Env, gateway: GatewayStub):
    gateway.answer_messages("stall")  # message_start, then silence for STALL_S
    r = doc.run("doctor", "--probe-messages")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["messages"]
    assert verdict == "FAIL"
    assert f"no message_stop within {PROBE_S:g} s" in text, text
    assert "stalled after 1 event(s) (message_start)" in text, text
    # It gave up at its bound, not when the gateway let go of the stream.
    assert r.elapsed > PROBE_S - EARLY_S
    assert r.elapsed < STALL_S


def test_a_stream_without_end_is_read_no_further_than_its_bound(doc: Env, gateway: GatewayStub):
    gateway.answer_messages("flood")  # message_start, then pings for FLOOD_BYTES
    r = doc.run("doctor", "--probe-messages")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["messages"]
    assert verdict == "FAIL"
    assert "the stream broke after" in text, text
    assert "(more than 256 KiB)" in text, text
