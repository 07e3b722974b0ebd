"""Ending the counting sources that killed gatekey runs leave behind (tests that SIGKILL runs).

A command source runs in a session of its own, so it outlives a killed gatekey; the counting
source (counting_source.py) writes its pid to $COUNT_FILE, which is how they are found.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from blackbox_env import Env


def kill_later_orphans(gk: Env) -> None:
    """Source processes of killed runs (own session, so they outlive gatekey): end ours."""
    count_file = Path(gk.vars["COUNT_FILE"])
    if not count_file.exists():
        return
    for pid in {int(p) for p in count_file.read_text().split()}:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"counting_source" not in f.read():
                    continue
            os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            continue
