"""`gatekey wrap`: a no-argument wrapper pinned to one profile, run the way the app runs it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, Env, exe

pytestmark = pytest.mark.blackbox


def config(gk: Env) -> None:
    """Two profiles; the default is not the one the wrappers pin."""
    gk.write_config(
        'default_profile = "main"\n'
        "[profiles.main]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-main-0123456789"]\n'
        "allow_insecure_cache = true\n"
        "[profiles.second]\n"
        'source = "command"\ncommand = ["/bin/echo", "tok-second-9876543210"]\n'
        "allow_insecure_cache = true\n"
    )


def run_as_app(gk: Env, path: Path, context: str | None) -> subprocess.CompletedProcess[bytes]:
    """No arguments, stdin closed, the filesystem root as working directory."""
    env = dict(gk.vars)
    if context is not None:
        env["CLAUDE_HELPER_CONTEXT"] = context
    return subprocess.run(
        [str(path)], stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd="/", timeout=30,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("folder", ["plain", "with space", 'it\'s "quoted" $HOME `x`'])
def test_wrapper_prints_the_pinned_profile_in_every_context(
    gk: Env, tmp_path: Path, folder: str
) -> None:
    config(gk)
    target = tmp_path / folder / "claude's helper"
    target.parent.mkdir()
    r = gk.run("wrap", "-p", "second", "-o", str(target))
    assert r.code == 0, r.err
    assert r.stdout == b""
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert target.read_text().startswith("#!/bin/sh\n")
    for context in (*CONTEXTS, None):
        done = run_as_app(gk, target, context)
        assert done.returncode == 0, (context, done.stderr)
        assert done.stdout == b"tok-second-9876543210\n", context
    assert gk.run().out == "tok-main-0123456789\n"  # the default is unchanged


def test_gatekey_path_with_spaces_and_quotes(gk: Env, tmp_path: Path) -> None:
    """The exec'd gatekey itself may live under a path with spaces and a single quote."""
    config(gk)
    odd = tmp_path / "Application Support" / "it's gatekey"
    odd.mkdir(parents=True)
    link = odd / "gatekey"
    link.symlink_to(exe())
    target = tmp_path / "wrapper"
    r = gk.run("wrap", "-p", "second", "-o", str(target), "--gatekey", str(link))
    assert r.code == 0, r.err
    done = run_as_app(gk, target, "background")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"tok-second-9876543210\n"


def test_arguments_are_passed_on(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "wrapper"
    assert gk.run("wrap", "-p", "second", "-o", str(target)).code == 0
    done = subprocess.run(
        [str(target), "get", "--format", "header"], stdin=subprocess.DEVNULL,
        capture_output=True, env=gk.vars, timeout=30, check=False,
    )  # fmt: skip
    assert done.stdout == b"Authorization: Bearer tok-second-9876543210\n", done.stderr


def test_unknown_profile_is_refused(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "wrapper"
    r = gk.run("wrap", "-p", "nope", "-o", str(target))
    r.assert_clean_failure(78)
    assert "nope" in r.err
    assert not target.exists()


def test_no_overwrite_without_force(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "wrapper"
    target.write_text("#!/bin/sh\necho mine\n")
    r = gk.run("wrap", "-p", "second", "-o", str(target))
    r.assert_clean_failure(1)
    assert "--force" in r.err
    assert target.read_text() == "#!/bin/sh\necho mine\n"
    assert gk.run("wrap", "-p", "second", "-o", str(target), "--force").code == 0
    assert run_as_app(gk, target, "background").stdout == b"tok-second-9876543210\n"
    r = gk.run("wrap", "-p", "second", "-o", str(target))  # the same wrapper again: fine
    assert r.code == 0, r.err
    r = gk.run("wrap", "-p", "main", "-o", str(target))  # a different one: refused
    r.assert_clean_failure(1)


def test_relative_gatekey_path_refused(gk: Env, tmp_path: Path) -> None:
    config(gk)
    r = gk.run("wrap", "-p", "second", "-o", str(tmp_path / "w"), "--gatekey", "bin/gatekey")
    r.assert_clean_failure(78)
    assert "--gatekey" in r.err


def test_cmd_wrapper(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "gatekey-second.cmd"
    gatekey = r"C:\Program Files\gatekey 100%\Scripts\gatekey.exe"
    r = gk.run("wrap", "-p", "second", "-o", str(target), "--gatekey", gatekey)
    assert r.code == 0, r.err
    data = target.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    lines = data.decode().split("\r\n")
    assert lines[0] == "@echo off"
    assert 'set "GATEKEY_PROFILE=second"' in lines
    assert r'"C:\Program Files\gatekey 100%%\Scripts\gatekey.exe" %*' in lines
    r = gk.run("wrap", "-p", "second", "-o", str(tmp_path / "x.cmd"), "--gatekey", "/usr/bin/gk")
    r.assert_clean_failure(78)


def test_shellcheck_clean(gk: Env, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/test.sh installs it)")
    config(gk)
    target = tmp_path / "it's a wrapper"
    assert gk.run("wrap", "-p", "second", "-o", str(target)).code == 0
    done = subprocess.run(
        ["shellcheck", "--shell=sh", str(target)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_wrapper_survives_an_empty_environment(gk: Env, tmp_path: Path) -> None:
    """Like the installer test: env -i, closed stdin; only the config location is given."""
    config(gk)
    target = tmp_path / "wrapper"
    assert gk.run("wrap", "-p", "second", "-o", str(target)).code == 0
    env = {k: gk.vars[k] for k in ("GATEKEY_CONFIG", "GATEKEY_CACHE_DIR", "HOME")}
    done = subprocess.run(
        [str(target)], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=30,
        check=False, cwd=os.sep,
    )  # fmt: skip
    assert done.stdout == b"tok-second-9876543210\n", done.stderr
