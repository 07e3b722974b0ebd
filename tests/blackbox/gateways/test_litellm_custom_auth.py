"""A person's OpenID access token from gatekey through the real LiteLLM proxy, checked by a
``general_settings.custom_auth`` module (tests/peers/litellm/custom_auth.py: PyJWT in LiteLLM's
own venv, the signature against the provider's JWKS over HTTPS, issuer, audience and expiry with
no leeway). LiteLLM's built-in ``enable_jwt_auth`` needs an enterprise licence (it answers 403
"JWT Auth is an enterprise only feature"), so the open-source hook is what a LiteLLM admin uses.

One LiteLLM (tests/peers/litellm/custom-auth.yaml) for the module, over HTTPS, in front of the
Anthropic upstream; the real OpenID provider (node-oidc-provider) signs the tokens. Each test
signs in as alice with `gatekey login --device-code` (approved at the provider), the refresh
token kept in a private gnome-keyring, then runs gatekey as Claude does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blackbox_env import CONTEXTS, Env, Result
from gateways import app_client, recipes
from gateways.litellm_peer import LiteLLM, gateway_check, litellm_before, machine_using
from gateways.upstream import AnthropicUpstream
from idp_helpers import claims, device_sign_in, printed_token
from oidc_peer import API_AUDIENCE, PUBLIC_CLIENT, OidcProvider

pytestmark = [pytest.mark.blackbox, pytest.mark.keychain, pytest.mark.oidc]

MASTER_KEY = "sk-Jd5MqW8rTz2XcV6nBh4p"  # LiteLLM wants one; custom_auth decides every request
UPSTREAM_KEY = "sk-ant-Rb7KsN3yGf9LwQ2eUc5"


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[UPSTREAM_KEY]) as peer:
        yield peer


@pytest.fixture(scope="module")
def litellm(
    upstream: AnthropicUpstream,
    oidc_provider: OidcProvider,
    oidc_tls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiteLLM]:
    peer = litellm_before(
        upstream,
        "custom-auth",
        tls=oidc_tls,
        workdir=tmp_path_factory.mktemp("litellm-custom-auth"),
        master_key=MASTER_KEY,
        upstream_key=UPSTREAM_KEY,
        env={
            "JWT_ISSUER": oidc_provider.issuer,
            "JWT_AUDIENCE": API_AUDIENCE,
            "JWT_JWKS_URL": str(oidc_provider.discovery()["jwks_uri"]),
            "JWT_CA_FILE": oidc_provider.ca,
        },
    )
    yield peer
    peer.stop()


@pytest.fixture
def machine(secret_service: Env, litellm: LiteLLM, secret_hygiene) -> Env:
    """A user's machine: the real Secret Service, the test CA in the trust store (the provider's
    and the gateway's), and Claude's managed settings naming gatekey and LiteLLM."""
    return machine_using(secret_service, litellm, secret_hygiene, ttl_s="3000")


@pytest.fixture
def signed_in(machine: Env, oidc_provider: OidcProvider) -> Env:
    """The JWT recipe, signed in as alice through the device code."""
    machine.write_config(
        recipes.recipe(
            "litellm-custom-auth-jwt",
            {
                "https://login.example.com/oauth2/default": oidc_provider.issuer,
                "0oa-litellm-public": PUBLIC_CLIENT,
                "gateway.use": "api.read",
            },
        )
    )
    r = device_sign_in(machine, oidc_provider, ("login", "-p", "litellm-sso", "--device-code"))
    assert r.code == 0, r.err
    return machine


def run_as_claude(gk: Env, context: str) -> Result:
    r = gk.run(context=context)
    token = printed_token(r)  # exactly one JWT and a newline
    assert r.stderr == b"", f"{context}: {r.err}"
    assert claims(token)["sub"] == "alice"
    return r


def test_a_signed_in_persons_token_works_through_litellm_custom_auth_in_every_context(
    signed_in: Env, litellm: LiteLLM, upstream: AnthropicUpstream
):
    for context in CONTEXTS:
        r = run_as_claude(signed_in, context)
        litellm.serves(app_client.app_headers(r.stdout, scheme="bearer"), upstream, UPSTREAM_KEY)
    # LiteLLM hands custom_auth the credential from x-api-key just the same.
    litellm.serves(app_client.app_headers(r.stdout, scheme="x-api-key"), upstream, UPSTREAM_KEY)


def test_doctor_says_litellm_accepts_the_token(signed_in: Env, litellm: LiteLLM):
    r = signed_in.run("doctor", "--gateway-url", litellm.url)
    verdict, text = gateway_check(r)
    assert (verdict, r.code) == ("OK", 0), r.out + r.err
    assert f"GET {litellm.url}/v1/models answered 200" in text


def test_custom_auth_refuses_a_tampered_token_the_master_key_and_no_credential(
    signed_in: Env, litellm: LiteLLM, upstream: AnthropicUpstream
):
    token = printed_token(signed_in.run(context="background"))
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-4]}{signature[-4:][::-1]}"
    if forged == token:  # a palindromic tail: change it another way
        forged = f"{head}.{body}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    for headers in (
        {"Authorization": f"Bearer {forged}"},
        {"x-api-key": MASTER_KEY},  # custom_auth decides every request: no master key bypass
        {},
    ):
        assert litellm.refuses(headers, upstream) == [401, 401]


def test_doctor_fails_the_gateway_check_for_a_key_custom_auth_refuses(
    machine: Env, litellm: LiteLLM
):
    machine.write_config(recipes.recipe("litellm-master-key", {}))
    assert machine.run("store", "-p", "litellm", stdin=MASTER_KEY.encode()).code == 0
    r = machine.run("doctor", "--gateway-url", litellm.url)
    verdict, text = gateway_check(r)
    assert verdict == "FAIL", r.out
    assert r.code != 0
    assert "answered 401" in text
