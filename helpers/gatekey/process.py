"""Child processes and this process's own stdio, bounded. Standard library only.

``Child`` is the one way gatekey runs a program: an argument vector (never a shell), stdin at end
of file, its own process group (killed whole when it must stop, so nothing it started outlives
it), and stdout and stderr each drained by a ``Reader`` that keeps at most ``MAX_CAPTURE`` bytes.
The command source runs a token command with it; ``gatekey check`` runs a helper as the app does.

``stdout_to_stderr`` keeps whatever a source or library prints out of a report on stdout;
``read_stdin`` reads what is piped in, refusing more than is expected.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from gatekey import context

MAX_CAPTURE = 1 << 20  # bytes kept of each of a child's stdout and stderr; the rest is drained
PIPE_GRACE = 0.2  # seconds to finish reading after the child ended


class Reader(threading.Thread):
    """Drains one pipe in the background (so a chatty child never blocks on a full pipe), keeping
    its first ``MAX_CAPTURE`` bytes, then closes it: it owns the descriptor from the moment it is
    made. A daemon: abandoned if a process the child left behind holds the pipe open."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.buffer = bytearray()
        try:
            self.start()
        except BaseException:
            os.close(fd)
            raise

    def run(self) -> None:
        try:
            while chunk := os.read(self.fd, 65536):
                if len(self.buffer) < MAX_CAPTURE:
                    self.buffer += chunk[: MAX_CAPTURE - len(self.buffer)]
        except OSError:
            pass  # an error reading the pipe ends it like end of file
        finally:
            os.close(self.fd)

    def data(self) -> bytes:
        return bytes(self.buffer)


class Child:
    """A running program with its own process group and its output drained.

    ``children`` is the run's set of process groups (``RunContext.children``), which the
    watchdog and stop signals kill: the child is in it from the moment it starts until it is
    closed, and a stop signal arriving while it starts is held until it is recorded, so that
    stopping the run always stops the child too. Use it as a context manager: leaving the block
    forgets the group and gives the readers ``PIPE_GRACE`` to finish.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        children: set[int] | None = None,
    ) -> None:
        self.children = children
        context.begin_child_start()
        try:
            self.process, self.readers = _start(argv, env, cwd)
            if children is not None:
                children.add(self.process.pid)
        finally:
            context.end_child_start()

    def wait(self, timeout: float) -> int | None:
        """Its exit status, or None when it ran past ``timeout`` (its group is then killed).
        Anything raised meanwhile (Ctrl-C, an exception from a signal handler) kills it too."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        except BaseException:
            self.kill()
            raise

    def drain(self, seconds: float) -> bool:
        """Wait up to ``seconds`` in all for both pipes to reach end of file; whether they did (a
        process the child left behind may still hold them open)."""
        until = time.monotonic() + seconds
        for reader in self.readers:
            reader.join(max(0.0, until - time.monotonic()))
        return not any(reader.is_alive() for reader in self.readers)

    def kill(self) -> None:
        kill_group(self.process)

    @property
    def stdout(self) -> bytes:
        return self.readers[0].data()

    @property
    def stderr(self) -> bytes:
        return self.readers[1].data()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.children is not None:
            self.children.discard(self.process.pid)
        # All the child wrote is in the pipes now. A background process it left behind may
        # hold them open: do not wait for that beyond a moment (its reader then closes the pipe
        # when that process does, or when we exit).
        self.drain(PIPE_GRACE)


def _start(
    argv: list[str], env: dict[str, str] | None, cwd: str | None
) -> tuple[subprocess.Popen[bytes], list[Reader]]:
    """The started program, and a reader on each of its stdout and stderr.

    The pipes are ours (``os.pipe``), not ``Popen``'s file objects: each reader owns its read
    end and closes it at end of file, and our copy of each write end is closed whatever happens
    here, so a program that cannot start leaves no pipe open behind it (OSError).
    """
    extra: dict[str, Any] = {}
    if sys.platform == "win32":
        extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        extra["start_new_session"] = True  # its own group, and no controlling terminal
    readers: list[Reader] = []
    try:
        with contextlib.ExitStack() as write_ends:
            ends = []
            for _ in range(2):
                read_end, write_end = os.pipe()
                write_ends.callback(os.close, write_end)
                readers.append(Reader(read_end))
                ends.append(write_end)
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=ends[0],
                stderr=ends[1],
                env=env,
                cwd=cwd,
                **extra,
            )
    except BaseException:
        for reader in readers:  # at end of file now: they close their read ends
            reader.join(PIPE_GRACE)
        raise
    return child, readers


def kill_group(child: subprocess.Popen[bytes]) -> None:
    """Kill ``child`` and everything in its process group (its tree, on Windows), then reap it
    (a moment at most)."""
    with contextlib.suppress(OSError):  # the group may be gone already
        if sys.platform == "win32":
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(child.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        else:
            os.killpg(child.pid, signal.SIGKILL)
    if child.poll() is None:
        with contextlib.suppress(OSError):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=1)


# --- this process's own stdio ----------------------------------------------------------------
@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point fd 1 at stderr meanwhile: nothing a source, a library or a child prints can enter
    what this process writes to stdout (a report) before or after."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def read_stdin(limit: int) -> bytes | None:
    """What is piped to stdin, at most ``limit`` bytes; None when more came (so it is not the
    token or secret that was asked for, and is not read further)."""
    data = sys.stdin.buffer.read(limit + 1)
    return None if len(data) > limit else data
