"""The product's documented deadlines: every time margin in the suite derives from these (or from
the ``[timeouts]`` a test's own config sets), never from how fast this machine happens to be.

README, "How a run behaves": a run's deadline is ``timeouts.silent`` (10 s) in the silent
contexts, ``timeouts.mid_session_refresh`` (15 s) in ``mid-session-refresh`` and
``timeouts.interactive`` (120 s) in ``interactive``; a watchdog ends any run shortly after its
deadline (``WATCHDOG_GRACE`` in helpers/gatekey/runner.py).

How a test uses them:

- "it waited for its deadline": ``elapsed > deadline - EARLY_S``. A busy machine only makes a
  run slower, so a lower bound never flakes.
- "it stopped at its deadline, not when the source did": the source hangs far longer than
  ``ends_by(deadline)`` (``HANG_S``), and the run ends before ``ends_by(deadline)``.
- "it did not wait at all" (a cache hit, a remembered failure, a lock left by a dead run): the
  test configures a deadline that the wrong behaviour would have to wait out (the source hangs,
  the lock is held for longer), and asserts only that the run ended before that deadline. A
  short wall-clock figure ("under 0.9 s") is never asserted: it measures the machine.
- Short ``[timeouts]`` (1-3 s, to keep a test fast) only for runs that wait one out. A run that
  must finish work before its deadline (a fetch, a TLS handshake, an error answer, a sign-in)
  keeps the documented deadlines, so that a busy machine cannot make it miss one.
- "time passes" (cache_ttl, max_stale) by aging the cached copy, not by sleeping past a short
  cache_ttl that the runs meant to fall inside it would then race; an order between processes
  (a lock released, a child ready) by a marker the other side writes, not by a sleep.
"""

from __future__ import annotations

SILENT_S = 10.0  # timeouts.silent: background, scheduled-task, setup-test, unknown contexts
MID_SESSION_S = 15.0  # timeouts.mid_session_refresh
INTERACTIVE_S = 120.0  # timeouts.interactive
WATCHDOG_GRACE_S = 0.5  # the watchdog ends a run this long after its deadline (runner.py)
# What a run may take beyond its own deadline, seen from outside: the watchdog's grace, plus
# starting the interpreter before gatekey's clock starts and exiting after it stops. Starting
# Python with gatekey's imports takes about 0.1 s of CPU; SILENT_S / 2 leaves room for that
# to be stretched fifty-fold by a loaded machine, and stays far below HANG_S, so that a run
# that waited for its source instead of its deadline still fails.
OVERRUN_S = WATCHDOG_GRACE_S + SILENT_S / 2
# How long a source that "hangs" hangs in a test: six documented silent deadlines, far beyond
# ends_by() of any deadline a test configures (at most a few seconds).
HANG_S = 6 * SILENT_S
# How long a test waits for a run before it gives up on it (subprocess timeouts): past every
# documented deadline, so that the harness never kills a run the product would still finish in
# time (a sign-in through a real browser on a busy machine can take a minute); only a run that
# hangs, which is a failure anyway, ever waits for it.
HARNESS_S = INTERACTIVE_S + OVERRUN_S
# A run's own clock starts after the test's, and gatekey checks the deadline with a little
# headroom (it ends a wait slightly early to leave time to print and exit): "it waited for its
# deadline" allows this much before it.
EARLY_S = 0.3

# A source failure is remembered with backoff: 5 s, doubling to 60 s (README, "Cache";
# helpers/gatekey/cache.py).
BACKOFF_S, BACKOFF_MAX_S = 5.0, 60.0

DEADLINES = {
    "interactive": INTERACTIVE_S,
    "mid-session-refresh": MID_SESSION_S,
}


def deadline_of(context: str | None) -> float:
    """The documented default deadline of ``CLAUDE_HELPER_CONTEXT=context`` (no config)."""
    return DEADLINES.get(context or "", SILENT_S)


def ends_by(deadline: float) -> float:
    """The latest, measured from outside, that a run whose deadline is ``deadline`` may end."""
    return deadline + OVERRUN_S


def asks_allowed(wall: float) -> int:
    """How many times runs may ask a failing source within ``wall`` seconds: once, then once
    more after each backoff step that fits (5 s, 10 s, 20 s... 60 s). A slower machine makes
    the runs take longer and is allowed more, never fewer."""
    asks, waited, wait = 1, 0.0, BACKOFF_S
    while waited + wait <= wall:
        asks, waited, wait = asks + 1, waited + wait, min(wait * 2, BACKOFF_MAX_S)
    return asks
