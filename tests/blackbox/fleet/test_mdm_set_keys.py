"""`gatekey mdm --set KEY=VALUE`: Claude's other documented keys (inferenceModels, the silent
refresh switch...), checked against their types, the same string in every format; an unknown
key or a wrong value is a usage error naming the key. Black-box runs of the installed executable.
"""

from __future__ import annotations

import json
import plistlib
import re

import pytest

from blackbox_env import Env, Result

pytestmark = pytest.mark.blackbox

URL = "https://llm-gw.example.com"
HELPER = "/opt/gatekey/bin/gatekey"
WIN_HELPER = r"C:\Program Files\gatekey\Scripts\gatekey.exe"
SILENT_REFRESH = "inferenceCredentialHelperSilentRefreshEnabled"
SERVERS = [
    {
        "name": "tools",
        "url": "https://llm-gw.example.com/mcp",
        "headersHelperTtlSec": 600,
    }
]
SETS = (
    "--set", "inferenceModels=claude-sonnet-4-5, claude-haiku-4-5",
    "--set", f"{SILENT_REFRESH}=False",
    "--set", "otlpAuthMode=inference-credential",
    "--set", 'bootstrapHeaders={"X-Team": "data", "X-Note": "a\\\\b \\"q\\" é"}',
    "--set", "managedMcpServers=" + json.dumps(SERVERS),
)  # fmt: skip
EXPECTED = {
    "inferenceModels": '["claude-sonnet-4-5","claude-haiku-4-5"]',
    SILENT_REFRESH: "false",
    "otlpAuthMode": "inference-credential",
    "bootstrapHeaders": '{"X-Team":"data","X-Note":"a\\\\b \\"q\\" é"}',
    "managedMcpServers": json.dumps(SERVERS, separators=(",", ":")),
}


def config(gk: Env) -> None:
    gk.write_config('[profiles.plain]\nsource = "command"\ncommand = ["/bin/echo", "tok"]\n')


def parse_reg(data: bytes) -> dict[str, str]:
    assert data.startswith(b"\xff\xfe")
    values = {}
    string = r'"((?:[^"\\]|\\.)*)"'
    for line in data[2:].decode("utf-16-le").split("\r\n")[3:-1]:
        m = re.fullmatch(f"{string}={string}", line)
        assert m, line
        values[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(2))
    return values


def generate(gk: Env, fmt: str, *args: str) -> dict[str, str]:
    """The managed values ``mdm --format fmt`` writes, read back from that format."""
    helper = WIN_HELPER if fmt == "reg" else HELPER
    r = gk.run("mdm", "--format", fmt, "--gateway-url", URL, "--helper", helper, *args)
    assert r.code == 0, r.err
    if fmt == "mobileconfig":
        payload = plistlib.loads(r.stdout)["PayloadContent"][0]
        return {k: v for k, v in payload.items() if not k.startswith("Payload")}
    if fmt == "plist":
        return dict(plistlib.loads(r.stdout))
    if fmt == "reg":
        return parse_reg(r.stdout)
    return dict(json.loads(r.stdout))


def test_documented_keys_are_written_as_the_same_strings_in_every_format(gk: Env) -> None:
    config(gk)
    results = {
        fmt: generate(gk, fmt, *SETS) for fmt in ("mobileconfig", "plist", "reg", "linux-json")
    }
    for fmt, values in results.items():
        assert all(isinstance(v, str) for v in values.values()), (fmt, values)
        for key, want in EXPECTED.items():
            assert values[key] == want, (fmt, key)
        values.pop("inferenceCredentialHelper")  # a Windows path in reg, a POSIX one elsewhere
    assert all(values == results["linux-json"] for values in results.values())
    assert json.loads(results["reg"]["bootstrapHeaders"]) == {
        "X-Team": "data",
        "X-Note": 'a\\b "q" é',
    }


def test_models_as_a_json_array(gk: Env) -> None:
    config(gk)
    listed = [{"name": "claude-opus-4-1", "supports1m": True}, "claude-haiku-4-5"]
    values = generate(gk, "linux-json", "--set", "inferenceModels=" + json.dumps(listed))
    assert json.loads(values["inferenceModels"]) == listed
    values = generate(gk, "linux-json", "--set", f"{SILENT_REFRESH}=TRUE")
    assert values[SILENT_REFRESH] == "true"


def test_helper_paths_follow_the_target_os(gk: Env) -> None:
    config(gk)
    values = generate(gk, "reg", "--set", r"otlpHeadersHelper=C:\Tools\otlp headers.cmd")
    assert values["otlpHeadersHelper"] == r"C:\Tools\otlp headers.cmd"
    values = generate(gk, "plist", "--set", "bootstrapHeadersHelper=/usr/local/bin/bh")
    assert values["bootstrapHeadersHelper"] == "/usr/local/bin/bh"
    servers = [{"name": "t", "headersHelper": r"C:\Tools\mcp.cmd"}]
    values = generate(gk, "reg", "--set", "managedMcpServers=" + json.dumps(servers))
    assert json.loads(values["managedMcpServers"]) == servers
    r = gk.run(
        "mdm", "--format", "reg", "--gateway-url", URL, "--helper", WIN_HELPER,
        "--set", "otlpHeadersHelper=/usr/local/bin/otlp",
    )  # fmt: skip
    assert_usage_error(r, "otlpHeadersHelper")


def assert_usage_error(r: Result, key: str) -> None:
    """click's usage error (exit 2), nothing on stdout, the option and the key named."""
    assert r.code == 2, r.err
    assert r.stdout == b""
    assert "Traceback" not in r.err
    assert "'--set'" in r.err
    assert key in r.err


def run_set(gk: Env, *pairs: str) -> Result:
    args = [part for pair in pairs for part in ("--set", pair)]
    return gk.run("mdm", "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, *args)


@pytest.mark.parametrize(
    ("pair", "suggestion"),
    [
        ("inferenceModel=claude-sonnet-4-5", "inferenceModels"),
        ("inferencemodels=claude-sonnet-4-5", "inferenceModels"),
        ("inferenceCredentialHelperSilentRefresh=false", SILENT_REFRESH),
        ("otlpHeaderHelper=/opt/x", "otlpHeadersHelper"),
        ("inferenceCredentialHelperTTLSec=1800", "inferenceCredentialHelperTtlSec"),
    ],
)
def test_unknown_key_is_a_usage_error_with_did_you_mean(
    gk: Env, pair: str, suggestion: str
) -> None:
    config(gk)
    r = run_set(gk, pair)
    assert_usage_error(r, pair.split("=")[0])
    assert f"did you mean '{suggestion}'?" in r.err


def test_unrelated_key_lists_the_keys(gk: Env) -> None:
    config(gk)
    r = run_set(gk, "colour=blue")
    assert_usage_error(r, "colour")
    assert "inferenceModels" in r.err
    assert SILENT_REFRESH in r.err


@pytest.mark.parametrize(
    ("pair", "words"),
    [
        (f"{SILENT_REFRESH}=yes", "true or false"),
        (f"{SILENT_REFRESH}=", "true or false"),
        ("inferenceModels=", "model name"),
        ("inferenceModels=a,,b", "model name"),
        ("inferenceModels=a,b,a", "more than once"),
        ("inferenceModels=[1]", "model name"),
        ('inferenceModels=[{"label": "x"}]', "model name"),
        ("inferenceModels=[not json", "JSON"),
        ("bootstrapHeaders=[]", "JSON object"),
        ('bootstrapHeaders={"bad name": "x"}', "header name"),
        ('bootstrapHeaders={"X-A": "line\\nbreak"}', "line breaks"),
        ("managedMcpServers={}", "JSON array"),
        ('managedMcpServers=[{"headersHelper": "rel/path"}]', "headersHelper: expected an"),
        ('managedMcpServers=[{"headersHelperTtlSec": "300"}]', "whole number"),
        ("otlpHeadersHelper=bin/otlp", "absolute path"),
        ("otlpHeadersHelper=/opt/otlp --flag", "arguments"),
        ("otlpAuthMode=", "non-empty"),
    ],
)
def test_wrong_value_is_a_usage_error_naming_the_key(gk: Env, pair: str, words: str) -> None:
    config(gk)
    r = run_set(gk, pair)
    assert_usage_error(r, pair.split("=")[0])
    assert words in r.err


@pytest.mark.parametrize(
    ("pair", "words"),
    [
        ("inferenceCredentialHelperTtlSec=1800", "--ttl"),
        ("inferenceCredentialHelperTimeoutSec=60", "--timeout"),
        ("inferenceGatewayBaseUrl=https://other.example.com", "--gateway-url"),
        ("inferenceCredentialHelper=/opt/x", "--helper"),
        ("inferenceGatewayAuthScheme=bearer", "--auth-scheme"),
        ('inferenceCustomHeaders={"X-A": "b"}', "--header"),
        ("inferenceProvider=bedrock", "always writes"),
        ("inferenceCredentialKind=static", "always writes"),
    ],
)
def test_keys_mdm_writes_name_their_option(gk: Env, pair: str, words: str) -> None:
    """One value, one source: a key mdm writes is refused with the option that sets it."""
    config(gk)
    r = run_set(gk, pair)
    assert_usage_error(r, pair.split("=")[0])
    assert words in r.err


def test_a_static_key_is_refused_without_echoing_it(gk: Env) -> None:
    config(gk)
    value = "sk-static-Zq9xW2vK7mPLr4"
    r = run_set(gk, f"inferenceGatewayApiKey={value}")
    assert_usage_error(r, "inferenceGatewayApiKey")
    assert "helper supplies the credential" in r.err
    assert value[3:] not in r.err
    r = run_set(gk, value)  # no "=": a pasted value, not shown back
    assert_usage_error(r, "KEY=VALUE")
    assert value[3:] not in r.err


def test_a_key_given_twice_and_set_with_gatekey_config(gk: Env) -> None:
    config(gk)
    assert_usage_error(run_set(gk, "inferenceModels=a", "inferenceModels=b"), "given twice")
    r = gk.run("mdm", "--gatekey-config", "--set", "inferenceModels=a")
    assert r.code == 2, r.err
    assert r.stdout == b""
    assert "--set" in r.err


def test_help_lists_the_keys_and_fits_80_columns(gk: Env) -> None:
    r = gk.run("mdm", "--help", COLUMNS="80")
    assert r.code == 0, r.err
    assert all(len(line) <= 80 for line in r.out.splitlines()), r.out
    for key in ("inferenceModels", SILENT_REFRESH, "otlpHeadersHelper", "managedMcpServers"):
        assert key in r.out
    assert "--config FILE" in r.out
