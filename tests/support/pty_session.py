"""The installed gatekey run by a person at a terminal: stdin and stderr on a pseudo-terminal
(Python's ``pty``: what gatekey's ``isatty()`` checks see), stdout a pipe (a human command prints
nothing there; a helper run's payload is asserted byte-exact as usual). The test reads what the
terminal shows and types answers, as the person would.

What the terminal shows is kept raw (``screen``): a line gatekey ends with ``\\n`` arrives as
``\\r\\n`` (the terminal's ONLCR), a line it rewrites in place arrives as ``\\r<text>`` with no
``\\n``, and typed answers are echoed. The run is recorded for the suite's secret hygiene check
like any other (its terminal output as stderr).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import termios
import time
from collections.abc import Sequence

import hygiene
from blackbox_env import Env, Result, exe
from deadlines import HARNESS_S


def _controlling_terminal() -> None:
    """In the child, after setsid (start_new_session): make stdin's terminal the controlling
    one, as a login shell has it."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class TerminalRun:
    """``gatekey <args>`` on a pseudo-terminal; ``read_until``, ``type``, then ``finish``."""

    def __init__(
        self, gk: Env, args: Sequence[str], *, context: str | None = None, **extra: str
    ) -> None:
        self.env = dict(gk.vars, **extra)
        self.env.setdefault("TERM", "xterm")
        if context is not None:
            self.env["CLAUDE_HELPER_CONTEXT"] = context
        self.argv = [exe(), *args]
        self.screen = b""
        self.started = time.monotonic()
        primary, replica = os.openpty()
        self.fd = primary
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=replica,
                stdout=subprocess.PIPE,
                stderr=replica,
                env=self.env,
                cwd=gk.root,
                start_new_session=True,
                preexec_fn=_controlling_terminal,  # the test's threads do not fork
            )
        finally:
            os.close(replica)

    @property
    def text(self) -> str:
        return self.screen.decode("utf-8", "replace")

    def _read(self, timeout: float) -> bool:
        """Read what the terminal has within ``timeout``; False once the run closed it."""
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        if not chunk:
            return False
        self.screen += chunk
        return True

    def read_until(
        self, pattern: str | re.Pattern[str], timeout: float = HARNESS_S
    ) -> re.Match[str]:
        """Read until ``pattern`` matches what the terminal showed (searched from the start)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text)
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 1.0)):
                match = regex.search(self.text)
                if match:
                    return match
                raise AssertionError(
                    f"{regex.pattern!r} not on the terminal (exit {self.proc.poll()}): "
                    f"{self.text!r}"
                )

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def finish(self, timeout: float = HARNESS_S) -> Result:
        """Wait for the run to end, reading the terminal to the end; its Result (stderr: what
        the terminal showed)."""
        deadline = time.monotonic() + timeout
        try:
            while self._read(min(max(deadline - time.monotonic(), 0), 1.0)):
                if self.proc.poll() is not None and not select.select([self.fd], [], [], 0.2)[0]:
                    break  # it exited, and nothing it left running writes here
                if time.monotonic() > deadline:
                    raise AssertionError(f"the run did not end in {timeout} s: {self.text!r}")
            self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
            assert self.proc.stdout is not None
            out = self.proc.stdout.read()
        finally:
            self.close()
        if hygiene.current is not None:
            hygiene.current.runs.append(
                hygiene.Run(self.argv, self.env, None, out, self.screen, self.proc.returncode)
            )
        return Result(
            self.argv, self.proc.returncode, out, self.screen, time.monotonic() - self.started
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lines_shown(screen: str) -> list[str]:
    """The lines a person sees at the end: each ``\\r\\n``-ended line, with text rewritten in
    place (after a bare ``\\r``) replacing what it overwrote, blanks stripped."""
    shown = []
    for raw in screen.replace("\r\n", "\n").split("\n"):
        shown.append(raw.rsplit("\r", 1)[-1].rstrip())
    return [line for line in shown if line]
