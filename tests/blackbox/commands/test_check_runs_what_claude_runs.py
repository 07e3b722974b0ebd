"""`gatekey check` runs what Claude will run (issue 14, item 2): without --helper or -p, the
inferenceCredentialHelper of Claude's managed settings (support/claude_managed.py), not the
gatekey of the shell it was typed in.

Which profile a run used is told by its outcome: "main" (the default) fails, "second" passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import SUPPORT, Env, Result, exe
from claude_managed import gateway_with_helper

pytestmark = pytest.mark.blackbox

GOOD = SUPPORT / "broken_helpers" / "good.sh"  # prints a token in every context
RAN = ("mid-session-refresh", "scheduled-task", "setup-test", "background", "unset")


def two_profiles(gk: Env) -> None:
    gk.write_config(
        'default_profile = "main"\n'
        "[profiles.main]\n"
        'source = "command"\ncommand = ["/bin/false"]\nallow_insecure_cache = true\n'
        "[profiles.second]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-7f3a9c2e5b1d8046"]\n'
        "allow_insecure_cache = true\n"
    )


def check(gk: Env, *args: str) -> Result:
    r = gk.run("check", "--json", *args)
    assert "Traceback" not in r.err, r.err
    return r


def report(r: Result) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(r.stdout)
    return found


def verdicts(r: Result) -> dict[str, str]:
    return {run["context"]: run["verdict"] for run in report(r)["runs"]}


def wrapper(gk: Env, profile: str = "second") -> Path:
    where = gk.root / "opt"
    where.mkdir(mode=0o755)
    target = where / f"gatekey-{profile}"
    assert gk.run("wrap", "-p", profile, "-o", str(target)).code == 0
    return target


def test_check_runs_the_configured_helper_that_is_not_there(gk: Env) -> None:
    """The issue's case: Claude names /nonexistent/gatekey; check used to pass this gatekey."""
    two_profiles(gk)
    path = gateway_with_helper(gk, "/nonexistent/gatekey")
    r = check(gk, "-p", "second")
    assert r.code == 0, r.err  # -p: this gatekey, pinned to that profile (as before)
    assert "Claude runs /nonexistent/gatekey" in " ".join(report(r)["notes"])
    r = check(gk)
    assert r.code == 1, r.out + r.err
    found = report(r)
    assert found["helper"] == "/nonexistent/gatekey"
    assert f"the helper Claude runs: inferenceCredentialHelper in {path}" in found["notes"]
    assert set(verdicts(r).values()) == {"fail", "skip"}
    assert all("could not start" in " ".join(run["problems"]) for run in found["runs"][1:])


def test_check_runs_a_configured_wrapper_with_its_profile(gk: Env) -> None:
    two_profiles(gk)
    target = wrapper(gk)
    gateway_with_helper(gk, str(target))
    r = check(gk)
    assert r.code == 0, r.out + r.err
    found = report(r)
    assert (found["helper"], found["profile"]) == (str(target), "second")
    assert "profile second (pinned by the wrapper)" in found["notes"]
    assert all(verdicts(r)[ctx] == "ok" for ctx in RAN)
    # gatekey's own deadlines judge it, as they judge this gatekey.
    runs = {run["context"]: run for run in found["runs"]}
    assert runs["background"]["limit"] == 10
    assert "GATEKEY_PROFILE" not in found["environment"]  # the app sets none; the wrapper does


def test_check_runs_configured_gatekey_with_its_default_profile(gk: Env) -> None:
    two_profiles(gk)
    gateway_with_helper(gk, exe())
    r = check(gk)
    assert r.code == 1  # its no-argument run takes "main", which fails
    assert report(r)["profile"] == "main"
    assert "profile main (a run with no arguments selects it)" in report(r)["notes"]


def test_another_configured_program_is_judged_by_claudes_timeout(gk: Env) -> None:
    gateway_with_helper(gk, str(GOOD), inferenceCredentialHelperTimeoutSec="30")
    r = check(gk)
    assert r.code == 0, r.out + r.err
    runs = {run["context"]: run for run in report(r)["runs"]}
    assert runs["scheduled-task"]["limit"] == 30
    assert runs["mid-session-refresh"]["limit"] == 20  # the app's clamp
    r = check(gk, "--timeout", "45")
    assert {run["context"]: run for run in report(r)["runs"]}["background"]["limit"] == 45


def test_a_settings_file_claude_ignores_is_not_what_check_runs(gk: Env) -> None:
    two_profiles(gk)
    path = gateway_with_helper(gk, "/nonexistent/gatekey")
    path.chmod(0o666)  # Claude rejects a group/world-writable file: it runs nothing from it
    r = check(gk, "-p", "second")
    assert r.code == 0, r.out + r.err
    r = check(gk)
    found = report(r)
    assert found["helper"] == exe()
    assert any(f"Claude ignores {path}" in note for note in found["notes"])


def test_a_configured_helper_others_can_replace_is_refused(gk: Env) -> None:
    two_profiles(gk)
    target = wrapper(gk)
    target.parent.chmod(0o777)
    path = gateway_with_helper(gk, str(target))
    r = gk.run("check")
    r.assert_clean_failure(78)
    assert f"inferenceCredentialHelper in {path}: refusing {target}" in r.err
    assert f"{target.parent} is writable by every user (mode 777)" in r.err
    r = check(gk, "--force")
    assert r.code == 0, r.out + r.err
    assert "warning: inferenceCredentialHelper in" in r.err
    assert "(used anyway: --force)" in r.err
