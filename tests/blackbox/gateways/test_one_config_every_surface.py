"""Issue 17's "done when": ONE config with ONE IdP profile serves every credential a managed
Claude asks for, each surface through its own executable, each run as the app runs it.

The profile is the README's recipe (tests/support/gateways/recipes/every-surface.toml): the real
OpenID provider (node-oidc-provider), a person signed in once with the device code, the refresh
token in the real Secret Service. The recipe's ``gatekey wrap`` lines are run as written (only the
directory differs) and give one wrapper per surface. Everything sits behind the JWT gateway
(jwt_gateway.py: PyJWT, no leeway, the provider's JWKS), one route per surface:

- inference: gatekey itself (``inferenceCredentialHelper``), each CLAUDE_HELPER_CONTEXT, and the
  app's ``GET /v1/models`` and streamed ``POST /v1/messages`` to the Anthropic upstream;
- two MCP servers (``managedMcpServers[].headersHelper``): real ``mcp`` SDK servers over
  streamable HTTP, reached by the app-like MCP client (mcp_client.py: no arguments, no
  CLAUDE_HELPER_CONTEXT, stdin closed, 30 s; the flat header map; one retry on 401/403);
- telemetry (``otlpHeadersHelper``): an OTLP/HTTP export, protobuf traces and JSON metrics, to a
  receiver (otlp_peer.py);
- the plugin marketplace (``credentialHelper``): git-credential lines, parsed as the surface
  does, the token then fetching the catalogue (marketplace_peer.py).

Tokens are compared, never printed.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, Env, exe
from gateways import app_client, marketplace_peer, mcp_client, otlp_peer, recipes
from gateways.jwt_gateway import JwtGateway
from gateways.jwt_gateway import missing as gateway_missing
from gateways.marketplace_peer import CATALOGUE, Marketplace
from gateways.mcp_peer import McpServer
from gateways.mcp_peer import missing as mcp_missing
from gateways.otlp_peer import OtlpReceiver
from gateways.sibling_helpers import MCP_LIMIT_S, header_map, marketplace_credential, run_helper
from gateways.upstream import MODEL, AnthropicUpstream
from hygiene import Recorder
from idp_helpers import DEVICE_URL, device_sign_in
from oidc_peer import API_AUDIENCE, PUBLIC_CLIENT, OidcProvider

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

UPSTREAM_KEY = "upstream-key-every-surface-5e20"
RECIPE = "every-surface"
EXAMPLE_BIN = "/opt/gatekey/bin"
WRAP_LINE = re.compile(r"^# sudo gatekey (wrap .+)$", re.M)
MCP_SERVERS = ("docs", "tickets")
SURFACES = ("marketplace", "mcp-docs", "mcp-tickets", "otlp")  # the wrappers: gatekey-<surface>
OTHER_API = "https://other-api.example.test"
GIT_USERNAME = "x-access-token"  # gatekey's git_username default (README)


# --- peers --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mcp_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, McpServer]]:
    assert mcp_missing() is None, f"{mcp_missing()} missing: run scripts/test.sh (test extras)"
    servers: dict[str, McpServer] = {}
    try:
        for name in MCP_SERVERS:
            workdir = tmp_path_factory.mktemp(f"mcp-{name}")
            servers[name] = McpServer({"name": name}, workdir, gateway_key=UPSTREAM_KEY)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[UPSTREAM_KEY]) as peer:
        yield peer


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(gateway_key=UPSTREAM_KEY) as peer:
        yield peer


@pytest.fixture(scope="module")
def market() -> Iterator[Marketplace]:
    with Marketplace(gateway_key=UPSTREAM_KEY) as peer:
        yield peer


@pytest.fixture(scope="module")
def gateway(
    oidc_tls: dict[str, str],
    oidc_provider: OidcProvider,
    upstream: AnthropicUpstream,
    mcp_servers: dict[str, McpServer],
    receiver: OtlpReceiver,
    market: Marketplace,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JwtGateway]:
    """One gateway, one API (issuer and audience), a route per surface."""
    assert gateway_missing() is None, f"{gateway_missing()} missing: run scripts/test.sh"
    api = {"issuer": oidc_provider.issuer, "audience": API_AUDIENCE}
    routes = [
        dict(api, prefix=""),  # inference, to the Anthropic upstream
        *(dict(api, prefix=f"/mcp/{n}", upstream=s.url) for n, s in mcp_servers.items()),
        # an MCP server behind another API: the token is for this one, so 401
        dict(api, prefix="/mcp/elsewhere", audience=OTHER_API, upstream=mcp_servers["docs"].url),
        dict(api, prefix="/otlp", upstream=receiver.url),
        dict(api, prefix="/plugins", upstream=market.url),
    ]
    config = {"ca": oidc_tls["ca"], "tls": oidc_tls, "upstream": upstream.url, "routes": routes}
    with JwtGateway(
        config, tmp_path_factory.mktemp("jwt-gateway"), upstream_key=UPSTREAM_KEY
    ) as gw:
        yield gw


@pytest.fixture
def env(secret_service: Env, oidc_tls: dict[str, str], secret_hygiene: Recorder) -> Env:
    """gk with the real Secret Service, trusting the test CA as this machine's own."""
    secret_service.vars["SSL_CERT_FILE"] = oidc_tls["ca"]
    secret_hygiene.register(UPSTREAM_KEY, "the gateway's upstream key")
    return secret_service


# --- the admin's part: the recipe and its wrappers -----------------------------------------------
def install(env: Env, op: OidcProvider) -> dict[str, str]:
    """The recipe as this machine's config, and its ``gatekey wrap`` lines run as written (in
    the test's own bin directory): the wrapper paths by name."""
    bin_dir = env.root / "bin"
    bin_dir.mkdir(mode=0o755)
    text = recipes.recipe(
        RECIPE,
        {
            "https://login.example.com/oauth2/default": op.issuer,
            "0oa-gateway-public": PUBLIC_CLIENT,
            '"gateway.use"': '"api.read"',
            EXAMPLE_BIN: str(bin_dir),
        },
    )
    env.write_config(text)
    wrappers = {}
    for line in WRAP_LINE.findall(text):
        args = shlex.split(line)
        r = env.run(*args)
        assert r.code == 0, f"gatekey {line}: {r.err}"
        path = Path(args[args.index("-o") + 1])
        wrappers[path.name] = str(path)
    assert sorted(wrappers) == [f"gatekey-{s}" for s in SURFACES]
    return wrappers


# --- the app's part ----------------------------------------------------------------------------
def inference(env: Env, gw: JwtGateway, upstream: AnthropicUpstream) -> str:
    """gatekey with no arguments in every context, and the app's calls with what it printed
    (through the gateway): the token, the same in each run."""
    claude = env.root / "managed-settings.json"  # Claude's inference keys, as mdm writes them
    r = env.run(
        "mdm", "--format", "linux-json", "--gateway-url", gw.url(), "--helper", exe(),
        "-o", str(claude),
    )  # fmt: skip
    assert r.code == 0, r.err
    keys = json.loads(claude.read_text())
    assert keys["inferenceCredentialHelperTtlSec"] == "1800"  # the recipe's min_ttl allows it
    tokens = set()
    for ctx in CONTEXTS:
        r = env.run(context=ctx)
        assert (r.code, r.err) == (0, ""), f"{ctx}: exit {r.code}: {r.err}"
        payload = json.loads(r.stdout)
        assert payload["headers"] == {"X-User": "alice"}, ctx
        tokens.add(payload["token"])
        headers = app_client.app_headers(r.stdout, scheme=keys["inferenceGatewayAuthScheme"])
        listed = app_client.models(gw.url(), headers, ca=gw.ca)
        assert listed.status == 200, gw.log()
        answer = app_client.stream_message(gw.url(), headers, model=MODEL, ca=gw.ca)
        assert answer.event_names == app_client.COMPLETE_STREAM, gw.log()
        assert upstream.saw("x-gateway-subject", "alice")
        assert upstream.saw("x-user", "alice")
    assert len(tokens) == 1, "the contexts were served different tokens"
    return tokens.pop()


def assert_mcp_servers_reached(env: Env, gw: JwtGateway, wrappers: dict[str, str]) -> list[str]:
    """Each MCP server through its own wrapper, as the app's MCP client uses it: one helper
    run, accepted at once. The bearer tokens the wrappers printed, in order."""
    tokens = []
    for name in MCP_SERVERS:
        outcome = mcp_client.use_server(
            wrappers[f"gatekey-mcp-{name}"], gw.url(f"/mcp/{name}/mcp"), env.vars, ca=gw.ca
        )
        assert outcome.helper_error == "", (name, [run.err for run in outcome.runs])
        [run] = outcome.runs  # accepted the first time: no retry was needed
        assert (run.code, run.stderr) == (0, b""), (name, run.err)
        assert run.elapsed < MCP_LIMIT_S, name
        headers = header_map(run.stdout)
        assert sorted(headers) == ["Authorization", "X-User"], name
        assert headers["X-User"] == "alice"
        assert headers["Authorization"].startswith("Bearer "), name
        tokens.append(headers["Authorization"][len("Bearer ") :])
        assert outcome.ok, (name, outcome.last.error, gw.log())
        assert outcome.last.tools == ["whoami"]
        # the server behind the gateway: whose token the gateway accepted, the helper's header
        assert outcome.last.answer == {"server": name, "subject": "alice", "user": "alice"}
    return tokens


def test_one_sign_in_serves_inference_two_mcp_servers_telemetry_and_the_marketplace(
    env: Env,
    oidc_provider: OidcProvider,
    gateway: JwtGateway,
    upstream: AnthropicUpstream,
    receiver: OtlpReceiver,
    market: Marketplace,
    secret_hygiene: Recorder,
) -> None:
    wrappers = install(env, oidc_provider)
    signed_in = device_sign_in(env, oidc_provider, ("login",))
    assert signed_in.code == 0, signed_in.err
    token = inference(env, gateway, upstream)
    secret_hygiene.register(token, "the access token")

    mcp_tokens = assert_mcp_servers_reached(env, gateway, wrappers)

    exported = otlp_peer.exporter_run(
        wrappers["gatekey-otlp"], gateway.url("/otlp"), env.vars, ca=gateway.ca
    )
    assert exported.helper_error == "", exported.run.err
    assert (exported.run.code, exported.run.stderr) == (0, b""), exported.run.err
    assert exported.statuses == [200, 200], gateway.log()
    otlp_headers = header_map(exported.run.stdout)
    assert otlp_headers["X-User"] == "alice"
    for signal in ("traces", "metrics"):
        assert receiver.saw("x-gateway-subject", "alice", signal=signal)
        assert receiver.saw("x-user", "alice", signal=signal)

    fetched = marketplace_peer.fetch_catalogue(
        wrappers["gatekey-marketplace"],
        gateway.url("/plugins/marketplace.json"),
        env.vars,
        ca=gateway.ca,
    )
    assert fetched.helper_error == "", fetched.run.err
    assert (fetched.run.code, fetched.run.stderr) == (0, b""), fetched.run.err
    assert fetched.status == 200, gateway.log()
    assert fetched.catalogue == CATALOGUE
    assert fetched.username == GIT_USERNAME
    assert market.saw("x-gateway-subject", "alice")

    # One sign-in, one cached token: every surface was served the very token inference got.
    served = [
        *mcp_tokens,
        otlp_headers["Authorization"][len("Bearer ") :],
        marketplace_credential(fetched.run.stdout)[1],
    ]
    same = all(t == token for t in served)
    assert same, "a surface was served another token than the inference helper's"

    # A server that refuses the token (another API's route): the app runs the wrapper once more
    # and retries once; gatekey answers both runs silently from its cache, and that is all.
    refused = mcp_client.use_server(
        wrappers["gatekey-mcp-docs"], gateway.url("/mcp/elsewhere/mcp"), env.vars, ca=gateway.ca
    )
    assert [(run.code, run.stderr) for run in refused.runs] == [(0, b""), (0, b"")]
    assert [a.statuses for a in refused.attempts] == [[("POST", 401)], [("POST", 401)]]
    assert not refused.ok


def test_before_anyone_signs_in_no_surface_prompts_or_waits(
    env: Env, oidc_provider: OidcProvider
) -> None:
    """The sibling helpers run with no CLAUDE_HELPER_CONTEXT and no terminal: nobody to show a
    device code to. Each wrapper fails at once, one line on stderr, nothing on stdout."""
    wrappers = install(env, oidc_provider)
    for name, path in sorted(wrappers.items()):
        run = run_helper(path, env.vars)
        assert run.code is not None, f"{name}: still running at the {MCP_LIMIT_S:g} s limit"
        assert run.code == 4, (name, run.code, run.err)  # InteractionRequired (README)
        assert run.stdout == b"", name
        assert run.err.startswith("gatekey: "), (name, run.err)
        assert run.err.count("\n") == 1, (name, run.err)
        assert DEVICE_URL.search(run.err) is None, (name, run.err)
