"""How ``gatekey check --surface`` reads the stdout of the sibling helpers (surfaces.py).

- headers (MCP headersHelper, otlpHeadersHelper): ONE flat JSON object of HTTP header names to
  string values, at least one header, nothing around it;
- git-credential (a plugin marketplace's credentialHelper): a bare token, or ``key=value`` lines
  with a non-empty ``password=``; never JSON;
- key (Claude Code's apiKeyHelper): one bare key line, valid as ``Authorization: Bearer <key>``
  and as ``X-Api-Key: <key>``.

Each fills a check_judge.Judgement: a breach in ``problems``, advice in ``warnings``, and the
payload's secrets (never shown) for the leak check. Also: whether stderr holds a prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from gatekey import credential_headers
from gatekey.diagnostics.check_judge import (
    EMPTY,
    HEADER_NAME,
    Judgement,
    Payload,
    header_safe,
    json_type,
    judge_stdout,
)
from gatekey.token import printable

NOT_HEADERS = "stdout not one flat JSON object of headers"
NOT_KEY = "stdout not one bare key"
NOT_CREDENTIAL = "stdout not a bare token or git-credential lines"
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750's b64token
# git-credential's attribute names (git-credential(1), "INPUT/OUTPUT FORMAT").
GIT_KEYS = frozenset(
    {
        "protocol", "host", "path", "username", "password", "password_expiry_utc", "url",
        "oauth_refresh_token", "authtype", "credential", "ephemeral", "state[]", "wwwauth[]",
        "capability[]", "continue", "quit",
    }
)  # fmt: skip
WRAP_HINT = {
    "headers": "gatekey wrap -p PROFILE --format headers",
    "git-credential": "gatekey wrap -p PROFILE --output git-credential",
    "key": "gatekey wrap -p PROFILE (output token)",
}


def _text(data: bytes, j: Judgement, what: str) -> str | None:
    """stdout as text without its final line break; None (and a problem) if it cannot be."""
    if not data.strip():
        j.problems.append(EMPTY + (" (only whitespace)" if data else ""))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        j.problems.append(f"{what} (not UTF-8 text)")
        return None
    return text.removesuffix("\n").removesuffix("\r")


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Keep every pair, so that a header given twice is seen (json keeps only the last)."""
    found: dict[str, object] = {}
    for name, value in pairs:
        found[name if name not in found else f"{name}\0{len(found)}"] = value
    return found


def judge_headers(data: bytes, j: Judgement) -> None:
    """One flat JSON object of header names to string values, and nothing else."""
    text = _text(data, j, NOT_HEADERS)
    if text is None:
        return
    body = text.strip()
    try:
        doc: object = json.loads(body, object_pairs_hook=_pairs)
    except ValueError as e:
        start = body.find("{")
        if start < 0:
            what = "a bare token" if len(body.split()) == 1 else "text, not JSON"
            j.problems.append(f"{NOT_HEADERS} ({what}; {WRAP_HINT['headers']})")
        else:
            why = _extra_around(body) or f"invalid JSON: {getattr(e, 'msg', e)}"
            j.problems.append(f"{NOT_HEADERS} ({why})")
        return
    if not isinstance(doc, dict):
        j.problems.append(f"{NOT_HEADERS} (a JSON {json_type(doc)})")
        return
    if not doc:
        j.problems.append(f"{NOT_HEADERS} (an empty object: at least one header)")
        return
    if set(doc) >= {"token"} and set(doc) <= {"token", "headers"}:
        j.problems.append(
            f'{NOT_HEADERS} (the inference helper\'s {{"token", "headers"}} shape; '
            f"{WRAP_HINT['headers']})"
        )
        return
    items = [(n.split("\0", 1)[0], v) for n, v in doc.items()]  # duplicates kept (_pairs)
    names = [n for n, _ in items]
    nested = [f"{n}: {json_type(v)}" for n, v in items if isinstance(v, dict | list)]
    wrong = [f"{n}: {json_type(v)}" for n, v in items if not isinstance(v, str | dict | list)]
    if nested:
        j.problems.append(f"{NOT_HEADERS} (nested values: {', '.join(nested)})")
    if wrong:
        j.problems.append(f"header values must be strings ({', '.join(wrong)})")
    bad = [n for n in names if not HEADER_NAME.fullmatch(n)]
    if bad:
        j.problems.append(f"header names not valid in HTTP: {', '.join(map(repr, bad))}")
    values = {n: v for n, v in items if isinstance(v, str)}
    broken = [n for n, v in values.items() if not header_safe(v) or not v.isascii()]
    if broken:  # names only: a value may be a secret
        j.problems.append(
            f"header values must be visible ASCII, no line breaks or controls ({', '.join(broken)})"
        )
    twice = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
    if twice:
        j.problems.append(f"headers given more than once: {', '.join(twice)}")
    empty = [n for n, v in values.items() if not v.strip()]
    if empty:
        j.warnings.append(f"empty header values: {', '.join(empty)}")
    secrets = [
        _credential_part(v) for n, v in values.items() if credential_headers.is_credential(n)
    ]
    if not secrets:
        j.warnings.append("no header carries a credential (Authorization, X-Api-Key, ...)")
        secrets = [v for v in values.values() if len(v) >= 8]
    j.payload = Payload("headers", max(secrets, key=len, default=""), len(names))
    j.payload.secrets = [s for s in secrets if s]
    j.payload.names = names


def _extra_around(body: str) -> str | None:
    """A JSON object with something before or after it: say what, not the object."""
    start, end = body.find("{"), body.rfind("}")
    if end < start:
        return None
    try:
        json.loads(body[start : end + 1])
    except ValueError:
        return None
    parts = []
    if body[:start].strip():
        parts.append("a banner before the JSON object")
    if body[end + 1 :].strip():
        parts.append("extra output after the JSON object")
    return " and ".join(parts) or None


def _credential_part(value: str) -> str:
    """The secret in a credential header's value: what follows an auth scheme word."""
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if rest.strip() and scheme.isalpha() else value.strip()


def judge_key(data: bytes, j: Judgement) -> None:
    """One bare key line, valid as a Bearer credential and as an X-Api-Key value."""
    text = _text(data, j, NOT_KEY)
    if text is None:
        return
    if text.lstrip().startswith("{"):
        j.problems.append(
            f"{NOT_KEY} (a JSON object: Claude Code sends the whole output as the key)"
        )
        return
    lines = [x for x in text.split("\n") if x.strip()]
    if len(lines) != 1 or text.count("\n"):
        j.problems.append(
            f"{NOT_KEY} ({len(text.splitlines())} lines: the key is the whole output)"
        )
        return
    if text.split(" ", 1)[0].lower() in ("bearer", "basic") and " " in text.strip():
        j.problems.append(f"{NOT_KEY} (starts with an auth scheme: Claude Code adds its own)")
        return
    if not text.isascii():
        j.problems.append(
            f"{NOT_KEY} (non-ASCII characters: not valid in X-Api-Key or Authorization)"
        )
        return
    if not printable(text):
        what = (
            "whitespace around the key"
            if printable(text.strip())
            else "whitespace or controls in it"
        )
        j.problems.append(f"{NOT_KEY} ({what})")
        return
    if not BEARER_TOKEN.fullmatch(text):
        j.warnings.append("the key has characters a Bearer token (RFC 6750) does not allow")
    j.payload = Payload("key", text)


def judge_git_credential(data: bytes, j: Judgement) -> None:
    """A bare token, or git-credential ``key=value`` lines with a password; never JSON."""
    text = _text(data, j, NOT_CREDENTIAL)
    if text is None:
        return
    if text.lstrip().startswith(("{", "[")):
        j.problems.append(
            f"{NOT_CREDENTIAL} (JSON: the marketplace takes no JSON; {WRAP_HINT['git-credential']})"
        )
        return
    lines = text.split("\n")
    first_key = lines[0].partition("=")[0]
    if len(lines) == 1 and first_key not in GIT_KEYS:
        if printable(text):
            j.payload = Payload("token", text)
        else:
            j.problems.append(f"{NOT_CREDENTIAL} (whitespace or control characters in the token)")
        return
    _judge_git_lines(lines, j)


def _judge_git_lines(lines: list[str], j: Judgement) -> None:
    if "" in lines:  # git stops reading at the first blank line
        cut = lines.index("")
        if any(x.strip() for x in lines[cut:]):
            j.problems.append(f"{NOT_CREDENTIAL} (output after a blank line, which git ignores)")
        lines = lines[:cut]
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        key, sep, value = line.removesuffix("\r").partition("=")
        if not sep or not key:
            j.problems.append(f"{NOT_CREDENTIAL} (line {number} is not key=value)")
            return
        if key in values and not key.endswith("[]"):
            j.problems.append(f"{NOT_CREDENTIAL} ({key}= given twice)")
        values[key] = value
    password = values.get("password", "")
    if not password:
        j.problems.append(f"{NOT_CREDENTIAL} (no password= line with a value)")
        return
    if not printable(password):
        j.problems.append(f"{NOT_CREDENTIAL} (whitespace or control characters in the password)")
        return
    unknown = sorted(set(values) - GIT_KEYS)
    if unknown:
        j.warnings.append(f"keys git-credential does not define: {', '.join(unknown)}")
    if "username" not in values:
        j.warnings.append("no username= line: git asks for one, and with no terminal it fails")
    j.payload = Payload("git-credential", password)
    j.payload.names = list(values)


# What a helper writes when it waits for a person: a device code to enter, a URL to open, a
# question, or a password prompt left without a line break.
PROMPTS = (
    re.compile(
        r"\b(enter|type|paste|input)\b[^\n]{0,40}\b(code|password|passphrase|token|pin|otp)\b", re.I
    ),
    re.compile(r"\b(device|user|verification) code\b", re.I),
    re.compile(r"(^|[.:!]\s)\s*(open|visit|go to|navigate to)\b[^\n]{0,60}https?://", re.I | re.M),
    re.compile(r"\bpress (enter|return|any key)\b", re.I),
    # "Password for alice: " and the like, even when the tool broke the line after no answer.
    re.compile(
        r"^[^\n]{0,40}\b(password|passphrase|username|pin|otp|passcode)\b[^\n]{0,60}:[ \t]*$",
        re.I | re.M,
    ),
    re.compile(r"\(y/n\)|\[y/n\]", re.I),
)


def prompted(stderr: str) -> str | None:
    """A prompt on stderr, described without quoting it (it may hold a code), or None."""
    if any(p.search(stderr) for p in PROMPTS):
        return "asked for a person on stderr (a prompt, a code or a URL to open)"
    last = stderr.rsplit("\n", 1)[-1].rstrip()
    if last and last[-1] in ":?>" and not stderr.endswith("\n"):
        return "left a prompt on stderr (a line ending in ':' or '?' with no line break)"
    return None


PARSERS: dict[str, Callable[[bytes, Judgement], None]] = {
    "payload": judge_stdout,
    "headers": judge_headers,
    "git-credential": judge_git_credential,
    "key": judge_key,
}
