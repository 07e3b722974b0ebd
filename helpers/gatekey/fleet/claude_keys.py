"""Claude's documented managed keys that `gatekey mdm --set KEY=VALUE` may add, with their types.

The keys are those reference/contract.md documents (``inferenceModels``: model IDs, or objects
with a ``name``, as the app's configuration lists them). Every value is written as a string (the
app reads strings from every MDM channel, booleans and lists included), so each is checked here
against its type and turned into the one string every format carries: ``true``/``false``, text,
or compact JSON for lists and objects.

The keys mdm itself writes are not settable here: each has its option (``--ttl``...), or is
fixed by what mdm generates (a gateway with a helper), so one value never has two sources.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from gatekey import credential_headers
from gatekey.errors import SetError
from gatekey.output import header_name_problem, header_value_problem

Check = Callable[[str, bool], str]  # (value as typed, Windows target) -> the string to write


@dataclass(frozen=True)
class Key:
    kind: str  # how --help and errors describe the value
    check: Check | None = None  # None: not settable with --set
    refusal: str = ""  # why not, when check is None


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _boolean(value: str, _windows: bool) -> str:
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise SetError("expected true or false")
    return word


def _text(value: str, _windows: bool) -> str:
    if not value.strip() or _control(value):
        raise SetError("expected non-empty text without control characters")
    return value.strip()


def _path(value: str, windows: bool) -> str:
    """An absolute path to a helper the app runs with no arguments, for the target OS."""
    example = r"C:\Program Files\gatekey\Scripts\gatekey.exe" if windows else "/opt/gatekey/bin/x"
    if not value or _control(value) or value != value.strip():
        raise SetError("expected an absolute path without control characters or spaces around")
    absolute = (
        bool(re.match(r"^[A-Za-z]:\\", value) or value.startswith("\\\\"))
        if windows
        else value.startswith("/")
    )
    if not absolute:
        raise SetError(f"expected an absolute path on the endpoints, e.g. {example}")
    if any(word.startswith("-") for word in value.split()[1:]):
        raise SetError(
            "looks like a command with arguments; the app runs the value as one file with no "
            "arguments (a wrapper from `gatekey wrap` pins a profile)"
        )
    return value


def _json(value: str) -> object:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise SetError("not valid JSON") from None


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _model_name(name: object) -> str:
    if not isinstance(name, str) or not name or _control(name) or name != name.strip():
        raise SetError("a model name must be non-empty text without spaces around it")
    return name


def _models(value: str, _windows: bool) -> str:
    """A JSON array of model IDs or ``{"name": ID, ...}`` objects, or IDs separated by commas."""
    items: list[object]
    if value.lstrip().startswith("["):
        parsed = _json(value)
        if not isinstance(parsed, list):
            raise SetError("expected a JSON array")
        items = parsed
    else:
        items = [part.strip() for part in value.split(",")]
    if not items:
        raise SetError("expected at least one model")
    names = []
    for item in items:
        if isinstance(item, dict):
            _model_name(item.get("name"))
            names.append(item["name"])
        else:
            names.append(_model_name(item))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SetError(f"lists {', '.join(repeated)} more than once")
    return _dump(items)


def _headers(value: str, _windows: bool) -> str:
    parsed = _json(value)
    if not isinstance(parsed, dict):
        raise SetError('expected a JSON object of header names to values, e.g. {"X-Team": "a"}')
    for name, text in parsed.items():
        problem = header_name_problem(name) or header_value_problem(text)
        if problem:
            raise SetError(f"{problem} ({name!r})")
    return _dump(parsed)


def _servers(value: str, windows: bool) -> str:
    parsed = _json(value)
    if not isinstance(parsed, list) or not all(isinstance(s, dict) for s in parsed):
        raise SetError("expected a JSON array of server objects")
    for server in parsed:
        helper = server.get("headersHelper")
        if helper is not None:
            if not isinstance(helper, str):
                raise SetError("headersHelper: expected a string (an absolute path)")
            try:
                _path(helper, windows)
            except SetError as e:
                raise SetError(f"headersHelper: {e}") from None
        static = server.get("headers")
        if static is not None:
            if not isinstance(static, dict):
                raise SetError("headers: expected a JSON object of header names to values")
            for name in static:
                why = credential_headers.why(str(name))
                if why is not None:
                    # The same value in every machine's settings: per user, from headersHelper.
                    raise SetError(
                        f"headers: {why}; a static header is the same on every machine and "
                        "readable there, so give the credential from a headersHelper instead"
                    )
        for field in ("headersHelperTtlSec", "headersHelperRefreshBufferSec"):
            seconds = server.get(field)
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0
            ):
                raise SetError(f"{field}: expected a whole number of seconds")
    return _dump(parsed)


_FIXED = "mdm always writes it (a gateway with gatekey as the helper)"
KEYS: dict[str, Key] = {
    "inferenceProvider": Key("gateway", refusal=_FIXED),
    "inferenceCredentialKind": Key("helper-script", refusal=_FIXED),
    "inferenceGatewayBaseUrl": Key("URL", refusal="give it with --gateway-url"),
    "inferenceGatewayAuthScheme": Key("bearer|x-api-key", refusal="give it with --auth-scheme"),
    "inferenceCredentialHelper": Key("path", refusal="give it with --helper"),
    "inferenceCredentialHelperTtlSec": Key("seconds", refusal="give it with --ttl"),
    "inferenceCredentialHelperTimeoutSec": Key("seconds", refusal="give it with --timeout"),
    "inferenceCustomHeaders": Key("JSON", refusal="give each header with --header NAME=VALUE"),
    "inferenceGatewayApiKey": Key(
        "secret",
        refusal="a static key is a secret every machine would share, and the app ignores it "
        "with a helper set; the helper supplies the credential",
    ),
    "inferenceCredentialHelperSilentRefreshEnabled": Key("true|false", _boolean),
    "inferenceModels": Key("model IDs, comma-separated, or a JSON array", _models),
    "otlpHeadersHelper": Key("absolute path", _path),
    "otlpAuthMode": Key("text", _text),
    "bootstrapHeadersHelper": Key("absolute path", _path),
    "bootstrapHeaders": Key("JSON object of header names to values", _headers),
    "managedMcpServers": Key("JSON array of server objects", _servers),
}
SETTABLE = [name for name, key in KEYS.items() if key.check is not None]


def describe() -> str:
    """The keys --set takes and their values, for the command's help."""
    return "; ".join(f"{name} ({KEYS[name].kind})" for name in SETTABLE)


def _suggestion(key: str) -> str:
    by_lower = {name.lower(): name for name in KEYS}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        near = KEYS[by_lower[close[0]]]
        why = f" ({near.refusal})" if near.check is None else ""
        return f"; did you mean {by_lower[close[0]]!r}?{why}"
    return f"; the keys --set takes: {', '.join(SETTABLE)}"


def parse(pairs: tuple[str, ...], *, windows: bool) -> dict[str, str]:
    """``--set KEY=VALUE`` pairs as managed values (strings), in the order given."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            # Not echoed: a mistyped pair may hold a secret.
            raise SetError("expected KEY=VALUE, e.g. inferenceModels=claude-sonnet-4-5")
        key = KEYS.get(name)
        if key is None:
            raise SetError(f"{name}: not a documented Claude key{_suggestion(name)}")
        if key.check is None:
            raise SetError(f"{name}: {key.refusal}")
        if name in values:
            raise SetError(f"{name}: given twice")
        try:
            values[name] = key.check(raw, windows)
        except SetError as e:
            hint = "" if str(e).startswith("expected") else f" (expected {key.kind})"
            raise SetError(f"{name}: {e}{hint}") from None
    return values
