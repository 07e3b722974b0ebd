"""What a no-argument cache hit imports: the gatekey modules it may (exactly these, in every
context and whatever the profile's headers: a claim header is decoded by token.py, already among
them), and how to read a run's imports from ``python -X importtime``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| ( *)(\S+)\s*$")

HIT_MODULES = {
    "gatekey",
    "gatekey.cache",
    "gatekey.context",
    "gatekey.errors",
    "gatekey.fastpath",
    "gatekey.installcheck",
    "gatekey.output",
    "gatekey.paths",
    "gatekey.regular",
    "gatekey.token",
}


def imported(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[set[str], bytes]:
    """The modules a run of ``python -X importtime *argv`` imports, and what it printed."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    names = set()
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time: self"):
            continue
        match = IMPORT_LINE.match(line)
        assert match, f"unexpected stderr line: {line!r}"
        names.add(match.group(2))
    return names, proc.stdout
