"""The OTLP/HTTP receiver and the exporter stand-in (tests/support/gateways/otlp_peer.py) hold
what the sibling-helper tests rely on: behind the JWT gateway, an export with an
otlpHeadersHelper's accepted token lands (protobuf and JSON, each signal), a refused one does not,
and the receiver takes only the OTLP/HTTP bodies the specification describes.

The helper is a stand-in (sibling_helpers.fake_helper) printing header maps with tokens from a
small test issuer; gatekey itself is run this way in
tests/blackbox/gateways/test_one_config_every_surface.py.
"""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateways import otlp_peer
from gateways.jwt_gateway import JwtGateway
from gateways.jwt_issuer import Issuer
from gateways.otlp_peer import JSON, PROTOBUF, OtlpReceiver
from gateways.peer_setup import GATEWAY_KEY, gateway_in_front, headers_of
from gateways.sibling_helpers import fake_helper, fake_runs
from hygiene import Recorder


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(gateway_key=GATEWAY_KEY) as peer:
        yield peer


@pytest.fixture(scope="module")
def gateway(
    issuer: Issuer, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JwtGateway]:
    with gateway_in_front(issuer, receiver.url, tmp_path_factory, {"prefix": "/otlp"}) as gw:
        yield gw


def post(
    receiver: OtlpReceiver, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """A request straight to the receiver, as the gateway forwards one (with its key)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(receiver.url.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("POST", path, body, {"x-api-key": GATEWAY_KEY, **headers})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


# --- through the gateway ----------------------------------------------------------------------
def test_an_export_with_the_helpers_headers_lands_through_the_gateway(
    gateway: JwtGateway, receiver: OtlpReceiver, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    token = issuer.sign()
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [headers_of(token, **{"X-Tenant": "acme"})])
    before = len(receiver.seen)
    outcome = otlp_peer.exporter_run(helper, gateway.url("/otlp"), {}, ca=gateway.ca)
    assert outcome.helper_error == ""
    assert outcome.statuses == [200, 200], gateway.log()
    got = [(signal, encoding) for signal, encoding, _ in receiver.seen[before:]]
    assert got == [("traces", PROTOBUF), ("metrics", JSON)]
    for signal in ("traces", "metrics"):
        assert receiver.saw("x-gateway-subject", "alice", signal=signal)
        assert receiver.saw("x-tenant", "acme", signal=signal)
    # the credential stops at the gateway
    assert all("authorization" not in headers for _, _, headers in receiver.seen[before:])
    assert fake_runs(helper) == [
        {"argv": 0, "context": False, "manual": False, "stdin_data": False}
    ]


def test_a_refused_token_exports_nothing(
    gateway: JwtGateway, receiver: OtlpReceiver, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    expired = issuer.sign(lifetime=-1)
    hygiene.register(expired, "a test token")
    helper = fake_helper(tmp_path / "h", [headers_of(expired)])
    before = len(receiver.seen)
    outcome = otlp_peer.exporter_run(helper, gateway.url("/otlp"), {}, ca=gateway.ca)
    assert outcome.statuses == [401, 401]
    assert len(receiver.seen) == before
    assert "the token has expired" in gateway.log()


def test_a_helper_printing_the_inference_shape_is_refused_before_any_export(
    gateway: JwtGateway, receiver: OtlpReceiver, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    token = issuer.sign()
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [token.encode() + b"\n"])
    before = len(receiver.seen)
    outcome = otlp_peer.exporter_run(helper, gateway.url("/otlp"), {}, ca=gateway.ca)
    assert outcome.helper_error.startswith("the helper's output: not a JSON object")
    assert outcome.statuses == []
    assert len(receiver.seen) == before


# --- the receiver on its own ------------------------------------------------------------------
def test_the_receiver_refuses_what_bypassed_the_gateway(receiver: OtlpReceiver) -> None:
    status = otlp_peer.export(receiver.url, {"Authorization": "Bearer not-checked-here"})
    assert status == 401


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_the_receiver_takes_each_signal_in_json(receiver: OtlpReceiver, signal: str) -> None:
    body = json.dumps(otlp_peer.request_json(signal)).encode()
    status, answer = post(receiver, f"/v1/{signal}", body, {"Content-Type": JSON})
    assert (status, answer) == (200, b"{}")


def test_the_receiver_takes_gzip_protobuf(receiver: OtlpReceiver) -> None:
    body = gzip.compress(otlp_peer.trace_request_protobuf())
    headers = {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
    assert post(receiver, "/v1/traces", body, headers) == (200, b"")


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        ("/v1/traces", b"\x0a\x05ab", PROTOBUF, 400),  # a length past the end
        ("/v1/traces", b"\x12\x00", PROTOBUF, 400),  # field 2: not an export request
        ("/v1/traces", b'{"resourceMetrics": []}', JSON, 400),  # another signal's body
        ("/v1/traces", b"{", JSON, 400),
        ("/v1/traces", b"{}", "text/plain", 415),
        ("/v1/profiles", b"{}", JSON, 404),
    ],
)
def test_the_receiver_refuses_what_is_not_an_otlp_export(
    receiver: OtlpReceiver, path: str, body: bytes, content_type: str, status: int
) -> None:
    before = len(receiver.seen)
    assert post(receiver, path, body, {"Content-Type": content_type})[0] == status
    assert len(receiver.seen) == before


def test_the_protobuf_stand_in_is_one_resource_list() -> None:
    assert otlp_peer.top_level_fields(otlp_peer.trace_request_protobuf()) == [1]
