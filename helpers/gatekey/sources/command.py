"""The command source: run an argument vector (never a shell) and take the token it prints.

Turns any CLI that prints a token (``az account get-access-token``, a gateway's own login tool)
into a cached, context-aware, contract-clean helper. The child's stdout is captured (it never
reaches the app); its stderr is passed to ours with the token masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from gatekey import context, logs
from gatekey.checks import FAIL, OK, Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import CommandNotFound, DeadlineExceeded, HelperError, SourceUnavailable
from gatekey.kinds import Linker, ProbeKit
from gatekey.token import Token, is_time

log = logging.getLogger(__name__)
MAX_OUTPUT = 1 << 20
PIPE_GRACE = 0.2  # seconds to finish reading after the command exited


class CommandSource:
    program_key = "command"  # the key naming the program, for doctor's fix

    def __init__(self, profile: Profile, links: Linker | None = None) -> None:
        del links  # a command names no other profile
        self.profile = profile
        self.argv: list[str] = profile.values["command"]

    def probe(self, kit: ProbeKit) -> Check:
        """The program is there and executable (it is not run: that is the token check)."""
        import shutil

        program = self.argv[0]
        found = shutil.which(program)
        if found is None:
            fix = f"install it, or set {self.program_key} to its absolute path"
            return Check("source", FAIL, f"{program} is not found, or not executable", [fix])
        note = "" if os.path.isabs(program) else " (an absolute path is safer: PATHs differ)"
        return Check("source", OK, f"{program} found at {found}{note}", [], {"path": found})

    def fetch(self, run: RunContext) -> Token:
        stdout, stderr, code = self._run(run)
        if code != 0:
            self._relay(stderr)
            raise HelperError(
                f"command {self.argv[0]} exited with status {code}; run it in a terminal to see "
                "why",
                profile=self.profile.name,
            )
        value, expires_in, expires_at = self._parse(stdout)
        logs.register_secret(value)  # before relaying: the child may have echoed it
        self._relay(stderr)
        if expires_at is not None:
            now = time.time()
            return Token(value, expires_at=expires_at, obtained_at=now, source="command")
        return Token.from_expires_in(
            value, expires_in, source="command", cache_ttl=self.profile.values["cache_ttl"]
        )

    def _relay(self, stderr: bytes) -> None:
        label = f'profile "{self.profile.name}" ({os.path.basename(self.argv[0])})'
        for line in stderr.decode("utf-8", "replace").splitlines():
            if line.strip():
                log.warning("%s: %s", label, logs.redact(line))

    def _run(self, run: RunContext) -> tuple[bytes, bytes, int]:
        left = run.check(f"starting {self.argv[0]}")
        limit = self.profile.values.get("timeout")
        timeout = left if limit is None else min(left, float(limit))
        # A stop signal arriving before the child's process group is recorded waits until it
        # is, so that stopping the run stops the command too.
        context.begin_child_start()
        try:
            child, readers = self._start()
            run.children.add(child.pid)  # the watchdog and stop signals stop its group
        except FileNotFoundError:
            raise CommandNotFound(
                f"command not found: {self.argv[0]}",
                profile=self.profile.name,
                fix="install it or give its absolute path",
            ) from None
        except OSError as e:
            raise SourceUnavailable(
                f"cannot run {self.argv[0]} ({e.strerror})", profile=self.profile.name
            ) from None
        finally:
            context.end_child_start()
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(child)
            within = (
                f"its timeout ({timeout:g} s)"
                if timeout < left
                else f"the {run.name} time limit ({run.timeout:g} s)"
            )
            raise DeadlineExceeded(
                f"command {self.argv[0]} did not finish within {within}",
                profile=self.profile.name,
            ) from None
        except BaseException:  # Ctrl-C, or an exception raised by a signal handler
            _stop(child)
            raise
        finally:
            run.children.discard(child.pid)
            # The command has exited (or was stopped), so all it wrote is in the pipes. A
            # background process it left behind may hold them open: do not wait for that beyond
            # a moment (its reader then closes the pipe when that process does, or we exit).
            _join(readers)
        return readers[0].data(), readers[1].data(), code

    def _start(self) -> tuple[subprocess.Popen[bytes], list[_Reader]]:
        """The running command, and a reader draining each of its stdout and stderr.

        The pipes are ours (``os.pipe``), not ``Popen``'s file objects: each reader owns its read
        end and closes it at end of file, and our copy of each write end is closed whatever
        happens here, so a command that cannot start leaves no pipe open behind it.
        """
        readers: list[_Reader] = []
        try:
            with contextlib.ExitStack() as write_ends:
                ends = []
                for _ in range(2):
                    read_end, write_end = os.pipe()
                    write_ends.callback(os.close, write_end)
                    readers.append(_Reader(read_end))
                    ends.append(write_end)
                child = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=ends[0],
                    stderr=ends[1],
                    start_new_session=sys.platform != "win32",  # so a timeout stops its children
                )
        except BaseException:
            _join(readers)  # at end of file now: they close their read ends
            raise
        return child, readers

    def _parse(self, stdout: bytes) -> tuple[str, float | None, float | None]:
        """(token, lifetime in seconds or None, expiry time or None) from the command's output."""
        text = stdout.decode("utf-8", "replace").strip()
        if self.profile.values["parse"] == "raw":
            return text, None, None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise HelperError(
                f'command {self.argv[0]} did not print JSON (parse = "json")',
                profile=self.profile.name,
            ) from None
        value = _dig(data, self.profile.values["token_path"])
        if not isinstance(value, str):
            raise HelperError(
                f"command {self.argv[0]} printed JSON without a string at "
                f"{self.profile.values['token_path']!r} (token_path)",
                profile=self.profile.name,
            )
        expires_path = self.profile.values.get("expires_path")
        if expires_path is not None:
            return value, None, self._expiry(_dig(data, expires_path), expires_path)
        path = self.profile.values["expires_in_path"]
        if path is None:
            return value, None, None
        expires_in = _dig(data, path)
        if isinstance(expires_in, str):  # "3600", as some tools print it
            with contextlib.suppress(ValueError):
                expires_in = int(expires_in.strip())
        if not is_time(expires_in):  # a number, not a bool, finite and of sane size
            raise HelperError(
                f"command {self.argv[0]} printed JSON without a number of seconds at "
                f"{path!r} (expires_in_path)",
                profile=self.profile.name,
            )
        return value, float(expires_in), None

    def _expiry(self, raw: Any, path: str) -> float:
        when = parse_time(raw)
        if when is None:
            raise HelperError(
                f"command {self.argv[0]} printed JSON without a time at {path!r} (expires_path: "
                "epoch seconds or an ISO 8601 date-time)",
                profile=self.profile.name,
            )
        return when


def parse_time(raw: Any) -> float | None:
    """Epoch seconds (or milliseconds) as a number or digits, or an ISO 8601 date-time.

    A date-time without a zone is local time: what ``az account get-access-token`` prints in
    ``expiresOn`` (its ``expires_on`` is epoch seconds).
    """
    from datetime import datetime

    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = float(raw)
        return seconds / 1000.0 if seconds > 1e11 else seconds
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp()  # naive: local time, as datetime.timestamp() assumes


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


class _Reader(threading.Thread):
    """Drains one pipe of the child in the background (so a full pipe never blocks it), then
    closes it: it owns the file descriptor from the moment it is made."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.chunks: list[bytes] = []
        self.size = 0
        try:
            self.start()
        except BaseException:
            os.close(fd)
            raise

    def run(self) -> None:
        try:
            while chunk := os.read(self.fd, 65536):
                if self.size < MAX_OUTPUT:
                    self.chunks.append(chunk)
                    self.size += len(chunk)
        except OSError:
            pass  # an error reading the pipe ends it like end of file
        finally:
            os.close(self.fd)

    def data(self) -> bytes:
        return b"".join(self.chunks)[:MAX_OUTPUT]


def _join(readers: list[_Reader]) -> None:
    """Wait for the readers, PIPE_GRACE in all."""
    until = time.monotonic() + PIPE_GRACE
    for reader in readers:
        reader.join(max(0.0, until - time.monotonic()))


def _stop(child: subprocess.Popen[bytes]) -> None:
    try:
        if sys.platform == "win32":
            child.kill()
        else:
            os.killpg(child.pid, signal.SIGKILL)
    except OSError:
        pass
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=1)
