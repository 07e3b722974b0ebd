"""`gatekey mdm`: Claude's managed configuration (mobileconfig, plist, reg, Linux JSON) and
gatekey's own system config, generated from a profile; black-box runs of the installed executable.
"""

from __future__ import annotations

import json
import plistlib
import re
import stat
from pathlib import Path

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox

URL = "https://llm-gw.example.com"
HELPER = "/opt/gatekey/bin/gatekey"
WIN_HELPER = r"C:\Program Files\gatekey\Scripts\gatekey.exe"
CLAUDE_KEYS = {
    "inferenceProvider",
    "inferenceGatewayBaseUrl",
    "inferenceGatewayAuthScheme",
    "inferenceCredentialKind",
    "inferenceCredentialHelper",
    "inferenceCredentialHelperTtlSec",
    "inferenceCredentialHelperTimeoutSec",
}
UUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")


def config(gk: Env) -> None:
    gk.write_config(
        'default_profile = "plain"\n'
        '[timeouts]\nsilent = "12s"\n'
        "[profiles.plain]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-plain"]\nallow_insecure_cache = true\n'
        "[profiles.long]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-long"]\nallow_insecure_cache = true\n'
        'min_ttl = "2h"\nauth_scheme = "x-api-key"\n'
        "[profiles.short]\n"
        'source = "keychain"\nmin_ttl = "6m"\n'
        "[profiles.corp]\n"
        'source = "oidc"\nissuer = "https://idp.example.com/oauth2/x"\nclient_id = "abc"\n'
        "[profiles.robot]\n"
        'source = "oidc"\nissuer = "https://idp.example.com/oauth2/x"\nclient_id = "abc"\n'
        'flow = "client-credentials"\nclient_secret = { env = "ROBOT_SECRET" }\n'
        "[profiles.kv]\n"
        'source = "vault"\naddress = "https://vault.example.com"\npath = "secret/data/llm"\n'
        'auth = { method = "jwt", jwt_from = "corp", role = "llm" }\n'
    )


def mdm(gk: Env, *args: str, **env: str):
    return gk.run("mdm", *args, **env)


def mobileconfig(gk: Env, *args: str) -> dict:
    r = mdm(gk, "--format", "mobileconfig", "--gateway-url", URL, "--helper", HELPER, *args)
    assert r.code == 0, r.err
    return plistlib.loads(r.stdout)


def parse_reg(data: bytes) -> tuple[list[str], dict[str, str]]:
    """A small .reg reader: the header, the key lines, and "name"="value" REG_SZ values only."""
    assert data.startswith(b"\xff\xfe"), "regedit's Version 5.00 files are UTF-16 LE with a BOM"
    text = data[2:].decode("utf-16-le")
    assert "\n" not in text.replace("\r\n", ""), "every line ends in CRLF"
    lines = text.split("\r\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert lines[0] == "Windows Registry Editor Version 5.00"
    assert lines[1] == ""
    keys = [line for line in lines if line.startswith("[")]
    values: dict[str, str] = {}
    string = r'"((?:[^"\\]|\\.)*)"'
    for line in lines[2:]:
        if line.startswith("["):
            continue
        m = re.fullmatch(f"{string}={string}", line)
        assert m, f"not a REG_SZ value line: {line!r}"
        unescape = lambda s: re.sub(r"\\(.)", r"\1", s)  # noqa: E731
        values[unescape(m.group(1))] = unescape(m.group(2))
    return keys, values


# --- mobileconfig ------------------------------------------------------------------------------
def test_mobileconfig_structure_and_string_values(gk: Env) -> None:
    config(gk)
    profile = mobileconfig(gk, "--header", "X-Org-Route=prod")
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadScope"] == "System"
    assert profile["PayloadVersion"] == 1
    for key in ("PayloadIdentifier", "PayloadDisplayName"):
        assert isinstance(profile[key], str)
        assert profile[key]
    assert UUID.fullmatch(profile["PayloadUUID"])
    [payload] = profile["PayloadContent"]
    assert payload["PayloadType"] == "com.anthropic.claudefordesktop"
    assert payload["PayloadVersion"] == 1
    assert UUID.fullmatch(payload["PayloadUUID"])
    assert payload["PayloadIdentifier"] != profile["PayloadIdentifier"]
    assert payload["PayloadDisplayName"]
    claude = {k: v for k, v in payload.items() if not k.startswith("Payload")}
    assert set(claude) == CLAUDE_KEYS | {"inferenceCustomHeaders"}
    assert all(isinstance(v, str) for v in claude.values()), claude
    assert claude["inferenceProvider"] == "gateway"
    assert claude["inferenceCredentialKind"] == "helper-script"
    assert claude["inferenceGatewayBaseUrl"] == URL
    assert claude["inferenceCredentialHelper"] == HELPER
    assert claude["inferenceCredentialHelperTtlSec"] == "3600"  # default min_ttl 65m - 5m
    assert claude["inferenceCredentialHelperTimeoutSec"] == "27"  # silent 12 s + 15 s
    assert claude["inferenceGatewayAuthScheme"] == "bearer"
    assert json.loads(claude["inferenceCustomHeaders"]) == {"X-Org-Route": "prod"}


def test_mobileconfig_uuids_fresh_identifiers_stable(gk: Env) -> None:
    config(gk)
    one, two = mobileconfig(gk), mobileconfig(gk)
    uuids = [
        p["PayloadUUID"] for p in (one, two, one["PayloadContent"][0], two["PayloadContent"][0])
    ]
    assert len(set(uuids)) == 4
    assert one["PayloadIdentifier"] == two["PayloadIdentifier"]
    three = mobileconfig(gk, "--identifier", "com.example.claude")
    assert three["PayloadIdentifier"] == "com.example.claude"


def test_plist_is_the_bare_preference_domain(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--format", "plist", "--gateway-url", URL, "--helper", HELPER)
    assert r.code == 0, r.err
    values = plistlib.loads(r.stdout)
    assert set(values) == CLAUDE_KEYS
    assert all(isinstance(v, str) for v in values.values())


# --- defaults from the profile ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "ttl", "timeout", "scheme"),
    [
        ("plain", "3600", "27", "bearer"),
        ("long", "6900", "27", "x-api-key"),  # min_ttl 2h
        ("corp", "3600", "120", "bearer"),  # a person may sign in: [timeouts] interactive
        ("robot", "3600", "27", "bearer"),  # client credentials: nobody signs in
        ("kv", "3600", "120", "bearer"),  # a vault logging in through corp's sign-in
    ],
)
def test_defaults_from_the_profile(
    gk: Env, profile: str, ttl: str, timeout: str, scheme: str
) -> None:
    config(gk)
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, "-p", profile)
    assert r.code == 0, r.err
    values = json.loads(r.stdout)
    assert values["inferenceCredentialHelperTtlSec"] == ttl
    assert values["inferenceCredentialHelperTimeoutSec"] == timeout
    assert values["inferenceGatewayAuthScheme"] == scheme
    if profile != "plain":  # the helper's no-argument run would select "plain"
        assert f'selects profile "plain", not "{profile}"' not in r.err  # --helper was given


def test_default_helper_is_this_executable_and_warns_about_the_profile(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "-p", "long")
    assert r.code == 0, r.err
    helper = json.loads(r.stdout)["inferenceCredentialHelper"]
    assert Path(helper).is_absolute()
    assert Path(helper).name == "gatekey"
    assert Path(helper).is_file()
    assert 'selects profile "plain", not "long"' in r.err
    assert "gatekey wrap -p long" in r.err
    r = gk.run("mdm", "--format", "linux-json", "--gateway-url", URL, exe_name="gatekey-vault")
    assert r.code == 0, r.err
    assert Path(json.loads(r.stdout)["inferenceCredentialHelper"]).name == "gatekey-vault"


def test_explicit_values_win(gk: Env) -> None:
    config(gk)
    r = mdm(
        gk, "--format", "linux-json", "--gateway-url", URL + "/", "--helper", HELPER,
        "--ttl", "1800", "--timeout", "180", "--auth-scheme", "x-api-key",
    )  # fmt: skip
    assert r.code == 0, r.err
    values = json.loads(r.stdout)
    assert values["inferenceGatewayBaseUrl"] == URL
    assert values["inferenceCredentialHelperTtlSec"] == "1800"
    assert values["inferenceCredentialHelperTimeoutSec"] == "180"
    assert values["inferenceGatewayAuthScheme"] == "x-api-key"


# --- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--gateway-url", "http://llm-gw.example.com"), "--gateway-url"),
        (("--gateway-url", "https://user:pw@llm-gw.example.com"), "--gateway-url"),
        (("--helper", "bin/gatekey"), "--helper"),
        (("--helper", "/opt/gatekey/bin/gatekey -p corp"), "--helper"),
        (("--helper", "/opt/gatekey/bin/gatekey get"), "--helper"),
        (("--ttl", "120"), "--ttl"),
        (("--ttl", "60"), "--ttl"),
        (("--ttl", "4000"), "--ttl"),  # longer than min_ttl (3900 s): tokens would expire in use
        (("--timeout", "5"), "--timeout"),  # below gatekey's silent deadline
        (("--timeout", "601"), "--timeout"),
        (("--header", "Authorization=Bearer x"), "--header"),
        (("--header", "no equals"), "--header"),
    ],
)
def test_refusals_name_the_option(gk: Env, args: tuple[str, ...], option: str) -> None:
    config(gk)
    options = {"--gateway-url": URL, "--helper": HELPER}
    options.update(zip(args[::2], args[1::2], strict=True))
    argv = [part for pair in options.items() for part in pair]
    r = mdm(gk, "--format", "mobileconfig", *argv)
    r.assert_clean_failure(78)
    assert option in r.err


def test_gateway_url_required_and_one_mode(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--format", "reg", "--helper", WIN_HELPER)
    r.assert_clean_failure(78)
    assert "--gateway-url" in r.err
    assert mdm(gk, "--gateway-url", URL).code == 2
    assert mdm(gk, "--format", "reg", "--gatekey-config").code == 2


def test_path_with_spaces(gk: Env, tmp_path: Path) -> None:
    config(gk)
    mac = "/Library/Application Support/gatekey/bin/gatekey"
    values = mobileconfig(gk, "--helper", mac)["PayloadContent"][0]
    assert values["inferenceCredentialHelper"] == mac
    real = tmp_path / "my helper"  # no separator after the space: accepted because it exists
    real.write_text("#!/bin/sh\n")
    values = mobileconfig(gk, "--helper", str(real))["PayloadContent"][0]
    assert values["inferenceCredentialHelper"] == str(real)


def test_short_min_ttl_leaves_no_workable_ttl(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, "-p", "short")
    r.assert_clean_failure(78)
    assert 'profile "short"' in r.err
    assert "min_ttl" in r.err


# --- .reg -------------------------------------------------------------------------------------
def test_reg_file(gk: Env, tmp_path: Path) -> None:
    config(gk)
    out = tmp_path / "claude.reg"
    r = mdm(
        gk, "--format", "reg", "--gateway-url", URL, "--helper", WIN_HELPER,
        "--header", 'x-portkey-metadata={"_user": "a\\b"}', "-o", str(out),
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.stdout == b""
    assert "reg import" in r.err
    data = out.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    keys, values = parse_reg(data)
    assert keys == [r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude]"]
    assert set(values) == CLAUDE_KEYS | {"inferenceCustomHeaders"}
    assert values["inferenceCredentialHelper"] == WIN_HELPER
    assert json.loads(values["inferenceCustomHeaders"]) == {
        "x-portkey-metadata": '{"_user": "a\\b"}'
    }
    raw = data[2:].decode("utf-16-le")
    assert r'"C:\\Program Files\\gatekey\\Scripts\\gatekey.exe"' in raw
    assert '\\"' in raw  # the JSON's quotes, escaped


def test_reg_needs_a_windows_path(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--format", "mobileconfig", "--gateway-url", URL)  # Linux: no default for macOS
    r.assert_clean_failure(78)
    assert "--helper" in r.err
    r = mdm(gk, "--format", "reg", "--gateway-url", URL)  # this machine's gatekey is a POSIX path
    r.assert_clean_failure(78)
    assert "--helper" in r.err
    r = mdm(gk, "--format", "reg", "--gateway-url", URL, "--helper", HELPER)
    r.assert_clean_failure(78)
    r = mdm(gk, "--format", "reg", "--gateway-url", URL, "--helper", WIN_HELPER + " -p corp")
    r.assert_clean_failure(78)


# --- Linux JSON -------------------------------------------------------------------------------
def test_linux_json(gk: Env, tmp_path: Path) -> None:
    config(gk)
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER)
    assert r.code == 0, r.err
    values = json.loads(r.stdout)
    assert set(values) == CLAUDE_KEYS
    assert all(isinstance(v, str) for v in values.values())
    assert "/etc/claude-desktop/managed-settings.json" in r.err
    assert "root" in r.err
    assert "644" in r.err
    out = tmp_path / "managed-settings.json"
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, "-o", str(out))
    assert r.code == 0
    assert r.stdout == b""
    assert json.loads(out.read_text()) == values
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_doctor_reads_what_mdm_wrote(gk: Env, tmp_path: Path) -> None:
    """The generated Linux file is what doctor's reader (the app's rules) accepts."""
    from gatekey.diagnostics import claude_settings

    config(gk)
    out = tmp_path / "etc" / "claude-desktop" / "managed-settings.json"
    out.parent.mkdir(parents=True)
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, "-o", str(out))
    assert r.code == 0, r.err
    got = claude_settings.read_file(str(out), [str(out)], linux_rules=True)
    assert got.problem is None
    assert got.values["inferenceCredentialHelperTtlSec"] == "3600"


# --- gatekey's own system config ----------------------------------------------------------------
def test_gatekey_config_round_trips(gk: Env, tmp_path: Path) -> None:
    config(gk)
    out = tmp_path / "system.toml"
    r = mdm(gk, "--gatekey-config", "-p", "kv", "-o", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    assert 'default_profile = "kv"' in text
    assert "[profiles.kv]" in text
    assert "[profiles.corp]" in text
    assert "[profiles.plain]" not in text
    assert 'silent = "12s"' in text
    # The generated file, used as the only config, gives a working selection.
    r = gk.run("config", "show", GATEKEY_CONFIG=str(out))
    assert r.code == 0, r.err
    r = gk.run("mdm", "--gatekey-config", "-p", "long", GATEKEY_CONFIG=str(gk.config_path))
    assert r.code == 0, r.err
    only = tmp_path / "long.toml"
    only.write_bytes(r.stdout)
    r = gk.run(GATEKEY_CONFIG=str(only))  # a no-argument run selects the pinned default
    assert (r.code, r.out) == (0, "tok-long\n"), r.err


def test_gatekey_config_all_profiles(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--gatekey-config", "--all-profiles")
    assert r.code == 0, r.err
    for name in ("plain", "long", "short", "corp", "robot", "kv"):
        assert f"[profiles.{name}]" in r.out
    assert 'client_secret = { env = "ROBOT_SECRET" }' in r.out
    assert 'min_ttl = "7200s"' in r.out


def test_invalid_profile_is_a_config_error(gk: Env) -> None:
    config(gk)
    r = mdm(gk, "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, "-p", "nope")
    r.assert_clean_failure(78)
