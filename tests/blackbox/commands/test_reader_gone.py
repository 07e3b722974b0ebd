"""A human command whose reader went away (`gatekey doctor | head -1`) ends quietly with exit 0:
the reader took what it wanted, as `| head` expects, and a `set -o pipefail` script is not
failed by it. Never "internal error (BrokenPipeError)" (issue 14, item 9)."""

from __future__ import annotations

import os
import subprocess

import pytest

from blackbox_env import Env, exe
from deadlines import HARNESS_S

pytestmark = pytest.mark.blackbox

COMMANDS = [
    ["inspect", "-p", "cmd"],
    ["inspect", "-p", "cmd", "--json"],
    ["doctor", "-p", "cmd"],
    ["status"],
    ["status", "--json"],
    ["config", "show"],
    ["version"],
    ["--version"],
    ["--help"],
    ["status", "--help"],
]


def _into_closed_pipe(gk: Env, args: list[str]) -> tuple[int, str]:
    """Run with stdout a pipe whose reader has already gone (every write fails with EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [exe(), *args],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=gk.vars,
            cwd=gk.root,
            timeout=HARNESS_S,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_reader_that_went_away_ends_the_output_quietly(gk: Env, args: list[str]):
    gk.write_config(gk.counting_profile("cmd"))
    assert gk.run("get", "-p", "cmd").code == 0  # something to inspect
    code, err = _into_closed_pipe(gk, args)
    assert (code, err) == (0, "")


def test_head_reads_one_line_of_a_long_report(gk: Env):
    gk.write_config(gk.counting_profile("cmd"))
    shell = f"set -o pipefail; '{exe()}' doctor -p cmd | head -1"
    proc = subprocess.run(
        ["bash", "-c", shell], capture_output=True, env=gk.vars, cwd=gk.root, timeout=HARNESS_S
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith("gatekey doctor")
    assert b"internal error" not in proc.stderr
