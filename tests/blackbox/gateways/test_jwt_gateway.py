"""gatekey's output through an in-house style JWT gateway (Envoy jwt_authn, Kong's jwt plugin,
APIM validate-jwt, a team's proxy): tests/support/gateways/jwt_gateway.py, PyJWT with no leeway,
validating the real OpenID provider's tokens (node-oidc-provider, its JWKS over HTTPS) in front of
the Anthropic upstream.

gatekey runs as the app runs it (the installed executable, no arguments, stdin closed, each
context); the request the app would build from its stdout then goes through the gateway:
``GET /v1/models``, a streamed ``POST /v1/messages`` (text, then tool use). The profiles are the
README's recipes (tests/support/gateways/recipes/jwt-gateway-*.toml) with the live peers' values.
The gateway's routes (one process for the module) are the gateway configurations an admin would
write: the plain API, one that requires a scope the tokens lack, one for another API (audience),
one taking bearer tokens only, and one per other issuer (the Entra-style one, and one issuing
36-second tokens).

This machine's trust store for gatekey is SSL_CERT_FILE, the test CA (as on a machine that
trusts the company CA), so the recipes need no ca_bundle. Tokens are compared, never printed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import SILENT_CONTEXTS, Env, Result, exe
from claude_managed import doctor_lines, write_managed_settings
from gateways import app_client, recipes
from gateways.jwt_gateway import JwtGateway, missing
from gateways.upstream import MODEL, AnthropicUpstream
from hygiene import Recorder
from idp_helpers import claims, device_sign_in
from oidc_peer import API_AUDIENCE, CONF_CLIENT, ENTRA_TENANT, PUBLIC_CLIENT, OidcProvider
from oidc_peer import missing_tools as oidc_missing

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

UPSTREAM_KEY = "upstream-key-jwt-gw-9e41"
SECRET_ENV = "GATEWAY_CLIENT_SECRET"
OTHER_API = "https://other-api.example.test"
REALM = 'Bearer realm="llm-gateway"'
# The short-lived issuer's token lifetime: the silent deadline its test sets (SHORT_SILENT: a fetch
# may take that long on a busy machine) + the 30 s gatekey never serves a token within + 1 s of
# claim rounding. The test waits about SHORT_TTL - 30 s for the token to enter those 30 s.
SHORT_SILENT = 5
SHORT_TTL = SHORT_SILENT + 30 + 1
JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
EXPIRY_MARGIN = 30  # helpers/gatekey/token.py: a cached token with this little left is expired


# --- peers --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_provider(
    oidc_tls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    """A provider whose access tokens live SHORT_TTL seconds."""
    lacking = oidc_missing()
    assert not lacking, f"{lacking} not installed; run scripts/test.sh (it installs them)"
    with OidcProvider(
        oidc_tls, tmp_path_factory.mktemp("short-provider"), {"AT_TTL": str(SHORT_TTL)}
    ) as op:
        yield op


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[UPSTREAM_KEY]) as peer:
        yield peer


@pytest.fixture(scope="module")
def gateway(
    oidc_tls: dict[str, str],
    oidc_provider: OidcProvider,
    entra_provider: OidcProvider,
    short_provider: OidcProvider,
    upstream: AnthropicUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JwtGateway]:
    lacking = missing()
    assert lacking is None, f"{lacking} is not installed; run scripts/test.sh (test extras)"
    api = {"issuer": oidc_provider.issuer, "audience": API_AUDIENCE}
    routes = [
        dict(api, prefix="", schemes=["bearer", "x-api-key"]),
        dict(api, prefix="/scoped", scope="api.read", schemes=["bearer", "x-api-key"]),
        dict(api, prefix="/write", scope="api.write", schemes=["bearer", "x-api-key"]),
        dict(api, prefix="/other-api", audience=OTHER_API, schemes=["bearer", "x-api-key"]),
        dict(api, prefix="/bearer-only", schemes=["bearer"]),
        {"prefix": "/entra", "issuer": entra_provider.issuer, "audience": API_AUDIENCE},
        dict(api, prefix="/short", issuer=short_provider.issuer, schemes=["x-api-key"]),
    ]
    config = {"ca": oidc_tls["ca"], "tls": oidc_tls, "upstream": upstream.url, "routes": routes}
    workdir = tmp_path_factory.mktemp("jwt-gateway")
    with JwtGateway(config, workdir, upstream_key=UPSTREAM_KEY) as gw:
        yield gw


@pytest.fixture
def env(gk: Env, oidc_tls: dict[str, str], secret_hygiene: Recorder) -> Env:
    """gk trusting the test CA as this machine's own."""
    gk.vars["SSL_CERT_FILE"] = oidc_tls["ca"]
    gk.vars[SECRET_ENV] = CONF_CLIENT[1]
    secret_hygiene.register(UPSTREAM_KEY, "the gateway's upstream key")
    return gk


# --- profiles (the README's recipes) --------------------------------------------------------------
def people(op: OidcProvider) -> str:
    return recipes.recipe(
        "jwt-gateway-oidc",
        {
            "https://login.example.com/oauth2/default": op.issuer,
            "0oa-gateway-public": PUBLIC_CLIENT,
            '"gateway.use"': '"api.read"',
        },
    )


def entra_service(op: OidcProvider) -> str:
    return recipes.recipe(
        "jwt-gateway-entra",
        {
            "contoso.onmicrosoft.com": ENTRA_TENANT,
            "https://login.microsoftonline.com": op.origin,
            "22222222-3333-4444-5555-666666666666": CONF_CLIENT[0],
            "api://llm-gateway": API_AUDIENCE,
        },
    )


def x_api_key_service(op: OidcProvider) -> str:
    return recipes.recipe(
        "jwt-gateway-x-api-key",
        {
            "https://login.example.com/oauth2/default": op.issuer,
            '"llm-batch"': f'"{CONF_CLIENT[0]}"',
            '"gateway.use"': '"api.read"',
        },
    )


# --- Claude's configuration (from gatekey mdm), gatekey run as the app, the app's requests -------
def claude_config(gk: Env, url: str, *mdm_args: str) -> dict[str, str]:
    """Claude's managed settings as ``gatekey mdm --format linux-json`` writes them for the
    gateway at ``url``, installed where this test's gatekey (doctor) reads them."""
    out = gk.root / "managed-settings.json"
    r = gk.run(
        "mdm", "--format", "linux-json", "--gateway-url", url, "--helper", exe(), "-o", str(out),
        *mdm_args,
    )  # fmt: skip
    assert r.code == 0, r.err
    values: dict[str, str] = json.loads(out.read_text())
    write_managed_settings(gk, values)
    return values


def app_request_headers(claude: dict[str, str], r: Result) -> dict[str, str]:
    """The headers Claude sends with the helper's stdout ``r``, as its settings say."""
    return app_client.app_headers(
        r.stdout,
        scheme=claude["inferenceGatewayAuthScheme"],
        custom=json.loads(claude.get("inferenceCustomHeaders") or "{}"),
    )


def helper_runs(gk: Env, contexts: tuple[str, ...] = SILENT_CONTEXTS) -> list[Result]:
    """gatekey with no arguments in each context: exit 0, one payload, nothing on stderr."""
    results = []
    for ctx in contexts:
        r = gk.run(context=ctx)
        assert r.code == 0, f"{ctx}: exit {r.code}: {r.err}"
        assert r.err == "", f"{ctx}: {r.err}"
        one_line = r.stdout.endswith(b"\n") and r.stdout.count(b"\n") == 1
        assert one_line, f"{ctx}: not one line ({len(r.stdout)} bytes)"  # described, not shown
        results.append(r)
    return results


def bare_token(r: Result) -> str:
    text = r.out[:-1]
    is_jwt = JWT.fullmatch(text) is not None
    assert is_jwt, f"not a bare JWT ({len(text)} characters)"
    return text


def through(gw: JwtGateway, headers: dict[str, str], prefix: str = "") -> None:
    """The app's three calls through the gateway all succeed."""
    listed = app_client.models(gw.url(prefix), headers, ca=gw.ca)
    assert listed.status == 200, gw.log()
    assert [m["id"] for m in listed.json()["data"]] == [MODEL]  # type: ignore[index]
    text = app_client.stream_message(gw.url(prefix), headers, model=MODEL, ca=gw.ca)
    assert text.status == 200, gw.log()
    assert text.event_names == app_client.COMPLETE_STREAM
    assert text.text == "pong"
    tool = app_client.stream_message(gw.url(prefix), headers, model=MODEL, tools=True, ca=gw.ca)
    assert tool.event_names == app_client.COMPLETE_STREAM, gw.log()
    assert tool.tool_input == {"city": "Paris"}


def refused(gw: JwtGateway, headers: dict[str, str], prefix: str = "") -> app_client.Answer:
    """A refused call: the gateway never reached the upstream with it."""
    answer = app_client.models(gw.url(prefix), headers, ca=gw.ca)
    assert answer.status in (400, 401, 403), (answer.status, gw.log())
    return answer


def doctor(gk: Env, url: str) -> tuple[int, str]:
    """``gatekey doctor --gateway-url URL`` with Claude's settings from ``claude_config``: its
    exit code and the gateway check's verdict (the advice texts are not pinned here)."""
    r = gk.run("doctor", "--gateway-url", url)
    lines = doctor_lines(r)
    assert "gateway" in lines, r.out + r.err
    others = {name: v for name, (v, _) in lines.items() if name != "gateway"}
    assert "FAIL" not in others.values(), r.out
    return r.code, lines["gateway"][0]


def challenge(answer: app_client.Answer) -> str:
    return answer.headers.get("www-authenticate", "")


# --- people: a signed-in public client ------------------------------------------------------------
def test_people_sign_in_once_then_every_context_gets_through(
    env: Env,
    secret_service: Env,
    oidc_provider: OidcProvider,
    gateway: JwtGateway,
    upstream: AnthropicUpstream,
) -> None:
    env.write_config(people(oidc_provider))
    claude = claude_config(env, gateway.url(), "--header", "X-Org=eng")
    assert claude["inferenceGatewayAuthScheme"] == "bearer"
    assert claude["inferenceCredentialHelperTtlSec"] == "1800"
    signed_in = device_sign_in(env, oidc_provider, ("login",))
    assert signed_in.code == 0, signed_in.err
    for r in helper_runs(env, ("interactive", *SILENT_CONTEXTS)):
        payload = json.loads(r.stdout)
        assert set(payload) == {"token", "headers"}
        assert payload["headers"] == {"X-User": "alice"}
        token = payload["token"]
        held = claims(token)
        assert held["sub"] == "alice"
        headers = app_request_headers(claude, r)
        sent_token = headers["Authorization"] == f"Bearer {token}"
        assert sent_token, "the app would not send the printed token as a bearer token"
        through(gateway, headers)
        assert upstream.saw("x-user", "alice")  # the helper's header, through the gateway
        assert upstream.saw("x-org", "eng")  # and the admin's static one
        assert upstream.saw("x-gateway-subject", "alice")
        assert upstream.saw("x-api-key", UPSTREAM_KEY)  # the caller's token stays at the gateway
    assert doctor(env, gateway.url()) == (0, "OK")
    probe = env.run("doctor", "--gateway-url", gateway.url(), "--probe-messages")
    verdict, _ = doctor_lines(probe)["messages"]
    assert (verdict, probe.code) == ("OK", 0), probe.out + probe.err
    assert upstream.saw("x-user", "alice")  # the probe sends the helper's headers too


# --- services: client credentials, both schemes ---------------------------------------------------
def test_an_entra_service_gets_through_with_a_bearer_token(
    env: Env, entra_provider: OidcProvider, gateway: JwtGateway
) -> None:
    env.write_config(entra_service(entra_provider))
    claude = claude_config(env, gateway.url("/entra"))
    first, *rest = helper_runs(env)
    token = bare_token(first)
    held = claims(token)
    assert held["iss"] == entra_provider.issuer
    for r in rest:
        through(gateway, app_request_headers(claude, r), "/entra")
    # The same token in x-api-key: this route takes bearer tokens only, so nothing to check.
    answer = refused(gateway, app_client.app_headers(first.stdout, scheme="x-api-key"), "/entra")
    assert (answer.status, challenge(answer)) == (401, REALM)
    assert doctor(env, gateway.url("/entra")) == (0, "OK")


def test_a_service_sends_its_token_as_x_api_key(
    env: Env, oidc_provider: OidcProvider, gateway: JwtGateway, upstream: AnthropicUpstream
) -> None:
    env.write_config(x_api_key_service(oidc_provider))
    claude = claude_config(env, gateway.url())
    assert claude["inferenceGatewayAuthScheme"] == "x-api-key"  # from the profile
    for r in helper_runs(env):
        headers = app_request_headers(claude, r)
        assert set(headers) == {"x-api-key"}
        through(gateway, headers)
        through(gateway, headers, "/scoped")  # the scope it requires, the token holds
        assert upstream.saw("x-gateway-subject", CONF_CLIENT[0])
    assert doctor(env, gateway.url()) == (0, "OK")
    # A gateway that takes bearer tokens only: doctor (sending x-api-key, as the profile says)
    # sees the refusal Claude would.
    answer = refused(gateway, headers, "/bearer-only")
    assert (answer.status, challenge(answer)) == (401, REALM)
    assert doctor(env, gateway.url("/bearer-only")) == (1, "FAIL")
    # The same token as a bearer token there (mdm --auth-scheme bearer) is accepted.
    claude = claude_config(env, gateway.url("/bearer-only"), "--auth-scheme", "bearer")
    through(gateway, app_request_headers(claude, r), "/bearer-only")


# --- refusals the gateway must make, and doctor must report --------------------------------------
def test_a_scope_the_token_lacks_is_refused_with_insufficient_scope(
    env: Env, oidc_provider: OidcProvider, gateway: JwtGateway
) -> None:
    env.write_config(x_api_key_service(oidc_provider))
    claude = claude_config(env, gateway.url("/write"))
    [r] = helper_runs(env, ("background",))
    answer = refused(gateway, app_request_headers(claude, r), "/write")
    assert answer.status == 403
    assert challenge(answer) == (
        f'{REALM}, error="insufficient_scope", '
        'error_description="the token lacks scope api.write", scope="api.write"'
    )
    assert doctor(env, gateway.url("/write")) == (1, "FAIL")


def test_a_token_for_another_api_is_refused_with_invalid_token(
    env: Env, oidc_provider: OidcProvider, gateway: JwtGateway
) -> None:
    env.write_config(x_api_key_service(oidc_provider))
    claude = claude_config(env, gateway.url("/other-api"))
    [r] = helper_runs(env, ("background",))
    answer = refused(gateway, app_request_headers(claude, r), "/other-api")
    assert answer.status == 401
    assert challenge(answer) == (
        f'{REALM}, error="invalid_token", error_description="the token\'s audience is not this API"'
    )
    assert doctor(env, gateway.url("/other-api")) == (1, "FAIL")


def test_a_missing_or_tampered_credential_is_refused(
    env: Env, oidc_provider: OidcProvider, gateway: JwtGateway, upstream: AnthropicUpstream
) -> None:
    env.write_config(x_api_key_service(oidc_provider))
    [r] = helper_runs(env, ("background",))
    token = bare_token(r)
    before = len(upstream.seen)
    answer = refused(gateway, {})
    assert (answer.status, challenge(answer)) == (401, REALM)
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[::-1]}"
    answer = refused(gateway, {"x-api-key": forged})
    assert answer.status == 401
    assert 'error="invalid_token"' in challenge(answer)
    assert len(upstream.seen) == before


# --- lifetimes: never a token the gateway would find expired ------------------------------------
def test_a_short_lived_token_is_replaced_before_the_gateway_would_refuse_it(
    env: Env, short_provider: OidcProvider, gateway: JwtGateway
) -> None:
    env.write_config(
        x_api_key_service(short_provider) + f'\n[timeouts]\nsilent = "{SHORT_SILENT}s"\n'
    )
    first = env.run(context="background")
    assert first.code == 0, first.err
    old = bare_token(first)
    old_exp = int(claims(old)["exp"])  # tokens go into no assertion: only what they decide
    # Shorter than min_ttl: printed with one warning (which TTL would work), and cached.
    assert len(first.err.splitlines()) == 1, first.err
    through(gateway, app_client.app_headers(first.stdout, scheme="x-api-key"), "/short")
    # gatekey's expiry is the exp claim's (to within the rounding helpers/gatekey/clocks.py
    # tolerates: ROUNDING, 2 s), never a later receipt + expires_in.
    entry = json.loads(Path(env.entry_path()).read_text())
    assert entry["expires_at"] <= old_exp + 2, "gatekey believes the token past its exp claim"
    hit = env.run(context="background")
    assert hit.code == 0, hit.err
    served_again = hit.stdout == first.stdout
    assert served_again, "while it has time left, the cached token is printed"
    # Once it is within 30 s of its exp (a gateway with no leeway would refuse it soon, while
    # Claude still holds it), no context is served it again.
    time.sleep(max(0.0, old_exp - EXPIRY_MARGIN + 1 - time.time()))
    for ctx in SILENT_CONTEXTS:
        r = env.run(context=ctx)
        assert r.code == 0, f"{ctx}: {r.err}"
        new = bare_token(r)
        renewed = new != old
        assert renewed, f"{ctx}: the cache served a token within {EXPIRY_MARGIN} s of its exp"
        new_exp = int(claims(new)["exp"])
        assert new_exp - time.time() > EXPIRY_MARGIN
        through(gateway, app_client.app_headers(r.stdout, scheme="x-api-key"), "/short")
