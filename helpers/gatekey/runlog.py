"""The run log: one JSON line per helper run, opt-in with the top-level ``log_file`` key.

Standard library only (the cache hit writes it too). A line records when, which profile and
context, the outcome and exit code, how long the run took, whether the cache served it, and how
many times a source was asked; for failures the error's kind and its (already redacted) message.
Never a token, nor any prefix or hash of one. Lines are appended with one write(2) to a file
opened O_APPEND (0600), so concurrent runs never interleave; a log that cannot be written is
skipped silently: it must never change what a run prints or how it exits.
"""

from __future__ import annotations

import json
import os
import time

from gatekey import context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 300


def line(
    *,
    profile: str | None,
    family: str | None,
    outcome: str,
    exit_code: int,
    cache: str,
    fetches: int,
    cause: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "profile": profile,
        "executable": f"gatekey-{family}" if family else "gatekey",
        "context": context.context_name(),
        "outcome": outcome,  # cache | fetched | fallback | source | error
        "exit": exit_code,
        "duration_ms": round((time.monotonic() - context.PROCESS_START) * 1000, 1),
        "cache": cache,  # hit | miss | off
        "source_requests": fetches,
    }
    if cause:
        entry["cause"] = cause
    if message:
        entry["message"] = message[:MAX_MESSAGE]
    return entry


def append(path: str | None, entry: dict[str, Any]) -> None:
    if not path:
        return
    data = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except (TypeError, ValueError):  # not a path (a damaged index): no log, same run
        return
    except OSError:
        try:  # a first run: create the directory (user-only), then the file
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, flags, 0o600)
        except OSError:
            return
    try:
        os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path: str) -> list[dict[str, Any]]:
    """Every well-formed line of the log (damaged lines are skipped)."""
    out: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for text in f:
                try:
                    item = json.loads(text)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    out.append(item)
    except OSError:
        return []
    return out
