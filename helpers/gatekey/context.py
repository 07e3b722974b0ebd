"""CLAUDE_HELPER_CONTEXT: what a run may do, and by when. Standard library only.

| context                  | person present  | deadline (timeouts.*)         | cached token        |
|--------------------------|-----------------|-------------------------------|---------------------|
| interactive              | yes             | interactive, 120 s            | used                |
| mid-session-refresh      | no              | mid_session_refresh, 15 s (*) | only if < 60 s old  |
| scheduled-task,          | no              | silent, 10 s                  | used                |
|   setup-test, background |                 |                               |                     |
| unset                    | if a TTY is on  | interactive, or silent at     | used                |
|                          | stdin or stderr | most 24 s (**)                |                     |
(*) the app kills mid-session-refresh runs at 20 s.
(**) The app's sibling helpers (MCP headersHelper, and Claude Code's apiKeyHelper) set no
CLAUDE_HELPER_CONTEXT and give the helper no terminal; the MCP one kills it at 30 s. Without a
terminal there is nobody to prompt, so such a run is silent, and it never waits longer than
NO_CONTEXT_MAX whatever ``timeouts.silent`` says (that key also serves the inference helper's
background runs, whose limit the admin sets up to 600 s, so it is clamped here, not refused):
the run then ends on its own terms (a cached fallback, or one line and its exit code) before
the kill, with 6 s left for interpreter start-up, the watchdog's grace and exit on a loaded
machine.

mid-session-refresh means the app's token was just rejected (HTTP 401) or its TTL ran out:
printing the same cached token again would fail again, so the cache is bypassed unless another
run obtained the token moments ago.
"""

from __future__ import annotations

import os
import sys
import time

from gatekey.errors import DeadlineExceeded

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the cache hit ~3 ms

if TYPE_CHECKING:
    from typing import Any, Protocol

    class Timeouts(Protocol):  # config.Config, without importing it
        def timeout(self, key: str) -> float: ...


# Deadlines count from process start: this module is among the first every executable imports.
PROCESS_START = time.monotonic()
ENV = "CLAUDE_HELPER_CONTEXT"
INTERACTIVE = "interactive"
MID_SESSION = "mid-session-refresh"
SILENT_CONTEXTS = ("scheduled-task", "setup-test", "background")
KNOWN = (INTERACTIVE, MID_SESSION, *SILENT_CONTEXTS)


class RunContext:
    """Per-run permissions and deadline; every wait asks ``remaining()``."""

    __slots__ = (
        "children",
        "deadline",
        "fallback",
        "fetches",
        "force_refresh",
        "interactive",
        "name",
        "origin",
        "started",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        *,
        interactive: bool,
        timeout: float,
        force_refresh: bool = False,
        started: float | None = None,
    ) -> None:
        self.name = name
        self.interactive = interactive
        self.timeout = timeout
        self.started = time.monotonic() if started is None else started
        self.deadline = self.started + timeout
        self.force_refresh = force_refresh
        # Process groups of running child processes (command sources), stopped by the watchdog.
        self.children: set[int] = set()
        self.fetches = 0  # how many times a source was asked (the run log's source_requests)
        # A cached credential still valid enough to print if the source cannot answer in time
        # (a Token, set by refresh.get_token): the deadline path prints it rather than fail.
        self.fallback: Any = None
        self.origin = ""  # why this context: "CLAUDE_HELPER_CONTEXT unset, no terminal" (resolve)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, doing: str) -> float:
        """Seconds left, or DeadlineExceeded naming what was being waited for."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(
                f"gave up after {self.timeout:g} s ({self.name} time limit) while {doing}"
            )
        return left

    @property
    def bypass_cache(self) -> bool:
        """Whether cached tokens older than a moment must not be printed again."""
        return self.force_refresh or self.name == MID_SESSION

    def describe(self) -> str:
        """The run's kind for a person: ``a silent run (10 s limit; CLAUDE_HELPER_CONTEXT
        unset, no terminal)``."""
        kind = "an interactive" if self.interactive else f"a {self.name}"
        why = f"; {self.origin}" if self.origin else ""
        return f"{kind} run ({self.timeout:g} s limit{why})"

    def __repr__(self) -> str:
        return f"RunContext({self.name!r}, interactive={self.interactive}, timeout={self.timeout})"


def as_earlier(message: str, name: str | None) -> str:
    """A failure message of a run of context ``name`` as later runs (of any context) read it
    when it is remembered: "within the mid-session-refresh time limit (15 s)" becomes "within
    an earlier run's time limit (15 s)", never another context's label in a background run's
    line."""
    if not name:
        return message
    for said, meant in (
        (f"the {name} time limit", "an earlier run's time limit"),
        (f"{name} time limit", "an earlier run's time limit"),
        (f"({name})", "(in an earlier run)"),
    ):
        message = message.replace(said, meant)
    return message


# Stop signals (SIGTERM, SIGHUP) that arrive while a child process is being started are held
# until its process group is recorded in RunContext.children, so that stopping the run always
# stops the child too (runner._on_stop_signal consults this; signal handlers are per process).
_starting: list[bool] = []
_held_signals: list[int] = []


def begin_child_start() -> None:
    _starting.append(True)


def end_child_start() -> None:
    """The child is recorded (or did not start): deliver a stop signal held meanwhile."""
    _starting.pop()
    if not _starting and _held_signals:
        import signal

        signum = _held_signals[0]
        _held_signals.clear()
        signal.raise_signal(signum)


def hold_stop_signal(signum: int) -> bool:
    """Whether a stop signal must wait for a child start in progress (and is now held)."""
    if not _starting:
        return False
    _held_signals.append(signum)
    return True


def context_name(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The normalised context: one of KNOWN, or "unset" (decided by TTYs), or "unknown"."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV)
    if raw is None or not raw.strip():
        return "unset"
    value = raw.strip().lower()
    return value if value in KNOWN else "unknown"


def _has_tty() -> bool:
    for stream in (sys.stdin, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                return True
        except (ValueError, OSError):
            continue
    return False


DEFAULT_TIMEOUTS = {"interactive": 120.0, "mid_session_refresh": 15.0, "silent": 10.0}
NO_CONTEXT_MAX = 24.0  # the MCP headersHelper's 30 s, less 6 s (see the module docstring)


def resolve(
    cfg: Timeouts | dict[str, float] | None,
    *,
    force_refresh: bool = False,
    started: float | None = None,
) -> RunContext:
    """The RunContext for this process from the environment and the config's timeouts
    (a Config, or the plain mapping the cache index keeps)."""
    name = context_name()

    def timeout(key: str) -> float:
        if cfg is None:
            return DEFAULT_TIMEOUTS[key]
        if isinstance(cfg, dict):
            return float(cfg.get(key, DEFAULT_TIMEOUTS[key]))
        return cfg.timeout(key)

    # The label is what messages say: "(silent time limit)", "within the interactive time
    # limit", "no one is present to sign in (background)". A context the app did not name reads
    # as the kind of run it became; ``origin`` says why, for the debug line.
    if name == INTERACTIVE or (name == "unset" and _has_tty()):
        label, interactive, key = INTERACTIVE, True, "interactive"
        origin = f"{ENV}={INTERACTIVE}" if name == INTERACTIVE else f"{ENV} unset, a terminal"
    elif name == MID_SESSION:
        label, interactive, key, origin = name, False, "mid_session_refresh", f"{ENV}={name}"
    else:
        # scheduled-task, setup-test, background, unset without a terminal, and values this
        # version does not know (newer apps may add some): silent, short deadline.
        interactive, key = False, "silent"
        label = name if name in SILENT_CONTEXTS else "silent"
        origin = {
            "unset": f"{ENV} unset, no terminal",
            "unknown": f"{ENV} has a value this version does not know",
        }.get(name, f"{ENV}={name}")
    limit = timeout(key)
    if name == "unset" and not interactive and limit > NO_CONTEXT_MAX:
        origin += f"; timeouts.silent ({limit:g} s) capped at {NO_CONTEXT_MAX:g} s"
        limit = NO_CONTEXT_MAX
    run = RunContext(
        label,
        interactive=interactive,
        timeout=limit,
        force_refresh=force_refresh,
        started=started,
    )
    run.origin = origin
    return run
