"""`gatekey doctor` checks what Claude will run (issue 14, item 2): the inferenceCredentialHelper
its managed settings name (there, absolute, no arguments, executable, replaceable by nobody but
you and root, the profile it gives Claude), inferenceProvider and inferenceCredentialKind.

Claude's settings are written under the test's GATEKEY_MANAGED_ROOT (support/claude_managed.py).
The profiles are command sources (no network); the tokens never contain a profile's name, so the
report's redaction of token pieces cannot hide one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env, Result, exe
from claude_managed import doctor_lines, gateway_with_helper, write_managed_settings

pytestmark = pytest.mark.blackbox

HELPER_KEY = "inferenceCredentialHelper"
STATIC_KEY = "sk-static-7d1e4b9a0c6f2835e4d7"  # a static inferenceGatewayApiKey: never printed


def two_profiles(gk: Env) -> None:
    """ "main" (the default) cannot get a token; "second" can."""
    gk.write_config(
        'default_profile = "main"\n'
        "[profiles.main]\n"
        'source = "command"\ncommand = ["/bin/false"]\nallow_insecure_cache = true\n'
        "[profiles.second]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-7f3a9c2e5b1d8046"]\n'
        "allow_insecure_cache = true\n"
    )


def one_profile(gk: Env) -> None:
    gk.write_config(
        "[profiles.only]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-0b8e2d4f6a1c3957"]\n'
        "allow_insecure_cache = true\n"
    )


def folder(gk: Env, name: str = "opt", mode: int = 0o755) -> Path:
    path = gk.root / name
    path.mkdir()
    path.chmod(mode)
    return path


def wrapper(gk: Env, where: Path, profile: str = "second", *args: str) -> Path:
    target = where / f"gatekey-{profile}"
    r = gk.run("wrap", "-p", profile, "-o", str(target), *args)
    assert r.code == 0, r.err
    return target


def doctor(gk: Env, *args: str) -> Result:
    r = gk.run("doctor", *args)
    assert "Traceback" not in r.err, r.err
    return r


lines = doctor_lines


def checks(r: Result) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in json.loads(r.stdout)["checks"]}


# --- the helper path -----------------------------------------------------------------------------
def test_a_helper_that_does_not_exist_fails_though_the_rest_passes(gk: Env) -> None:
    """The issue's case: the gateway and TTL come from the file, and the helper it names is
    not there. doctor used to pass."""
    one_profile(gk)
    gateway_with_helper(gk, "/nonexistent/gatekey", inferenceCredentialHelperTtlSec="1800")
    r = doctor(gk)
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["helper"]
    assert verdict == "FAIL"
    assert "/nonexistent/gatekey does not exist: Claude cannot start it" in text
    assert "fix:" in text
    assert lines(r)["claude"][0] == "OK"
    assert lines(r)["token"][0] == "OK"
    assert "helper" in r.err.splitlines()[-1]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("bin/gatekey", ["not an absolute path"]),
        ("{exe} -p second", ["one file name, with no arguments", "gatekey wrap -p PROFILE"]),
    ],
    ids=["relative", "with-arguments"],
)
def test_a_helper_claude_cannot_start_as_written_fails(
    gk: Env, value: str, words: list[str]
) -> None:
    two_profiles(gk)
    gateway_with_helper(gk, value.format(exe=exe()))
    r = doctor(gk, "-p", "second")
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["helper"]
    assert verdict == "FAIL"
    for word in words:
        assert word in text, text


def test_a_helper_that_is_not_executable_fails(gk: Env) -> None:
    two_profiles(gk)
    target = wrapper(gk, folder(gk))
    target.chmod(0o644)
    gateway_with_helper(gk, str(target))
    verdict, text = lines(doctor(gk))["helper"]
    assert verdict == "FAIL"
    assert f"{target} is not executable (mode 644)" in text
    assert f"fix: chmod 755 {target}" in text


def test_a_console_script_whose_python_is_gone_fails(gk: Env) -> None:
    """A gatekey console script whose environment moved: its #! names a missing interpreter."""
    one_profile(gk)
    moved = folder(gk) / "gatekey"
    script = Path(exe()).read_text().split("\n", 1)[1]
    moved.write_text(f"#!{gk.root}/gone/bin/python\n{script}")
    moved.chmod(0o755)
    gateway_with_helper(gk, str(moved))
    verdict, text = lines(doctor(gk))["helper"]
    assert verdict == "FAIL"
    assert f"starts {gk.root}/gone/bin/python, which is not there" in text


def _as_nobody(path: Path, *, group_only: bool = False) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(path, -1 if group_only else 65534, 65534)


@pytest.mark.parametrize("case", ["file-777", "folder-777", "folder-group", "folder-owner"])
def test_a_helper_others_can_replace_fails_naming_the_path_and_mode(gk: Env, case: str) -> None:
    two_profiles(gk)
    where = folder(gk)
    target = wrapper(gk, where)
    if case == "file-777":
        target.chmod(0o777)
        expected = f"{target} is writable by every user (mode 777)"
    elif case == "folder-777":
        where.chmod(0o777)
        expected = f"{where} is writable by every user (mode 777)"
    elif case == "folder-group":
        _as_nobody(where, group_only=True)  # root's own group is root: this one is not
        where.chmod(0o775)
        expected = f"{where} is writable by group "
    else:
        _as_nobody(where)
        expected = f"{where} is owned by user "
    gateway_with_helper(gk, str(target))
    r = doctor(gk)
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["helper"]
    assert verdict == "FAIL"
    assert expected in text, text
    assert "someone else could change the program Claude runs" in text


def test_a_helper_in_a_sticky_folder_that_you_own_passes(gk: Env) -> None:
    """Like /tmp: every user may write to the folder, but only the owner of an entry may
    rename or remove it."""
    two_profiles(gk)
    target = wrapper(gk, folder(gk, "shared", 0o1777))
    gateway_with_helper(gk, str(target))
    r = doctor(gk)
    verdict, text = lines(r)["helper"]
    assert verdict == "OK", text
    assert "nobody but you and root can change it" in text


# --- the profile Claude gets -------------------------------------------------------------------
def test_a_wrappers_pinned_profile_is_the_one_doctor_checks(gk: Env) -> None:
    two_profiles(gk)
    target = wrapper(gk, folder(gk))
    gateway_with_helper(gk, str(target))
    r = doctor(gk)
    assert r.code == 0, r.out + r.err  # "second" works; the default "main" would not
    assert r.out.splitlines()[0] == 'gatekey doctor: profile "second" (command)'
    verdict, text = lines(r)["helper"]
    assert verdict == "OK", text
    assert f'a gatekey wrap wrapper pinning profile "second", running {exe()}' in text
    data = checks(doctor(gk, "--json"))["helper"]["data"]
    assert (data["kind"], data["pinned_profile"], data["profile"]) == (
        "wrapper",
        "second",
        "second",
    )

    other = doctor(gk, "-p", "main")
    verdict, text = lines(other)["helper"]
    assert verdict == "WARN"
    assert 'Claude gets profile "second", but this doctor run checks "main"' in text


def test_a_wrapper_pinning_a_profile_the_config_lacks_fails(gk: Env) -> None:
    two_profiles(gk)
    target = wrapper(gk, folder(gk))
    one_profile(gk)  # "second" is gone
    gateway_with_helper(gk, str(target))
    r = doctor(gk)
    assert r.code == 1
    verdict, text = lines(r)["helper"]
    assert verdict == "FAIL"
    assert 'it pins profile "second", which' in text
    assert "does not define" in text


def test_a_wrapper_whose_gatekey_is_gone_fails(gk: Env) -> None:
    two_profiles(gk)
    gone = gk.root / "old-venv" / "bin" / "gatekey"
    target = wrapper(gk, folder(gk), "second", "--gatekey", str(gone))
    gateway_with_helper(gk, str(target))
    verdict, text = lines(doctor(gk))["helper"]
    assert verdict == "FAIL"
    assert f"the gatekey it runs: {gone} does not exist" in text


def test_gatekey_that_cannot_choose_a_profile_fails(gk: Env) -> None:
    """Claude runs plain gatekey, and the config has two profiles and no default_profile."""
    two_profiles(gk)
    gk.config_path.write_text(gk.config_path.read_text().replace('default_profile = "main"', ""))
    gateway_with_helper(gk)
    r = doctor(gk, "-p", "second")
    verdict, text = lines(r)["helper"]
    assert verdict == "FAIL"
    assert "gatekey with no arguments cannot choose a profile" in text
    assert "fix: set default_profile, or pin the profile with a wrapper" in text


def test_gatekey_itself_names_its_default_profile(gk: Env) -> None:
    one_profile(gk)
    gateway_with_helper(gk)
    r = doctor(gk)
    assert r.code == 0, r.out + r.err
    verdict, text = lines(r)["helper"]
    assert verdict == "OK"
    assert 'gatekey itself: a run with no arguments uses profile "only"' in text


def test_another_program_is_named_as_not_checked_by_doctor(gk: Env) -> None:
    one_profile(gk)
    script = folder(gk) / "corp-helper"
    script.write_text("#!/bin/sh\necho tok-1a2b3c4d5e6f7a8b\n")
    script.chmod(0o755)
    gateway_with_helper(gk, str(script))
    r = doctor(gk)
    assert r.code == 0, r.out + r.err
    verdict, text = lines(r)["helper"]
    assert verdict == "WARN"
    assert "not gatekey, nor a gatekey wrap wrapper" in text
    assert "fix: run it the way Claude does: gatekey check" in text


# --- inferenceProvider and inferenceCredentialKind ---------------------------------------------
@pytest.mark.parametrize("provider", [None, "bedrock"])
def test_a_provider_other_than_gateway_fails(gk: Env, provider: str | None) -> None:
    one_profile(gk)
    settings = {HELPER_KEY: exe(), "inferenceCredentialKind": "helper-script"}
    if provider is not None:
        settings["inferenceProvider"] = provider
    write_managed_settings(gk, settings)
    r = doctor(gk)
    assert r.code == 1, r.out + r.err
    verdict, text = lines(r)["claude"]
    assert verdict == "FAIL"
    shown = "not set" if provider is None else f"'{provider}'"
    assert f"inferenceProvider is {shown}: Claude uses the gateway settings" in text
    assert 'fix: set inferenceProvider to "gateway"' in text


def test_credential_kind_unset_with_a_static_key_too_warns(gk: Env, secret_hygiene: Any) -> None:
    secret_hygiene.register(STATIC_KEY, "a static inferenceGatewayApiKey")
    one_profile(gk)
    write_managed_settings(
        gk,
        {"inferenceProvider": "gateway", HELPER_KEY: exe(), "inferenceGatewayApiKey": STATIC_KEY},
    )
    for args in (("doctor",), ("doctor", "--json"), ("--debug", "doctor")):
        r = gk.run(*args)
        assert r.code == 0, r.out + r.err
        assert STATIC_KEY not in r.out + r.err
    r = doctor(gk)
    verdict, text = lines(r)["claude"]
    assert verdict == "WARN"
    assert (
        "inferenceCredentialKind is not set and inferenceCredentialHelper and "
        "inferenceGatewayApiKey are all set" in text
    )
    assert (
        'fix: set inferenceCredentialKind to "helper-script" and remove inferenceGatewayApiKey'
        in text
    )
    data = checks(doctor(gk, "--json"))["claude"]["data"]
    assert data["credential_keys"] == [HELPER_KEY, "inferenceGatewayApiKey"]


def test_credential_kind_unset_with_only_the_helper_passes(gk: Env) -> None:
    one_profile(gk)
    write_managed_settings(gk, {"inferenceProvider": "gateway", HELPER_KEY: exe()})
    r = doctor(gk)
    assert r.code == 0, r.out + r.err
    assert lines(r)["claude"][0] == "OK"


def test_a_credential_kind_that_is_not_the_helper_fails(gk: Env) -> None:
    one_profile(gk)
    gateway_with_helper(gk, inferenceCredentialKind="interactive")
    verdict, text = lines(doctor(gk))["claude"]
    assert verdict == "FAIL"
    assert "inferenceCredentialKind is 'interactive', so Claude does not run the" in text


def test_helper_script_without_a_helper_fails(gk: Env) -> None:
    one_profile(gk)
    write_managed_settings(
        gk, {"inferenceProvider": "gateway", "inferenceCredentialKind": "helper-script"}
    )
    verdict, text = lines(doctor(gk))["helper"]
    assert verdict == "FAIL"
    assert "names no inferenceCredentialHelper" in text


def test_without_managed_settings_both_checks_skip(gk: Env) -> None:
    one_profile(gk)
    r = doctor(gk)
    assert r.code == 0, r.out + r.err
    found = lines(r)
    assert (found["claude"][0], found["helper"][0]) == ("SKIP", "SKIP")
    assert "no managed settings" in found["claude"][1]


def test_a_settings_file_claude_ignores_fails_the_claude_check(gk: Env) -> None:
    one_profile(gk)
    path = gateway_with_helper(gk)
    path.chmod(0o666)
    r = doctor(gk)
    found = lines(r)
    assert found["claude"][0] == "FAIL"
    assert f"Claude ignores {path}" in found["claude"][1]
    assert found["helper"][0] == "SKIP"
