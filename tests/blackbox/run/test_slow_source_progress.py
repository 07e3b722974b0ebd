"""A person at a terminal sees that gatekey is waiting for a slow source (issue 14, item 7): after
a second without an answer, a countdown to the run's deadline on stderr, erased when the answer
comes. Never on stdout, never in the app's pipe or a log, never for a fast answer."""

from __future__ import annotations

import pytest

from blackbox_env import exe
from terminal import Terminal

pytestmark = pytest.mark.blackbox

SLOW = "2.5"  # seconds the counting source sleeps: past the 1 s after which progress shows
SHOWN = b"waiting for the command source"


def run_on_terminal(gk, **env: str) -> tuple[int, str, bytes]:
    gk.write_config(gk.counting_profile())
    term = Terminal(
        [exe()], {**gk.vars, "CLAUDE_HELPER_CONTEXT": "interactive", **env}, gk.root,
        stdout_tty=False,
    )  # fmt: skip
    try:
        code = term.wait()
        return code, term.text(), term.stdout
    finally:
        term.close()


def test_a_slow_source_shows_a_countdown_on_the_terminal_and_erases_it(gk):
    code, shown, stdout = run_on_terminal(gk, SLEEP=SLOW)
    assert (code, stdout) == (0, b"tok-1\n"), shown
    assert SHOWN.decode() in shown
    assert "left, Ctrl-C to stop)" in shown
    tail = shown.rsplit("Ctrl-C to stop)", 1)[1]  # after the last countdown drawn
    assert tail.endswith("\r"), f"not erased: {tail!r}"
    assert not tail.strip(" \r"), f"not erased: {tail!r}"


def test_a_fast_source_shows_nothing(gk):
    code, shown, stdout = run_on_terminal(gk)
    assert (code, stdout) == (0, b"tok-1\n"), shown
    assert SHOWN.decode() not in shown


def test_without_a_terminal_nothing_is_shown(gk):
    gk.write_config(gk.counting_profile())
    result = gk.run(context="interactive", SLEEP=SLOW)
    assert (result.code, result.stdout) == (0, b"tok-1\n"), result.err
    assert SHOWN not in result.stderr
