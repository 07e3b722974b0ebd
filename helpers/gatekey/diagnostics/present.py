"""Presentation shared by the diagnostic commands: aligned tables, verdicts, times for people.

Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). Everything
here writes to the given stream; callers decide stdout (the report) or stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from gatekey.durations import format_duration

GREEN, RED, YELLOW, BOLD, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[1m", "\033[0m"
VERDICTS = {"ok": GREEN, "fail": RED, "warn": YELLOW, "skip": ""}


def use_colour(stream: TextIO = sys.stdout) -> bool:
    if os.environ.get("NO_COLOR", "") != "":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, stream: TextIO = sys.stdout) -> str:
    return f"{colour}{text}{RESET}" if colour and use_colour(stream) else text


def verdict(word: str, stream: TextIO = sys.stdout) -> str:
    """``ok`` / ``fail`` / ``warn`` / ``skip``, upper-cased and coloured on a terminal."""
    return paint(word.upper().ljust(4), VERDICTS.get(word, ""), stream)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> list[str]:
    """Lines of an aligned table (two spaces between columns, no trailing blanks)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def when(epoch: float, now: float | None = None) -> str:
    """``2026-11-24T09:12:00Z (in 41 min)`` / ``(3 h ago)``: absolute UTC plus relative."""
    now = time.time() if now is None else now
    absolute = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    delta = epoch - now
    if abs(delta) < 1:
        relative = "now"
    elif delta > 0:
        relative = f"in {format_duration(delta)}"
    else:
        relative = f"{format_duration(-delta)} ago"
    return f"{absolute} ({relative})"
