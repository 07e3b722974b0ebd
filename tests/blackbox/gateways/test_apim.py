"""Azure API Management in front of the model: a subscription key and an Entra token together.

APIM checks ``Ocp-Apim-Subscription-Key`` first, then its ``validate-jwt`` policy checks the
Entra token (issuer, audience). The subscription key is a shared secret, so it must never sit in
Claude's static headers nor literally in gatekey's config: the recipe
(tests/support/gateways/recipes/apim-entra-subscription-key.toml) reads it from the OS keychain
(the real Secret Service) by reference, and gatekey prints it beside the token in its JSON.
The gateway is tests/support/gateways/jwt_gateway.py with APIM's subscription check (its
messages), the tokens the real OpenID provider's Entra-style issuer's. Values are compared,
never printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from blackbox_env import SILENT_CONTEXTS, Env, exe
from claude_managed import doctor_lines, write_managed_settings
from gateways import app_client, recipes
from gateways.jwt_gateway import JwtGateway, missing
from gateways.upstream import MODEL, AnthropicUpstream
from hygiene import Recorder
from oidc_peer import API_AUDIENCE, CONF_CLIENT, ENTRA_TENANT, OidcProvider

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox, pytest.mark.keychain]

UPSTREAM_KEY = "upstream-key-apim-51c2"
SUBSCRIPTION_KEY = "5e1f0c93b7d24a68"  # shares no run of text with a header name
HEADER = "Ocp-Apim-Subscription-Key"


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[UPSTREAM_KEY]) as peer:
        yield peer


@pytest.fixture(scope="module")
def apim(
    oidc_tls: dict[str, str],
    entra_provider: OidcProvider,
    upstream: AnthropicUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JwtGateway]:
    lacking = missing()
    assert lacking is None, f"{lacking} is not installed; run scripts/test.sh (test extras)"
    route = {"issuer": entra_provider.issuer, "audience": API_AUDIENCE, "subscription": HEADER}
    config = {"ca": oidc_tls["ca"], "tls": oidc_tls, "upstream": upstream.url, "routes": [route]}
    with JwtGateway(
        config,
        tmp_path_factory.mktemp("apim"),
        upstream_key=UPSTREAM_KEY,
        subscription_key=SUBSCRIPTION_KEY,
    ) as gw:
        yield gw


@pytest.fixture
def env(
    secret_service: Env,
    oidc_tls: dict[str, str],
    entra_provider: OidcProvider,
    secret_hygiene: Recorder,
) -> Env:
    secret_service.vars["SSL_CERT_FILE"] = oidc_tls["ca"]
    secret_service.vars["GATEWAY_CLIENT_SECRET"] = CONF_CLIENT[1]
    secret_hygiene.register(UPSTREAM_KEY, "the gateway's upstream key")
    secret_hygiene.register(SUBSCRIPTION_KEY, "the APIM subscription key")
    secret_service.write_config(
        recipes.recipe(
            "apim-entra-subscription-key",
            {
                "contoso.onmicrosoft.com": ENTRA_TENANT,
                "22222222-3333-4444-5555-666666666666": CONF_CLIENT[0],
                "api://llm-gateway": API_AUDIENCE,
            },
        )
        + f'authority_host = "{entra_provider.origin}"\n'  # the default is the public cloud
    )
    stored = secret_service.run("store", "-p", "apim-key", stdin=SUBSCRIPTION_KEY.encode())
    assert stored.code == 0, stored.err
    return secret_service


def claude_settings(gk: Env, url: str) -> dict[str, str]:
    out = gk.root / "managed-settings.json"
    r = gk.run(
        "mdm", "--format", "linux-json", "-p", "gateway", "--gateway-url", url, "--helper",
        exe(), "-o", str(out),
    )  # fmt: skip
    assert r.code == 0, r.err
    values: dict[str, str] = json.loads(out.read_text())
    write_managed_settings(gk, values)
    return values


def test_the_subscription_key_from_the_keychain_and_the_token_get_through_apim(
    env: Env, apim: JwtGateway, upstream: AnthropicUpstream
) -> None:
    env.vars["GATEKEY_PROFILE"] = "gateway"
    claude = claude_settings(env, apim.url())
    assert HEADER.lower() not in claude.get("inferenceCustomHeaders", "").lower()
    for ctx in ("interactive", *SILENT_CONTEXTS):
        r = env.run(context=ctx)
        assert (r.code, r.err) == (0, ""), f"{ctx}: {r.err}"
        payload = json.loads(r.stdout)
        assert set(payload) == {"token", "headers"}
        assert list(payload["headers"]) == [HEADER]
        key_printed = payload["headers"][HEADER] == SUBSCRIPTION_KEY
        assert key_printed, f"{ctx}: the subscription key from the keychain is not in the output"
        headers = app_client.app_headers(
            r.stdout, scheme=claude["inferenceGatewayAuthScheme"], custom={}
        )
        listed = app_client.models(apim.url(), headers, ca=apim.ca)
        assert listed.status == 200, apim.log()
        text = app_client.stream_message(apim.url(), headers, model=MODEL, ca=apim.ca)
        assert (text.event_names, text.text) == (app_client.COMPLETE_STREAM, "pong"), apim.log()
        tool = app_client.stream_message(apim.url(), headers, model=MODEL, tools=True, ca=apim.ca)
        assert tool.tool_input == {"city": "Paris"}, apim.log()
        assert upstream.saw("x-api-key", UPSTREAM_KEY)
        assert not upstream.saw(HEADER, SUBSCRIPTION_KEY)  # APIM keeps it
    doctor = env.run("doctor", "--gateway-url", apim.url())
    assert doctor_lines(doctor)["gateway"][0] == "OK", doctor.out + doctor.err


def test_apim_refuses_the_token_without_the_subscription_key_and_the_key_without_a_token(
    env: Env, apim: JwtGateway
) -> None:
    env.vars["GATEKEY_PROFILE"] = "gateway"
    r = env.run(context="background")
    assert r.code == 0, r.err
    headers = app_client.app_headers(r.stdout)
    without_key = {k: v for k, v in headers.items() if k != HEADER}
    answer = app_client.models(apim.url(), without_key, ca=apim.ca)
    assert answer.status == 401
    assert "missing subscription key" in answer.json()["error"]["message"]  # type: ignore[index]
    wrong_key = dict(without_key, **{HEADER: "not-the-subscription-key"})
    answer = app_client.models(apim.url(), wrong_key, ca=apim.ca)
    assert answer.status == 401
    assert "invalid subscription key" in answer.json()["error"]["message"]  # type: ignore[index]
    key_only = {HEADER: headers[HEADER]}
    answer = app_client.models(apim.url(), key_only, ca=apim.ca)
    assert answer.status == 401
    assert answer.headers.get("www-authenticate", "").startswith("Bearer")


def test_mdm_refuses_the_subscription_key_as_a_static_header(env: Env, apim: JwtGateway) -> None:
    r = env.run(
        "mdm", "--format", "linux-json", "-p", "gateway", "--gateway-url", apim.url(),
        "--header", f"{HEADER}=copied-from-the-portal",
    )  # fmt: skip
    assert r.code == 78
    assert r.stdout == b""
    assert HEADER in r.err
    assert "copied-from-the-portal" not in r.err
