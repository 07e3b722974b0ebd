"""How ``gatekey check`` judges one run of a helper against the app's contract.

A run passes with exit 0 and exactly one bare token line, or one ``{"token", "headers"}`` JSON
object, on stdout; nothing on stdout when it fails; no trace of the token on stderr (whole,
encoded or in part); within its time limit, with no child holding its pipes open. Each problem
is worded for the admin reading check's table, and never shows the token.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gatekey import logs
from gatekey.token import printable

if TYPE_CHECKING:
    from gatekey.diagnostics.check_harness import Capture

CLAUDE_CODE_SLOW = 10.0  # Claude Code warns when its apiKeyHelper takes longer
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)

# The specific failures, worded for the admin reading the table.
BANNER = "printed a banner before the token"
AFTER = "printed extra output after the token"
STDOUT_ON_FAILURE = "printed to stdout on failure"
ECHOED = "echoed the token on stderr"
ECHOED_PART = "echoed part of the token on stderr"
EMPTY = "exited 0 with empty output"
NOT_PAYLOAD = "stdout not a single token or valid JSON"
HEADER_TYPES = "header values must be strings"
HELD_OPEN = "a child process kept stdout/stderr open after the helper exited"


@dataclass
class Payload:
    """What a successful run printed, without the token (only its length)."""

    kind: str  # "token" | "json" | "headers" | "git-credential" | "key"
    token: str = field(repr=False)
    headers: int = 0
    secrets: list[str] = field(default_factory=list, repr=False)  # else [token]: leak-checked
    names: list[str] = field(default_factory=list)  # header names or git-credential keys


@dataclass
class Judgement:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    payload: Payload | None = None


def json_type(value: object) -> str:
    for kind, name in ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    return {type(None): "null", list: "array", dict: "object"}.get(type(value), "other")


def _judge_json(doc: object, j: Judgement) -> None:
    if not isinstance(doc, dict):
        j.problems.append(f"{NOT_PAYLOAD} (JSON, but not an object)")
        return
    token = doc.get("token")
    if not isinstance(token, str) or not token:
        j.problems.append(f'{NOT_PAYLOAD} (the JSON object has no non-empty string "token")')
        return
    if not printable(token):
        j.problems.append(f'{NOT_PAYLOAD} (the JSON "token" has whitespace or control characters)')
    headers = doc.get("headers", {})
    if not isinstance(headers, dict):
        j.problems.append(f'{HEADER_TYPES} ("headers" is a JSON {json_type(headers)})')
        headers = {}
    wrong = [f"{name}: {json_type(v)}" for name, v in headers.items() if not isinstance(v, str)]
    if wrong:
        j.problems.append(f"{HEADER_TYPES} ({', '.join(wrong)})")
    bad_names = [name for name in headers if not HEADER_NAME.fullmatch(name)]
    if bad_names:
        j.problems.append(f"header names not valid in HTTP: {', '.join(map(repr, bad_names))}")
    # Names only: a header value may itself be a secret.
    broken = [n for n, v in headers.items() if isinstance(v, str) and not header_safe(v)]
    if broken:
        names = ", ".join(broken)
        j.problems.append(f"header values must not contain line breaks or controls ({names})")
    unknown = sorted(set(doc) - {"token", "headers"})
    if unknown:
        j.warnings.append(f"JSON keys the app ignores: {', '.join(unknown)}")
    j.payload = Payload("json", token, len(headers))


def header_safe(value: str) -> bool:
    return not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value)


def _parse_object(text: str) -> object | None:
    try:
        doc: object = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def judge_stdout(data: bytes, j: Judgement) -> None:
    """Exactly one bare token line, or one ``{"token", "headers"}`` object, and nothing else."""
    if not data.strip():
        j.problems.append(EMPTY + (" (only whitespace)" if data else ""))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        j.problems.append(f"{NOT_PAYLOAD} (not UTF-8 text)")
        return
    body = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if body.lstrip().startswith("{"):
        try:
            doc = json.loads(body)  # one object, pretty-printed or not
        except ValueError as e:
            if "\n" not in body:
                j.problems.append(f"{NOT_PAYLOAD} (invalid JSON: {getattr(e, 'msg', e)})")
                return
        else:
            _judge_json(doc, j)
            return
    lines = body.split("\n")
    if len(lines) == 1:
        if printable(body):
            j.payload = Payload("token", body)
        elif printable(body.strip()):
            j.problems.append(f"{NOT_PAYLOAD} (whitespace around the token)")
        else:
            j.problems.append(f"{NOT_PAYLOAD} (whitespace or control characters in it)")
        return
    _judge_lines(lines, j)


def _judge_lines(lines: list[str], j: Judgement) -> None:
    """Several lines: find the payload (the last token-like line, or a trailing JSON object) and
    name what surrounds it."""
    found: tuple[int, int] | None = None  # (first, last) line of the payload
    for i in range(1, len(lines)):
        if lines[i].lstrip().startswith("{") and _parse_object("\n".join(lines[i:])) is not None:
            found = (i, len(lines) - 1)
            break
    if found is None:
        for i in reversed(range(len(lines))):
            line = lines[i].removesuffix("\r")
            if printable(line) or _parse_object(line) is not None:
                found = (i, i)
                break
    if found is None:
        j.problems.append(f"{NOT_PAYLOAD} ({len(lines)} lines, none of them a token)")
        return
    first, last = found
    before = [x for x in lines[:first] if x.strip()]
    after = [x for x in lines[last + 1 :] if x.strip()]
    if before:
        j.problems.append(f"{BANNER} ({len(before)} extra line(s))")
    if after:
        j.problems.append(f"{AFTER} ({len(after)} extra line(s))")
    if len(before) + len(after) < len(lines) - 1 - (last - first):
        j.problems.append(f"{NOT_PAYLOAD} (blank lines around the payload)")
    payload_text = "\n".join(lines[first : last + 1]).removesuffix("\r")
    doc = _parse_object(payload_text)
    sub = Judgement()
    if doc is not None:
        _judge_json(doc, sub)
    else:
        sub.payload = Payload("token", payload_text)
    j.problems += sub.problems
    j.payload = sub.payload


def leaks(token: str, stderr: str) -> str | None:
    """How the token shows on stderr, if it does: whole, encoded, or an 8-character fragment
    (the forms gatekey.logs masks)."""
    import base64
    import urllib.parse

    if token in stderr:
        return ECHOED
    raw = token.encode("utf-8", "surrogatepass")
    encoded = {
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "URL-encoded": urllib.parse.quote(token, safe=""),
    }
    for how, form in encoded.items():
        if len(form) >= logs.WINDOW and form in stderr:
            return f"{ECHOED} ({how})"
    w = logs.WINDOW
    if len(token) > w and any(token[i : i + w] in stderr for i in range(len(token) - w + 1)):
        return ECHOED_PART
    return None


def judge(
    ctx: str,
    cap: Capture,
    limit: float,
    nominal: float,
    parse: Callable[[bytes, Judgement], None] = judge_stdout,
    slow: tuple[float, str] | None = None,
) -> Judgement:
    """One run: ``parse`` reads its stdout (the surface's parser); ``slow``: (seconds, warning)
    when the app warns about a slow run (default: Claude Code's 10 s without a context)."""
    j = Judgement()
    if cap.start_error is not None:
        j.problems.append(f"could not start: {cap.start_error}")
        return j
    stderr = cap.stderr.decode("utf-8", "replace")
    if cap.timed_out:
        under = "no CLAUDE_HELPER_CONTEXT" if ctx == "unset" else ctx
        scaled = "" if limit == nominal else f" (scaled to {limit:g} s)"
        j.problems.append(f"exceeded the {nominal:g} s limit under {under}{scaled}; killed")
        return j
    if cap.held_open:
        j.problems.append(f"{HELD_OPEN}; launch children detached, stdio to /dev/null")
    code = cap.code if cap.code is not None else -1
    if code != 0:
        if cap.stdout:
            j.problems.append(f"{STDOUT_ON_FAILURE} (exit {code}, {len(cap.stdout)} bytes)")
            for word in cap.stdout.decode("utf-8", "replace").split():
                if len(word) >= logs.WINDOW:
                    logs.register_secret(word)  # perhaps a token: never shown in the detail
        if code < 0:
            j.problems.append(f"killed by {_signal_name(-code)}")
        elif not cap.stdout:
            j.problems.append(f"exited {code}")
        return j
    parse(cap.stdout, j)
    if j.payload is None:
        return j
    token = j.payload.token
    secrets = j.payload.secrets or [token]
    for secret in secrets:
        logs.register_secret(secret)  # masks it in anything this process logs or shows
    leak = next(filter(None, (leaks(secret, stderr) for secret in secrets)), None)
    if leak:
        j.problems.append(leak)
    if not token.isascii():
        j.warnings.append("the token has non-ASCII characters, which HTTP headers may refuse")
    if len(token) > 1 and token[0] == token[-1] and token[0] in "\"'":
        j.warnings.append("the token is wrapped in quotes, which become part of it")
    if cap.held_open:
        return j  # its time is the limit's: nothing more to say about it
    if cap.seconds > 0.75 * limit:
        j.warnings.append(f"took {cap.seconds / limit:.0%} of the {nominal:g} s limit")
        return j
    if slow is None and ctx == "unset":
        slow = (CLAUDE_CODE_SLOW, "Claude Code (apiKeyHelper) warns when a helper takes over 10 s")
    if slow is not None and cap.seconds > slow[0] * limit / nominal:
        j.warnings.append(slow[1])
    return j


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stderr_tail(stderr: bytes) -> str | None:
    lines = [x.strip() for x in stderr.decode("utf-8", "replace").splitlines() if x.strip()]
    if not lines:
        return None
    tail = logs.redact(lines[-1])
    return tail if len(tail) <= 160 else tail[:157] + "..."
