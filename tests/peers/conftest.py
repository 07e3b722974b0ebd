"""Fixtures the sibling-surface peer tests share (test_mcp_peer.py, test_otlp_peer.py,
test_marketplace_peer.py; test_jwt_gateway_peer.py has an issuer of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateways.jwt_issuer import Issuer
from gateways.peer_setup import GATEWAY_KEY
from hygiene import Recorder
from oidc_peer import make_tls


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    with Issuer(make_tls(tmp_path_factory.mktemp("issuer-tls"))) as peer:
        yield peer


@pytest.fixture
def hygiene(secret_hygiene: Recorder) -> Recorder:
    secret_hygiene.register(GATEWAY_KEY, "the gateway's upstream key")
    return secret_hygiene
