"""Logging to stderr with every known secret masked. Nothing here ever writes to stdout."""

from __future__ import annotations

import logging
import os
import sys

MASK = "[redacted]"
# Any run of WINDOW characters taken from a secret is masked too, so a prefix or fragment of a
# token echoed by a source never reaches the app's log. (Over-masking a log line is harmless.)
WINDOW = 8
_secrets: set[str] = set()
_windows: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this value (and its common encodings) in every log line from now on."""
    if not value or len(value) < 4:
        return
    import base64
    import urllib.parse

    raw = value.encode("utf-8", "surrogatepass")
    forms = {value, urllib.parse.quote(value, safe="")}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms.add(enc.decode().rstrip("="))
    for form in forms:
        _secrets.add(form)
        _windows.update(form[i : i + WINDOW] for i in range(len(form) - WINDOW + 1))


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks escaped: a value from the environment
    or a source (a profile name with a CR in it) can never split gatekey's one stderr line."""
    return text.translate(_CONTROL)


def redact(text: str) -> str:
    """The text with every registered secret, encoding or fragment replaced by a mask."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    hidden = [False] * len(text)
    for i in range(len(text) - WINDOW + 1):
        if text[i : i + WINDOW] in _windows:
            hidden[i : i + WINDOW] = [True] * WINDOW
    if not any(hidden):
        return text
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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
