"""The real LiteLLM proxy (``litellm[proxy]`` 1.108.7) as a gateway test peer.

tests/peers/litellm/install.sh installs it into a venv of its own, cached by the hash of its
pinned inputs (scripts/test.sh starts that install in the background early; ``installed()``
waits for it). ``LiteLLM(config, ...)`` runs ``litellm --config tests/peers/litellm/<config>.yaml``
over HTTPS on 127.0.0.1 in its own process group, with a private HOME and only the environment
it is given; ``stop()`` kills the group.

What it does without a database (measured against 1.108.7): the master key is accepted as
``Authorization: Bearer`` or ``x-api-key``; an unknown key answers 400 ``No connected db.``
(type ``no_db_connection``: virtual keys live in the database, and their Prisma engines cannot
be downloaded here); no key answers 500. ``mock_response`` answers ``stream: true`` with plain
JSON, so the configs route the model to the tests' Anthropic upstream, whose SSE LiteLLM passes
through. Ready (``/health/liveliness`` 200) 5-9 s after the start on an idle 2-core machine.

Its log stays in the test's tmp folder; ``explain()`` shows the end of it with every secret the
peer was given, and anything shaped like a JWT, replaced.
"""

from __future__ import annotations

import fcntl
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from blackbox_env import Env, Result
from claude_managed import doctor_lines, gateway_with_helper
from gateways import app_client
from gateways.upstream import MODEL, AnthropicUpstream
from hygiene import Recorder
from peers import stop_group

PEER_DIR = Path(__file__).resolve().parents[2] / "peers" / "litellm"
INSTALL = PEER_DIR / "install.sh"
INSTALL_COMMAND = "bash tests/peers/litellm/install.sh"
# LiteLLM documents no start-up time; the issue measured ~9 s to ready (5-6 s here when idle).
# Ten times that: the machine is shared, and a late start must not fail a test.
READY_S = 90.0
# The first install takes ~1.5 min (89 s measured with no pip cache); a test that starts while
# scripts/test.sh's background install runs waits for it, up to this long.
INSTALL_WAIT_S = 900.0
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def venv() -> Path:
    """Where install.sh puts the proxy (installed or not)."""
    out = subprocess.run(
        ["bash", str(INSTALL), "--path"], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        pytest.fail(f"`{INSTALL_COMMAND} --path` failed: {out.stderr.strip()}")
    return Path(out.stdout.strip())


def installed() -> Path:
    """The proxy's venv, once installed: waits for an install in progress (install.sh holds
    ``<venv>.lock`` while it runs), and fails the test naming the install command otherwise."""
    folder = venv()
    stamp, lock, log = folder / ".gatekey-stamp", Path(f"{folder}.lock"), Path(f"{folder}.log")
    if not stamp.is_file() and lock.is_file():
        deadline = time.monotonic() + INSTALL_WAIT_S
        with lock.open("a") as held:
            while True:
                try:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break  # no install running (any more)
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"the LiteLLM install ({log}) runs past {INSTALL_WAIT_S} s")
                    time.sleep(0.5)
    if not stamp.is_file():
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        ended = f"\nits last install's log ends:\n{tail}" if tail else ""
        pytest.fail(
            f"the LiteLLM test peer is not installed in {folder}: run `{INSTALL_COMMAND}` "
            f"(scripts/test.sh runs it){ended}"
        )
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiteLLM:
    """``litellm --config <config>.yaml`` on ``https://127.0.0.1:<port>`` (``url``)."""

    def __init__(
        self,
        config: str,
        *,
        tls: Mapping[str, str],
        workdir: Path,
        env: Mapping[str, str],
        secrets: Iterable[str] = (),
    ) -> None:
        self.config = PEER_DIR / f"{config}.yaml"
        assert self.config.is_file(), self.config
        self.tls = dict(tls)
        self.workdir = workdir
        self.log_path = workdir / "litellm.log"
        self.secrets = [s for s in secrets if s]
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.venv = installed()
        self.env = {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it downloads the cost map at import
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        for _attempt in range(3):  # a port taken between free_port() and the bind: another one
            self.port = free_port()
            if self._start():
                return
        pytest.fail(f"LiteLLM did not start:\n{self.log()}")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _start(self) -> bool:
        argv = [
            str(self.venv / "bin" / "litellm"),
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ssl_certfile_path",
            self.tls["cert"],
            "--ssl_keyfile_path",
            self.tls["key"],
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,  # its own process group: stop() kills it whole
            )
        context = ssl.create_default_context(cafile=self.tls["ca"])
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.log_path.read_text(errors="replace"):
                    return False
                pytest.fail(f"LiteLLM exited with {self.proc.returncode}:\n{self.log()}")
            try:
                url = f"{self.url}/health/liveliness"
                with urllib.request.urlopen(url, timeout=5, context=context) as answer:  # noqa: S310
                    if answer.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"LiteLLM was not ready within {READY_S:g} s:\n{self.log()}")

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        return JWT.sub("[jwt]", text)

    def log(self, lines: int = 40) -> str:
        """The end of LiteLLM's log, secrets replaced."""
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- {self.log_path} (end; secrets replaced) ---\n{self.redact(tail)}"

    def explain(self, status: int, body: bytes) -> str:
        """An assertion message: the answer's status and start, and the end of the log."""
        said = self.redact(body[:400].decode("utf-8", "replace"))
        return f"LiteLLM answered {status}: {said}\n{self.log()}"

    def serves(
        self, headers: Mapping[str, str], upstream: AnthropicUpstream, upstream_key: str
    ) -> None:
        """Assert that the app's requests with ``headers`` work through LiteLLM: the model list,
        a streamed message, a streamed tool use, the last two forwarded to ``upstream`` with
        LiteLLM's own key (never the caller's credential)."""
        ca = self.tls["ca"]
        listed = app_client.models(self.url, headers, ca=ca)
        assert listed.status == 200, self.explain(listed.status, listed.body)
        assert MODEL in [m["id"] for m in listed.json()["data"]]  # type: ignore[index]
        before = len(upstream.seen)
        text = app_client.stream_message(self.url, headers, model=MODEL, ca=ca)
        assert text.status == 200, self.explain(text.status, text.body)
        assert text.headers["content-type"].startswith("text/event-stream")
        assert text.event_names == app_client.COMPLETE_STREAM
        assert text.text == "pong"
        tool = app_client.stream_message(self.url, headers, model=MODEL, tools=True, ca=ca)
        assert tool.status == 200, self.explain(tool.status, tool.body)
        assert tool.event_names == app_client.COMPLETE_STREAM
        assert tool.tool_input == {"city": "Paris"}
        assert len(upstream.seen) == before + 2, "LiteLLM did not forward both to the upstream"
        assert upstream.saw("x-api-key", upstream_key), "not LiteLLM's own key upstream"

    def refuses(self, headers: Mapping[str, str], upstream: AnthropicUpstream) -> list[int]:
        """The statuses of the model list and a streamed message with ``headers``, asserting
        LiteLLM refused both and forwarded nothing."""
        ca = self.tls["ca"]
        before = len(upstream.seen)
        answers = [
            app_client.models(self.url, headers, ca=ca),
            app_client.stream_message(self.url, headers, model=MODEL, ca=ca),
        ]
        for answer in answers:
            assert answer.status >= 400, self.explain(answer.status, answer.body)
        assert len(upstream.seen) == before, "a refused request reached the upstream"
        return [a.status for a in answers]

    def stop(self) -> None:
        stop_group(self.proc)


def litellm_before(
    upstream: AnthropicUpstream,
    config: str,
    *,
    tls: Mapping[str, str],
    workdir: Path,
    master_key: str,
    upstream_key: str,
    env: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> LiteLLM:
    """LiteLLM with ``config`` in front of ``upstream``: its master key, the upstream's URL and
    LiteLLM's own key to it in the environment (with ``env``), each key a secret of its log."""
    return LiteLLM(
        config,
        tls=tls,
        workdir=workdir,
        env={
            "LITELLM_MASTER_KEY": master_key,
            "UPSTREAM_URL": upstream.url,
            "UPSTREAM_KEY": upstream_key,
            **(env or {}),
        },
        secrets=[master_key, upstream_key, *secrets],
    )


def machine_using(gk: Env, litellm: LiteLLM, hygiene: Recorder, *, ttl_s: str) -> Env:
    """A user's machine: the test CA in the trust store (as the gateway's CA is in Claude's),
    Claude's managed settings naming gatekey and LiteLLM (the helper's TTL ``ttl_s``), and
    every key LiteLLM was given known to the hygiene checker."""
    for key in litellm.secrets:
        hygiene.register(key, "a LiteLLM key")
    gk.vars["SSL_CERT_FILE"] = litellm.tls["ca"]
    gateway_with_helper(
        gk, inferenceGatewayBaseUrl=litellm.url, inferenceCredentialHelperTtlSec=ttl_s
    )
    return gk


def gateway_check(r: Result) -> tuple[str, str]:
    """Doctor's gateway check: (verdict, its text and fix lines)."""
    found = doctor_lines(r)
    assert "gateway" in found, r.out
    return found["gateway"]
