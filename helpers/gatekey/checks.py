"""One diagnostic result type: what a check looked at, its verdict, what it saw, what to do.

Doctor, inspect, check and the sources' own probes return ``Check``s; only the command layer
turns them into text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
RANK = {OK: 0, SKIP: 0, WARN: 1, FAIL: 2}


@dataclass
class Check:
    name: str
    verdict: str  # OK / WARN / FAIL / SKIP
    detail: str
    fixes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=RANK.__getitem__, default=OK)
