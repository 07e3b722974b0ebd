"""Browsers for sign-in tests: the stand-ins a test hands gatekey as $BROWSER / browser_command,
what they launched, and stopping every browser session they started.

- ``HEADLESS_BROWSER``: real headless Chromium on the URL (support/headless_browser.sh);
- ``RECORDING_BROWSER``: opens nothing, records its argv (support/recording_browser.sh), so a
  sign-in through it waits until its deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from blackbox_env import SUPPORT
from deadlines import deadline_of

HEADLESS_BROWSER = SUPPORT / "headless_browser.sh"
RECORDING_BROWSER = SUPPORT / "recording_browser.sh"


def sessions_of(leader: int) -> list[int]:
    """Processes whose session or process group is ``leader`` (zombies aside)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z":
            continue
        if leader in (int(fields[2]), int(fields[3])):
            found.append(int(entry.name))
    return found


class Browsers:
    """What the test's browsers did (``launches``), and ``stop`` for the sessions they started."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.pidfile = root / "pids"
        self.launch_log = root / "launches"
        self.log = root / "browser.log"

    def env(self, browser: Path | None = HEADLESS_BROWSER) -> dict[str, str]:
        env = {
            "HEADLESS_BROWSER_PIDFILE": str(self.pidfile),
            "HEADLESS_BROWSER_LOG": str(self.log),
            "HEADLESS_BROWSER_TMP": str(self.root),
            "HEADLESS_BROWSER_TIMEOUT": f"{deadline_of('interactive'):g}",
            "BROWSER_LAUNCHES": str(self.launch_log),
        }
        if browser is not None:
            env["BROWSER"] = str(browser)
        return env

    def launches(self) -> list[str]:
        return self.launch_log.read_text().splitlines() if self.launch_log.exists() else []

    def stop(self) -> None:
        leaders = self.pidfile.read_text().split() if self.pidfile.exists() else []
        for leader in map(int, leaders):
            for _ in range(50):
                procs = sessions_of(leader)
                if not procs:
                    break
                for pid in procs:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
            assert not sessions_of(leader), f"browser session {leader} survived"
