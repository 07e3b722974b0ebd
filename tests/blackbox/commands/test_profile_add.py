"""`gatekey profile add` (issue 14, item 13): a second profile without writing TOML by hand. The
file it writes is commented (every key of the kind, with its default and meaning), valid as a run
reads it, never holds a secret, and keeps what a no-argument run (Claude) selected."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from blackbox_env import Env

pytestmark = pytest.mark.blackbox


def _user_file(gk: Env) -> Path:
    return Path(gk.vars["XDG_CONFIG_HOME"]) / "gatekey" / "config.toml"


def test_the_first_profile_keeps_the_built_in_one_selected(gk: Env):
    r = gk.run("profile", "add", "work")
    assert r.code == 0, r.err
    path = _user_file(gk)
    assert f'added profile "work" (keychain) to {path}' in r.err
    assert 'next: printf %s "$KEY" | gatekey store -p work' in r.err
    assert 'a no-argument run (Claude) uses profile "default" (default_profile in ' in r.err

    data = tomllib.loads(path.read_text())
    assert data["default_profile"] == "default"  # what `gatekey store` + `gatekey` used
    assert data["profiles"] == {"default": {"source": "keychain"}, "work": {"source": "keychain"}}
    valid = gk.run("config", "validate")
    assert valid.code == 0, valid.err
    assert 'uses profile "default"' in valid.err

    again = gk.run("profile", "add", "work")
    again.assert_clean_failure(78)
    assert 'profile "work": a profile of this name exists already' in again.err


def test_every_key_of_the_kind_is_written_commented(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    before = gk.config_path.read_text()
    r = gk.run(
        "profile",
        "add",
        "corp",
        "--source",
        "entra",
        "--set",
        "tenant=contoso.onmicrosoft.com",
        "--set",
        "client_id=11111111-2222-3333-4444-555555555555",
        "--set",
        'scopes=["api://llm-gateway/.default"]',
        "--default",
    )
    assert r.code == 0, r.err
    assert "next: gatekey login -p corp" in r.err
    text = gk.config_path.read_text()
    assert text.startswith('default_profile = "corp"\n')
    assert before.strip() in text  # what was there stays
    for line in (
        'tenant = "contoso.onmicrosoft.com"',
        'scopes = ["api://llm-gateway/.default"]',
        '# flow = "browser"',
        '# token_cache = "keychain"',
        '# client_secret = { env = "NAME" }',
        '# min_ttl = "65m"',
        '# auth_scheme = "bearer"',
    ):
        assert f"\n{line}\n" in text, line
    assert "# browser | device-code | client-credentials | managed-identity:" in text
    written = text.split("# Added by `gatekey profile add`", 1)[1]
    assert all(len(line) <= 100 for line in written.splitlines())
    corp = tomllib.loads(text)["profiles"]["corp"]
    assert corp == {
        "source": "entra",
        "tenant": "contoso.onmicrosoft.com",
        "client_id": "11111111-2222-3333-4444-555555555555",
        "scopes": ["api://llm-gateway/.default"],
    }
    shown = gk.run("config", "show", "-p", "corp")
    assert shown.code == 0, shown.err
    assert 'flow = "browser"  # built-in default' in shown.out


def test_a_second_profile_keeps_the_lone_one_selected(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    r = gk.run("profile", "add", "other", "--source", "command", "--set", 'command=["true"]')
    assert r.code == 0, r.err
    assert 'uses profile "cmd" (default_profile in ' in r.err
    helper = gk.run()  # what Claude runs: still the profile it was
    assert helper.code == 0, helper.err
    assert helper.out == "tok-1\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--source", "entra", "--set", "tenant=t"], 'key "client_id": missing required key'),
        (
            [
                "--source",
                "entra",
                "--set",
                "tenant=t",
                "--set",
                "client_id=c",
                "--set",
                "client_secret=not-a-reference",
            ],
            "a secret is never written in the config",
        ),
        (["--source", "vaultt"], "unknown source 'vaultt' (did you mean 'vault'?)"),
        (["--set", "servce=x"], "did you mean 'service'?"),
    ],
    ids=["missing", "secret", "kind", "key"],
)
def test_a_mistake_writes_nothing(gk: Env, args: list[str], says: str):
    gk.write_config(gk.counting_profile("cmd"))
    before = gk.config_path.read_bytes()
    r = gk.run("profile", "add", "new", *args)
    r.assert_clean_failure(78)
    assert says in r.err
    assert f'{gk.config_path}: profile "new"' in r.err  # the file it was for, not a temporary one
    assert "nothing was written" in r.err
    assert gk.config_path.read_bytes() == before
    assert [p.name for p in gk.config_path.parent.glob(".gatekey-*")] == []


def test_a_missing_key_names_the_option_to_give_it(gk: Env):
    r = gk.run("profile", "add", "new", "--source", "entra", "--set", "tenant=t")
    r.assert_clean_failure(78)
    assert "give it with --set client_id=VALUE" in r.err
    assert not _user_file(gk).exists()


@pytest.mark.keychain
def test_a_new_keychain_profile_takes_a_key(secret_service: Env, secret_hygiene):
    gk = secret_service
    assert gk.run("profile", "add", "work").code == 0
    secret = "gw-key-profile-add-0123456789"
    secret_hygiene.register(secret, "stored in the new profile")
    stored = gk.run("store", "-p", "work", stdin=secret.encode())
    assert stored.code == 0, stored.err
    got = gk.run("get", "-p", "work")
    assert (got.code, got.out) == (0, secret + "\n")
    assert secret not in _user_file(gk).read_text()
