"""Whole-call deadlines for network calls. Standard library only (the AWS source uses it without
requests).

A network call may take the run's remaining time minus a reserve, in all: connecting, TLS, and
the whole answer, however slowly its bytes arrive. Libraries' own read timeouts bound each read,
not the answer, so a peer sending a byte every half second would never trip them. The reserve
is what the run still needs when the source fails at the very end of its time: to print the
cached credential (refresh._fall_back) or its one error line, before its deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gatekey.context import RunContext
from gatekey.errors import DeadlineExceeded, HelperError

T = TypeVar("T")

# What follows a failed call (a failure record, a warning, the payload) is milliseconds of work,
# but on a loaded machine the process may wait that long and more for a core, and the
# watchdog's 0.5 s grace comes after the deadline, not before it. A tenth of the context's
# deadline, at most 1 s: the source keeps 9 s of silent's 10 s, and a short deadline set in a
# config keeps the same proportion.
RESERVE_SHARE = 0.1
RESERVE_MAX = 1.0


def fallback_reserve(run: RunContext) -> float:
    """Seconds of the run kept back from network calls (see RESERVE_SHARE)."""
    return min(run.timeout * RESERVE_SHARE, RESERVE_MAX)


def request_budget(run: RunContext, doing: str) -> float:
    """Seconds a network call may take in all: the run's remaining time minus the reserve.
    DeadlineExceeded when nothing is left."""
    left = run.check(doing) - fallback_reserve(run)
    if left <= 0:
        raise DeadlineExceeded(
            f"gave up after {run.timeout:g} s ({run.name} time limit) before {doing}"
        )
    return left


def call_within(fn: Callable[[], T], seconds: float, late: Callable[[], HelperError]) -> T:
    """``fn()``'s result (or its exception), or ``late()`` raised once ``seconds`` have passed.

    ``fn`` runs in a daemon thread that is abandoned when late. Chosen over closing the socket at
    the deadline (or checking a clock between reads) because it bounds every way a call can
    block: name resolution (getaddrinfo takes no timeout), the TLS handshake, headers and body
    sent a byte at a time, a library's own waits (botocore's credential chain). The abandoned
    call holds only its own connection, and it ends with the process moments later.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller, which re-raises it
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name="gatekey-request", daemon=True).start()
    if not done.wait(max(seconds, 0.0)):
        raise late()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
