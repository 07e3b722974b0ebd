"""On a terminal (issue 14, item 14): colour only where it can be shown (never with TERM=dumb or
NO_COLOR), and tables as wide as the terminal, wrapping long cells instead of running past it."""

from __future__ import annotations

import re

import pytest

from blackbox_env import Env, exe
from terminal import Terminal

pytestmark = pytest.mark.blackbox

ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
IDP = (
    '[profiles.user]\nsource = "oidc"\nissuer = "https://idp.example.test/oauth2"\n'
    'client_id = "c"\nscopes = ["api.read"]\n'
)


def _on_terminal(gk: Env, args: list[str], *, columns: int = 80, **env: str) -> str:
    term = Terminal([exe(), *args], dict(gk.vars, **env), gk.root, columns=columns)
    try:
        term.wait()
    finally:
        term.close()
    return term.text()


@pytest.mark.parametrize(
    ("env", "coloured"),
    [
        ({"TERM": "xterm-256color"}, True),
        ({"TERM": "dumb"}, False),
        ({"TERM": "xterm-256color", "NO_COLOR": "1"}, False),
    ],
    ids=["xterm", "dumb", "NO_COLOR"],
)
def test_colour_only_where_the_terminal_shows_it(gk: Env, env: dict[str, str], coloured: bool):
    gk.write_config(gk.counting_profile("cmd"))
    shown = _on_terminal(gk, ["doctor", "-p", "cmd"], **env)
    assert "gatekey doctor" in shown
    assert bool(ESCAPE.search(shown)) is coloured, shown


@pytest.mark.parametrize(
    ("columns", "first"), [(50, "cmd"), (72, "cmd"), (100, "PROFILE SOURCE STATE")]
)
def test_status_fits_the_terminal(gk: Env, columns: int, first: str):
    # Long cells: the keychain's note (no Secret Service here), an IdP profile's sign-in.
    gk.write_config(gk.counting_profile("cmd") + IDP + '[profiles.kc]\nsource = "keychain"\n')
    assert gk.run("get", "-p", "cmd").code == 0
    shown = _on_terminal(gk, ["status"], columns=columns, TERM="xterm-256color")
    lines = shown.splitlines()
    # A table, or where even that cannot fit without breaking words, one record per profile.
    assert " ".join(lines[0].split()).startswith(first), shown
    assert max(len(ESCAPE.sub("", line)) for line in lines) <= columns, shown
    flat = " ".join(shown.split())  # nothing was cut off, and no word broken
    for text in ("no D-Bus session bus", "user-only file (not encrypted)", "(SecretService)"):
        assert text in flat, shown


def test_status_fits_columns_through_a_pipe(gk: Env):
    gk.write_config(gk.counting_profile("cmd") + IDP + '[profiles.kc]\nsource = "keychain"\n')
    r = gk.run("status", COLUMNS="70")
    assert r.code == 0, r.err
    assert max(len(line) for line in r.out.splitlines()) <= 70, r.out


def test_status_through_a_pipe_keeps_whole_lines(gk: Env):
    # No terminal and no COLUMNS: a script reading the table gets one line per profile.
    gk.write_config(gk.counting_profile("cmd") + IDP + '[profiles.kc]\nsource = "keychain"\n')
    r = gk.run("status")
    assert r.code == 0, r.err
    table = r.out.split("\n\n", 1)[0].splitlines()
    assert len(table) == 4, r.out  # the header and three profiles
