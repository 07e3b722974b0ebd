"""`gatekey mdm --format reg` on a terminal: regedit's UTF-16 is not written to one (it shows as
garbage and can upset the terminal); the command says to use -o. Text formats, a file or a pipe
are unaffected. The installed executable with its stdout on a pseudo-terminal (Python's pty).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from blackbox_env import Env, exe
from deadlines import HARNESS_S

pytestmark = pytest.mark.blackbox

URL = "https://llm-gw.example.com"
WIN_HELPER = r"C:\Program Files\gatekey\Scripts\gatekey.exe"
HELPER = "/opt/gatekey/bin/gatekey"


def on_terminal(gk: Env, *args: str) -> tuple[int, bytes, str]:
    """Run gatekey with stdout on a pseudo-terminal: (exit code, what reached the terminal,
    stderr). The terminal is read while the command runs, so a large write cannot block it."""
    primary, replica = os.openpty()
    try:
        proc = subprocess.Popen(
            [exe(), *args],
            stdin=subprocess.DEVNULL,
            stdout=replica,
            stderr=subprocess.PIPE,
            env=gk.vars,
            cwd=gk.root,
        )
        os.close(replica)
        replica = -1
        shown = b""
        deadline = time.monotonic() + HARNESS_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait(timeout=HARNESS_S)
    finally:
        if replica >= 0:
            os.close(replica)
        os.close(primary)
    return code, shown, err


def config(gk: Env) -> None:
    gk.write_config('[profiles.plain]\nsource = "command"\ncommand = ["/bin/echo", "tok"]\n')


def test_reg_is_not_written_to_a_terminal(gk: Env) -> None:
    config(gk)
    code, shown, err = on_terminal(
        gk, "mdm", "--format", "reg", "--gateway-url", URL, "--helper", WIN_HELPER
    )
    assert code == 2, err  # a usage error, as click reports them
    assert shown == b"", shown
    assert "UTF-16" in err
    assert "-o FILE" in err
    assert "nothing was written" in err
    assert "Traceback" not in err


def test_reg_with_output_file_on_a_terminal(gk: Env, tmp_path: Path) -> None:
    config(gk)
    out = tmp_path / "claude.reg"
    code, shown, err = on_terminal(
        gk, "mdm", "--format", "reg", "--gateway-url", URL, "--helper", WIN_HELPER, "-o", str(out)
    )
    assert code == 0, err
    assert shown == b""
    data = out.read_bytes()
    assert data.startswith(b"\xff\xfe")
    assert "inferenceCredentialHelper".encode("utf-16-le") in data


def test_reg_to_a_pipe_and_text_formats_to_a_terminal(gk: Env) -> None:
    config(gk)
    r = gk.run("mdm", "--format", "reg", "--gateway-url", URL, "--helper", WIN_HELPER)
    assert r.code == 0, r.err  # a pipe or a redirect (> claude.reg) is what the bytes are for
    assert r.stdout.startswith(b"\xff\xfe")
    for fmt in ("linux-json", "plist", "mobileconfig"):
        code, shown, err = on_terminal(
            gk, "mdm", "--format", fmt, "--gateway-url", URL, "--helper", HELPER
        )
        assert code == 0, (fmt, err)
        assert b"inferenceCredentialHelper" in shown, fmt
