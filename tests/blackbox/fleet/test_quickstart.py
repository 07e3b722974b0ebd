"""`bash scripts/quickstart.sh` leaves a person knowing what to run next (issue 14, item 11).

It ends by naming the installed executable by its full path (`.venv/bin` is not on PATH), the
README's "Use it" block works as written right after it, and on Linux with no Secret Service
(where the demo's keychain is gone when it ends) it says how to keep a key there, and following
what it says works.

The quickstart runs in a copy of the checkout (it installs into that copy's .venv, never the
suite's), with a private HOME: against the real Secret Service on a private bus, or with no bus.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from blackbox_env import REPO, Env
from checkout import code_blocks, copy_checkout, real_python_dir, section
from hygiene import Recorder

pytestmark = [pytest.mark.slow, pytest.mark.blackbox]

MY_KEY = "sk-gk-quickYp4Wm7Rt2Lx9Nc3Vb"
USE_IT_KEY = "sk-gk-useitKq8Zd3Fh6Jm1Pw5Ts"
LATER_KEY = "sk-gk-laterBn5Xc2Gv8Hk4Qr7Wy"
# A path the quickstart names, up to the end of the word (it may stand before "." or ")").
EXECUTABLE = re.compile(r"(/[^\s\"')]+/bin/gatekey)(?![\w-])")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the module: the first quickstart creates its .venv, the next reuses it."""
    return copy_checkout(tmp_path_factory.mktemp("quickstart") / "gatekey")


def shell_env(env: Env) -> dict[str, str]:
    """The test's private environment, with a person's PATH (the real python3, no venv)."""
    return dict(env.vars, PATH=f"{real_python_dir()}:/usr/local/bin:/usr/bin:/bin")


def quickstart(src: Path, env: dict[str, str], key: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/quickstart.sh"],
        cwd=src,
        env=env,
        input=key,
        stdin=None if key is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def named_executables(stderr: str, last: int) -> list[Path]:
    """Every gatekey executable the last ``last`` lines of the quickstart name."""
    lines = [line for line in stderr.splitlines() if line.strip()][-last:]
    return [Path(m) for line in lines for m in EXECUTABLE.findall(line)]


def assert_names_the_installed_gatekey(src: Path, stderr: str) -> Path:
    installed = (src / ".venv" / "bin" / "gatekey").resolve()
    named = named_executables(stderr, last=8)
    assert named, f"the quickstart's last lines name no executable:\n{stderr}"
    for path in named:
        assert path == installed, path
        assert os.access(path, os.X_OK), path
    last = stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"Claude Desktop: inferenceCredentialHelper={installed} "), last
    return installed


def test_quickstart_ends_with_the_real_path_and_use_it_works(
    checkout: Path, secret_service: Env, secret_hygiene: Recorder
) -> None:
    """A desktop (a Secret Service on the bus): the key piped in is stored and printed, the last
    lines say what to run next by the installed path, and then the README's "Use it" block
    runs as written, from the checkout."""
    for key, origin in ((MY_KEY, "the quickstart's key"), (USE_IT_KEY, "the Use it key")):
        secret_hygiene.register(key, origin)
    env = shell_env(secret_service)
    proc = quickstart(checkout, env, MY_KEY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == MY_KEY + "\n"
    assert MY_KEY not in proc.stderr
    gatekey = assert_names_the_installed_gatekey(checkout, proc.stderr)
    assert f"{gatekey} status" in proc.stderr
    assert f'export PATH="{gatekey.parent}:$PATH"' in proc.stderr
    assert "demo key" not in proc.stderr  # the key was the person's own

    block = code_blocks(section((REPO / "README.md").read_text(), "Use it"), "sh")[0]
    assert "gatekey store" in block, block
    used = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=checkout,
        env=dict(env, GATEWAY_KEY=USE_IT_KEY),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert used.returncode == 0, used.stderr
    assert used.stdout == f"{USE_IT_KEY}\nAuthorization: Bearer {USE_IT_KEY}\n"
    assert USE_IT_KEY not in used.stderr


def test_headless_quickstart_says_how_to_keep_a_key_and_that_works(
    checkout: Path, gk: Env, secret_hygiene: Recorder
) -> None:
    """No D-Bus session bus: the demo runs against a temporary keychain, then says that it is
    gone (the helper exits 69 now, as it says), and how to keep a key; doing what it says (a
    keyring for the shell, then `gatekey store`) makes the helper print the key."""
    secret_hygiene.register(LATER_KEY, "the key stored after the quickstart")
    env = shell_env(gk)
    assert "DBUS_SESSION_BUS_ADDRESS" not in env
    proc = quickstart(checkout, env, None)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"sk-demo-[0-9a-f]{24}\n", proc.stdout), proc.stdout
    gatekey = assert_names_the_installed_gatekey(checkout, proc.stderr)
    assert "no Secret Service" in proc.stderr
    assert f"{gatekey} now exits 69" in proc.stderr

    now = subprocess.run(
        [str(gatekey)], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    assert (now.returncode, now.stdout) == (69, b""), now.stderr

    # Option 1, as printed: a keyring for a shell, and in that shell, store and print.
    [start] = [ln.strip() for ln in proc.stderr.splitlines() if "dbus-run-session" in ln]
    shell = gk.root / "the-persons-shell.sh"
    shell.write_text(
        f'#!/bin/sh\nprintf %s "$LATER" | "{gatekey}" store && "{gatekey}" </dev/null\n'
    )
    shell.chmod(0o755)
    later = subprocess.run(
        ["sh", "-c", start],
        env=dict(env, KEYRING_PASSWORD="a-keyring-password", SHELL=str(shell), LATER=LATER_KEY),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert later.returncode == 0, later.stderr
    assert later.stdout == LATER_KEY + "\n"
    assert LATER_KEY not in later.stderr
