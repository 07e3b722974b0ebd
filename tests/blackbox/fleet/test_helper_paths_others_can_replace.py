"""A helper path that users other than you and root could replace is refused (issue 14, item 10):
`wrap -o` into such a folder, `wrap --gatekey`, `mdm --helper` and `check --helper` exit 78
with one line naming the option, the path and the mode, as gatekey refuses to run from a
world-writable installation; `--force` goes on and says what it risks.

The rule (helpers/gatekey/diagnostics/helper_path.py) is gatekey's own installation check's:
writable by every user, or by a group other than the owner's own, or owned by someone else; a
sticky folder (like /tmp) protects what you own in it, but not a name nobody holds yet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from blackbox_env import SUPPORT, Env, Result, exe

pytestmark = pytest.mark.blackbox

GOOD = SUPPORT / "broken_helpers" / "good.sh"
URL = "https://llm-gw.example.com"
RISK = "so someone else could change the program Claude runs for your gateway credentials"


def config(gk: Env) -> None:
    gk.write_config(
        'default_profile = "main"\n'
        "[profiles.main]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-4e5d6c7b8a9f0e1d"]\n'
        "allow_insecure_cache = true\n"
    )


def folder(gk: Env, mode: int, name: str = "shared") -> Path:
    path = gk.root / name
    path.mkdir()
    path.chmod(mode)
    return path


def executable(where: Path, name: str = "helper") -> Path:
    path = where / name
    path.write_bytes(GOOD.read_bytes())
    path.chmod(0o755)
    return path


def refused(r: Result, option: str, path: Path, why: str) -> None:
    """Exit 78, nothing on stdout, one line naming the option, the path and why (with the mode)."""
    r.assert_clean_failure(78)
    assert r.err.count("\n") == 1, r.err
    assert r.err.startswith(f"gatekey: {option}: refusing {path}: {why}"), r.err
    assert RISK in r.err
    assert "--force" in r.err


def warned(r: Result, option: str, path: Path, why: str) -> None:
    assert f"gatekey: warning: {option} {path}: {why}" in r.err, r.err
    assert "(used anyway: --force)" in r.err


def mdm(gk: Env, helper: Path | str, *args: str) -> Result:
    return gk.run(
        "mdm", "--format", "linux-json", "--gateway-url", URL, "--helper", str(helper), *args
    )


# --- wrap -o ----------------------------------------------------------------------------------
def test_wrap_into_a_folder_everyone_can_write_is_refused(gk: Env) -> None:
    config(gk)
    shared = folder(gk, 0o777)
    target = shared / "gatekey-main"
    why = f"{shared} is writable by every user (mode 777)"
    refused(gk.run("wrap", "-p", "main", "-o", str(target)), "--output", target, why)
    assert not target.exists()
    r = gk.run("wrap", "-p", "main", "-o", str(target), "--force")
    assert r.code == 0, r.err
    warned(r, "--output", target, why)
    assert target.is_file()


@pytest.mark.parametrize("case", ["group", "owner"])
def test_wrap_into_a_folder_another_user_can_change_is_refused(gk: Env, case: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user or group needs root")
    config(gk)
    shared = folder(gk, 0o775 if case == "group" else 0o755)
    if case == "group":
        os.chown(shared, -1, 65534)  # not root's own group
        why = f"{shared} is writable by group "
    else:
        os.chown(shared, 65534, 65534)
        why = f"{shared} is owned by user "
    target = shared / "gatekey-main"
    refused(gk.run("wrap", "-p", "main", "-o", str(target)), "--output", target, why)


def test_wrap_into_a_sticky_folder_is_allowed(gk: Env) -> None:
    """Like /tmp: the wrapper is yours, and nobody else may rename or remove it."""
    config(gk)
    target = folder(gk, 0o1777) / "gatekey-main"
    r = gk.run("wrap", "-p", "main", "-o", str(target))
    assert r.code == 0, r.err
    assert "warning" not in r.err


def test_wrap_running_a_gatekey_others_can_replace_is_refused(gk: Env) -> None:
    config(gk)
    shared = folder(gk, 0o777)
    link = shared / "gatekey"
    link.symlink_to(exe())
    target = folder(gk, 0o755, "opt") / "gatekey-main"
    r = gk.run("wrap", "-p", "main", "-o", str(target), "--gatekey", str(link))
    refused(r, "--gatekey", link, f"{shared} is writable by every user (mode 777)")
    assert not target.exists()


# --- mdm --helper -----------------------------------------------------------------------------
def test_mdm_helper_others_can_replace_is_refused(gk: Env) -> None:
    config(gk)
    shared = folder(gk, 0o777)
    helper = executable(shared)
    why = f"{shared} is writable by every user (mode 777)"
    out = gk.root / "managed-settings.json"
    refused(mdm(gk, helper, "-o", str(out)), "--helper", helper, why)
    assert not out.exists()
    r = mdm(gk, helper, "--force")
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["inferenceCredentialHelper"] == str(helper)
    warned(r, "--helper", helper, why)
    helper.chmod(0o777)  # the file itself, in a folder only root can write
    shared.chmod(0o755)
    refused(mdm(gk, helper), "--helper", helper, f"{helper} is writable by every user (mode 777)")


def test_mdm_helper_nobody_holds_yet_in_a_sticky_folder_is_refused(gk: Env) -> None:
    """/tmp/gatekey: anyone may create it before the installer does (or after a reboot)."""
    config(gk)
    sticky = folder(gk, 0o1777)
    helper = sticky / "gatekey"
    why = f"{sticky} is writable by every user (mode 1777) and {helper} is not there yet"
    refused(mdm(gk, helper), "--helper", helper, why)


def test_mdm_helper_paths_only_the_endpoints_have_are_not_judged_here(gk: Env) -> None:
    """A path this machine does not have, under folders only root can write, and a Windows
    path: nothing here says anyone could replace them."""
    config(gk)
    assert mdm(gk, "/opt/gatekey/bin/gatekey").code == 0
    r = gk.run(
        "mdm", "--format", "reg", "--gateway-url", URL, "--helper",
        r"C:\Program Files\gatekey\Scripts\gatekey.exe",
    )  # fmt: skip
    assert r.code == 0, r.err


# --- check --helper ---------------------------------------------------------------------------
def test_check_helper_others_can_replace_is_refused(gk: Env) -> None:
    shared = folder(gk, 0o777)
    helper = executable(shared)
    why = f"{shared} is writable by every user (mode 777)"
    refused(gk.run("check", "--helper", str(helper)), "--helper", helper, why)
    r = gk.run("check", "--helper", str(helper), "--force", "--json")
    assert r.code == 0, r.out + r.err
    warned(r, "--helper", helper, why)
    assert json.loads(r.stdout)["passed"] is True


def test_check_helper_in_a_safe_folder_runs_without_a_word(gk: Env) -> None:
    helper = executable(folder(gk, 0o755, "opt"))
    r = gk.run("check", "--helper", str(helper))
    assert r.code == 0, r.out + r.err
    assert "warning" not in r.err
