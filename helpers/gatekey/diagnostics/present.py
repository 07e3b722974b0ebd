"""Presentation shared by the human commands: tables that fit the terminal, verdicts, times.

Colour only on a terminal that can show it: never when NO_COLOR is set (https://no-color.org)
or TERM is "dumb". Everything here returns text or writes to the given stream; callers decide
stdout (the report) or stderr.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import TextIO

from gatekey.durations import format_duration

GREEN, RED, YELLOW, BOLD, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[1m", "\033[0m"
VERDICTS = {"ok": GREEN, "fail": RED, "warn": YELLOW, "skip": ""}
_ESCAPE = re.compile(r"\033\[[0-9;]*m")
# A column wider than this gives up width when the table is too wide for the terminal; narrower
# ones (names, verdicts, exit codes, times) are never wrapped.
MIN_WRAPPED = 8
LONG_WORD = 24  # a longer word (a URL, a path) may be broken to fit; shorter ones never are
GAP = "  "


def use_colour(stream: TextIO = sys.stdout) -> bool:
    if os.environ.get("NO_COLOR", "") != "":
        return False
    if os.environ.get("TERM", "").strip().lower() == "dumb":  # Emacs shells, some CI logs
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, stream: TextIO = sys.stdout) -> str:
    return f"{colour}{text}{RESET}" if colour and use_colour(stream) else text


def verdict(word: str, stream: TextIO = sys.stdout) -> str:
    """``ok`` / ``fail`` / ``warn`` / ``skip``, upper-cased and coloured on a terminal."""
    return paint(word.upper().ljust(4), VERDICTS.get(word, ""), stream)


def visible_len(text: str) -> int:
    """The width ``text`` takes on a terminal: colour escapes take none."""
    return len(_ESCAPE.sub("", text))


def terminal_width(stream: TextIO = sys.stdout) -> int | None:
    """The width to fit: $COLUMNS when set, else the terminal's, else None (a pipe or a file:
    nothing to fit, and a script reading the output gets whole lines)."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns or None
    except (AttributeError, OSError, ValueError):
        pass
    return None


def table(
    rows: Sequence[Sequence[object]],
    header: Sequence[str],
    *,
    width: int | None = None,
    indent: int = 0,
    stream: TextIO = sys.stdout,
) -> list[str]:
    """Lines of an aligned table (two spaces between columns, no trailing blanks; each line
    indented by ``indent`` spaces) that fits ``width`` (default: the terminal's, see
    terminal_width): the widest columns but the first give up width and their cells wrap onto
    continuation lines, so nothing is cut off. A table with named columns that cannot fit even
    so is shown one record at a time (the first cell, then a line per column). Cells may be
    coloured."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(visible_len(row[i]) for row in cells) for i in range(len(header))]
    limit = terminal_width(stream) if width is None else width
    if limit is not None:
        room = limit - indent - len(GAP) * (len(widths) - 1)
        words = [max(_longest_word(row[i]) for row in cells) for i in range(len(header))]
        widths = _fit(widths, [min(max(w, MIN_WRAPPED), LONG_WORD) for w in words], room)
        if sum(widths) > room and any(h.strip() for h in header):
            return _records(cells, limit - indent, indent)  # rather than break words
        widths = _fit(widths, [MIN_WRAPPED] * len(widths), room)
    lines: list[str] = []
    for row in cells:
        lines += _row_lines(row, widths, indent)
    return lines


def _row_lines(row: Sequence[str], widths: Sequence[int], indent: int) -> list[str]:
    wrapped = [_wrap(cell, w) for cell, w in zip(row, widths, strict=True)]
    lines = []
    for i in range(max(len(parts) for parts in wrapped)):
        parts = [p[i] if i < len(p) else "" for p in wrapped]
        padded = [p + " " * (w - visible_len(p)) for p, w in zip(parts, widths, strict=True)]
        lines.append((" " * indent + GAP.join(padded)).rstrip())
    return lines


def _fit(widths: list[int], floors: list[int], room: int) -> list[int]:
    """Narrow the widest columns but the first, each down to its floor at most, until the table
    fits ``room`` (or cannot)."""
    widths = list(widths)
    while sum(widths) > room:
        wide = [i for i, w in enumerate(widths) if i > 0 and w > floors[i]]
        if not wide:
            break
        widths[max(wide, key=lambda i: widths[i])] -= 1
    return widths


def _longest_word(cell: str) -> int:
    return max((len(word) for word in _ESCAPE.sub("", cell).split()), default=0)


def _records(cells: list[list[str]], room: int, indent: int) -> list[str]:
    """A table too wide for its terminal as records: the first cell, then "  COLUMN  value"."""
    names = [h.strip() for h in cells[0]]
    label = max(len(name) for name in names[1:])
    value = max(room - 2 - label - len(GAP), MIN_WRAPPED)
    lines: list[str] = []
    for row in cells[1:]:
        if lines:
            lines.append("")
        lines.append((" " * indent + row[0]).rstrip())
        for name, cell in zip(names[1:], row[1:], strict=True):
            lines += _row_lines(("", name, cell), (0, label, value), indent)
    return lines


def _wrap(cell: str, width: int) -> list[str]:
    if visible_len(cell) <= width or _ESCAPE.search(cell):
        return [cell]  # coloured cells are short words (verdicts): never split an escape
    return textwrap.wrap(cell, width, break_on_hyphens=False) or [""]


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
