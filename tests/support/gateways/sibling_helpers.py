"""How a managed Claude runs its sibling credential helpers and reads what they print.

Each sibling helper (../shared/reference/contract.md, "Other helpers a managed Claude Desktop
runs") is run like the inference helper: the file at an absolute path, NO arguments, stdin
closed, stdout captured whole; but with NO ``CLAUDE_HELPER_CONTEXT`` (nor the legacy
``CLAUDE_HELPER_MANUAL_RUN``) and, for MCP's ``headersHelper``, a 30-second limit. What differs
is how stdout is read:

- ``headersHelper`` (MCP) and ``otlpHeadersHelper``: a flat JSON object of header names to
  string values (``header_map``);
- the plugin marketplace's ``credentialHelper``: a bare token, or git-credential lines
  (``key=value``, the token in ``password``); no JSON (``marketplace_credential``).

Nothing here prints a value: they are credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

MCP_LIMIT_S = 30.0  # managedMcpServers[].headersHelper: the app's documented limit
# A git-credential attribute line (git-credential(1) "INPUT/OUTPUT FORMAT"): key=value, where a
# bare token (base64 padding included) has no such key.
GIT_KEY = re.compile(r"[a-z_]+(\[\])?=")
NO_CONTEXT = ("CLAUDE_HELPER_CONTEXT", "CLAUDE_HELPER_MANUAL_RUN")


class HelperOutputError(ValueError):
    """Stdout the surface's parser refuses (the message describes it, never shows it)."""


T = TypeVar("T")


@dataclass
class HelperRun:
    argv: list[str]
    code: int | None  # None: killed at the limit
    stdout: bytes
    stderr: bytes
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def run_helper(
    path: str, env: Mapping[str, str], *, limit: float = MCP_LIMIT_S, cwd: str | None = None
) -> HelperRun:
    """Run the helper at ``path`` as the app runs a sibling helper: no arguments, stdin closed,
    no CLAUDE_HELPER_CONTEXT, killed (its whole process group) at ``limit`` seconds."""
    run_env = {k: v for k, v in env.items() if k not in NO_CONTEXT}
    argv = [path]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run_env,
        cwd=cwd,
        start_new_session=True,  # the limit ends everything it started
    )
    try:
        out, err = proc.communicate(timeout=limit)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    return HelperRun(argv, code, out, err, time.monotonic() - t0)


def read_output(run: HelperRun, parse: Callable[[bytes], T]) -> tuple[T | None, str]:
    """What a surface makes of a run: ``(parse(stdout), "")``, or ``(None, why)`` when the helper
    failed or its output is not this surface's (the reason never shows the output)."""
    if not run.ok:
        return None, f"the helper failed: exit {run.code}"
    try:
        return parse(run.stdout), ""
    except ValueError as e:
        return None, f"the helper's output: {e}"


def header_map(stdout: bytes) -> dict[str, str]:
    """The headers in a headersHelper's stdout: one flat JSON object, every value a string."""
    try:
        parsed = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise HelperOutputError(f"not a JSON object ({len(stdout)} bytes)") from e
    if not isinstance(parsed, dict) or not parsed:
        raise HelperOutputError(f"not a non-empty JSON object: {type(parsed).__name__}")
    flat = {str(k): v for k, v in parsed.items() if isinstance(v, str)}
    if len(flat) != len(parsed):
        bad = sorted(str(k) for k, v in parsed.items() if not isinstance(v, str))
        raise HelperOutputError(f"values that are not strings: {bad}")
    for name, value in flat.items():
        if not name or any(c in name for c in ":\r\n \t") or any(c in value for c in "\r\n\0"):
            raise HelperOutputError(f"header {name!r} cannot be sent")
    return flat


def marketplace_credential(stdout: bytes) -> tuple[str, str]:
    """``(username, token)`` from a marketplace credentialHelper's stdout: git-credential lines
    (``key=value``; the token is ``password``) or else the whole trimmed stdout as a bare token
    (username ""). JSON is refused: the surface does not take it."""
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HelperOutputError(f"not UTF-8 ({len(stdout)} bytes)") from e
    stripped = text.strip()
    if not stripped:
        raise HelperOutputError("empty")
    if stripped[0] in "{[":
        raise HelperOutputError("JSON, which the marketplace credential helper may not print")
    lines = stripped.split("\n")
    fields = dict(line.partition("=")[::2] for line in lines if GIT_KEY.match(line))
    if len(fields) == len(lines) and ("password" in fields or "username" in fields):
        if not fields.get("password"):
            raise HelperOutputError(f"git-credential lines without a password: {sorted(fields)}")
        return fields.get("username", ""), fields["password"]
    if len(lines) != 1 or any(c.isspace() for c in stripped):
        raise HelperOutputError(f"neither one token nor git-credential lines ({len(lines)} lines)")
    return "", stripped


# --- a stand-in helper for the peers' own tests -------------------------------------------------
FAKE_HELPER = """\
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
runs = os.path.join(here, "runs.jsonl")
n = sum(1 for _ in open(runs)) if os.path.exists(runs) else 0
try:
    stdin_open = sys.stdin is not None and sys.stdin.read(1) != ""
except (OSError, ValueError):
    stdin_open = False
seen = {{
    "argv": len(sys.argv) - 1,
    "context": "CLAUDE_HELPER_CONTEXT" in os.environ,
    "manual": "CLAUDE_HELPER_MANUAL_RUN" in os.environ,
    "stdin_data": stdin_open,
}}
with open(runs, "a") as f:
    f.write(json.dumps(seen) + "\\n")
outputs = sorted(p for p in os.listdir(here) if p.startswith("out-"))
with open(os.path.join(here, outputs[min(n, len(outputs) - 1)]), "rb") as f:
    sys.stdout.buffer.write(f.read())
sys.exit({code})
"""


def fake_helper(directory: Path, outputs: list[bytes], *, code: int = 0) -> str:
    """A helper executable in ``directory`` whose n-th run prints ``outputs[n]`` (the last one
    from then on) and exits ``code``; each run appends what it saw (argument count, whether
    CLAUDE_HELPER_CONTEXT was set, whether stdin had data) to ``runs.jsonl`` beside it. The
    outputs are files (0600), never arguments."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, output in enumerate(outputs):
        path = directory / f"out-{i:03d}"
        path.write_bytes(output)
        path.chmod(0o600)
    script = directory / "helper"
    script.write_text(f"#!{sys.executable}\n" + FAKE_HELPER.format(code=code))
    script.chmod(0o700)
    return str(script)


def fake_runs(helper: str) -> list[dict[str, object]]:
    """What each run of a ``fake_helper`` saw."""
    runs = Path(helper).parent / "runs.jsonl"
    if not runs.exists():
        return []
    return [json.loads(line) for line in runs.read_text().splitlines()]
