"""`gatekey status` answers what people ask it (issue 14, item 12): is my key there, which profile
will Claude use, who is signed in, and where the sign-in really is; a config mistake is an error
(exit 78, on stderr), not a remark in a column."""

from __future__ import annotations

import json

import pytest

from blackbox_env import Env
from idp_helpers import drop_token_cache, idp_profile, login
from oidc_peer import OidcProvider

pytestmark = pytest.mark.blackbox


def _rows(out: str) -> dict[str, str]:
    """Table rows by profile name (the marker column dropped)."""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["PROFILE", "SOURCE", "STATE"], out
    rows = {}
    for line in lines[1 : lines.index("")]:  # the notes follow a blank line
        if line[2:3].strip():  # not a cell's continuation line
            rows[line[2:].split()[0]] = line
    return rows


def _state(gk: Env, name: str) -> dict[str, object]:
    r = gk.run("status", "--json")
    assert r.code == 0, r.err
    rows = {row["profile"]: row for row in json.loads(r.stdout)["profiles"]}
    return rows[name]


@pytest.mark.keychain
def test_a_keychain_profile_says_whether_its_key_is_stored(secret_service: Env, secret_hygiene):
    gk = secret_service
    gk.write_config('[profiles.kc]\nsource = "keychain"\n')
    assert _state(gk, "kc")["state"] == "not stored"

    secret = "gw-key-status-0123456789abcdef"
    secret_hygiene.register(secret, "stored with gatekey store")
    assert gk.run("store", "-p", "kc", stdin=secret.encode()).code == 0
    row = _state(gk, "kc")
    assert row["state"] == "stored"
    table = gk.run("status")
    assert table.code == 0, table.err
    assert " stored " in _rows(table.out)["kc"]
    assert secret not in table.out + table.err

    assert gk.run("erase", "-p", "kc").code == 0
    assert _state(gk, "kc")["state"] == "not stored"


def test_without_a_keychain_status_says_it_cannot_tell(gk: Env):
    gk.write_config('[profiles.kc]\nsource = "keychain"\n')  # gk has no D-Bus session bus
    r = gk.run("status")
    assert r.code == 0, r.err
    assert " unknown " in _rows(r.out)["kc"]
    assert "kc: no D-Bus session bus" in r.out


@pytest.mark.parametrize(
    ("config", "env", "chosen", "because"),
    [
        ('default_profile = "b"\n', {}, "b", "default_profile in "),
        ("", {"GATEKEY_PROFILE": "a"}, "a", "GATEKEY_PROFILE is set in this shell"),
    ],
    ids=["default_profile", "GATEKEY_PROFILE"],
)
def test_status_and_validate_say_which_profile_claude_uses(
    gk: Env, config: str, env: dict[str, str], chosen: str, because: str
):
    gk.write_config(config + gk.counting_profile("a") + gk.counting_profile("b"))
    r = gk.run("status", **env)
    assert r.code == 0, r.err
    rows = _rows(r.out)
    assert rows[chosen].startswith("* ")
    assert all(line.startswith("  ") for name, line in rows.items() if name != chosen)
    assert f"* used by a no-argument run (gatekey as Claude runs it): {because}" in r.out
    doc = json.loads(gk.run("status", "--json", **env).stdout)
    assert doc["no_argument_profile"] == chosen
    assert [row["profile"] for row in doc["profiles"] if row["selected"]] == [chosen]

    valid = gk.run("config", "validate", **env)
    assert valid.code == 0, valid.err
    assert f'gatekey with no arguments (as Claude runs it) uses profile "{chosen}" ({because}' in (
        valid.err
    )


def test_status_says_when_no_profile_would_be_used(gk: Env):
    gk.write_config(gk.counting_profile("a") + gk.counting_profile("b"))
    r = gk.run("status")
    assert r.code == 0, r.err
    assert not any(line.startswith("* ") for line in r.out.splitlines())
    assert "No profile is used by a no-argument run" in r.out
    assert "several profiles and no default" in r.out


def test_a_config_error_is_an_error_not_a_column(gk: Env):
    gk.write_config(
        gk.counting_profile("ok") + '[profiles.broken]\nsource = "command"\ncomand = ["x"]\n'
    )
    r = gk.run("status")
    assert r.code == 78, r.err
    assert "config error" in _rows(r.out)["broken"]
    assert "comand" not in r.out  # the error itself is on stderr, once
    assert r.err.count("\n") == 1
    assert 'profile "broken": key "comand": unknown key' in r.err
    as_json = gk.run("status", "--json")
    assert as_json.code == 78
    rows = {row["profile"]: row for row in json.loads(as_json.stdout)["profiles"]}
    assert "comand" in rows["broken"]["error"]
    assert rows["ok"]["error"] is None


def test_no_secret_service_means_no_claim_of_the_os_keychain(gk: Env):
    # token_cache defaults to the keychain; gk has no D-Bus, so a sign-in would go to a file.
    gk.write_config(
        '[profiles.user]\nsource = "oidc"\nissuer = "https://idp.example.test/oauth2"\n'
        'client_id = "c"\nscopes = ["api.read"]\n'
    )
    r = gk.run("status")
    assert r.code == 0, r.err
    row = _rows(r.out)["user"]
    assert "OS keychain" not in r.out, row
    storage = _state(gk, "user")["storage"]
    assert "not signed in (it would be kept in the user-only file" in str(storage)


@pytest.mark.oidc
@pytest.mark.slow
def test_the_account_stays_when_msal_serves_its_own_copy(gk: Env, make_oidc_provider):
    """A `get --min-ttl` that gatekey's copy cannot serve, answered from MSAL's cached access
    token: that answer names no account, and the ACCOUNT column went blank."""
    op: OidcProvider = make_oidc_provider()
    gk.write_config(idp_profile(op))
    login(gk, op)
    assert _state(gk, "user")["account"] == "alice@example.test"
    drop_token_cache(gk)  # gatekey's copy gone (or too short); MSAL's is still valid
    requests = op.token_requests()
    r = gk.run("get", "-p", "user", "--min-ttl", "15m")
    assert r.code == 0, r.err
    assert op.token_requests() == requests  # served by MSAL from its cache
    row = _state(gk, "user")
    assert row["account"] == "alice@example.test", row
    assert "sign-in kept in the user-only file" in str(row["storage"])
