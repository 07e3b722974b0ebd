"""Logging to stderr with every known secret masked. Nothing here ever writes to stdout.

The masking rule (``redact``), for every registered secret and its base64, base64url and
URL-encoded forms, in every line gatekey logs (its own messages and a command's relayed stderr):

- any run of ``WINDOW`` (6) or more consecutive characters of one is masked, wherever it is;
- when a word begins with the first ``AFFIX`` (3) or more characters of one and a later word on
  the same line ends with its last ``AFFIX`` or more, both are masked: the masked-key style many
  CLIs print (``sk-Zq9...mPL``) shows a key's two ends, and the two together give away as much
  as a run of six (a word: delimited by the line's ends or by any character that is not an
  ASCII letter or digit);
- a secret shorter than ``WINDOW`` (4 or 5 characters; shorter ones are not registered) is
  masked whole (and by its two ends).

Why these sizes: six characters of a random token are about 36 bits, too much to give away,
while a six-character run of a random token turns up in ordinary text about never; three
characters alone are common in ordinary words ("sk-", "eyJ", "the"), so an end counts only as a
whole word's start or end and only with the other end later on the same line. Over-masking a
log line costs little; showing part of a key does not. (A secret made of ordinary words,
``conf-secret``, masks those words wherever they appear.)

Matching is on UTF-8 bytes (six bytes of a non-ASCII secret may be fewer than six characters:
stricter) with ``-``/``_`` read as ``+``/``/``, so one set of windows serves base64 and
base64url. The cost is linear in the secret's and the text's lengths: each six-byte window is
one 48-bit integer (the bytes themselves: no hash collisions), in a set while the secret is
small and in eight sorted arrays (``array``: 8 bytes a window, searched with ``bisect``) when it is
large, never a set of substrings (a megabyte token: about 41 bytes of memory a character at the
peak, was 228).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from array import array
from bisect import bisect_left
from itertools import chain, compress

MASK = "[redacted]"
WINDOW = 6  # a run of this many characters of a secret is masked (see the module docstring)
AFFIX = 3  # a word starting with this many of a secret's first characters, and one ending with
# its last, on one line: both masked
# Forms with more windows than this get a sorted array (8 bytes a window) instead of set members
# (about 60 bytes each): a real token has a few thousand; a megabyte of garbage has millions.
LARGE = 1 << 15
_LOW48 = (1 << 48) - 1  # the first six bytes of a little-endian 8-byte word
# base64url differs from base64 only in these two characters: match both with one set of windows.
_CANON = bytes.maketrans(b"-_", b"+/")
_STARTS = re.compile(rb"(?<![A-Za-z0-9])(?=([^\n]{%d}))" % AFFIX)
_ENDS = re.compile(rb"(?<=([^\n]{%d}))(?![A-Za-z0-9])" % AFFIX)

_values: set[str] = set()  # what was registered (each once)
_short: tuple[bytes, ...] = ()  # forms shorter than WINDOW: masked only whole
_keys: set[int] = set()  # the windows of the small forms
_large: tuple[bytes, ...] = ()  # the forms with more windows than LARGE...
_sorted: tuple[array[float], ...] = ()  # ...whose windows these arrays hold, each sorted
_firsts: dict[bytes, tuple[bytes, ...]] = {}  # a form's first AFFIX bytes -> forms
_lasts: dict[bytes, tuple[bytes, ...]] = {}  # a form's last AFFIX bytes -> forms


def register_secret(value: str | None) -> None:
    """Mask this value (its common encodings, and any part of it, see above) from now on."""
    global _short, _large, _sorted
    if not value or len(value) < 4 or value in _values:
        return
    import base64
    import urllib.parse

    _values.add(value)
    raw = value.encode("utf-8", "surrogatepass")
    forms = {raw, urllib.parse.quote(value, safe="").encode()}
    forms.add(base64.b64encode(raw).rstrip(b"="))  # base64url is the same after _CANON
    for form in {f.translate(_CANON) for f in forms}:
        if len(form) < WINDOW:
            _short += (form,)
        elif len(form) - WINDOW + 1 <= LARGE:
            _keys.update(_windows(form))
        else:
            # In eight arrays (a window in eight, by position), so that sorting one at a time
            # needs little memory; as floats (exact below 2**53), which Python sorts faster, in
            # less memory, than ints.
            _sorted += tuple(
                array("d", sorted(map(float, map(_LOW48.__and__, words))))
                for _, words in _words(form)
            )
            _large += (form,)
        _firsts[form[:AFFIX]] = (*_firsts.get(form[:AFFIX], ()), form)
        _lasts[form[-AFFIX:]] = (*_lasts.get(form[-AFFIX:], ()), form)


def _words(data: bytes) -> list[tuple[int, array[int]]]:
    """(offset, words): ``words[t]`` holds the 8 bytes at ``offset + 8 * t`` as an integer, so
    the eight lists together hold the window at every position, read at C speed."""
    padded = data + b"\0\0"  # the last windows have only 6 or 7 bytes left: still 8 to read
    out = []
    for offset in range(8):
        words = array("Q", padded[offset : offset + (len(padded) - offset) // 8 * 8])
        if sys.byteorder == "big":
            words.byteswap()  # so that the low 48 bits are the window's first six bytes
        out.append((offset, words))
    return out


def _windows(data: bytes) -> chain[int]:
    """Every WINDOW-byte window of ``data`` as a 48-bit integer (in no particular order)."""
    return _keys_of(_words(data))


def _keys_of(words: list[tuple[int, array[int]]]) -> chain[int]:
    return chain.from_iterable(map(_LOW48.__and__, w) for _, w in words)


def _found(candidates: set[int]) -> set[int]:
    """Which of these windows belong to a registered secret."""
    # Never iterate _keys itself: another thread may be registering a secret meanwhile.
    found = {key for key in candidates if key in _keys}
    for keys in _sorted:
        if len(candidates) * 32 > len(keys):  # one pass over the array (at C speed) is cheaper
            found.update(map(int, candidates.intersection(keys)))
        else:
            found.update(key for key in candidates if _has(keys, key))
    return found


def _has(keys: array[float], key: int) -> bool:
    i = bisect_left(keys, float(key))
    return i < len(keys) and keys[i] == key


def redact(text: str) -> str:
    """The text with every registered secret, encoding or part of one (see above) masked."""
    if not _values:
        return text
    data = text.encode("utf-8", "surrogatepass")
    canon = data.translate(_CANON)
    hidden: list[tuple[int, int]] = []
    for form in (*_short, *_large):
        # Whole forms first: a megabyte token echoed whole is found at C speed, not window by
        # window.
        at = canon.find(form)
        while at >= 0:
            hidden.append((at, at + len(form)))
            at = canon.find(form, at + len(form))
    for start, end in _gaps(hidden, len(canon)):
        if end - start >= WINDOW:
            hidden += _runs(canon[start:end], start)
    hidden += _affixes(canon)
    if not hidden:
        return text
    return _masked(data, hidden)


def _runs(part: bytes, base: int) -> list[tuple[int, int]]:
    """Where in ``part`` (at ``base`` in the text) a window of a registered secret is."""
    words = _words(part)
    if not _large and _keys.isdisjoint(_keys_of(words)):
        return []  # the usual case, decided at C speed
    found = _found(set(_keys_of(words)))
    out = []
    for offset, w in words:
        hits = compress(range(offset, offset + 8 * len(w), 8), (x & _LOW48 in found for x in w))
        out += [(base + p, base + p + WINDOW) for p in hits]
    return out


def _affixes(canon: bytes) -> list[tuple[int, int]]:
    """A secret's first and last characters as two words of one line (see above)."""
    # The usual case, decided at C speed: no secret's first characters at all. (A copy of the
    # keys: another thread may be registering a secret meanwhile.)
    if len(_firsts) <= 16 and not any(first in canon for first in tuple(_firsts)):
        return []
    heads: dict[tuple[int, bytes], list[tuple[int, int]]] = {}
    lines: list[int] | None = None  # where each line after the first starts (when needed)
    for m in _STARTS.finditer(canon):
        for form in _firsts.get(m.group(1), ()):
            at, n = m.start(), AFFIX
            while n < min(len(form), WINDOW, len(canon) - at) and canon[at + n] == form[n]:
                n += 1  # longer runs are _runs' to mask; this only marks the word's start
            if lines is None:
                lines = [newline.end() for newline in re.finditer(rb"\n", canon)]
            heads.setdefault((bisect_left(lines, at + 1), form), []).append((at, at + n))
    if lines is None:
        return []
    out = []
    for m in _ENDS.finditer(canon):
        for form in _lasts.get(m.group(1), ()):
            end, n = m.start(), AFFIX
            while n < min(len(form), WINDOW, end) and canon[end - n - 1] == form[-n - 1]:
                n += 1
            before = [h for h in heads.get((bisect_left(lines, end), form), ()) if h[1] <= end - n]
            if before:
                out += [*before, (end - n, end)]
    return out


def _gaps(spans: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The parts of ``range(size)`` that no span covers."""
    out, at = [], 0
    for start, end in sorted(spans):
        if start > at:
            out.append((at, start))
        at = max(at, end)
    if at < size:
        out.append((at, size))
    return out


def _masked(data: bytes, spans: list[tuple[int, int]]) -> str:
    """``data`` with each run of covered bytes replaced by one MASK, widened to whole
    characters (a window may start or end inside a multi-byte UTF-8 character)."""
    wide = [(_char_start(data, start), _char_end(data, end)) for start, end in spans]
    out, at = [], 0
    for start, end in _gaps(_gaps(wide, len(data)), len(data)):  # the covered runs, merged
        out += [data[at:start], MASK.encode()]
        at = end
    out.append(data[at:])
    return b"".join(out).decode("utf-8", "surrogatepass")


def _char_start(data: bytes, at: int) -> int:
    while at > 0 and data[at] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        at -= 1
    return at


def _char_end(data: bytes, at: int) -> int:
    while at < len(data) and data[at] & 0xC0 == 0x80:
        at += 1
    return at


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks escaped: a value from the environment
    or a source (a profile name with a CR in it) can never split gatekey's one stderr line."""
    return text.translate(_CONTROL)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatException(self, ei: object) -> str:
        return redact(super().formatException(ei))  # type: ignore[arg-type]


class _Formatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelprefix = (
            "" if record.levelno >= logging.ERROR else (record.levelname.lower() + ": ")
        )
        if record.exc_info is None and not record.stack_info:  # tracebacks (--debug) span lines
            record.msg, record.args = one_line(record.getMessage()), None
        return super().format(record)


def setup(verbosity: int = 0, debug: bool = False) -> None:
    """Route gatekey's (and libraries') logs and warnings to stderr, redacted."""
    level_name = os.environ.get("GATEKEY_LOG_LEVEL", "").upper()
    level = getattr(logging, level_name, None) if level_name else None
    if not isinstance(level, int):
        level = logging.WARNING
    if verbosity >= 1:
        level = min(level, logging.INFO)
    if debug or verbosity >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("gatekey: %(levelprefix)s%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("gatekey").setLevel(level)
    logging.captureWarnings(True)
