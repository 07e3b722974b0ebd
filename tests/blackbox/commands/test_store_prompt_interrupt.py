"""`gatekey store` at its hidden prompt on a terminal: Ctrl-C and Ctrl-D are a person changing
their mind, never "internal error (Abort)" (issue 14, item 9)."""

from __future__ import annotations

import pytest

from blackbox_env import Env, exe
from terminal import CTRL_C, CTRL_D, Terminal

pytestmark = pytest.mark.blackbox


def _at_prompt(gk: Env) -> Terminal:
    gk.write_config('[profiles.kc]\nsource = "keychain"\n')
    term = Terminal([exe(), "store", "-p", "kc"], gk.vars, gk.root)
    term.expect(b"Secret: ")  # getpass shows this once the terminal no longer echoes
    return term


def test_ctrl_c_at_the_store_prompt_exits_130(gk: Env):
    term = _at_prompt(gk)
    try:
        term.type(CTRL_C)
        code = term.wait()
    finally:
        term.close()
    shown = term.text()
    assert code == 130, shown
    assert "gatekey: interrupted" in shown
    assert "internal error" not in shown
    assert "Traceback" not in shown


def test_ctrl_d_at_the_store_prompt_says_nothing_was_stored(gk: Env):
    term = _at_prompt(gk)
    try:
        term.type(CTRL_D)
        code = term.wait()
    finally:
        term.close()
    shown = term.text()
    assert code == 1, shown
    assert "gatekey: nothing stored: the input ended (Ctrl-D) at the prompt" in shown
    assert "internal error" not in shown
    assert "Traceback" not in shown
