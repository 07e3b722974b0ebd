"""The plugin marketplace peer and the app's use of a marketplace credentialHelper
(tests/support/gateways/marketplace_peer.py) hold what the sibling-helper tests rely on: behind
the JWT gateway, the catalogue is served for an accepted token whether the helper prints it bare
or as git-credential lines, never for a refused one, and JSON output is not this surface's.

The helper is a stand-in (sibling_helpers.fake_helper); gatekey itself is run this way in
tests/blackbox/gateways/test_one_config_every_surface.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateways import marketplace_peer
from gateways.jwt_gateway import JwtGateway
from gateways.jwt_issuer import Issuer
from gateways.marketplace_peer import CATALOGUE, Marketplace
from gateways.peer_setup import GATEWAY_KEY, gateway_in_front
from gateways.sibling_helpers import HelperOutputError, fake_helper, marketplace_credential
from hygiene import Recorder


@pytest.fixture(scope="module")
def market() -> Iterator[Marketplace]:
    with Marketplace(gateway_key=GATEWAY_KEY) as peer:
        yield peer


@pytest.fixture(scope="module")
def gateway(
    issuer: Issuer, market: Marketplace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JwtGateway]:
    with gateway_in_front(issuer, market.url, tmp_path_factory, {"prefix": "/plugins"}) as gw:
        yield gw


def catalogue_url(gw: JwtGateway) -> str:
    return gw.url("/plugins/marketplace.json")


@pytest.mark.parametrize(
    ("shape", "username"),
    [("bare", ""), ("git-credential", "gatekey")],
)
def test_the_catalogue_is_served_for_the_helpers_token(
    gateway: JwtGateway,
    market: Marketplace,
    issuer: Issuer,
    tmp_path: Path,
    hygiene: Recorder,
    shape: str,
    username: str,
) -> None:
    token = issuer.sign()
    hygiene.register(token, "a test token")
    printed = (
        f"{token}\n" if shape == "bare" else f"username={username}\npassword={token}\n"
    ).encode()
    helper = fake_helper(tmp_path / "h", [printed])
    before = len(market.seen)
    fetched = marketplace_peer.fetch_catalogue(helper, catalogue_url(gateway), {}, ca=gateway.ca)
    assert fetched.helper_error == ""
    assert fetched.status == 200, gateway.log()
    assert fetched.catalogue == CATALOGUE
    assert fetched.username == username
    assert len(market.seen) == before + 1
    assert market.saw("x-gateway-subject", "alice")


def test_a_refused_token_gets_no_catalogue(
    gateway: JwtGateway, market: Marketplace, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    token = issuer.sign(aud="https://another-api.example.test")
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [f"password={token}\n".encode()])
    before = len(market.seen)
    fetched = marketplace_peer.fetch_catalogue(helper, catalogue_url(gateway), {}, ca=gateway.ca)
    assert fetched.status == 401
    assert fetched.catalogue != CATALOGUE
    assert len(market.seen) == before
    assert "audience is not this API" in gateway.log()


def test_json_is_not_this_surfaces_output(
    gateway: JwtGateway, market: Marketplace, issuer: Issuer, tmp_path: Path, hygiene: Recorder
) -> None:
    token = issuer.sign()
    hygiene.register(token, "a test token")
    helper = fake_helper(tmp_path / "h", [f'{{"Authorization": "Bearer {token}"}}'.encode()])
    before = len(market.seen)
    fetched = marketplace_peer.fetch_catalogue(helper, catalogue_url(gateway), {}, ca=gateway.ca)
    assert fetched.helper_error.startswith("the helper's output: JSON")
    assert fetched.status == 0
    assert len(market.seen) == before


def test_the_marketplace_refuses_what_bypassed_the_gateway(market: Marketplace) -> None:
    status, _ = marketplace_peer.get(f"{market.url}/marketplace.json", "not-checked-here")
    assert status == 401


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (b"tok.en.sig\n", ("", "tok.en.sig")),
        (b"  padded-base64-token==  \n", ("", "padded-base64-token==")),
        (b"password=tok\n", ("", "tok")),
        (b"username=x-token-auth\npassword=tok\n", ("x-token-auth", "tok")),
        (b"protocol=https\nhost=h\nusername=u\npassword=p=q\n", ("u", "p=q")),
    ],
)
def test_the_credential_parser_takes_a_token_or_git_credential_lines(
    stdout: bytes, expected: tuple[str, str]
) -> None:
    assert marketplace_credential(stdout) == expected


@pytest.mark.parametrize(
    "stdout",
    [b"", b"\n", b'{"token": "t"}', b"username=u\n", b"two words\n", b"line1\nline2\n", b"\xfe"],
)
def test_the_credential_parser_refuses_the_rest(stdout: bytes) -> None:
    with pytest.raises(HelperOutputError):
        marketplace_credential(stdout)
