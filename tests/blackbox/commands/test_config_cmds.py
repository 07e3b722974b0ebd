"""`gatekey config validate` and `config show` on the installed executable, and no-argument runs
on the same kinds of config files (the loader itself, in process: tests/unit/test_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from profile_toml import keychain_profile


@pytest.mark.blackbox
def test_config_validate_accepts_a_good_config(gk) -> None:
    gk.write_config('default_profile = "a"\n' + keychain_profile("a") + gk.counting_profile("b"))
    result = gk.run("config", "validate")
    assert result.code == 0, result.err
    assert result.stdout == b""
    assert "configuration is valid (2 profile(s)" in result.err
    assert str(gk.config_path) in result.err


@pytest.mark.blackbox
def test_config_validate_names_the_mistake(gk) -> None:
    gk.write_config(keychain_profile("corp", 'sevice = "x"'))
    result = gk.run("config", "validate")
    result.assert_clean_failure(78)
    assert result.err.count("\n") == 1
    assert f'{gk.config_path}: profile "corp": key "sevice"' in result.err
    assert "did you mean 'service'?" in result.err


@pytest.mark.blackbox
def test_config_validate_reports_every_broken_profile(gk) -> None:
    gk.write_config(keychain_profile("one", "cache = 1") + '[profiles.two]\nsource = "command"\n')
    result = gk.run("config", "validate")
    assert result.code == 78
    assert result.stdout == b""
    assert 'profile "one": key "cache"' in result.err
    assert 'profile "two": key "command"' in result.err
    assert "Traceback" not in result.err
    assert all(line.startswith("gatekey: ") for line in result.err.splitlines())


@pytest.mark.blackbox
def test_config_show_gives_each_value_with_its_origin(gk) -> None:
    managed = Path(gk.vars["GATEKEY_MANAGED_CONFIG"])
    managed.write_text('[profiles.corp]\nservice = "managed-svc"\n[timeouts]\nsilent = "5s"\n')
    user = gk.write_config(keychain_profile("corp", 'account = "alice"'))
    result = gk.run("config", "show")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"# files: {managed} + {user}"
    assert f'service = "managed-svc"  # {managed}' in lines
    assert f'account = "alice"  # {user}' in lines
    assert f'source = "keychain"  # {user}' in lines
    assert f'timeouts.silent = "5s"  # {managed}' in lines
    assert 'timeouts.interactive = "120s"  # built-in default' in lines
    assert 'min_ttl = "3900s"  # built-in default' in lines
    assert "[profiles.corp]" in lines


@pytest.mark.blackbox
@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(
            keychain_profile("corp", 'sevice = "x"'),
            ['profile "corp"', 'key "sevice"', "did you mean 'service'?"],
            id="unknown-key",
        ),
        pytest.param(
            '[profiles.corp]\nsource = "command"\n',
            ['profile "corp"', 'key "command"', "missing required key"],
            id="missing-command",
        ),
        pytest.param(
            '[profiles.corp]\nsource = "vaultt"\n',
            ['profile "corp"', 'key "source"', "unknown source 'vaultt'"],
            id="unknown-source",
        ),
        pytest.param(
            '[timeouts]\nmid_session_refresh = "20s"\n',
            ['key "timeouts.mid_session_refresh"', "at most 19 s"],
            id="mid-session-too-long",
        ),
        pytest.param('default_profle = "x"\n', ['key "default_profle"'], id="top-level-typo"),
        pytest.param("[profiles.corp\n", ["not valid TOML"], id="invalid-toml"),
        pytest.param(
            keychain_profile("a") + keychain_profile("b"),
            ['key "default_profile"', "one of: a, b"],
            id="several-no-default",
        ),
    ],
)
def test_no_argument_run_on_a_bad_config_exits_78(gk, text: str, fragments: list[str]) -> None:
    gk.write_config(text)
    result = gk.run(context="background")
    result.assert_clean_failure(78)
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"gatekey: {gk.config_path}: ")
    for fragment in fragments:
        assert fragment in result.err


@pytest.mark.blackbox
def test_no_argument_run_on_a_non_utf8_config_exits_78(gk) -> None:
    gk.write_config("")
    gk.config_path.write_bytes(b"[profiles.corp]\nsource = '\xff'\n")
    result = gk.run(context="background")
    result.assert_clean_failure(78)
    assert f"{gk.config_path}: not valid UTF-8" in result.err


@pytest.mark.blackbox
def test_no_argument_run_with_GATEKEY_CONFIG_missing_exits_78(gk) -> None:
    missing = gk.root / "nowhere.toml"
    result = gk.run(context="background", GATEKEY_CONFIG=str(missing))
    result.assert_clean_failure(78)
    assert f"{missing}: file not found" in result.err


@pytest.mark.blackbox
def test_family_executable_refuses_a_profile_of_another_family(gk) -> None:
    gk.write_config(gk.counting_profile("cmd"))
    result = gk.run(exe_name="gatekey-keychain", context="background")
    result.assert_clean_failure(78)
    assert "no OS keychain profiles are configured" in result.err
    assert gk.count() == 0


@pytest.mark.blackbox
def test_a_good_command_profile_prints_its_token(gk) -> None:
    # The counterpart of the failures above: the same kind of file, valid, succeeds.
    gk.write_config(gk.counting_profile("cmd", 'min_ttl = "1m"'))
    result = gk.run(context="background", TOKEN="dummy-config-token")
    assert result.code == 0, result.err
    assert result.stdout == b"dummy-config-token\n"


@pytest.mark.blackbox
def test_no_argument_run_on_a_huge_integer_exits_78(gk) -> None:
    gk.write_config(f'[profiles.corp]\nsource = "command"\ncommand = ["x"]\nmin_ttl = {10**400}\n')
    result = gk.run(context="background")
    result.assert_clean_failure(78)


@pytest.mark.blackbox
def test_config_validate_agrees_with_the_run_about_GATEKEY_PROFILE(gk) -> None:
    gk.write_config(keychain_profile("a"))
    run = gk.run(context="background", GATEKEY_PROFILE="ghost")
    run.assert_clean_failure(78)
    validate = gk.run("config", "validate", GATEKEY_PROFILE="ghost")
    assert validate.code == 78, validate.err


@pytest.mark.blackbox
def test_family_config_validate_agrees_with_the_family_run(gk) -> None:
    gk.write_config(keychain_profile("a"))
    run = gk.run(exe_name="gatekey-vault", context="background")
    run.assert_clean_failure(78)
    validate = gk.run("config", "validate", exe_name="gatekey-vault")
    assert validate.code == 78, validate.err
