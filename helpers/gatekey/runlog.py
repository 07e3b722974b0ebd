"""The run log: one JSON line per helper run, opt-in with the top-level ``log_file`` key.

Standard library only (the cache hit writes it too). A line records when, which profile and
context, the outcome and exit code, how long the run took, whether the cache served it, and how
many times a source was asked; for failures the error's kind and its (already redacted) message.
Never a token, nor any prefix or hash of one. Lines are appended with one write(2) to a file
opened O_APPEND (0600), so concurrent runs never interleave; a log that cannot be written (not a
regular file, stdout or stderr itself, no space) is skipped silently, without blocking: it must
never change what a run prints or how it exits.
"""

from __future__ import annotations

import json
import os
import time

from gatekey import context, regular

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


# Descriptors the run log must never write to: stdin, stdout and stderr, and the private copy
# of stdout the full path keeps for the payload (registered by runner.protect_stdout).
PROTECTED_FDS = [0, 1, 2]


def append(path: str | None, entry: dict[str, Any]) -> None:
    """Append one line; any problem (no path, no space, a FIFO, stdout itself) skips it."""
    if not path or not isinstance(path, str):
        return
    try:
        data = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        fd = _open(path)
    except (OSError, TypeError, ValueError):  # not a path (damage), not a regular file, ...
        return
    try:
        if not _is_protected(fd):
            os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open(path: str) -> int:
    # A regular file only (never a FIFO that blocks, a device such as /dev/stdout, or a link).
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        return regular.open_regular(path, flags, 0o600, follow=False)
    except FileNotFoundError:  # a first run: create the directory (user-only), then the file
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        return regular.open_regular(path, flags, 0o600, follow=False)


def _is_protected(fd: int) -> bool:
    """Whether ``fd`` is the same file as stdout, stderr or the payload's descriptor (a log
    path such as /proc/self/fd/1, or the very file stdout is redirected to)."""
    st = os.fstat(fd)
    for other in PROTECTED_FDS:
        try:
            ost = os.fstat(other)
        except OSError:
            continue
        if (ost.st_dev, ost.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def read(path: str, limit: int = 16 << 20) -> list[dict[str, Any]]:
    """Every well-formed line of the log's last ``limit`` bytes (damaged lines are skipped; a
    path that is not a regular file reads as empty, without blocking)."""
    try:
        fd = regular.open_regular(path, os.O_RDONLY)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            os.lseek(fd, size - limit, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(limit)
    except OSError:
        return []
    finally:
        os.close(fd)
    lines = raw.decode("utf-8", "replace").splitlines()
    if size > limit and lines:
        lines = lines[1:]  # the first line was cut by the seek
    out: list[dict[str, Any]] = []
    for text in lines:
        try:
            item = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(item, dict):
            out.append(item)
    return out
