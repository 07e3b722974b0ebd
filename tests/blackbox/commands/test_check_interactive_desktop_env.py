"""`gatekey check --interactive` keeps what the app's own environment has for a person at the
desktop (issue 14, item 6): DISPLAY, WAYLAND_DISPLAY, XAUTHORITY, BROWSER and the desktop's
session variables, so that a sign-in that works from `gatekey login` also works under check.

A probe helper says which variables it got; then gatekey itself signs in through a real
headless Chromium ($BROWSER, tests/support/headless_browser.sh) against the OpenID provider
peer that signs alice in without forms.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blackbox_env import SUPPORT, Env
from deadlines import HARNESS_S, INTERACTIVE_S
from idp_helpers import idp_profile
from oidc_peer import OidcProvider
from sign_in_browsers import sessions_of

pytestmark = pytest.mark.blackbox

DESKTOP = {
    "DISPLAY": ":42",
    "WAYLAND_DISPLAY": "wayland-42",
    "XAUTHORITY": "/run/user/1000/.mutter-Xwaylandauth.42",
    "BROWSER": "firefox",
    "DESKTOP_SESSION": "gnome",
}
PROBE = """#!/bin/sh
# Prints a token only when the desktop's variables reached it, and no other shell variable.
fail() { echo "desktop_probe: $1" >&2; exit 9; }
[ "$DISPLAY" = ":42" ] || fail "DISPLAY"
[ "$WAYLAND_DISPLAY" = "wayland-42" ] || fail "WAYLAND_DISPLAY"
[ "$XAUTHORITY" = "/run/user/1000/.mutter-Xwaylandauth.42" ] || fail "XAUTHORITY"
[ "$BROWSER" = "firefox" ] || fail "BROWSER"
[ "$DESKTOP_SESSION" = "gnome" ] || fail "DESKTOP_SESSION"
[ -z "$LEAKY_SHELL_VAR" ] || fail "LEAKY_SHELL_VAR leaked from the shell"
echo tok-desktop-5c4b3a2918f7e6d0
"""


def test_every_context_gets_the_desktop_environment(gk: Env, tmp_path: Path) -> None:
    probe = tmp_path / "desktop_probe.sh"
    probe.write_text(PROBE)
    probe.chmod(0o755)
    r = gk.run(
        "check", "--helper", str(probe), "--interactive", "--json",
        LEAKY_SHELL_VAR="from-the-shell", **DESKTOP,
    )  # fmt: skip
    assert r.code == 0, r.out + r.err
    report = json.loads(r.stdout)
    assert {run["verdict"] for run in report["runs"]} == {"ok"}, report["runs"]
    assert set(DESKTOP) <= set(report["environment"])
    assert "LEAKY_SHELL_VAR" not in report["environment"]


# --- a real browser sign-in -------------------------------------------------------------------
@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A $BROWSER that starts headless Chromium: (the script, its launch log). The script fixes
    headless_browser.sh's own settings, which check does not pass on (it passes $BROWSER and the
    desktop's variables only); every browser session it started is killed afterwards."""
    root = tmp_path / "browsers"
    root.mkdir()
    pids, launches = root / "pids", root / "launches"
    script = root / "browser.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"HEADLESS_BROWSER_PIDFILE='{pids}' HEADLESS_BROWSER_TMP='{root}' "
        f"HEADLESS_BROWSER_LOG='{root}/log' BROWSER_LAUNCHES='{launches}' "
        f"HEADLESS_BROWSER_TIMEOUT={INTERACTIVE_S:g} "
        f"exec '{SUPPORT / 'headless_browser.sh'}' \"$@\"\n"
    )
    script.chmod(0o755)
    yield script, launches
    for leader in map(int, pids.read_text().split() if pids.exists() else []):
        for _ in range(50):
            members = sessions_of(leader)
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        assert not sessions_of(leader), f"browser session {leader} survived"


@pytest.mark.oidc
@pytest.mark.slow
def test_interactive_context_signs_in_through_the_browser(
    gk: Env, oidc_provider_auto: OidcProvider, chromium: tuple[Path, Path]
) -> None:
    """The issue's case: `gatekey login` signs in, `check --interactive` was killed waiting."""
    browser, launches = chromium
    gk.write_config(idp_profile(oidc_provider_auto, flow="browser"))
    # Twice the harness's wait: before the fix the interactive run waited out its whole
    # deadline, and check must still report, not be killed by the test.
    r = gk.run("check", "--interactive", "--json", timeout=2 * HARNESS_S, BROWSER=str(browser))
    assert "Traceback" not in r.err, r.err
    runs = {run["context"]: run for run in json.loads(r.stdout)["runs"]}
    interactive = runs["interactive"]
    assert interactive["verdict"] == "ok", interactive
    assert interactive["within_limit"] is True
    assert r.code == 0, r.out + r.err
    assert len(launches.read_text().splitlines()) == 1  # one sign-in; the rest used it
