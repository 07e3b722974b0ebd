"""`gatekey mdm --header` never puts a credential into the static headers every machine shares
(inferenceCustomHeaders), whatever the gateway calls its key header, unless the admin says so
with --allow-static-credential-header, which says what that risks. Black-box runs of the
installed executable."""

from __future__ import annotations

import json
import plistlib

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox

URL = "https://llm-gw.example.com"
HELPER = "/opt/gatekey/bin/gatekey"
SECRET = "static-secret-0001"
# Each gateway's key header the issue found passing with exit 0, the four refused before, and
# the patterns (*-api-key, *-token, *-secret, *auth*) in other spellings.
CREDENTIAL_HEADERS = (
    "Authorization",
    "x-api-key",
    "Proxy-Authorization",
    "Cookie",
    "x-portkey-api-key",
    "Ocp-Apim-Subscription-Key",
    "api-key",
    "x-goog-api-key",
    "x-litellm-api-key",
    "X-Corp-Api-Key",
    "X-Session-Token",
    "X-Client-Secret",
    "X-Gateway-Auth",
)
RISK = (
    "plain text into the managed settings of every machine",
    "readable by every local user and process",
    "the same for every person",
    "cannot be revoked for one user",
)


def config(gk: Env) -> None:
    gk.write_config(
        "[profiles.plain]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-plain"]\nallow_insecure_cache = true\n'
    )


def mdm(gk: Env, *args: str):
    return gk.run(
        "mdm", "--format", "mobileconfig", "--gateway-url", URL, "--helper", HELPER, *args
    )


def custom_headers(stdout: bytes) -> dict[str, str]:
    values = plistlib.loads(stdout)["PayloadContent"][0]
    return json.loads(values["inferenceCustomHeaders"])


@pytest.mark.parametrize("name", CREDENTIAL_HEADERS)
def test_every_credential_header_is_refused(gk: Env, name: str) -> None:
    config(gk)
    r = mdm(gk, "--header", f"{name}={SECRET}")
    r.assert_clean_failure(78)  # as every other --header refusal (a UsageProblem)
    assert "--header" in r.err
    assert name in r.err
    assert SECRET not in r.err
    for risk in RISK:
        assert risk in r.err
    assert "--allow-static-credential-header" in r.err


def test_ordinary_headers_still_pass(gk: Env) -> None:
    config(gk)
    r = mdm(
        gk,
        "--header",
        "X-Org-Route=prod",
        "--header",
        'x-portkey-metadata={"_user": "fleet"}',
        "--header",
        "Idempotency-Key=abc",
    )
    assert r.code == 0, r.err
    assert custom_headers(r.stdout) == {
        "X-Org-Route": "prod",
        "x-portkey-metadata": '{"_user": "fleet"}',
        "Idempotency-Key": "abc",
    }


def test_the_escape_hatch_lets_one_named_header_through_and_warns(gk: Env) -> None:
    config(gk)
    r = mdm(
        gk,
        "--header",
        f"Ocp-Apim-Subscription-Key={SECRET}",
        "--header",
        "X-Org-Route=prod",
        "--allow-static-credential-header",
        "ocp-apim-subscription-key",  # header names are case-insensitive
    )
    assert r.code == 0, r.err
    assert custom_headers(r.stdout) == {
        "Ocp-Apim-Subscription-Key": SECRET,
        "X-Org-Route": "prod",
    }
    assert "warning: --allow-static-credential-header" in r.err
    for risk in RISK:
        assert risk in r.err
    assert SECRET not in r.err


def test_the_escape_hatch_covers_only_the_headers_it_names(gk: Env) -> None:
    config(gk)
    r = mdm(
        gk,
        "--header",
        f"x-portkey-api-key={SECRET}",
        "--header",
        f"api-key={SECRET}",
        "--allow-static-credential-header",
        "x-portkey-api-key",
    )
    r.assert_clean_failure(78)
    assert "api-key" in r.err
    assert SECRET not in r.err


def test_an_escape_hatch_for_no_header_is_a_mistake(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--header", "X-Org-Route=prod", "--allow-static-credential-header", "api-key")
    r.assert_clean_failure(78)
    assert "--allow-static-credential-header" in r.err
    assert "api-key" in r.err


def test_help_says_what_the_escape_hatch_risks(gk: Env) -> None:
    r = gk.run("mdm", "--help", COLUMNS="200")
    assert r.code == 0, r.err
    text = " ".join(r.out.split())
    assert "--allow-static-credential-header" in text
    for risk in RISK:
        assert risk in text
