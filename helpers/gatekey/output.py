"""The stdout contract: the one module that writes a payload to stdout. Standard library only.

Formats (``gatekey get --format``; the no-argument run uses the profile's ``output``):
- ``token``  the bare credential
- ``json``   ``{"token": "...", "headers": {...}}`` (header values are strings)
- ``header`` ``Authorization: Bearer <t>`` or ``x-api-key: <t>`` for curl debugging
- ``env``    shell exports for Claude Code (``ANTHROPIC_AUTH_TOKEN`` / ``ANTHROPIC_API_KEY``)
Every payload is one write of bytes ending in a newline.
"""

from __future__ import annotations

import json
import os
import sys

from gatekey.errors import HelperError
from gatekey.token import printable

FORMATS = ("token", "json", "header", "env")


class BadToken(HelperError):
    """The source returned something that cannot be printed as a credential."""


def check_token(value: str) -> None:
    """Refuse values that would corrupt the payload or smuggle a header (never echo the value)."""
    if not value:
        raise BadToken("the source returned an empty credential")
    if not printable(value):
        raise BadToken(
            "the credential contains whitespace or control characters, so it is not a token "
            '(a JSON document? set parse = "json"; a "Bearer " prefix? store the token '
            "alone); check what the source returns"
        )


def render(value: str, fmt: str, *, auth_scheme: str, headers: dict[str, str]) -> bytes:
    check_token(value)
    if fmt == "token":
        text = value
    elif fmt == "json":
        text = json.dumps({"token": value, "headers": headers}, ensure_ascii=False)
    elif fmt == "header":
        text = (
            f"Authorization: Bearer {value}" if auth_scheme == "bearer" else f"x-api-key: {value}"
        )
    elif fmt == "env":
        import shlex

        var = "ANTHROPIC_AUTH_TOKEN" if auth_scheme == "bearer" else "ANTHROPIC_API_KEY"
        lines = [f"export {var}={shlex.quote(value)}"]
        if headers:
            joined = "\n".join(f"{k}: {v}" for k, v in headers.items())
            lines.append(f"export ANTHROPIC_CUSTOM_HEADERS={shlex.quote(joined)}")
        text = "\n".join(lines)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return (text + "\n").encode("utf-8")


def write_payload(payload: bytes, fd: int | None = None) -> None:
    """Write the payload with as few writes as the OS allows, then flush."""
    target = sys.stdout.fileno() if fd is None else fd
    view = memoryview(payload)
    while view:
        written = os.write(target, view)
        view = view[written:]


def write_text(text: str) -> None:
    """Human output of the non-helper commands (status, config show, version)."""
    print(text)
