"""A command source leaks no pipe and warns about nothing (issue 12, item 11), black box.

gatekey once left both of a command's pipes (its stdout and stderr) to the garbage collector:
with ``PYTHONWARNINGS=error`` every command profile put two ``ResourceWarning: unclosed file``
tracebacks on the app's stderr (and ``PYTHONDEVMODE=1`` two warning lines). The app may well
run helpers with such settings inherited from a developer's environment. Every path of the
command source closes what it opened: success, a non-zero exit, a timeout, a command that
cannot start, a background process that keeps the pipes open, and a failing refresh served
from the cache. Each runs as the app runs gatekey (no arguments, stdin closed), under each way
Python can be told to turn warnings into errors or show them all, and must give exactly the
contract's output: the exit code, stdout byte-exact, and on stderr only ``gatekey:`` lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blackbox_env import Env, Result, exe

TOKEN = "pipes-" + "Qx7vN2kR9mWz4LpT8cYb"
# How the interpreter is told: the environment the app passes on, or the interpreter's flags.
MODES = {
    "PYTHONWARNINGS=error": ({"PYTHONWARNINGS": "error"}, []),
    "PYTHONWARNINGS=error::ResourceWarning": ({"PYTHONWARNINGS": "error::ResourceWarning"}, []),
    "PYTHONDEVMODE=1": ({"PYTHONDEVMODE": "1"}, []),
    "-W error::ResourceWarning": ({}, ["-W", "error::ResourceWarning"]),
    "-X dev -W error": ({}, ["-X", "dev", "-W", "error"]),
}
# What Python prints for a warning it could not raise, or shows: none of it may appear.
NOISE = ("Warning", "Traceback", "Exception ignored", "unclosed")


def profile(command: list[str], extra: str = "") -> str:
    return (
        '[profiles.cmd]\nsource = "command"\n'
        f"command = {json.dumps(command)}\n"
        'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
        f"allow_insecure_cache = true\n{extra}\n"
    )


def answer(path: Path, token: str = TOKEN) -> Path:
    """A file holding what a command prints: the token, as JSON with a lifetime."""
    path.write_text(json.dumps({"access_token": token, "expires_in": 7200}) + "\n")
    return path


def run(gk: Env, mode: str, context: str = "background") -> Result:
    """gatekey as the app runs it (no arguments, stdin closed), under a warnings ``mode``."""
    env, flags = MODES[mode]
    argv = [sys.executable, *flags, "-m", "gatekey"] if flags else [exe()]
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(gk.vars, CLAUDE_HELPER_CONTEXT=context, **env),
        timeout=60,
        cwd=gk.root,
    )
    return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def assert_quiet(result: Result, code: int, stdout: bytes, lines: int) -> None:
    """The exit code, stdout byte-exact, and ``lines`` stderr lines, all gatekey's own."""
    assert result.code == code, f"exit {result.code}, expected {code}; stderr: {result.err}"
    assert result.stdout == stdout
    err = result.err.splitlines()
    assert all(line.startswith("gatekey: ") for line in err), result.err
    assert not [line for line in err if any(word in line for word in NOISE)], result.err
    assert len(err) == lines, result.err


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_command_that_succeeds_leaves_no_pipe_open(gk: Env, mode: str) -> None:
    gk.write_config(profile(["/bin/cat", str(answer(gk.root / "answer.json"))]))
    assert_quiet(run(gk, mode), 0, TOKEN.encode() + b"\n", 0)


def test_a_command_that_fails_leaves_no_pipe_open(gk: Env, mode: str) -> None:
    gk.write_config(profile(["/bin/sh", "-c", "echo 'child: no such account' >&2; exit 3"]))
    result = run(gk, mode)
    assert_quiet(result, 1, b"", 2)  # the child's line relayed, then gatekey's error
    assert "child: no such account" in result.err
    assert "exited with status 3" in result.err


def test_a_command_past_its_timeout_leaves_no_pipe_open(gk: Env, mode: str) -> None:
    gk.write_config(profile(["/bin/sleep", "30"], 'timeout = "1s"'))
    result = run(gk, mode)
    assert_quiet(result, 75, b"", 1)
    assert "did not finish within its timeout (1 s)" in result.err


@pytest.mark.parametrize(
    ("command", "says"),
    [
        pytest.param("/nonexistent/gatekey-test-command", "command not found", id="missing"),
        pytest.param("not-executable", "Permission denied", id="not-executable"),
    ],
)
def test_a_command_that_cannot_start_leaves_no_pipe_open(
    gk: Env, mode: str, command: str, says: str
) -> None:
    if not command.startswith("/"):
        script = gk.root / command
        script.write_text("#!/bin/sh\necho never\n")
        script.chmod(0o600)
        command = str(script)
    gk.write_config(profile([command]))
    result = run(gk, mode)
    assert_quiet(result, 69, b"", 1)
    assert says in result.err


def test_a_background_process_holding_the_pipes_leaves_no_warning(gk: Env, mode: str) -> None:
    # The command exits at once, but a process it started keeps its stdout and stderr for 3 s:
    # gatekey takes what the command wrote and leaves that process's pipes to it.
    script = f"sleep 3 & cat {answer(gk.root / 'answer.json')}"
    gk.write_config(profile(["/bin/sh", "-c", script]))
    result = run(gk, mode)
    assert_quiet(result, 0, TOKEN.encode() + b"\n", 0)
    assert result.elapsed < 10  # the silent deadline: it did not wait for the background process


def test_a_failing_refresh_served_from_the_cache_leaves_no_pipe_open(gk: Env, mode: str) -> None:
    answer_file = answer(gk.root / "answer.json")
    script = (
        f"if [ -e {gk.root / 'down'} ]; then echo 'child: down' >&2; exit 1; fi; cat {answer_file}"
    )
    gk.write_config(profile(["/bin/sh", "-c", script]))
    assert_quiet(run(gk, mode), 0, TOKEN.encode() + b"\n", 0)
    # Still valid for 1000 s, but below min_ttl (65 min): due for a refresh, which fails.
    now = time.time()
    gk.edit_entry(expires_at=now + 1000, obtained_at=now - 6200)
    (gk.root / "down").touch()
    result = run(gk, mode)
    assert_quiet(result, 0, TOKEN.encode() + b"\n", 2)  # the child's line, gatekey's warning
    assert "child: down" in result.err
