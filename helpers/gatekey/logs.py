"""Logging to stderr with every known secret masked. Nothing here ever writes to stdout."""

from __future__ import annotations

import logging
import os
import sys

MASK = "[redacted]"
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this value (and its common encodings) in every log line from now on."""
    if not value or len(value) < 4:
        return
    import base64
    import urllib.parse

    _secrets.add(value)
    raw = value.encode("utf-8", "surrogatepass")
    _secrets.add(urllib.parse.quote(value, safe=""))
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        _secrets.add(enc.decode().rstrip("="))


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


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
