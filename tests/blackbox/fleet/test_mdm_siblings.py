"""`gatekey mdm` writes the sibling helper keys (issue 17): managedMcpServers entries with their
headersHelper, headersHelperTtlSec and headersHelperRefreshBufferSec; otlpEndpoint and
otlpHeadersHelper; an allowedPluginMarketplaces entry with its credential helper. Every managed
value is a string in every format (an object[] key is one JSON document as a string, the app's
portable encoding), each value the inference keys' rules check is checked the same way (exit 78,
one line naming the option), and the inference keys are the same with or without them.
Black-box runs of the installed executable; the outputs are parsed as the OS would read them.
"""

from __future__ import annotations

import json
import plistlib
import re
from pathlib import Path

import pytest

from blackbox_env import Env, Result

pytestmark = pytest.mark.blackbox

URL = "https://llm-gw.example.com"
HELPER = "/opt/gatekey/bin/gatekey"
WIN_HELPER = r"C:\Program Files\gatekey\Scripts\gatekey.exe"
FORMATS = ("mobileconfig", "plist", "reg", "linux-json")
# Wrapper paths on the endpoints (not on this machine): POSIX, and Windows for the reg format.
PATHS = {
    False: {
        "tools": "/opt/gatekey/wrappers/mcp-tools",
        "search": "/opt/gatekey/wrappers/mcp-search",
        "otlp": "/opt/gatekey/wrappers/otlp",
        "market": "/opt/gatekey/wrappers/marketplace",
    },
    True: {
        "tools": r"C:\Program Files\gatekey\wrappers\mcp-tools.cmd",
        "search": r"C:\Program Files\gatekey\wrappers\mcp-search.cmd",
        "otlp": r"C:\Program Files\gatekey\wrappers\otlp.cmd",
        "market": r"C:\Program Files\gatekey\wrappers\marketplace.cmd",
    },
}
INFERENCE_KEYS = (
    "inferenceProvider",
    "inferenceGatewayBaseUrl",
    "inferenceGatewayAuthScheme",
    "inferenceCredentialKind",
    "inferenceCredentialHelper",
    "inferenceCredentialHelperTtlSec",
    "inferenceCredentialHelperTimeoutSec",
)


def config(gk: Env) -> None:
    """``idp``: the default min_ttl (65m, so the default TTL is 3600); ``short``: 10 minutes."""
    gk.write_config(
        'default_profile = "idp"\n'
        "[profiles.idp]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok"]\n'
        "[profiles.short]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok"]\nmin_ttl = "10m"\n'
    )


def sibling_args(windows: bool) -> list[str]:
    p = PATHS[windows]
    return [
        "--mcp-server", "tools=https://mcp.example.com/mcp",
        "--mcp-helper", f"tools={p['tools']}",
        "--mcp-server", "search=https://search.example.com/mcp",
        "--mcp-helper", f"search={p['search']}",
        "--mcp-ttl", "search=900",
        "--mcp-refresh-buffer", "search=120",
        "--otlp-endpoint", "https://otel.example.com:4318",
        "--otlp-helper", p["otlp"],
        "--marketplace", "corp-plugins=https://git.example.com/claude/plugins.git",
        "--marketplace-helper", p["market"],
    ]  # fmt: skip


def expected(windows: bool) -> dict[str, object]:
    p = PATHS[windows]
    return {
        "managedMcpServers": [
            {
                "name": "tools",
                "transport": "http",
                "url": "https://mcp.example.com/mcp",
                "headersHelper": p["tools"],
                "headersHelperTtlSec": 3600,  # idp's min_ttl 65m - 5m, as the inference TTL
                "headersHelperRefreshBufferSec": 60,
            },
            {
                "name": "search",
                "transport": "http",
                "url": "https://search.example.com/mcp",
                "headersHelper": p["search"],
                "headersHelperTtlSec": 900,
                "headersHelperRefreshBufferSec": 120,
            },
        ],
        "otlpEndpoint": "https://otel.example.com:4318",
        "otlpHeadersHelper": p["otlp"],
        "allowedPluginMarketplaces": [
            {
                "source": "git",
                "url": "https://git.example.com/claude/plugins.git",
                "expectedName": "corp-plugins",
                "credentialKind": "credentialHelper",
                "credentialHelper": p["market"],
            }
        ],
    }


def parse_reg(data: bytes) -> dict[str, str]:
    """A regedit file's REG_SZ values: the UTF-16 text, unescaped as regedit reads it."""
    assert data.startswith(b"\xff\xfe")
    text = data[2:].decode("utf-16-le")
    lines = text.split("\r\n")
    assert lines[:3] == [
        "Windows Registry Editor Version 5.00",
        "",
        r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude]",
    ]
    values = {}
    string = r'"((?:[^"\\]|\\.)*)"'
    for line in lines[3:-1]:
        m = re.fullmatch(f"{string}={string}", line)
        assert m, line  # every value a string (no dword:, hex: or subkey)
        values[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(2))
    return values


def read(fmt: str, data: bytes) -> dict[str, object]:
    if fmt == "mobileconfig":
        payload = plistlib.loads(data)["PayloadContent"][0]
        return {k: v for k, v in payload.items() if not k.startswith("Payload")}
    if fmt == "plist":
        return dict(plistlib.loads(data))
    if fmt == "reg":
        return dict(parse_reg(data))
    return dict(json.loads(data))


def mdm(gk: Env, fmt: str, *args: str) -> Result:
    helper = WIN_HELPER if fmt == "reg" else HELPER
    return gk.run("mdm", "--format", fmt, "--gateway-url", URL, "--helper", helper, *args)


def generate(gk: Env, fmt: str, *args: str) -> dict[str, object]:
    r = mdm(gk, fmt, *args)
    assert r.code == 0, r.err
    return read(fmt, r.stdout)


def refused(r: Result, option: str, *words: str) -> None:
    """Exit 78 as mdm's other value checks, nothing on stdout, one line naming the option."""
    r.assert_clean_failure(78)
    assert r.err.count("\n") == 1, r.err
    assert r.err.startswith(f"gatekey: {option}: "), r.err
    for word in words:
        assert word in r.err, r.err


@pytest.mark.parametrize("fmt", FORMATS)
def test_sibling_keys_round_trip_as_strings_in_every_format(gk: Env, fmt: str) -> None:
    config(gk)
    windows = fmt == "reg"
    values = generate(gk, fmt, *sibling_args(windows))
    assert all(isinstance(v, str) for v in values.values()), values
    want = expected(windows)
    for key, value in want.items():
        text = values[key]
        assert isinstance(text, str)
        assert (json.loads(text) if isinstance(value, list) else text) == value, key


def test_the_inference_keys_are_the_same_with_the_sibling_keys(gk: Env) -> None:
    config(gk)
    for fmt in FORMATS:
        plain = generate(gk, fmt)
        both = generate(gk, fmt, *sibling_args(fmt == "reg"))
        assert {k: both[k] for k in INFERENCE_KEYS} == {k: plain[k] for k in INFERENCE_KEYS}
        assert set(both) - set(plain) == set(expected(fmt == "reg")), fmt


def wrapper(gk: Env, profile: str, name: str) -> Path:
    folder = gk.root / "wrappers"
    folder.mkdir(exist_ok=True)
    path = folder / name
    r = gk.run("wrap", "-p", profile, "-o", str(path))
    assert r.code == 0, r.err
    return path


def test_the_ttl_is_checked_against_the_profile_the_wrapper_pins(gk: Env) -> None:
    """A wrapper pinned to ``short`` (min_ttl 10m): its TTL defaults to 5 minutes and may not
    exceed 10, whatever -p says; the stderr says where the number came from."""
    config(gk)
    helper = wrapper(gk, "short", "mcp-tools")
    server = ("--mcp-server", "tools=https://mcp.example.com/mcp")
    r = mdm(gk, "linux-json", *server, "--mcp-helper", f"tools={helper}")
    assert r.code == 0, r.err
    (entry,) = json.loads(json.loads(r.stdout)["managedMcpServers"])
    assert entry["headersHelperTtlSec"] == 300
    assert 'min_ttl 600 s of "short"' in r.err
    assert f"pinned by {helper}" in r.err
    ok = mdm(gk, "linux-json", *server, "--mcp-helper", f"tools={helper}", "--mcp-ttl", "tools=600")
    assert ok.code == 0, ok.err
    too_long = ("--mcp-helper", f"tools={helper}", "--mcp-ttl", "tools=900")
    refused(mdm(gk, "linux-json", *server, *too_long), "--mcp-ttl", "'short'", "min_ttl (600 s)")


def test_a_wrapper_pinning_a_profile_the_config_lacks_is_refused(gk: Env) -> None:
    config(gk)
    helper = wrapper(gk, "short", "mcp-tools")
    gk.write_config('[profiles.idp]\nsource = "command"\ncommand = ["/bin/echo", "tok"]\n')
    server = ("--mcp-server", "tools=https://m.example.com")
    r = mdm(gk, "plist", *server, "--mcp-helper", f"tools={helper}")
    refused(r, "--mcp-helper", f'{helper} pins profile "short"', "idp")


S = ("--mcp-server", "tools=https://mcp.example.com/mcp")
H = ("--mcp-helper", "tools=/opt/gatekey/wrappers/mcp-tools")
MARKET = ("--marketplace", "corp=https://plugins.example.com/marketplace.json")
SET_OTLP = ("--set", "otlpHeadersHelper=/opt/p")


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        ((*S,), "--mcp-helper", ("tools: give its headers helper", "--format headers")),
        ((*S, "--mcp-helper", "tools=bin/wrapper"), "--mcp-helper", ("not an absolute path",)),
        (
            (*S, "--mcp-helper", "tools=/opt/gatekey/bin/gatekey -p corp"),
            "--mcp-helper",
            ("arguments", "gatekey wrap"),
        ),
        ((*S, *H, "--mcp-helper", "other=/opt/x"), "--mcp-helper", ("other: no --mcp-server",)),
        ((*S, *H, "--mcp-ttl", "other=600"), "--mcp-ttl", ("other: no --mcp-server",)),
        ((*S, *H, "--mcp-ttl", "tools=4000"), "--mcp-ttl", ("min_ttl (3900 s)",)),
        ((*S, *H, "--mcp-ttl", "tools=soon"), "--mcp-ttl", ("whole number",)),
        ((*S, *H, "--mcp-ttl", "tools=0"), "--mcp-ttl", ("whole number",)),
        (
            (*S, *H, "--mcp-ttl", "tools=300", "--mcp-refresh-buffer", "tools=300"),
            "--mcp-refresh-buffer",
            ("not shorter than the TTL (300 s)",),
        ),
        (
            (*S, *H, "--mcp-refresh-buffer", "tools=5"),
            "--mcp-refresh-buffer",
            ("silent deadline (10 s",),
        ),
        (("--mcp-server", "=https://m.example.com", *H), "--mcp-server", ("NAME=URL",)),
        ((*S, *S, *H), "--mcp-server", ("tools is given twice",)),
        (("--mcp-server", "tools=http://mcp.example.com/mcp", *H), "--mcp-server", ("https://",)),
        (
            ("--mcp-server", "tools=https://u:p@mcp.example.com/mcp", *H),
            "--mcp-server",
            ("credentials",),
        ),
        (
            ("--mcp-server", "tools=https://mcp.example.com/mcp?api_key=x", *H),
            "--mcp-server",
            ("'api_key'",),
        ),
        (("--otlp-helper", "/opt/gatekey/wrappers/otlp"), "--otlp-helper", ("--otlp-endpoint",)),
        (("--otlp-endpoint", "http://otel.example.com:4318"), "--otlp-endpoint", ("https://",)),
        (
            ("--otlp-endpoint", "https://o.example.com", "--otlp-helper", "otlp"),
            "--otlp-helper",
            ("not an absolute path",),
        ),
        (
            ("--otlp-endpoint", "https://o.example.com", "--otlp-helper", "/opt/o", *SET_OTLP),
            "--otlp-helper",
            ("both give the helper",),
        ),
        ((*MARKET,), "--marketplace-helper", ("needs a credential helper",)),
        (("--marketplace-helper", "/opt/m"), "--marketplace-helper", ("--marketplace NAME=URL",)),
        (
            ("--marketplace", "corp=ftp://p.example.com/m.json", "--marketplace-helper", "/m"),
            "--marketplace",
            ("https://",),
        ),
        (
            (*S, *H, "--set", 'managedMcpServers=[{"name": "tools", "url": "https://x.example"}]'),
            "--mcp-server",
            ("tools also named in --set managedMcpServers",),
        ),
    ],
)
def test_each_check_refuses_with_one_line_naming_the_option(
    gk: Env, args: tuple[str, ...], option: str, words: tuple[str, ...]
) -> None:
    config(gk)
    refused(mdm(gk, "linux-json", *args), option, *words)


def test_a_helper_others_could_replace_is_refused_and_force_warns(gk: Env) -> None:
    config(gk)
    shared = gk.root / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    helper = shared / "otlp"
    helper.write_text("#!/bin/sh\necho '{}'\n")
    helper.chmod(0o755)
    otlp = ("--otlp-endpoint", "https://otel.example.com", "--otlp-helper", str(helper))
    refused(mdm(gk, "plist", *otlp), "--otlp-helper", f"refusing {helper}", "mode 777", "--force")
    forced = mdm(gk, "plist", *otlp, "--force")
    assert forced.code == 0, forced.err
    assert f"warning: --otlp-helper {helper}: {shared} is writable by" in forced.err
    assert read("plist", forced.stdout)["otlpHeadersHelper"] == str(helper)


def test_a_static_credential_header_in_a_set_mcp_entry_is_refused(gk: Env) -> None:
    config(gk)
    servers = [{"name": "t", "url": "https://m.example.com", "headers": {"X-Api-Key": "k1"}}]
    r = mdm(gk, "plist", "--set", "managedMcpServers=" + json.dumps(servers))
    assert r.code == 2, r.err  # a --set value the app could not use: a usage error, as before
    assert r.stdout == b""
    assert "managedMcpServers: headers: X-Api-Key is a credential header" in r.err
    assert "k1" not in r.err


def test_loopback_http_a_gateway_marketplace_and_set_entries_are_accepted(gk: Env) -> None:
    """http to this machine (a local peer); a marketplace.json on the gateway's own origin reuses
    the inference credential; --set managedMcpServers entries come first, ours after them."""
    config(gk)
    given = [{"name": "wiki", "transport": "http", "url": "https://wiki.example.com/mcp"}]
    values = generate(
        gk,
        "mobileconfig",
        "--mcp-server", "local=http://127.0.0.1:8931/mcp",
        "--mcp-helper", "local=/opt/gatekey/wrappers/mcp-local",
        "--set", "managedMcpServers=" + json.dumps(given),
        "--marketplace", f"corp={URL}/plugins/marketplace.json",
    )  # fmt: skip
    servers = json.loads(str(values["managedMcpServers"]))
    assert [s["name"] for s in servers] == ["wiki", "local"]
    assert servers[0] == given[0]
    assert servers[1]["url"] == "http://127.0.0.1:8931/mcp"
    (market,) = json.loads(str(values["allowedPluginMarketplaces"]))
    assert market == {
        "source": "url",
        "url": f"{URL}/plugins/marketplace.json",
        "expectedName": "corp",
        "credentialKind": "inferenceCredential",
    }


def test_an_otlp_endpoint_without_a_helper_warns(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "linux-json", "--otlp-endpoint", "https://otel.example.com")
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["otlpEndpoint"] == "https://otel.example.com"
    assert "otlpHeadersHelper" not in json.loads(r.stdout)
    assert "warning: --otlp-endpoint without --otlp-helper" in r.err


def test_sibling_options_go_with_format_not_gatekey_config(gk: Env) -> None:
    config(gk)
    r = gk.run("mdm", "--gatekey-config", "--otlp-endpoint", "https://otel.example.com")
    assert r.code == 2
    assert r.stdout == b""
    assert "go with --format" in r.err
