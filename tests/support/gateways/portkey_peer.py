"""Portkey's open-source AI gateway (npm ``@portkey-ai/gateway``, pinned in tests/peers/portkey)
as a test peer, on 127.0.0.1 only.

- The gateway has no host option and listens on every interface; ``force-localhost.cjs``,
  preloaded with ``node --require``, forces every listen in its process onto 127.0.0.1 and
  writes the address it bound (``--port=0``: a free port, no race) to a file the test reads.
  ``listening()`` reads back, from /proc, every TCP socket the process listens on, so a test
  proves where it listens rather than trusting the preload.
- Portkey itself authenticates nobody: it forwards the caller's credential to the provider
  (``x-portkey-provider``) at ``x-portkey-custom-host``, so a refusal comes from the upstream.
- ``HookReceiver`` records what Portkey's ``default.webhook`` guardrail posts (the request body,
  ``metadata`` parsed from ``x-portkey-metadata``, never the request's headers): Portkey does not
  forward ``x-portkey-*`` headers upstream, so that is where its reading of them shows.

The gateway's output goes to a log file in the test's tmp dir; ``log_tail(secrets)`` shows its
end with every given secret replaced, for assertion messages.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from gateways.serving import LocalServer, QuietHandler
from peers import stop_group

PEER_DIR = Path(__file__).resolve().parents[2] / "peers" / "portkey"
SERVER = PEER_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
PRELOAD = PEER_DIR / "force-localhost.cjs"
INSTALL = "bash scripts/test.sh (it runs `npm ci` in tests/peers/portkey)"
# Measured here: listening 0.5 s after the start, idle or busy (test-peers.md: ~1 s). This bounds
# only how long a gateway that never comes up is waited for; a ready one is used at once.
READY_S = 30.0
PROBE_S = 2.0  # one readiness probe of GET / on 127.0.0.1
LOOPBACK = "127.0.0.1"
HOOK_WAIT_S = 30.0  # = app_client.TIMEOUT, the longest a request through the gateway may take


def missing() -> str | None:
    """Why the gateway cannot start here (with the command that installs it), or None."""
    if shutil.which("node") is None:
        return f"node is not installed; run {INSTALL}"
    if not SERVER.is_file():
        return f"Portkey's gateway is not installed at {SERVER.parent.parent}; run {INSTALL}"
    return None


class PortkeyGateway:
    """``node --require force-localhost.cjs start-server.js --port=0 --headless`` in its own
    process group; ``url`` is ``http://127.0.0.1:PORT``. Use as a context manager."""

    def __init__(self, log_dir: Path, *, ready_s: float = READY_S) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / "portkey.log"
        self._report = log_dir / "portkey-address.json"
        self._report.unlink(missing_ok=True)
        self._file: IO[bytes] | None = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        environ = dict(os.environ, FORCE_LOCALHOST_REPORT=str(self._report), NODE_ENV="production")
        t0 = time.monotonic()
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            # --headless: no web console (its log stream) beside the API.
            ["node", "--require", str(PRELOAD), str(SERVER), "--port=0", "--headless"],
            cwd=PEER_DIR,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills all of it
        )
        self.address, self.port = self._wait_ready(t0 + ready_s, ready_s)
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.ready_s = time.monotonic() - t0

    def _wait_ready(self, deadline: float, ready_s: float) -> tuple[str, int]:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"Portkey's gateway exited with {code}:\n{self.log_tail()}")
            if self._report.is_file():
                bound = json.loads(self._report.read_text())
                if _answers(int(bound["port"])):
                    return str(bound["address"]), int(bound["port"])
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"Portkey's gateway was not ready in {ready_s:g} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def listening(self) -> list[tuple[str, int]]:
        """(address, port) of every TCP socket the gateway's process listens on (from /proc)."""
        inodes = set()
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        found = []
        for table in ("tcp", "tcp6"):
            text = Path(f"/proc/{self.pid}/net/{table}").read_text()
            found += [(a, p) for a, p, inode in listeners(text) if inode in inodes]
        return found

    def log_tail(self, secrets: Iterable[str] = (), size: int = 4000) -> str:
        """The end of the gateway's log with each of ``secrets`` replaced (never shown)."""
        try:
            text = self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"
        for secret in secrets:
            if secret:
                text = text.replace(secret, "[secret]")
                if secret.count(".") == 2:  # a JWT: its signature alone is a leak too
                    text = text.replace(secret.rsplit(".", 1)[1], "[secret]")
        return text

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 5 s. Idempotent."""
        stop_group(self.proc)
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> PortkeyGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=PROBE_S)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def listeners(table: str) -> list[tuple[str, int, str]]:
    """(address, port, inode) of each LISTEN socket in a /proc/net/tcp or tcp6 table."""
    found = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":  # 0A: TCP_LISTEN
            continue
        address, port = fields[1].split(":")
        found.append((_address(address), int(port, 16), fields[9]))
    return found


def _address(hex_address: str) -> str:
    """/proc/net's address: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ".".join(str(b) for b in words)
    return str(ipaddress.IPv6Address(words))


class _HookHandler(QuietHandler):
    server: Any  # its owner: HookReceiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1 << 20))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self.server.owner.record(self.path, body)
        self.send_json(200, {"verdict": True})


class HookReceiver(LocalServer):
    """A webhook for Portkey's ``default.webhook`` guardrail on 127.0.0.1: ``posts`` holds
    each body it was sent; ``config()`` is the ``x-portkey-config`` that calls it before each
    request (without denying the request whatever it answers)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        super().__init__(_HookHandler)
        self.url = f"{self.url}/hook"

    def record(self, path: str, body: Any) -> None:
        with self._lock:
            self.posts.append((path, body))

    def bodies(self) -> list[Any]:
        with self._lock:
            return [body for _, body in self.posts]

    def config(self) -> str:
        # Portkey waits 3 s for a webhook by default, then goes on without it: wait as long as
        # a request through it may take (app_client.TIMEOUT), not as long as this machine needs.
        parameters = {"webhookURL": self.url, "timeout": int(HOOK_WAIT_S * 1000)}
        check = {"id": "default.webhook", "parameters": parameters}
        hook = {"type": "guardrail", "id": "seen", "deny": False, "checks": [check]}
        return json.dumps({"before_request_hooks": [hook]})
