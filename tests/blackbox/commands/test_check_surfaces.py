"""`gatekey check --surface mcp|otlp|marketplace|api-key-helper` (issue 17): each sibling helper a
managed Claude runs is run as that surface runs it (no CLAUDE_HELPER_CONTEXT, its limit, run again
as the app re-runs it) and judged by that surface's parser, each breach reported as what it is.

The breaches come from the fake helpers in tests/support/broken_helpers/; the passing cases from
fakes printing the right shape and from gatekey itself (a command profile) where its output
already fits the surface (token: marketplace, api-key-helper). gatekey serving mcp/otlp headers
is added with `output = "headers"` (another branch).

Every run asserts that no credential shows in check's own output.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from blackbox_env import SUPPORT, Env, Result, exe
from claude_managed import write_managed_settings

pytestmark = pytest.mark.blackbox

BROKEN = SUPPORT / "broken_helpers"
SELF_TOKEN = "tok-surface-5a6b7c8d9e0f1a2b"
# The credential each fake prints (see the scripts): never in check's output.
SECRETS = (
    "tok-hdr-7c6b5a4d3e2f1a0b",
    "tok-nest-0b1a2f3e4d5c6b7a",
    "tok-num-5d4c3b2a1f0e9d8c",
    "tok-hban-1e2d3c4b5a6f7e8d",
    "tok-brow-8e7d6c5b4a3f2e1d",
    "tok-git-2f3e4d5c6b7a8091",
    "tok-spc-9a8b7c6d5e4f3a2b",
    "tok-slowkey-3b2a1f0e9d8c7b6a",
    "tok-good-4b1d2c3e4f5a6b7c",
    "tok-fresh-",
    SELF_TOKEN,
)


def check(gk: Env, *args: str, **env: str) -> Result:
    r = gk.run("check", *args, **env)
    assert "Traceback" not in r.err, r.err
    for secret in SECRETS:
        assert secret not in r.out, "check showed a credential on stdout"
        assert secret not in r.err, "check showed a credential on stderr"
    return r


def helper(name: str) -> str:
    return str(BROKEN / f"{name}.sh")


def report(r: Result) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(r.stdout)
    return found


def runs(r: Result) -> dict[str, dict[str, Any]]:
    return {run["run"]: run for run in report(r)["runs"]}


def problems(r: Result) -> str:
    return " | ".join(" ".join(run["problems"]) for run in report(r)["runs"])


def self_config(gk: Env) -> None:
    gk.write_config(
        'default_profile = "echo"\n'
        "[profiles.echo]\n"
        f'source = "command"\ncommand = ["/bin/echo", "{SELF_TOKEN}"]\n'
        "allow_insecure_cache = true\n"
    )


# --- mcp: managedMcpServers[].headersHelper ---------------------------------------------------
def test_mcp_headers_helper_run_as_the_app_runs_it_twice(gk: Env) -> None:
    """No context, stdin at end of file, / as working directory, no shell variables (the fake
    fails otherwise); run twice (the TTL re-run); a 30 s limit; header names shown, no value."""
    r = check(gk, "--surface", "mcp", "--helper", helper("headers_good"), "--json",
              LEAKY_SHELL_VAR="leaked")  # fmt: skip
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert found["surface"] == "mcp"
    assert found["setting"] == "managedMcpServers[].headersHelper"
    assert "CLAUDE_HELPER_CONTEXT" not in found["environment"]
    assert list(runs(r)) == ["first", "re-run"]
    for run in found["runs"]:
        assert run["verdict"] == "ok", run
        assert run["limit"] == 30
        assert run["output"]["kind"] == "headers"
        assert run["output"]["names"] == ["Authorization", "X-Org-Route"]
    notes = " ".join(found["notes"])
    assert "without CLAUDE_HELPER_CONTEXT" in notes
    assert "headersHelperTtlSec" in notes
    assert "headersHelperRefreshBufferSec" in notes


def test_mcp_text_report_names_the_surface_and_its_runs(gk: Env) -> None:
    r = check(gk, "--surface", "mcp", "--helper", helper("headers_good"))
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("surface: mcp (managedMcpServers[].headersHelper)")
    assert any(line.split()[:1] == ["RUN"] for line in lines)
    rows = {line.split()[0]: line for line in lines if line.split()[:1] in (["first"], ["re-run"])}
    assert set(rows) == {"first", "re-run"}
    assert "headers: Authorization, X-Org-Route (<redacted>)" in rows["first"]
    assert "all 2 runs passed" in r.out


@pytest.mark.parametrize(
    ("fake", "breach"),
    [
        ("good", "stdout not one flat JSON object of headers (a bare token"),
        ("headers_nested", 'the inference helper\'s {"token", "headers"} shape'),
        ("headers_empty_object", "an empty object: at least one header"),
        ("headers_number", "header values must be strings (X-Tenant: number)"),
        ("headers_number", "header names not valid in HTTP: 'Bad Name'"),
        ("headers_banner", "a banner before the JSON object"),
        ("prompts", "asked for a person on stderr"),
        ("opens_browser", "started a browser ($BROWSER)"),
        ("empty", "exited 0 with empty output"),
    ],
)
def test_mcp_breach_reported_as_what_it_is(gk: Env, fake: str, breach: str) -> None:
    r = check(gk, "--surface", "mcp", "--helper", helper(fake), "--json")
    assert r.code == 1, r.out + r.err
    for run in report(r)["runs"]:
        assert run["verdict"] == "fail", run
        assert breach in " ".join(run["problems"]), run["problems"]
    assert "check failed in 2 mcp run(s): first, re-run" in r.err


def test_mcp_wrapper_hint_for_a_bare_token(gk: Env) -> None:
    """gatekey printing a bare token to a headers surface: the fix is a headers wrapper."""
    self_config(gk)
    r = check(gk, "--surface", "mcp", "-p", "echo", "--json")
    assert r.code == 1, r.out + r.err
    assert report(r)["helper"] == exe()
    assert "gatekey wrap -p PROFILE --format headers" in problems(r)


def test_mcp_rerun_printing_a_new_credential_is_a_warning(gk: Env) -> None:
    r = check(gk, "--surface", "mcp", "--helper", helper("fresh_each_run"), "--json")
    assert r.code == 0, r.out + r.err
    found = runs(r)
    assert found["first"]["verdict"] == "ok"
    assert found["re-run"]["verdict"] == "warn"
    assert "not a cached one" in " ".join(found["re-run"]["warnings"])


def test_mcp_credential_expiring_before_the_rerun_is_a_warning(gk: Env) -> None:
    """A JWT with 60 s left, and the app's default headersHelperTtlSec of 300 s."""
    r = check(gk, "--surface", "mcp", "--helper", helper("headers_short_jwt"), "--json")
    assert r.code == 0, r.out + r.err
    for run in report(r)["runs"]:
        assert run["verdict"] == "warn", run
        assert "before the app runs the helper again (300 s)" in " ".join(run["warnings"])


def test_mcp_helper_past_the_30_s_limit_is_killed(gk: Env) -> None:
    """The MCP limit is the app's 30 s (scaled to 1.5 s here; the fake sleeps 20 s)."""
    r = check(gk, "--surface", "mcp", "--helper", helper("slow_key"), "--json",
              GATEKEY_CHECK_TIME_SCALE="0.05", GATEKEY_TEST_SLEEP="20")  # fmt: skip
    assert r.code == 1, r.out + r.err
    for run in report(r)["runs"]:
        assert run["within_limit"] is False
        assert "exceeded the 30 s limit under no CLAUDE_HELPER_CONTEXT" in run["problems"][0]


def test_mcp_helper_named_by_claudes_managed_settings(gk: Env) -> None:
    """Without --helper or -p: the first managedMcpServers entry with a headersHelper, its
    headersHelperTtlSec (a string, as the app stores it) judging the credential's lifetime."""
    servers = [
        {"name": "search", "url": "https://mcp.example.test", "oauth": True},
        {
            "name": "tickets",
            "url": "https://tickets.example.test/mcp",
            "headersHelper": helper("headers_short_jwt"),
            "headersHelperTtlSec": "45",
        },
        {"name": "wiki", "url": "https://wiki.example.test/mcp", "headersHelper": helper("good")},
    ]
    path = write_managed_settings(gk, {"managedMcpServers": json.dumps(servers)})
    r = check(gk, "--surface", "mcp", "--json")
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert found["helper"] == helper("headers_short_jwt")
    notes = found["notes"]
    assert f"the helper Claude runs: managedMcpServers[tickets].headersHelper in {path}" in notes
    assert f"also named: wiki: {helper('good')} (check it with --helper)" in notes
    for run in found["runs"]:
        assert run["verdict"] == "ok", run  # 60 s left outlives this server's 45 s TTL


# --- otlp: otlpHeadersHelper --------------------------------------------------------------
def test_otlp_uses_the_headers_parser_and_says_its_limit_is_checks_choice(gk: Env) -> None:
    r = check(gk, "--surface", "otlp", "--helper", helper("headers_good"), "--json")
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert [run["verdict"] for run in found["runs"]] == ["ok", "ok"]
    assert any("no time limit: checked against 30 s" in note for note in found["notes"])
    r = check(gk, "--surface", "otlp", "--helper", helper("headers_nested"), "--json")
    assert r.code == 1
    assert "nested" in problems(r) or "inference helper's" in problems(r)


def test_otlp_helper_named_by_claudes_managed_settings(gk: Env) -> None:
    write_managed_settings(gk, {"otlpHeadersHelper": helper("opens_browser")})
    r = check(gk, "--surface", "otlp", "--json")
    assert r.code == 1, r.out + r.err
    assert report(r)["helper"] == helper("opens_browser")
    assert "started a browser" in problems(r)


# --- marketplace: credentialHelper --------------------------------------------------------
@pytest.mark.parametrize(
    ("fake", "kind"), [("good", "token"), ("git_credential_good", "git-credential")]
)
def test_marketplace_takes_a_bare_token_or_git_credential_lines(
    gk: Env, fake: str, kind: str
) -> None:
    r = check(gk, "--surface", "marketplace", "--helper", helper(fake), "--json")
    assert r.code == 0, r.out + r.err
    (run,) = report(r)["runs"]  # run once
    assert run["verdict"] == "ok", run
    assert run["output"]["kind"] == kind


@pytest.mark.parametrize(
    ("fake", "breach"),
    [
        ("headers_good", "JSON: the marketplace takes no JSON"),
        ("git_credential_no_password", "no password= line with a value"),
        ("banner", "line 1 is not key=value"),
    ],
)
def test_marketplace_breach(gk: Env, fake: str, breach: str) -> None:
    r = check(gk, "--surface", "marketplace", "--helper", helper(fake), "--json")
    assert r.code == 1, r.out + r.err
    assert breach in problems(r)


def test_marketplace_gatekey_itself_bare_token(gk: Env) -> None:
    self_config(gk)
    r = check(gk, "--surface", "marketplace", "-p", "echo", "--json")
    assert r.code == 0, r.out + r.err
    assert report(r)["runs"][0]["output"]["kind"] == "token"


# --- api-key-helper: Claude Code's apiKeyHelper -------------------------------------------
def test_api_key_helper_gatekey_itself_passes_and_gets_the_ttl_advice(gk: Env) -> None:
    self_config(gk)
    r = check(gk, "--surface", "api-key-helper", "--json")
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert found["helper"] == exe()
    assert [run["verdict"] for run in found["runs"]] == ["ok", "ok"]
    assert all(run["output"]["kind"] == "key" for run in found["runs"])
    notes = " ".join(found["notes"])
    assert "CLAUDE_CODE_API_KEY_HELPER_TTL_MS" in notes
    assert "give its apiKeyHelper with --helper PATH" in notes


@pytest.mark.parametrize(
    ("fake", "breach"),
    [
        ("headers_good", "a JSON object: Claude Code sends the whole output as the key"),
        ("git_credential_good", "2 lines: the key is the whole output"),
        ("key_with_space", "starts with an auth scheme"),
    ],
)
def test_api_key_helper_breach(gk: Env, fake: str, breach: str) -> None:
    r = check(gk, "--surface", "api-key-helper", "--helper", helper(fake), "--json")
    assert r.code == 1, r.out + r.err
    assert breach in problems(r)


def test_api_key_helper_over_10_s_is_warned(gk: Env) -> None:
    """Scaled by 0.25: the 10 s warning at 2.5 s, the 30 s limit at 7.5 s; the fake sleeps 3 s
    (4.5 s of margin before the kill)."""
    r = check(gk, "--surface", "api-key-helper", "--helper", helper("slow_key"), "--json",
              GATEKEY_CHECK_TIME_SCALE="0.25", GATEKEY_TEST_SLEEP="3")  # fmt: skip
    assert r.code == 0, r.out + r.err
    for run in report(r)["runs"]:
        assert run["verdict"] == "warn", run
        warned = " ".join(run["warnings"])
        assert "over 10 s" in warned or "of the 30 s limit" in warned


# --- the command line ---------------------------------------------------------------------
def test_timeout_and_interactive_are_the_inference_helpers(gk: Env) -> None:
    for extra in (("--timeout", "20"), ("--interactive",)):
        r = check(gk, "--surface", "mcp", "--helper", helper("headers_good"), *extra)
        assert r.code == 2, r.out + r.err
        assert "for the inference helper" in r.err


def test_inference_stays_the_default_surface(gk: Env) -> None:
    r = check(gk, "--helper", helper("good"), "--json")
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert found["surface"] == "inference"
    assert found["runs"]
    assert all("run" not in run for run in found["runs"])


def test_marketplace_helper_named_by_claudes_managed_settings(gk: Env) -> None:
    """Without --helper or -p: the allowedPluginMarketplaces entry with a credentialHelper (as
    `gatekey mdm --marketplace … --marketplace-helper …` writes it), named by expectedName."""
    entries = [
        {"source": "url", "url": "https://llm-gw.example.test/marketplace.json",
         "expectedName": "gateway-plugins", "credentialKind": "inferenceCredential"},
        {"source": "git", "url": "https://git.example.test/claude/plugins.git",
         "expectedName": "corp-plugins", "credentialKind": "credentialHelper",
         "credentialHelper": helper("git_credential_good")},
    ]  # fmt: skip
    path = write_managed_settings(gk, {"allowedPluginMarketplaces": json.dumps(entries)})
    r = check(gk, "--surface", "marketplace", "--json")
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert found["helper"] == helper("git_credential_good")
    expected = (
        "the helper Claude runs: allowedPluginMarketplaces[corp-plugins].credentialHelper "
        f"in {path}"
    )
    assert expected in found["notes"]
    assert report(r)["runs"][0]["output"]["kind"] == "git-credential"
