"""A `gatekey wrap --format git-credential` wrapper is also a git credential helper: git runs it
with `get`, `store` or `erase` and key=value lines on stdin. `get` prints the credential; git's
`store` and `erase` (git sends `erase` after a server refuses the credential) are ignored, never
passed on to gatekey's own `store` / `erase`, which would replace or delete the profile's secret."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox

ASKED = b"protocol=https\nhost=plugins.example.test\n\n"


def wrapper(gk: Env, tmp_path: Path) -> Path:
    gk.write_config(gk.counting_profile("market"))
    path = tmp_path / "marketplace-helper"
    r = gk.run("wrap", "-p", "market", "--format", "git-credential", "-o", str(path))
    assert r.code == 0, r.err
    return path


def git(gk: Env, tmp_path: Path, helper: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(gk.vars, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    told = b"" if args[0] == "fill" else b"username=x-access-token\npassword=tok-1\n\n"
    return subprocess.run(
        ["git", "-c", f"credential.helper={helper}", "credential", *args],
        input=ASKED + told,
        capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_git_fills_from_the_wrapper_and_its_reject_erases_nothing(gk: Env, tmp_path: Path) -> None:
    helper = wrapper(gk, tmp_path)
    filled = git(gk, tmp_path, helper, "fill")
    assert filled.returncode == 0, filled.stderr
    got = dict(line.split("=", 1) for line in filled.stdout.decode().splitlines())
    assert (got["username"], got["password"]) == ("x-access-token", "tok-1")
    gk.printed.append(filled.stdout)
    for verb in ("reject", "approve"):  # git runs the helper with erase, then store
        done = git(gk, tmp_path, helper, verb)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), verb
    again = git(gk, tmp_path, helper, "fill")
    assert again.stdout == filled.stdout  # the cached credential, still there
    assert gk.count() == 1  # one fetch: erase did not drop the cache


def test_other_arguments_still_reach_gatekey(gk: Env, tmp_path: Path) -> None:
    helper = wrapper(gk, tmp_path)
    done = subprocess.run(
        [str(helper), "get", "--format", "token"], stdin=subprocess.DEVNULL,
        capture_output=True, env=dict(gk.vars), timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, b"tok-1\n"), done.stderr
    gk.printed.append(done.stdout)
    version = subprocess.run(
        [str(helper), "version"], stdin=subprocess.DEVNULL, capture_output=True,
        env=dict(gk.vars), timeout=60, check=False,
    )  # fmt: skip
    assert version.returncode == 0
    assert version.stdout.startswith(b"gatekey")


def test_the_cmd_wrapper_speaks_the_same_protocol(gk: Env, tmp_path: Path) -> None:
    gk.write_config(gk.counting_profile("market"))
    path = tmp_path / "marketplace-helper.cmd"
    exe = "C:\\Program Files\\gatekey\\gatekey.exe"
    r = gk.run(
        "wrap", "-p", "market", "--format", "git-credential", "-o", str(path), "--gatekey", exe
    )  # fmt: skip
    assert r.code == 0, r.err
    lines = path.read_bytes().decode().split("\r\n")
    protocol = [
        'if not "%~2"=="" goto run',  # git passes exactly one argument
        'if /i "%~1"=="store" exit /b 0',
        'if /i "%~1"=="erase" exit /b 0',
        'if /i not "%~1"=="get" goto run',
        f'"{exe}"',  # get: the no-argument run
        "exit /b %ERRORLEVEL%",
        ":run",
        f'"{exe}" %*',  # anything else reaches gatekey as before
        "exit /b %ERRORLEVEL%",
        "",
    ]
    assert lines[-len(protocol) :] == protocol


def test_a_person_at_a_terminal_gets_gatekeys_own_erase(gk: Env, tmp_path: Path) -> None:
    """Git pipes its input; a person typing `<wrapper> erase` on a terminal means gatekey's
    erase (asked first there), never git's ignored one."""
    helper = wrapper(gk, tmp_path)
    first = subprocess.run(
        [str(helper)], stdin=subprocess.DEVNULL, capture_output=True, env=dict(gk.vars),
        timeout=60, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    gk.printed.append(first.stdout)
    primary, replica = os.openpty()
    try:
        proc = subprocess.Popen(
            [str(helper), "erase"], stdin=replica, stdout=subprocess.PIPE, stderr=replica,
            env=dict(gk.vars, TERM="dumb"), start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(replica)
    try:
        os.write(primary, b"y\n")  # the answer, should gatekey ask
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert proc.returncode == 0
    again = subprocess.run(
        [str(helper)], stdin=subprocess.DEVNULL, capture_output=True, env=dict(gk.vars),
        timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    gk.printed.append(again.stdout)
    assert gk.count() == 2  # the cached credential was erased: fetched again
