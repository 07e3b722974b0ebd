"""`gatekey wrap --format`: a no-argument wrapper pinned to a profile AND an output shape (one per
MCP server, OTLP exporter or marketplace entry, issue 17), run the way the app runs it: by
absolute path, no arguments, stdin closed, the filesystem root as working directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, Env

pytestmark = pytest.mark.blackbox

HEADERS = b'{"Authorization": "Bearer tok-1", "X-Org-Route": "prod"}\n'
GIT = b"username=x-access-token\npassword=tok-1\n"


def config(gk: Env) -> None:
    """The default profile prints a bare token; the wrappers pin "idp" (the counting source)."""
    gk.write_config(
        'default_profile = "main"\n'
        '[profiles.main]\nsource = "command"\ncommand = ["/bin/echo", "tok-main-0123456789"]\n'
        "allow_insecure_cache = true\n"
        + gk.counting_profile("idp", 'headers = { X-Org-Route = "prod" }')
    )


def run_as_app(gk: Env, path: Path, context: str | None) -> subprocess.CompletedProcess[bytes]:
    env = dict(gk.vars)
    if context is not None:
        env["CLAUDE_HELPER_CONTEXT"] = context
    return subprocess.run(
        [str(path)], stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd="/", timeout=60,
        check=False,
    )  # fmt: skip


def wrap(gk: Env, path: Path, *args: str) -> None:
    r = gk.run("wrap", "-p", "idp", "-o", str(path), *args)
    assert r.code == 0, r.err
    assert r.stdout == b""


@pytest.mark.parametrize(("shape", "expected"), [("headers", HEADERS), ("git-credential", GIT)])
def test_a_wrapper_prints_its_shape_in_every_context_from_one_fetch(
    gk: Env, tmp_path: Path, shape: str, expected: bytes
) -> None:
    config(gk)
    target = tmp_path / "bin" / f"claude {shape} helper"
    target.parent.mkdir()
    wrap(gk, target, "--format", shape)
    for context in (*CONTEXTS, None):  # the first fetches; the rest are cache hits
        done = run_as_app(gk, target, context)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, b""), context
    assert gk.count() == 1
    assert gk.run().out == "tok-main-0123456789\n"  # the default run is unchanged


def test_wrappers_of_one_profile_in_two_shapes_share_its_credential(
    gk: Env, tmp_path: Path
) -> None:
    """Two MCP servers and a marketplace from one IdP profile: one fetch serves them all."""
    config(gk)
    mcp, market, plain = tmp_path / "mcp", tmp_path / "market", tmp_path / "plain"
    wrap(gk, mcp, "--format", "headers")
    wrap(gk, market, "--format", "git-credential")
    wrap(gk, plain)  # no --format: the profile's own output (token)
    assert run_as_app(gk, mcp, None).stdout == HEADERS
    assert run_as_app(gk, market, None).stdout == GIT
    assert run_as_app(gk, plain, "background").stdout == b"tok-1\n"
    assert run_as_app(gk, mcp, None).stdout == HEADERS
    assert gk.count() == 1


def test_the_wrapper_sets_the_shape_and_passes_arguments_on(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "mcp-helper"
    wrap(gk, target, "--format", "headers")
    text = target.read_text()
    assert "\nGATEKEY_PROFILE='idp'\nexport GATEKEY_PROFILE\n" in text
    assert "\nGATEKEY_OUTPUT='headers'\nexport GATEKEY_OUTPUT\n" in text
    assert "headersHelper" in text  # what it is for, for the admin who finds it
    # `wrapper get --format token` (a person debugging): the explicit format wins.
    env = dict(gk.vars)
    done = subprocess.run(
        [str(target), "get", "--format", "token"], stdin=subprocess.DEVNULL,
        capture_output=True, env=env, cwd="/", timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, b"tok-1\n"), done.stderr
    gk.printed.append(done.stdout)


def test_a_wrapper_without_format_is_unchanged(gk: Env, tmp_path: Path) -> None:
    """Wrappers written before --format existed read the same: nothing pins a shape."""
    config(gk)
    target = tmp_path / "inference-helper"
    wrap(gk, target)
    assert "GATEKEY_OUTPUT" not in target.read_text()
    again = gk.run("wrap", "-p", "idp", "-o", str(target))
    assert again.code == 0, again.err
    assert "already this wrapper" in again.err


def test_changing_a_wrappers_shape_needs_force(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "helper"
    wrap(gk, target, "--format", "headers")
    r = gk.run("wrap", "-p", "idp", "-o", str(target), "--format", "git-credential")
    r.assert_clean_failure(1)
    assert "--force" in r.err
    wrap(gk, target, "--format", "git-credential", "--force")
    assert run_as_app(gk, target, None).stdout == GIT


def test_a_cmd_wrapper_sets_the_shape(gk: Env, tmp_path: Path) -> None:
    """Windows: set "GATEKEY_OUTPUT=headers" before the call, CRLF line ends."""
    config(gk)
    target = tmp_path / "mcp-helper.cmd"
    r = gk.run(
        "wrap", "-p", "idp", "-o", str(target), "--format", "headers",
        "--gatekey", "C:\\Program Files\\gatekey\\gatekey.exe",
    )  # fmt: skip
    assert r.code == 0, r.err
    lines = target.read_bytes().decode().split("\r\n")
    assert 'set "GATEKEY_PROFILE=idp"' in lines
    assert 'set "GATEKEY_OUTPUT=headers"' in lines
    assert lines.index('set "GATEKEY_OUTPUT=headers"') < lines.index(
        '"C:\\Program Files\\gatekey\\gatekey.exe" %*'
    )


def test_an_unknown_format_is_a_usage_error(gk: Env, tmp_path: Path) -> None:
    config(gk)
    target = tmp_path / "helper"
    r = gk.run("wrap", "-p", "idp", "-o", str(target), "--format", "header")  # get's, not a shape
    assert r.code == 2, r.err
    assert not target.exists()
