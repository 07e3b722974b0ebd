"""Running an installed executable on a pseudo-terminal, as a person at a terminal does.

``Terminal`` starts the program in a new session whose controlling terminal is a pty (Python's
``pty`` module) of a given size: stdin and stderr (and stdout, unless the test takes it through a
pipe) are that terminal, so ``isatty()``, the window size, hidden prompts (getpass opens
/dev/tty) and Ctrl-C / Ctrl-D typed on it behave as they do for a person. What the program shows
on the terminal is collected in ``shown``; its piped stdout, if any, in ``stdout``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence

from deadlines import HARNESS_S

CTRL_C, CTRL_D = b"\x03", b"\x04"


def _take_terminal() -> None:
    """In the child, after setsid: make fd 0 (the pty) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        cwd: str | os.PathLike[str],
        *,
        columns: int = 80,
        rows: int = 24,
        stdout_tty: bool = True,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave if stdout_tty else subprocess.PIPE,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_terminal,  # the only way to give it a controlling terminal
        )
        os.close(slave)
        self.master = master
        self.shown = b""
        self.stdout = b""
        # Piped stdout is read beside the terminal, so neither can fill up and block the program.
        self._reader: threading.Thread | None = None
        if self.proc.stdout is not None:
            self._reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def _read(self, timeout: float) -> bool:
        """Read what the terminal shows for up to ``timeout`` s; False once it is closed."""
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError as e:  # EIO: every process holding the terminal has closed it
            if e.errno == errno.EIO:
                return False
            raise
        self.shown += chunk
        return bool(chunk)

    def expect(self, text: bytes, timeout: float = HARNESS_S) -> None:
        """Wait until the terminal has shown ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.shown:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} not shown; the terminal showed: {self.shown!r}")

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = HARNESS_S) -> int:
        """The exit code, once the program has ended and everything it showed is read."""
        deadline = time.monotonic() + timeout
        while self._read(max(deadline - time.monotonic(), 0)) and self.proc.poll() is None:
            if time.monotonic() > deadline:
                break
        code = self.proc.wait(max(deadline - time.monotonic(), 1))
        while self._read(0.05):  # the rest of what it showed
            pass
        if self._reader is not None:
            self._reader.join(max(deadline - time.monotonic(), 1))
        return code

    def text(self) -> str:
        """What the terminal showed, with its CR LF line ends as LF."""
        return self.shown.decode("utf-8", "replace").replace("\r\n", "\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        os.close(self.master)
