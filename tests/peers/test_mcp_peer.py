"""The MCP test peers hold what the sibling-helper tests rely on: a real MCP server (the ``mcp``
SDK over streamable HTTP, tests/support/gateways/mcp_peer.py) behind the JWT gateway answers a
tool call only with a token the gateway accepts, and the app-like client (mcp_client.py) runs
its headersHelper as the app does and retries once on 401/403.

The helper here is a stand-in (sibling_helpers.fake_helper) printing header maps with tokens
from a small test issuer (jwt_issuer.py), so each case is exact: gatekey itself is run this way
in tests/blackbox/gateways/test_one_config_every_surface.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateways import mcp_client
from gateways.jwt_gateway import JwtGateway
from gateways.jwt_issuer import Issuer
from gateways.mcp_peer import McpServer
from gateways.mcp_peer import missing as mcp_missing
from gateways.peer_setup import GATEWAY_KEY, gateway_in_front, headers_of
from gateways.sibling_helpers import (
    HelperOutputError,
    fake_helper,
    fake_runs,
    header_map,
    run_helper,
)
from hygiene import Recorder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpServer]:
    assert mcp_missing() is None, f"{mcp_missing()} missing: run scripts/test.sh (test extras)"
    with McpServer(
        {"name": "docs"}, tmp_path_factory.mktemp("mcp-peer"), gateway_key=GATEWAY_KEY
    ) as peer:
        yield peer


@pytest.fixture(scope="module")
def gateway(
    issuer: Issuer, server: McpServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JwtGateway]:
    route = {"upstream": server.url}
    with gateway_in_front(
        issuer,
        server.url,
        tmp_path_factory,
        dict(route, prefix="/docs"),
        dict(route, prefix="/scoped", scope="mcp.write"),
    ) as gw:
        yield gw


def endpoint(gw: JwtGateway, prefix: str = "/docs") -> str:
    return gw.url(f"{prefix}/mcp")


# --- through the gateway ----------------------------------------------------------------------
def test_a_headers_helper_token_reaches_the_tool_through_the_gateway(
    gateway: JwtGateway, server: McpServer, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    token = issuer.sign()
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [headers_of(token, **{"X-User": "alice"})])
    outcome = mcp_client.use_server(helper, endpoint(gateway), {}, ca=gateway.ca)
    assert outcome.ok, (outcome.helper_error, outcome.attempts, gateway.log(), server.log())
    assert len(outcome.runs) == 1
    last = outcome.last
    assert last.server_name == "docs"
    assert last.tools == ["whoami"]
    # The gateway validated the token (its sub) and passed the helper's other header on.
    assert last.answer == {"server": "docs", "subject": "alice", "user": "alice"}
    assert all(status < 400 for _, status in last.statuses), last.statuses
    # initialize, its notification, list, call, the GET stream and the session's end
    assert {method for method, _ in last.statuses} == {"POST", "GET", "DELETE"}


def test_the_helper_runs_as_the_app_runs_it(
    gateway: JwtGateway, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    """No arguments, no CLAUDE_HELPER_CONTEXT (even when the app's own environment has one),
    nothing on stdin."""
    token = issuer.sign()
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [headers_of(token)])
    env = {"CLAUDE_HELPER_CONTEXT": "interactive", "CLAUDE_HELPER_MANUAL_RUN": "1"}
    outcome = mcp_client.use_server(helper, endpoint(gateway), env, ca=gateway.ca)
    assert outcome.ok, (outcome.helper_error, outcome.attempts)
    seen = fake_runs(helper)
    assert seen == [{"argv": 0, "context": False, "manual": False, "stdin_data": False}]


def test_a_refused_token_makes_the_app_run_the_helper_once_more(
    gateway: JwtGateway, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    forged, good = issuer.sign(foreign=True), issuer.sign()
    for t in (forged, good):
        hygiene.register(t, "a test token")
    helper = fake_helper(tmp_path / "h", [headers_of(forged), headers_of(good)])
    outcome = mcp_client.use_server(helper, endpoint(gateway), {}, ca=gateway.ca)
    assert len(outcome.runs) == 2
    first, second = outcome.attempts
    assert first.refused
    assert first.answer is None
    assert ("POST", 401) in first.statuses
    assert outcome.ok
    assert second.answer is not None
    assert second.answer["subject"] == "alice"
    assert "signature is invalid" in gateway.log()


def test_the_app_retries_once_only(
    gateway: JwtGateway, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    """A 403 (the token lacks the route's scope) counts as a refusal too; after one retry the
    app gives up: two helper runs, never a third."""
    token = issuer.sign(scope="mcp.read")
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [headers_of(token)])
    outcome = mcp_client.use_server(helper, endpoint(gateway, "/scoped"), {}, ca=gateway.ca)
    assert not outcome.ok
    assert len(outcome.runs) == 2
    assert len(fake_runs(helper)) == 2
    assert [a.statuses for a in outcome.attempts] == [[("POST", 403)], [("POST", 403)]]


def test_the_server_refuses_a_request_that_bypassed_the_gateway(
    server: McpServer, issuer: Issuer, hygiene: Recorder
) -> None:
    token = issuer.sign()
    hygiene.register(token, "a test token")
    attempt = mcp_client.session(f"{server.url}/mcp", {"Authorization": f"Bearer {token}"})
    assert attempt.answer is None
    assert attempt.statuses == [("POST", 401)]


def test_a_helper_that_fails_is_not_retried(gateway: JwtGateway, tmp_path: Path) -> None:
    helper = fake_helper(tmp_path / "h", [b""], code=3)
    outcome = mcp_client.use_server(helper, endpoint(gateway), {}, ca=gateway.ca)
    assert outcome.helper_error == "the helper failed: exit 3"
    assert not outcome.attempts
    assert len(fake_runs(helper)) == 1


# --- the surface's parser and limit -----------------------------------------------------------
@pytest.mark.parametrize(
    "stdout",
    [
        b"eyJhbGciOi.e30.sig\n",  # a bare token: the inference shape, not this surface's
        b'{"token": "t", "headers": {"X-A": "b"}}',  # the inference JSON shape: nested
        b'{"Authorization": 1}',
        b"{}",
        b'["Authorization", "Bearer t"]',
        b'{"X-A": "b\\r\\nX-Injected: c"}',
        b'{"Bad Name": "v"}',
        b"\xff",
    ],
)
def test_the_header_map_parser_refuses_what_the_app_cannot_send(stdout: bytes) -> None:
    with pytest.raises(HelperOutputError):
        header_map(stdout)


def test_the_header_map_parser_takes_a_flat_object() -> None:
    got = header_map(b'{"Authorization": "Bearer t", "X-User": "alice"}\n')
    assert got == {"Authorization": "Bearer t", "X-User": "alice"}


def test_a_helper_past_the_limit_is_killed_with_its_children(tmp_path: Path) -> None:
    script = tmp_path / "slow"
    # a child that would outlive the helper if only the helper were killed
    script.write_text("#!/bin/sh\nsleep 120 &\nsleep 120\n")
    script.chmod(0o700)
    run = run_helper(str(script), {"PATH": "/usr/bin:/bin"}, limit=1.0)
    assert run.code is None
    assert run.elapsed < 30  # communicate() returned: nothing held the pipes open
