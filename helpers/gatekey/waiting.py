"""A person waited on: a countdown while a sign-in waits for them (a line updated in place on a
terminal, one line otherwise), the lines said to them meanwhile, and whether a browser started
here can reach them at all (an SSH session, or Linux with no display). Standard library only;
everything goes to stderr, never stdout (the app's payload)."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

from gatekey.durations import format_duration

_lock = threading.Lock()  # one writer at a time: the countdown's ticks and say()'s lines
_active: list[Countdown] = []


def no_browser_reason(environ: Mapping[str, str] | None = None) -> str | None:
    """Why a browser started here would likely not reach the person (None when it may): over SSH
    it opens on the remote machine, if at all, and a loopback sign-in can only finish there; on
    Linux with no display server there is nothing to open it on."""
    env = os.environ if environ is None else environ
    if env.get("SSH_CONNECTION") or env.get("SSH_TTY"):
        return "this is an SSH session"
    if sys.platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return "there is no display here (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed, or detached
        return False


def say(line: str) -> None:
    """Write ``gatekey: <line>`` on stderr, above a countdown that is showing (it is redrawn)."""
    with _lock:
        countdown = _active[-1] if _active else None
        if countdown is not None:
            countdown.erase()
        _write(f"gatekey: {line}\n")
        if countdown is not None:
            countdown.draw()


def clock(seconds: float) -> str:
    """``1:05`` for 65 s; ``1:00:00`` past an hour."""
    s = max(0, int(seconds + 0.999))  # rounded up: "0:00 left" only once nothing is left
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class Countdown:
    """While the block waits for a person until ``ends`` (a ``time.monotonic()`` instant).

    On a terminal: ``gatekey: <doing> (1:54 left, Ctrl-C to stop)``, rewritten in place every
    second by a daemon thread, and erased when the block ends (the outcome's own line follows).
    Otherwise (the app's pipe, a log) one line saying how long it may wait: a log gets no
    carriage returns.
    """

    def __init__(self, doing: str, ends: float, *, stream: TextIO | None = None) -> None:
        self.doing = doing
        self.ends = ends
        self.stream = stream
        self.tty = is_terminal(stream if stream is not None else sys.stderr)
        self._shown = 0  # characters of the drawn line, to blank them out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def text(self) -> str:
        return f"gatekey: {self.doing} ({clock(self.ends - time.monotonic())} left, Ctrl-C to stop)"

    def draw(self) -> None:
        line = self.text()
        _write("\r" + line.ljust(self._shown), self.stream)  # spaces, not escapes: TERM=dumb too
        self._shown = len(line)

    def erase(self) -> None:
        if self._shown:
            _write("\r" + " " * self._shown + "\r", self.stream)
            self._shown = 0

    def __enter__(self) -> Countdown:
        if not self.tty:
            left = math.ceil(max(0.0, self.ends - time.monotonic()))  # as the countdown shows it
            _write(f"gatekey: {self.doing} (for up to {format_duration(left)})\n", self.stream)
            return self
        with _lock:
            _active.append(self)
            self.draw()
        self._thread = threading.Thread(target=self._tick, name="gatekey-countdown", daemon=True)
        self._thread.start()
        return self

    def _tick(self) -> None:
        while True:
            # Wake when the shown second changes, so the count goes down one second at a time.
            left = self.ends - time.monotonic()
            step = left - int(left) if left > 1 else 1.0
            if self._stop.wait(max(step, 0.05)):
                return
            with _lock:
                if self._stop.is_set():
                    return
                self.draw()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2)
        with _lock:
            if self in _active:
                _active.remove(self)
            self.erase()


class SlowSource:
    """While a person at a terminal waits for a source: nothing for the first ``after`` seconds
    (most answers come sooner), then a Countdown to the run's deadline, erased when the answer
    comes. Off the terminal it shows nothing: the app's log gets no progress lines."""

    def __init__(self, doing: str, ends: float, *, after: float = 1.0, show: bool = True) -> None:
        self.countdown = Countdown(doing, ends)
        self.show = show and self.countdown.tty
        self.after = after
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _start_late(self) -> None:
        if not self._done.wait(self.after):
            with _lock:
                if self._done.is_set() or _active:  # another wait (a sign-in) is on screen
                    return
            self.countdown.__enter__()

    def __enter__(self) -> SlowSource:
        if self.show:
            self._thread = threading.Thread(
                target=self._start_late, name="gatekey-slow", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        self._done.set()
        self._thread.join(timeout=2)
        self.countdown.__exit__(exc_type, exc, tb)


def _write(text: str, stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stderr
    try:
        out.write(text)
        out.flush()
    except (OSError, ValueError):  # stderr gone: a countdown is never worth failing a sign-in
        pass
