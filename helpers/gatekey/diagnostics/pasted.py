"""What a person gave `gatekey inspect --stdin`: the token in it, and what came with it.

People paste what they have at hand, and gatekey's own output is the commonest: a bare token, an
``Authorization: Bearer`` or ``x-api-key:`` line (``get --format header``), the helper's
``{"token", "headers"}`` JSON (a profile with ``output = "json"``, piped from ``gatekey``), the
``export`` lines of ``get --format env``, or an identity provider's token response. Each is taken
for the token it carries; the headers that would go with it are judged by output.py's own rules
and shown by name only (a header value may be a secret). Anything else that is not one token is
refused with a one-line error that never quotes the input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gatekey import logs, output
from gatekey.checks import FAIL, OK, WARN, Check
from gatekey.errors import HelperError

TOKEN, HEADER, JSON, ENV, OAUTH = "token", "header", "json", "env", "oauth"
# The header the app itself sends the credential in, per inferenceGatewayAuthScheme.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
# get --format header; also a line copied from a browser's network panel or a curl command.
_HEADER_LINE = re.compile(r"(?:(?:authorization:\s*)?bearer\s+|x-api-key:\s*)(\S+)", re.I)
_ASSIGNED = re.compile(r"(ANTHROPIC_[A-Z_]+)=(.*)", re.S)  # a shell word after "export"
SHOWN_KEYS = 5  # extra JSON keys named in a note (names only, each cut to NAME_CHARS)
NAME_CHARS = 40


@dataclass
class Pasted:
    value: str  # the token, registered as a secret
    form: str = TOKEN  # TOKEN | HEADER | JSON | ENV | OAUTH
    headers: Any = None  # the headers the payload would send (JSON / ENV); None: none given
    notes: list[str] = field(default_factory=list)

    @property
    def described(self) -> str:
        """How the input was read, for the report's first line ("" for a bare token)."""
        count = len(self.headers) if isinstance(self.headers, dict) else 0
        with_headers = f" and {count} header(s)" if count else ", no headers"
        return {
            TOKEN: "",
            HEADER: "a header line: the token in it",
            JSON: f"gatekey's JSON output: its token{with_headers}",
            ENV: f"gatekey's env output: its token{with_headers}",
            OAUTH: "a token response: its access_token",
        }[self.form]


def read(raw: str) -> Pasted:
    """The token in what was given on stdin (or typed at the prompt), registered as a secret."""
    text = raw.strip()
    if not text:
        raise HelperError("--stdin: stdin was empty")
    if text[0] in '{["':
        pasted = _from_json(text)
    elif len(text) > 2 and text[0] == text[-1] == "'" and "'" not in text[1:-1]:
        pasted = Pasted(text[1:-1], notes=["read without the quotes around it"])  # from a shell
    elif text.startswith("export "):
        pasted = _from_env(text)
    elif match := _HEADER_LINE.fullmatch(text):
        pasted = Pasted(match.group(1), HEADER)
    else:
        pasted = Pasted(text)
    logs.register_secret(pasted.value)
    if not pasted.value:
        raise HelperError("--stdin: the token in it is empty")
    if any(c.isspace() for c in pasted.value):
        raise HelperError(
            "--stdin: expected one token, got text with spaces or line breaks (give the token "
            "alone, an Authorization header line, or gatekey's own JSON or env output)"
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in pasted.value):
        raise HelperError("--stdin: the token holds control characters, so it is not one")
    # Other characters no header can carry (a byte-order mark, a zero-width space, U+FFFD for
    # bytes that were not UTF-8) are left to inspect's format check, which names them.
    return pasted


def _from_json(text: str) -> Pasted:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        # json's message quotes no input, but a position is no help to a person either.
        raise HelperError(
            "--stdin: starts like JSON but is not valid JSON (cut short?); give the token "
            'alone or gatekey\'s JSON output whole: {"token": "...", "headers": {...}}'
        ) from None
    if isinstance(data, str):
        return Pasted(data, TOKEN, notes=["read as a JSON string"])
    if isinstance(data, dict) and "token" in data:
        token = data["token"]
        if not isinstance(token, str):
            raise HelperError('--stdin: the JSON\'s "token" is not a string')
        extra = [k for k in data if k not in ("token", "headers")]
        notes = []
        if extra:
            names = ", ".join(_name(k) for k in extra[:SHOWN_KEYS])
            more = f" and {len(extra) - SHOWN_KEYS} more" if len(extra) > SHOWN_KEYS else ""
            notes.append(f"the app reads only token and headers; it ignores {names}{more}")
        return Pasted(token, JSON, data.get("headers"), notes)
    if isinstance(data, dict) and isinstance(data.get("access_token"), str):
        for other in ("refresh_token", "id_token"):  # never shown, but mask them all the same
            if isinstance(data.get(other), str):
                logs.register_secret(data[other])
        return Pasted(data["access_token"], OAUTH, notes=_oauth_notes(data))
    raise HelperError(
        '--stdin: JSON without a "token" (gatekey\'s JSON output is {"token": "...", '
        '"headers": {...}}; a token response has "access_token")'
    )


def _oauth_notes(data: dict[str, Any]) -> list[str]:
    notes = ["inspecting the access_token; what a gateway receives is the token alone"]
    if "id_token" in data:
        notes.append("the response's id_token is not inspected (pipe it alone to see it)")
    return notes


def _from_env(text: str) -> Pasted:
    """``get --format env``: ``export ANTHROPIC_AUTH_TOKEN=...`` (or ``ANTHROPIC_API_KEY``), and
    ``export ANTHROPIC_CUSTOM_HEADERS=...`` holding ``Name: value`` lines."""
    import shlex

    values: dict[str, str] = {}
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        raise HelperError("--stdin: export lines with unbalanced quotes (cut short?)") from None
    for word in words:
        match = _ASSIGNED.fullmatch(word)
        if match:
            values[match.group(1)] = match.group(2)
    token = values.get("ANTHROPIC_AUTH_TOKEN", values.get("ANTHROPIC_API_KEY"))
    if token is None:
        raise HelperError("--stdin: export lines without ANTHROPIC_AUTH_TOKEN or ANTHROPIC_API_KEY")
    logs.register_secret(token)
    headers = None
    if "ANTHROPIC_CUSTOM_HEADERS" in values:
        headers = {}
        for line in values["ANTHROPIC_CUSTOM_HEADERS"].split("\n"):
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return Pasted(token, ENV, headers)


def _name(key: object) -> str:
    text = str(key)
    return text if len(text) <= NAME_CHARS else text[:NAME_CHARS] + "..."


# --- the headers it would send ------------------------------------------------------------------
def header_checks(headers: Any) -> tuple[list[Check], list[str]]:
    """The checks of a payload's ``headers`` by output.py's rules (the ones a helper run applies
    before printing), and the valid names. Values are never shown: a header may carry a secret
    (an API key for the gateway's second layer, a signed user assertion)."""
    if not isinstance(headers, dict):
        return [Check("headers", FAIL, "headers is not an object of names to string values")], []
    checks: list[Check] = []
    names: list[str] = []
    seen: dict[str, str] = {}  # lower-cased name -> the name as given
    for number, (name, value) in enumerate(headers.items(), 1):
        problem = output.header_name_problem(name)
        if problem is not None:  # not shown: an invalid name may be a pasted value
            checks.append(Check("headers", FAIL, f"header #{number}: {problem}"))
            continue
        names.append(name)
        problem = output.header_value_problem(value)
        if problem is not None:
            checks.append(Check("headers", FAIL, f'header "{name}": {problem}'))
        if name.lower() in CREDENTIAL_HEADERS:
            checks.append(
                Check(
                    "headers",
                    WARN,
                    f'header "{name}" is where the app sends the credential itself '
                    "(inferenceGatewayAuthScheme): the two would collide",
                    [f'take "{name}" out of the profile\'s headers'],
                )
            )
        if name.lower() in seen:
            checks.append(
                Check(
                    "headers",
                    WARN,
                    f'headers "{seen[name.lower()]}" and "{name}" differ only in case: HTTP '
                    "takes them for one, and which value wins is not defined",
                )
            )
        seen[name.lower()] = name
    if not checks:
        shown = ", ".join(names) if names else "none"
        checks.append(Check("headers", OK, f"{len(names)} valid header(s): {shown}"))
    return checks, names
