"""Durations as people write them in config and on the command line. Standard library only."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"1h30m"``; ValueError otherwise.

    A bare number is seconds. Negative values, booleans and empty strings are refused.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m or 1h, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise ValueError("a duration cannot be negative")
        if value == float("inf"):
            raise ValueError("a duration must be finite")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 15m or 1h")
    text = value.strip().lower()
    if not text:
        raise ValueError("expected a duration such as 90s, 15m or 1h, got an empty string")
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"{value!r} is not a duration; use e.g. 90s, 15m, 1h or 1h30m")
        number, unit = match.groups()
        if unit is None and match.end() != len(text):
            raise ValueError(f"{value!r} is not a duration; use e.g. 90s, 15m, 1h or 1h30m")
        total += float(number) * _UNITS[unit]
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return total


def format_duration(seconds: float) -> str:
    """A short human form: ``41 min``, ``2 h 5 min``, ``30 s``; negative values read ``ago``."""
    sign = "" if seconds >= 0 else "-"
    s = int(abs(seconds))
    if s < 120:
        text = f"{s} s"
    elif s < 7200:
        text = f"{s // 60} min"
    elif s < 172800:
        text = f"{s // 3600} h {s % 3600 // 60} min"
    else:
        text = f"{s // 86400} d {s % 86400 // 3600} h"
    return sign + text
