"""Durations as people write them in config and on the command line. Standard library only."""

from __future__ import annotations

import re

# "90", "90s", "15m", "1h", "1h30m", "2d", "500ms": units at most once each, largest first.
_DURATION = re.compile(
    r"(?:(?P<d>\d+(?:\.\d+)?)\s*d)?\s*"
    r"(?:(?P<h>\d+(?:\.\d+)?)\s*h)?\s*"
    r"(?:(?P<m>\d+(?:\.\d+)?)\s*m(?!s))?\s*"
    r"(?:(?P<s>\d+(?:\.\d+)?)\s*s)?\s*"
    r"(?:(?P<ms>\d+(?:\.\d+)?)\s*ms)?",
    re.ASCII,
)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MAX_SECONDS = 366 * 86400.0  # a year: anything longer is a typo, not a cache policy
_HINT = "use e.g. 90s, 15m, 1h or 1h30m"


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"1h30m"``; ValueError otherwise.

    A bare number is seconds. Negative, non-finite or over-a-year values, booleans and empty
    strings are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, not a boolean; {_HINT}")
    if isinstance(value, (int, float)):
        seconds = _bounded(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if not text:
            raise ValueError(f"expected a duration, got an empty string; {_HINT}")
        if re.fullmatch(r"\d+(?:\.\d+)?", text, re.ASCII):
            seconds = _bounded(float(text))
        else:
            match = _DURATION.fullmatch(text)
            if match is None or not any(match.groupdict().values()):
                raise ValueError(f"{_short(value)} is not a duration; {_HINT}")
            seconds = _bounded(
                sum(float(n) * _UNITS[unit] for unit, n in match.groupdict().items() if n)
            )
    else:
        raise ValueError(f"expected a duration; {_HINT}")
    return seconds


def _bounded(value: float) -> float:
    # Compare before converting: an integer too large for a float must not raise OverflowError.
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("a duration must be a finite number")
    if value < 0:
        raise ValueError("a duration cannot be negative")
    if value > MAX_SECONDS:
        raise ValueError("a duration must be at most a year (366d)")
    return float(value)


def _short(value: str) -> str:
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


def format_duration(seconds: float, *, nearest: bool = False) -> str:
    """A short human form: ``41 min``, ``2 h 5 min``, ``30 s``; negative values get a minus.

    Truncated (a lifetime is never overstated), or rounded to the unit shown with ``nearest``
    (a measured difference: 599.6 s is "10 min")."""
    sign = "" if seconds >= 0 else "-"
    s = int(abs(seconds))
    if nearest:
        s = round(abs(seconds))
        s = s if s < 120 else round(s / 60) * 60
    if s < 120:
        text = f"{s} s"
    elif s < 7200:
        text = f"{s // 60} min"
    elif s < 172800:
        text = f"{s // 3600} h {s % 3600 // 60} min"
    else:
        text = f"{s // 86400} d {s % 86400 // 3600} h"
    return sign + text
