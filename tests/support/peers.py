"""Real peers shared by the test suite and the benchmark: gnome-keyring's Secret Service on a
private D-Bus, and a private environment (HOME, XDG dirs, gatekey config and cache)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "TMPDIR")


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie holds no pipes; this machine's init
    may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_group(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """Stop a peer started in its own process group: SIGTERM, SIGKILL after ``grace`` s."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def isolated_env(root: Path) -> dict[str, str]:
    """Environment variables that keep a gatekey run (and any keyring) inside ``root``."""
    home = root / "home"
    for d in ("home/.config", "home/.cache", "home/.local/share", "run", "cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "run").chmod(0o700)
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_RUNTIME_DIR=str(root / "run"),
        GATEKEY_CACHE_DIR=str(root / "cache"),
        GATEKEY_MANAGED_CONFIG=str(root / "managed.toml"),  # absent: no managed settings
        # absent too: Claude's managed settings (doctor, check) never come from this machine's /etc
        GATEKEY_MANAGED_ROOT=str(root / "claude-managed"),
    )
    return env


class SecretService:
    """A private session bus with an unlocked gnome-keyring Secret Service on it."""

    TOOLS = ("dbus-daemon", "gnome-keyring-daemon")

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""

    @classmethod
    def missing_tools(cls) -> list[str]:
        return [tool for tool in cls.TOOLS if not shutil.which(tool)]

    def start(self, timeout: float = 10) -> str:
        env = dict(self.env)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.procs.append(bus)
        assert bus.stdout is not None
        self.address = bus.stdout.readline().decode().strip()
        if not self.address:
            self.stop()
            raise RuntimeError("dbus-daemon did not print its address")
        env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.procs.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write(b"test-password")  # --unlock reads the login password until EOF
        daemon.stdin.close()
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise
        return self.address

    def _wait(self, timeout: float) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = open_dbus_connection(bus=self.address)
                try:
                    reply = conn.send_and_get_reply(
                        message_bus.NameHasOwner("org.freedesktop.secrets")
                    )
                    if reply.body[0]:
                        return
                finally:
                    conn.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the Secret Service did not come up")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
