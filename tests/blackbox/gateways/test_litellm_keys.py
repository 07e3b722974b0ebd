"""gatekey's output through the real LiteLLM proxy with its keys: the master key (bearer) and a
virtual-key profile (x-api-key) from the real Secret Service, run as Claude runs gatekey.

One LiteLLM (tests/peers/litellm/master-key.yaml, no database) for the module, over HTTPS with the
test CA, in front of the Anthropic upstream (tests/support/gateways/upstream.py), which accepts
only LiteLLM's own upstream key: a request reaches it only through LiteLLM. Each test stores the
key in a private gnome-keyring with `gatekey store`, runs gatekey with no arguments and stdin
closed in every CLAUDE_HELPER_CONTEXT, and sends what the app would build from that stdout.

Virtual keys cannot be checked here: LiteLLM keeps them in its database (Postgres through
Prisma, whose engines cannot be downloaded on this machine), and without one it answers any key
but the master key with 400 "No connected db.". So the virtual-key recipe is proven with the
master key stored in its place (the profile's shape and the x-api-key scheme, which is all
gatekey controls), and an unknown key proves the refusal and what doctor says about it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blackbox_env import CONTEXTS, Env, Result
from claude_managed import doctor_lines
from gateways import app_client, recipes
from gateways.litellm_peer import LiteLLM, gateway_check, litellm_before, machine_using
from gateways.upstream import AnthropicUpstream

pytestmark = [pytest.mark.blackbox, pytest.mark.keychain]

MASTER_KEY = "sk-Vq8RtY3nWz6KpL1xQm5d"  # distinctive: any piece of it is a leak
UPSTREAM_KEY = "sk-ant-Hc4JmD9sQe2TfB7uWv3"  # LiteLLM's own key to the upstream
UNKNOWN_KEY = "sk-Nw5GxZ2cPr8YaE3kJt6h"  # a key LiteLLM's (absent) database holds


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(keys=[UPSTREAM_KEY]) as peer:
        yield peer


@pytest.fixture(scope="module")
def litellm(
    upstream: AnthropicUpstream,
    oidc_tls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiteLLM]:
    peer = litellm_before(
        upstream,
        "master-key",
        tls=oidc_tls,
        workdir=tmp_path_factory.mktemp("litellm-keys"),
        master_key=MASTER_KEY,
        upstream_key=UPSTREAM_KEY,
        secrets=[UNKNOWN_KEY],
    )
    yield peer
    peer.stop()


@pytest.fixture
def gw(secret_service: Env, litellm: LiteLLM, secret_hygiene) -> Env:
    """A user's machine: the real Secret Service, the test CA in the trust store (as the
    gateway's CA is in Claude's), and Claude's managed settings naming gatekey and LiteLLM."""
    return machine_using(secret_service, litellm, secret_hygiene, ttl_s="3600")


PROFILES = {"litellm-master-key": "litellm", "litellm-virtual-key": "litellm-user"}


def use_recipe(gk: Env, name: str, key: str) -> None:
    """The recipe as the only profile (so a run with no arguments uses it), its key stored as
    the recipe says."""
    gk.write_config(recipes.recipe(name, {}))
    stored = gk.run("store", "-p", PROFILES[name], stdin=key.encode())
    assert stored.code == 0, stored.err


def run_as_claude(gk: Env, context: str, exe_name: str = "gatekey") -> Result:
    r = gk.run(exe_name=exe_name, context=context)
    assert r.code == 0, f"{context}: exit {r.code}: {r.err}"
    assert r.stderr == b"", f"{context}: {r.err}"
    return r


# --- the master key, as Authorization: Bearer --------------------------------------------------
def test_the_master_key_from_the_keychain_works_through_litellm_in_every_context(
    gw: Env, litellm: LiteLLM, upstream: AnthropicUpstream
):
    use_recipe(gw, "litellm-master-key", MASTER_KEY)
    for context in CONTEXTS:
        r = run_as_claude(gw, context)
        assert r.stdout == MASTER_KEY.encode() + b"\n", f"{context}: not exactly the key"
        litellm.serves(app_client.app_headers(r.stdout, scheme="bearer"), upstream, UPSTREAM_KEY)
    # The keychain family's own executable prints the same.
    r = run_as_claude(gw, "background", exe_name="gatekey-keychain")
    assert r.stdout == MASTER_KEY.encode() + b"\n"


def test_doctor_says_litellm_accepts_the_master_key(gw: Env, litellm: LiteLLM):
    use_recipe(gw, "litellm-master-key", MASTER_KEY)
    r = gw.run("doctor", "--gateway-url", litellm.url)
    verdict, text = gateway_check(r)
    assert (verdict, r.code) == ("OK", 0), r.out + r.err
    assert f"GET {litellm.url}/v1/models answered 200" in text
    # A keychain source has no server of its own: the clock is compared with LiteLLM's Date.
    clock = doctor_lines(r)["clock"]
    assert clock[0] == "OK", clock
    assert "127.0.0.1" in clock[1], clock


def test_doctor_probe_messages_streams_one_inference_through_litellm(gw: Env, litellm: LiteLLM):
    use_recipe(gw, "litellm-master-key", MASTER_KEY)
    r = gw.run("doctor", "--gateway-url", litellm.url, "--probe-messages")
    verdict, text = doctor_lines(r)["messages"]
    assert (verdict, r.code) == ("OK", 0), r.out + r.err
    assert "message_stop" in text, text


# --- a virtual-key profile, as x-api-key --------------------------------------------------------
def test_the_virtual_key_profile_sends_the_key_as_x_api_key_through_litellm(
    gw: Env, litellm: LiteLLM, upstream: AnthropicUpstream
):
    use_recipe(gw, "litellm-virtual-key", MASTER_KEY)  # see the module docstring
    for context in ("interactive", "mid-session-refresh", "background"):
        r = run_as_claude(gw, context)
        assert r.stdout == MASTER_KEY.encode() + b"\n", f"{context}: not exactly the key"
        headers = app_client.app_headers(r.stdout, scheme="x-api-key")
        assert "Authorization" not in headers
        litellm.serves(headers, upstream, UPSTREAM_KEY)
    doctor = gw.run("doctor", "--gateway-url", litellm.url)
    verdict, text = gateway_check(doctor)
    assert (verdict, doctor.code) == ("OK", 0), doctor.out + doctor.err
    assert "answered 200" in text


# --- refused: an unknown key, no key, the key in the wrong header -------------------------------
@pytest.mark.parametrize("scheme", ["bearer", "x-api-key"])
def test_an_unknown_key_is_refused_with_400_no_db_connection(
    gw: Env, litellm: LiteLLM, upstream: AnthropicUpstream, scheme: str
):
    use_recipe(gw, "litellm-virtual-key", UNKNOWN_KEY)
    r = run_as_claude(gw, "background")
    headers = app_client.app_headers(r.stdout, scheme=scheme)
    assert litellm.refuses(headers, upstream) == [400, 400]
    answer = app_client.models(litellm.url, headers, ca=litellm.tls["ca"])
    assert answer.json()["error"]["type"] == "no_db_connection"  # type: ignore[index]


def test_no_key_and_a_key_in_another_header_are_refused(
    litellm: LiteLLM, upstream: AnthropicUpstream
):
    assert litellm.refuses({}, upstream) == [500, 500]  # what 1.108.7 answers to no key
    assert litellm.refuses({"X-Api-Token": MASTER_KEY}, upstream) == [500, 500]


def test_doctor_fails_the_gateway_check_naming_the_status_for_an_unknown_key(
    gw: Env, litellm: LiteLLM
):
    use_recipe(gw, "litellm-virtual-key", UNKNOWN_KEY)
    r = gw.run("doctor", "--gateway-url", litellm.url)
    verdict, text = gateway_check(r)
    assert verdict == "FAIL", r.out
    assert r.code != 0
    assert "answered 400" in text
    # LiteLLM's own words (no_db_connection) explained: not "check the gateway's logs".
    assert "master key" in r.out, r.out
    assert "check the gateway's logs" not in r.out, r.out


def test_log_excerpts_shown_on_failure_hold_no_litellm_key(litellm: LiteLLM):
    # explain() is what a failing test shows: the keys LiteLLM was given never appear in it.
    shown = litellm.explain(400, f"echo {MASTER_KEY} {UPSTREAM_KEY}".encode())
    assert MASTER_KEY not in shown
    assert UPSTREAM_KEY not in shown
