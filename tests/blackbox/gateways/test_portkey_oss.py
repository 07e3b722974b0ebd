"""gatekey's output through Portkey's open-source AI gateway (npm @portkey-ai/gateway 1.15.2).

One real gateway per module (support/gateways/portkey_peer.py: on 127.0.0.1 only, its own
process group), in front of the Anthropic Messages upstream (support/gateways/upstream.py) as its
custom host. gatekey runs as the app runs it (no arguments, stdin closed, each context), and the
requests the app would build from its stdout (support/gateways/app_client.py) go through Portkey:
the model list, a streamed answer, a streamed tool_use, with the credential as a bearer token and
as x-api-key.

What Portkey does, and so what is asserted:
- It authenticates nobody. It forwards the caller's credential to the provider it is told
  (``x-portkey-provider``) at ``x-portkey-custom-host``, as ``x-api-key`` for Anthropic, so a wrong
  key is refused by the upstream and Portkey relays the 401.
- It does not forward ``x-portkey-*`` headers upstream. That the metadata header built from the
  token's claims arrived is shown where Portkey hands it on: its ``default.webhook`` guardrail,
  enabled by a test-only ``x-portkey-config`` the app sends as a static header, posts the parsed
  ``metadata`` (never the request's headers) to a local receiver.

The profiles are the README's recipes (support/gateways/recipes/portkey-oss-*.toml) with the
live peers' addresses; the Claude keys come from ``gatekey mdm`` for that profile. Secrets are
compared, never printed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import CONTEXTS, Env, Result
from claude_managed import doctor_lines, write_managed_settings
from gateways import app_client, recipes
from gateways.app_client import COMPLETE_STREAM, Answer
from gateways.portkey_peer import HookReceiver, PortkeyGateway, listeners, missing
from gateways.upstream import MODEL, AnthropicUpstream
from hygiene import Recorder
from idp_helpers import claims, device_sign_in
from oidc_peer import PUBLIC_CLIENT, OidcProvider

pytestmark = pytest.mark.blackbox

# Distinctive, so any piece of them in an output is a leak.
PROVIDER_KEY = "sk-ant-pk-Hq3vZ8wN2mX7cR4tY9bL6dF1"
WRONG_KEY = "sk-ant-pk-Wr0ngK3yJ5sP8uE2gA7nV4xM"
UPSTREAM_PATH = "/v1"
README_GATEWAY = "https://portkey.example.com"  # the README's base URL in `gatekey mdm`
README_UPSTREAM = "https://anthropic-proxy.example.com/v1"
MANAGED = "etc/claude-desktop/managed-settings.json"  # under GATEKEY_MANAGED_ROOT


# --- the peers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def portkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortkeyGateway]:
    why = missing()
    if why:
        pytest.fail(why)
    gateway = PortkeyGateway(tmp_path_factory.mktemp("portkey"))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    """The provider behind Portkey: accepts only PROVIDER_KEY."""
    with AnthropicUpstream(keys=[PROVIDER_KEY]) as server:
        yield server


@pytest.fixture(scope="module")
def hook() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


@pytest.fixture
def keychain_user(
    secret_service: Env, secret_hygiene: Recorder, upstream: AnthropicUpstream
) -> Env:
    """The keychain recipe against the live upstream, PROVIDER_KEY stored in the real Secret
    Service, and Claude's managed settings as `gatekey mdm` writes them for that profile."""
    gk = secret_service
    for key in (PROVIDER_KEY, WRONG_KEY):
        secret_hygiene.register(key, "a provider key")
    gk.write_config(
        recipes.recipe("portkey-oss-keychain", {README_UPSTREAM: upstream.url + UPSTREAM_PATH})
    )
    stored = gk.run("store", "-p", "portkey", stdin=PROVIDER_KEY.encode())
    assert stored.code == 0, stored.err
    claude_settings(gk, "portkey")
    return gk


def claude_settings(gk: Env, profile: str, *options: str) -> dict[str, str]:
    """`gatekey mdm --format linux-json` for ``profile`` (the README's lines, plus
    ``options``), installed as Claude's managed settings of this test (never the machine's
    /etc)."""
    r = gk.run(
        "mdm", "--format", "linux-json", "-p", profile, "--gateway-url", README_GATEWAY, *options
    )
    assert r.code == 0, r.err
    settings: dict[str, str] = json.loads(r.stdout)
    assert settings["inferenceGatewayBaseUrl"] == README_GATEWAY
    assert settings["inferenceCredentialKind"] == "helper-script"
    write_managed_settings(gk, settings)
    return settings


def app_headers(gk: Env, r: Result, **extra: str) -> dict[str, str]:
    """The headers the app sends for run ``r``'s stdout, with the managed settings mdm wrote
    (scheme, static headers) plus ``extra`` static headers."""
    settings = json.loads((Path(gk.vars["GATEKEY_MANAGED_ROOT"]) / MANAGED).read_text())
    custom = json.loads(settings.get("inferenceCustomHeaders") or "{}")
    custom.update(extra)
    return app_client.app_headers(
        r.stdout, scheme=settings["inferenceGatewayAuthScheme"], custom=custom
    )


def expect(answer: Answer, status: int, gateway: PortkeyGateway, *secrets: str) -> None:
    """``answer`` has ``status``; else the body and Portkey's log, with the secrets hidden."""
    if answer.status == status:
        return
    body = answer.body[:2000].decode("utf-8", "replace")
    for secret in (PROVIDER_KEY, WRONG_KEY, *secrets):
        body = body.replace(secret, "[secret]")
    log = gateway.log_tail([PROVIDER_KEY, WRONG_KEY, *secrets])
    pytest.fail(f"expected {status}, got {answer.status}: {body}\nPortkey's log:\n{log}")


def helper_run(gk: Env, context: str) -> Result:
    """gatekey as the app runs it: no arguments, stdin closed, ``context``."""
    r = gk.run(context=context)
    assert r.code == 0, f"{context}: exit {r.code}: {r.err}"
    assert "Traceback" not in r.err
    return r


def streams_through(
    portkey: PortkeyGateway, headers: dict[str, str], *secrets: str
) -> tuple[Answer, Answer]:
    """A streamed text answer and a streamed tool_use, both complete, through Portkey."""
    text = app_client.stream_message(portkey.url, headers, model=MODEL)
    expect(text, 200, portkey, *secrets)
    assert text.event_names == COMPLETE_STREAM
    assert text.text == "pong"
    tool = app_client.stream_message(portkey.url, headers, model=MODEL, tools=True)
    expect(tool, 200, portkey, *secrets)
    assert tool.event_names == COMPLETE_STREAM
    assert tool.tool_input == {"city": "Paris"}
    return text, tool


# --- the peer itself --------------------------------------------------------------------------
def test_portkey_listens_on_127_0_0_1_only(portkey: PortkeyGateway) -> None:
    # Where the process listens, read from the kernel: every listening socket it has.
    assert portkey.listening() == [("127.0.0.1", portkey.port)]
    # Not reachable on this machine's other addresses (when it has any).
    for address in other_addresses():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            assert s.connect_ex((address, portkey.port)) != 0, f"reachable on {address}"


def test_the_listen_check_would_see_every_interface() -> None:
    # The /proc reader the test above relies on, on a listener bound to every interface
    # (0.0.0.0:8787, Portkey's default) and on one bound to 127.0.0.1, as the kernel writes them.
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 00000000:2253 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
        "       0 4242 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:2253 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
        "       0 4343 1 0000000000000000 100 0 0 10 0\n"
    )
    every_interface = "0.0.0.0"  # noqa: S104 - what the reader must recognise, not a bind
    assert listeners(table) == [(every_interface, 8787, "4242"), ("127.0.0.1", 8787, "4343")]


def other_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (from a UDP socket's route; none if
    it has no route)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by a UDP connect
            found.append(s.getsockname()[0])
        except OSError:
            pass
    return [a for a in found if not a.startswith("127.")]


# --- the keychain recipe: the provider key, routing headers -----------------------------------
@pytest.mark.keychain
def test_the_keychain_recipe_works_through_portkey_in_every_context(
    keychain_user: Env, portkey: PortkeyGateway, upstream: AnthropicUpstream
) -> None:
    gk = keychain_user
    expected = {
        "token": PROVIDER_KEY,
        "headers": {
            "x-portkey-provider": "anthropic",
            "x-portkey-custom-host": upstream.url + UPSTREAM_PATH,
        },
    }
    for context in CONTEXTS:
        r = helper_run(gk, context)
        assert r.stdout == (json.dumps(expected) + "\n").encode(), f"{context}: not the payload"
        assert r.err == ""
        text = app_client.stream_message(portkey.url, app_headers(gk, r), model=MODEL)
        expect(text, 200, portkey)
        assert text.text == "pong", context
        assert upstream.saw("x-api-key", PROVIDER_KEY), f"{context}: the key did not arrive"


@pytest.mark.keychain
@pytest.mark.parametrize("scheme", ["bearer", "x-api-key"])
def test_models_text_and_tool_use_through_portkey_with_either_scheme(
    keychain_user: Env, portkey: PortkeyGateway, upstream: AnthropicUpstream, scheme: str
) -> None:
    gk = keychain_user
    settings = claude_settings(gk, "portkey", "--auth-scheme", scheme)
    assert settings["inferenceGatewayAuthScheme"] == scheme
    r = helper_run(gk, "interactive")
    headers = app_headers(gk, r)
    assert ("Authorization" in headers) == (scheme == "bearer")

    listed = app_client.models(portkey.url, headers)
    expect(listed, 200, portkey)
    assert [m["id"] for m in listed.json()["data"]] == [MODEL]  # type: ignore[index]
    streams_through(portkey, headers)
    # Portkey hands Anthropic the key as x-api-key, whichever scheme the app used.
    assert upstream.saw("x-api-key", PROVIDER_KEY)


@pytest.mark.keychain
def test_a_wrong_or_missing_provider_key_is_refused(
    keychain_user: Env, portkey: PortkeyGateway, upstream: AnthropicUpstream
) -> None:
    gk = keychain_user
    assert gk.run("store", "-p", "portkey", stdin=WRONG_KEY.encode()).code == 0
    r = helper_run(gk, "mid-session-refresh")
    assert json.loads(r.stdout)["token"] == WRONG_KEY
    headers = app_headers(gk, r)
    expect(app_client.models(portkey.url, headers), 401, portkey)
    refused = app_client.stream_message(portkey.url, headers, model=MODEL)
    expect(refused, 401, portkey)
    assert b"authentication_error" in refused.body
    routing_only = {k: v for k, v in headers.items() if k.lower().startswith("x-portkey-")}
    expect(app_client.stream_message(portkey.url, routing_only, model=MODEL), 401, portkey)


# --- doctor against the real gateway ----------------------------------------------------------
@pytest.mark.keychain
def test_doctor_passes_the_keychain_recipe_and_fails_a_wrong_key(
    keychain_user: Env, portkey: PortkeyGateway
) -> None:
    gk = keychain_user
    r = gk.run("doctor", "-p", "portkey", "--gateway-url", portkey.url)
    assert r.code == 0, r.out + r.err
    verdict, text = doctor_lines(r)["gateway"]
    assert verdict == "OK", text
    assert PROVIDER_KEY not in r.out + r.err
    # The opt-in inference probe streams through Portkey (with @hono/node-server 1.14.2 it
    # would answer 500 here, while the model list above still passed).
    r = gk.run("doctor", "-p", "portkey", "--gateway-url", portkey.url, "--probe-messages")
    verdict, text = doctor_lines(r)["messages"]
    assert (verdict, r.code) == ("OK", 0), r.out + r.err
    assert "message_stop" in text, text
    clock = doctor_lines(r)["clock"]  # a keychain source: compared with Portkey's Date
    assert clock[0] == "OK", clock

    assert gk.run("store", "-p", "portkey", stdin=WRONG_KEY.encode()).code == 0
    r = gk.run("doctor", "-p", "portkey", "--gateway-url", portkey.url)
    assert r.code == 1, r.out + r.err
    verdict, text = doctor_lines(r)["gateway"]
    assert verdict == "FAIL", text
    assert "401" in text
    assert WRONG_KEY not in r.out + r.err


# --- the OpenID recipe: the user's token, its claims as Portkey metadata ----------------------
@pytest.mark.oidc
def test_the_oidc_recipe_sends_the_users_claims_to_portkey_as_metadata(
    gk: Env, oidc_provider: OidcProvider, portkey: PortkeyGateway, hook: HookReceiver
) -> None:
    with AnthropicUpstream(keys=[]) as inhouse:  # accepts the user's token once it is known
        profile = recipes.recipe(
            "portkey-oss-oidc",
            {
                "https://login.example.com/oauth2/default": oidc_provider.issuer,
                '"0oa1gatekey"': f'"{PUBLIC_CLIENT}"',
                '["gateway.use"]': '["api.read"]',
                README_UPSTREAM: inhouse.url + UPSTREAM_PATH,
            },
        )
        # Test peers only: the provider's CA, the device code (no browser), a file token
        # cache, and a min_ttl below the provider's one-hour tokens.
        gk.write_config(
            profile
            + f'ca_bundle = "{oidc_provider.ca}"\nflow = "device-code"\n'
            + 'token_cache = "file"\nmin_ttl = "10m"\n'
        )
        signed_in = device_sign_in(gk, oidc_provider, ("login", "-p", "portkey-sso"))
        assert signed_in.code == 0, signed_in.err
        settings = claude_settings(gk, "portkey-sso")
        assert "inferenceCustomHeaders" not in settings  # every header comes from the helper

        for context in CONTEXTS:
            r = helper_run(gk, context)
            payload = json.loads(r.stdout)
            token = payload["token"]
            assert claims(token)["sub"] == "alice"
            assert r.stdout == (json.dumps(payload) + "\n").encode()
            assert payload["headers"] == {
                "x-portkey-provider": "anthropic",
                "x-portkey-custom-host": inhouse.url + UPSTREAM_PATH,
                "x-portkey-metadata": '{"_user": "alice"}',
            }, context
        inhouse.keys = (token,)

        before = len(hook.bodies())
        headers = app_headers(gk, r, **{"x-portkey-config": hook.config()})
        listed = app_client.models(portkey.url, headers)
        expect(listed, 200, portkey, token)
        streams_through(portkey, headers, token)
        assert inhouse.saw("x-api-key", token), "Portkey did not forward the user's token"
        seen: list[Any] = hook.bodies()[before:]
        assert len(seen) == 2, "Portkey's hook did not run once per message"
        assert [body["metadata"] for body in seen] == [{"_user": "alice"}] * 2
        assert all("headers" not in body["request"] for body in seen)

        wrong = dict(headers, Authorization=f"Bearer {printed_token_of_other(token)}")
        expect(app_client.stream_message(portkey.url, wrong, model=MODEL), 401, portkey, token)


def printed_token_of_other(token: str) -> str:
    """A token that is not the user's: the same with its signature's last character changed."""
    last = "A" if token[-1] != "A" else "B"
    return token[:-1] + last


# --- hosted Portkey's shape: its API key from the keychain beside the user's token -------------
PORTKEY_API_KEY = "9c41e07b2fd85a36"  # shares no run of text with a header name


@pytest.mark.oidc
@pytest.mark.keychain
def test_the_hosted_recipe_prints_portkeys_key_from_the_keychain_beside_the_token(
    secret_service: Env,
    secret_hygiene: Recorder,
    oidc_provider: OidcProvider,
    portkey: PortkeyGateway,
) -> None:
    """Hosted Portkey checks ``x-portkey-api-key`` in its cloud, which cannot run here; the open
    gateway ignores that header. What is proven: the recipe's key comes from the real Secret
    Service by reference into every context's output (never the config), beside the user's token,
    and Portkey routes that request to the custom host."""
    gk = secret_service
    secret_hygiene.register(PORTKEY_API_KEY, "hosted Portkey's API key")
    with AnthropicUpstream(keys=[]) as inhouse:
        gk.write_config(
            recipes.recipe(
                "portkey-hosted",
                {
                    "https://login.example.com/oauth2/default": oidc_provider.issuer,
                    '"0oa1gatekey"': f'"{PUBLIC_CLIENT}"',
                    '["gateway.use"]': '["api.read"]',
                    README_UPSTREAM: inhouse.url + UPSTREAM_PATH,
                },
            )
            + f'ca_bundle = "{oidc_provider.ca}"\nflow = "device-code"\nmin_ttl = "10m"\n'
        )
        stored = gk.run("store", "-p", "portkey-key", stdin=PORTKEY_API_KEY.encode())
        assert stored.code == 0, stored.err
        signed_in = device_sign_in(gk, oidc_provider, ("login", "-p", "portkey-sso"))
        assert signed_in.code == 0, signed_in.err
        claude_settings(gk, "portkey-sso")
        for context in CONTEXTS:
            r = helper_run(gk, context)
            payload = json.loads(r.stdout)
            token = payload["token"]
            assert claims(token)["sub"] == "alice"
            key_printed = payload["headers"].pop("x-portkey-api-key") == PORTKEY_API_KEY
            assert key_printed, f"{context}: Portkey's key is not in the output"
            assert payload["headers"] == {
                "x-portkey-provider": "anthropic",
                "x-portkey-custom-host": inhouse.url + UPSTREAM_PATH,
                "x-portkey-metadata": '{"_user": "alice"}',
            }, context
        inhouse.keys = (token,)
        headers = app_headers(gk, r)
        streams_through(portkey, headers, token, PORTKEY_API_KEY)
        assert inhouse.saw("x-api-key", token), "Portkey did not forward the user's token"
        assert not inhouse.saw("x-portkey-api-key", PORTKEY_API_KEY)  # Portkey keeps its own
