"""What the gateway test peers share: how they serve on 127.0.0.1, answer JSON, reach a URL and
start as processes of their own. Standard library only (jwt_gateway.py and mcp_peer.py import it
in their own processes too).

- ``LocalServer``: an HTTP server on a thread of the test's process (127.0.0.1, a free port,
  optionally TLS); the handler reaches its owner as ``self.server.owner``. Use as a context
  manager; ``stop`` is idempotent.
- ``QuietHandler``: HTTP/1.1, no access log, ``send_json``/``send_body`` (Content-Length always).
- ``connection``: an HTTP(S) connection to a URL's host, trusting ``ca``.
- ``same``: whether a recorded header value equals the expected one (constant time; tests
  compare credentials with it and never show them).
- ``PeerProcess``: a peer script run as ``python -m gateways.<name> CONFIG.json`` in its own
  process group; it prints one ready line ``{"port": N}`` on stdout; ``stop`` kills the group.
"""

from __future__ import annotations

import hmac
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Self

from peers import stop_group

LOOPBACK = "127.0.0.1"
SUPPORT = Path(__file__).resolve().parents[1]  # tests/support: where ``gateways`` is a package


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: Any


class QuietHandler(BaseHTTPRequestHandler):
    """A handler with no access log (a header value must never reach one) and JSON answers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_body(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, "application/json", json.dumps(body).encode(), headers)


class LocalServer:
    """``handler`` served on a thread on 127.0.0.1 (a free port); ``url`` is its origin. With
    ``tls`` (``cert`` and ``key`` files) the listening socket is wrapped: HTTPS."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, tls: dict[str, str] | None = None
    ) -> None:
        self._server = _Server((LOOPBACK, 0), handler)
        self._server.owner = self
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls["cert"], tls["key"])
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.port = int(self._server.server_address[1])
        self.url = f"{scheme}://{LOOPBACK}:{self.port}"
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def same(value: str | None, expected: str) -> bool:
    """Whether a header seen (None: absent) equals ``expected``, in constant time."""
    return value is not None and hmac.compare_digest(value.encode(), expected.encode())


def connection(url: str, *, timeout: float, ca: str | None = None) -> http.client.HTTPConnection:
    """A connection to ``url``'s host: HTTPS trusting ``ca`` (else the system's), or HTTP."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)


class PeerProcess:
    """``python -m gateways.<module> CONFIG.json`` in its own process group, with only PATH, the
    locale, TMPDIR and ``env``; waits up to ``ready_s`` for its ready line ``{"port": N}``
    (``port``, ``startup_s``). Its stderr is the log (``log()``); ``what`` names it in errors."""

    def __init__(
        self,
        module: str,
        what: str,
        config: dict[str, Any],
        workdir: Path,
        *,
        env: dict[str, str],
        ready_s: float,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        stem = module.replace("_", "-")
        self.config_path = workdir / f"{stem}.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = workdir / f"{stem}.log"
        out = workdir / f"{stem}.out"
        self.port = 0
        self.startup_s = 0.0
        self._out: IO[bytes] = open(out, "wb")  # noqa: SIM115 - closed in stop()
        self._err: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
        run_env = {k: v for k, v in os.environ.items() if k in keep}
        run_env.update(env, PYTHONPATH=str(SUPPORT))
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"gateways.{module}", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            env=run_env,
            start_new_session=True,  # its own process group: stop() kills all of it
        )
        while time.monotonic() < t0 + ready_s:
            line = out.read_text().split("\n")[0]
            if line.endswith("}"):
                self.port = int(json.loads(line)["port"])
                self.startup_s = time.monotonic() - t0
                return
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{what} exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"{what} was not ready in {ready_s:g} s: {self.log()}")

    def log(self) -> str:
        """What it logged: request lines, and any start-up failure (never a credential)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_group(self.proc)
        for f in (self._out, self._err):
            f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
