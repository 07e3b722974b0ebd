"""Shared fixtures: isolated environments, the installed executables, real peers.

Every test runs gatekey the way the app does: the installed console script, as a subprocess, no
arguments unless the test is about the CLI, stdin closed, a private HOME / config / cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SUPPORT = Path(__file__).parent / "support"
COUNTING_SOURCE = SUPPORT / "counting_source.py"
CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")
SILENT_CONTEXTS = CONTEXTS[1:]


def exe(name: str = "gatekey") -> str:
    path = BIN / name
    assert path.exists(), f"{path} is not installed; run the README's test command"
    return str(path)


@dataclass
class Result:
    argv: list[str]
    code: int
    stdout: bytes
    stderr: bytes
    elapsed: float

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def assert_clean_failure(self, code: int) -> None:
        """A failure per the contract: the code, empty stdout, one stderr line, no traceback."""
        assert self.code == code, f"exit {self.code}, expected {code}; stderr: {self.err}"
        assert self.stdout == b"", f"stdout must be empty on failure, got {self.stdout!r}"
        assert "Traceback" not in self.err, self.err
        assert self.err.startswith("gatekey: "), self.err
        assert self.err.endswith("\n")


@dataclass
class Env:
    """A private environment for gatekey runs: HOME, XDG dirs, config and cache in tmp_path."""

    root: Path
    vars: dict[str, str] = field(default_factory=dict)

    @property
    def cache_dir(self) -> Path:
        return Path(self.vars["GATEKEY_CACHE_DIR"])

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def write_config(self, text: str) -> Path:
        self.config_path.write_text(text)
        self.vars["GATEKEY_CONFIG"] = str(self.config_path)
        return self.config_path

    def counting_profile(self, name: str = "cmd", extra: str = "") -> str:
        """TOML for a `command` profile running the counting source (see support/)."""
        return (
            f'[profiles.{name}]\nsource = "command"\n'
            f'command = ["{sys.executable}", "{COUNTING_SOURCE}"]\n'
            'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
            f"{extra}\n"
        )

    def count(self) -> int:
        path = Path(self.vars["COUNT_FILE"])
        return len(path.read_text().splitlines()) if path.exists() else 0

    def run(
        self,
        *args: str,
        exe_name: str = "gatekey",
        context: str | None = None,
        stdin: bytes | None = None,
        timeout: float = 60,
        **extra: str,
    ) -> Result:
        env = dict(self.vars, **extra)
        if context is not None:
            env["CLAUDE_HELPER_CONTEXT"] = context
        argv = [exe(exe_name), *args]
        t0 = time.monotonic()
        proc = subprocess.run(
            argv,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            env=env,
            timeout=timeout,
            cwd=self.root,
        )
        return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def _base_env(root: Path) -> dict[str, str]:
    home = root / "home"
    for d in ("home", "home/.config", "home/.cache", "home/.local/share", "run", "cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "run").chmod(0o700)
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_RUNTIME_DIR=str(root / "run"),
        GATEKEY_CACHE_DIR=str(root / "cache"),
        GATEKEY_MANAGED_CONFIG=str(root / "managed.toml"),
        COUNT_FILE=str(root / "count.txt"),
        PYTHONPATH=str(SUPPORT),
    )
    return env


@pytest.fixture
def gk(tmp_path: Path) -> Env:
    """A private gatekey environment with no config file and no D-Bus session bus."""
    return Env(tmp_path, _base_env(tmp_path))


# --- the real Secret Service (gnome-keyring on a private D-Bus) ------------------------------
def _wait_for_secrets(address: str, timeout: float = 10) -> None:
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = open_dbus_connection(bus=address)
            try:
                if conn.send_and_get_reply(
                    message_bus.NameHasOwner("org.freedesktop.secrets")
                ).body[0]:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the Secret Service did not come up")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def secret_service(gk: Env) -> Env:
    """gnome-keyring's Secret Service on a private session bus, unlocked, in the test's HOME."""
    for tool in ("dbus-daemon", "gnome-keyring-daemon"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed; run the README's test command (it installs it)")
    env = dict(gk.vars)
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().decode().strip()
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    keyring_daemon = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert keyring_daemon.stdin is not None
    keyring_daemon.stdin.write(b"test-password")  # --unlock reads the login password until EOF
    keyring_daemon.stdin.close()
    try:
        _wait_for_secrets(address)
    except Exception:
        _stop(keyring_daemon)
        _stop(bus)
        raise
    gk.vars["DBUS_SESSION_BUS_ADDRESS"] = address
    yield gk
    _stop(keyring_daemon)
    _stop(bus)
