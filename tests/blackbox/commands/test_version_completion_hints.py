"""Standard command-line conveniences (issue 14, item 13): --version, shell completion that never
runs the helper, did-you-mean for profiles, source kinds and commands, and a hint for a profile
given without -p. A mistyped word is echoed only when it is clearly a name, never a possible
secret."""

from __future__ import annotations

from importlib import metadata

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox


def test_version_option_prints_the_version(gk: Env):
    r = gk.run("--version")
    assert r.code == 0, r.err
    assert r.out.startswith(f"gatekey {metadata.version('gatekey')} (Python ")


@pytest.mark.parametrize(
    ("exe_name", "variable"),
    [("gatekey", "_GATEKEY_COMPLETE"), ("gatekey-vault", "_GATEKEY_VAULT_COMPLETE")],
)
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_never_runs_the_helper(gk: Env, exe_name: str, variable: str, shell: str):
    # The only profile: a no-argument run would fetch (and count) a token.
    gk.write_config(gk.counting_profile("cmd"))
    r = gk.run(exe_name=exe_name, **{variable: f"{shell}_source"})
    assert r.code == 0, r.err
    assert variable in r.out  # the script calls the executable back with it
    assert "tok-" not in r.out
    assert gk.count() == 0, "the completion request ran the helper"


def test_completion_offers_commands_and_profile_names(gk: Env):
    gk.write_config(gk.counting_profile("cmd") + gk.counting_profile("corp"))
    words = gk.run(_GATEKEY_COMPLETE="bash_complete", COMP_WORDS="gatekey st", COMP_CWORD="1")
    assert words.code == 0, words.err
    assert words.out.split() == ["plain,status", "plain,store"]
    names = gk.run(_GATEKEY_COMPLETE="bash_complete", COMP_WORDS="gatekey get -p c", COMP_CWORD="3")
    assert names.out.split() == ["plain,cmd", "plain,corp"]
    assert gk.count() == 0


def test_a_misspelt_profile_gets_did_you_mean(gk: Env):
    gk.write_config(gk.counting_profile("corp") + gk.counting_profile("dev"))
    r = gk.run("get", "-p", "copr")
    r.assert_clean_failure(78)
    assert 'profile "copr": no such profile (did you mean "corp"?)' in r.err


def test_a_missing_profile_says_how_to_add_it(gk: Env):
    gk.write_config('[profiles.kc]\nsource = "keychain"\n')
    r = gk.run("store", "-p", "work", stdin=b"irrelevant-value")
    r.assert_clean_failure(78)
    assert "to add it, run: gatekey profile add work --source KIND" in r.err


def test_a_misspelt_source_kind_gets_did_you_mean(gk: Env):
    gk.write_config('[profiles.v]\nsource = "vaultt"\npath = "x"\n')
    r = gk.run("get", "-p", "v")
    r.assert_clean_failure(78)
    assert "unknown source 'vaultt' (did you mean 'vault'?)" in r.err


def test_key_errors_say_an_before_a_vowel(gk: Env):
    gk.write_config('[profiles.e]\nsource = "entra"\ntenant = "t"\nclient_id = "c"\ntenat = "x"\n')
    r = gk.run("get", "-p", "e")
    r.assert_clean_failure(78)
    assert "unknown key for an entra profile; did you mean 'tenant'?" in r.err


def test_a_misspelt_command_gets_did_you_mean(gk: Env):
    r = gk.run("stauts")
    assert r.code == 2
    assert 'no such command "stauts"; did you mean "status"?' in r.err


def test_an_unknown_command_is_not_echoed(gk: Env):
    secret = "sk-live-0123456789abcdefXYZ"  # what a person may type, thinking gatekey takes it
    r = gk.run(secret)
    assert r.code == 2
    assert "no such command (not shown, in case it is a secret)" in r.err
    assert secret not in r.err


def test_a_profile_name_without_p_gets_the_command_to_run(gk: Env):
    gk.write_config(gk.counting_profile("dev") + gk.counting_profile("prod"))
    r = gk.run("get", "dev")
    assert r.code == 2, r.err
    assert 'unexpected argument "dev": choose a profile with -p: gatekey get -p dev' in r.err
    assert gk.count() == 0


def test_a_near_profile_name_without_p_is_suggested_not_echoed(gk: Env):
    gk.write_config(gk.counting_profile("dev") + gk.counting_profile("prod"))
    r = gk.run("get", "dve")
    assert r.code == 2, r.err
    assert "did you mean: gatekey get -p dev?" in r.err
    assert "dve" not in r.err


def test_an_extra_argument_that_is_no_profile_is_not_echoed(gk: Env):
    gk.write_config(gk.counting_profile("dev") + gk.counting_profile("prod"))
    secret = "sk-live-9876543210fedcbaQRS"
    r = gk.run("store", "-p", "dev", secret)
    assert r.code == 2
    assert "not shown in case one is a secret" in r.err
    assert "to choose a profile, use -p NAME" in r.err
    assert secret not in r.err
