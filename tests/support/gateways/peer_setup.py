"""What the sibling-surface peer tests (tests/peers/test_mcp_peer.py, test_otlp_peer.py,
test_marketplace_peer.py) share: the JWT gateway in front of the peer under test, taking the
small test issuer's tokens (jwt_issuer.py), and a headersHelper's output for a token. Their
``issuer`` and ``hygiene`` fixtures are in tests/peers/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gateways.jwt_gateway import JwtGateway
from gateways.jwt_gateway import missing as gateway_missing
from gateways.jwt_issuer import AUDIENCE, Issuer
from oidc_peer import make_tls

# What the gateway sends upstream in place of the caller's credential (each peer refuses a
# request without it): distinctive, so the hygiene checker catches any piece of it.
GATEWAY_KEY = "gateway-upstream-key-peers-7d1e"


@contextmanager
def gateway_in_front(
    issuer: Issuer,
    upstream: str,
    tmp_path_factory: pytest.TempPathFactory,
    *routes: dict[str, Any],
) -> Iterator[JwtGateway]:
    """The JWT gateway over HTTPS before ``upstream``: each route takes ``issuer``'s tokens for
    AUDIENCE, and sends GATEWAY_KEY upstream."""
    assert gateway_missing() is None, f"{gateway_missing()} missing: run scripts/test.sh"
    config = {
        "ca": issuer.ca,
        "tls": make_tls(tmp_path_factory.mktemp("gateway-tls")),
        "upstream": upstream,
        "routes": [{"issuer": issuer.issuer, "audience": AUDIENCE, **r} for r in routes],
    }
    with JwtGateway(config, tmp_path_factory.mktemp("jwt-gateway"), upstream_key=GATEWAY_KEY) as gw:
        yield gw


def headers_of(token: str, **extra: str) -> bytes:
    """A headersHelper's stdout: the token as a bearer header, and ``extra`` headers."""
    return json.dumps({"Authorization": f"Bearer {token}", **extra}).encode()
