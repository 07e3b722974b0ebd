"""What a config key may hold, and how to check it. Standard library only."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from gatekey.durations import parse_duration
from gatekey.output import (
    GIT_USERNAME,
    SHAPES,
    TOKEN_MARK,
    git_username_problem,
    header_name_problem,
    header_value_problem,
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# A default that means "the profile's own name" (e.g. the keychain account).
PROFILE_NAME = "<profile name>"


class KeySpec(NamedTuple):
    """One config key: its type, default and documentation."""

    # str | bool | int | duration | choice | str_table | header_table | str_list | secret_ref |
    # https_url | table | git_username
    type: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""
    fields: dict[str, KeySpec] | None = None  # a table's own keys (type "table")


def check_value(spec: KeySpec, value: Any) -> Any:
    """The value in canonical form, or ValueError saying what was expected."""
    kind = spec.type
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_type_name(value)}")
        if not value:
            raise ValueError("must not be empty")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_type_name(value)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {_type_name(value)}")
        return value
    if kind == "duration":
        return parse_duration(value)
    if kind == "choice":
        if value not in spec.choices:
            allowed = ", ".join(spec.choices)
            raise ValueError(f"expected one of {allowed}, got {_short(value)}")
        return value
    if kind == "str_list":
        if not isinstance(value, list) or not value:
            raise ValueError(f"expected a non-empty array of strings, got {_type_name(value)}")
        for item in value:
            if not isinstance(item, str) or "\0" in item:
                raise ValueError("every entry must be a string (no NUL bytes)")
        if not value[0]:
            raise ValueError("the first entry (the program) must not be empty")
        return list(value)
    if kind == "env_names":
        if not isinstance(value, list):
            raise ValueError(f"expected an array of variable names, got {_type_name(value)}")
        for item in value:
            if not isinstance(item, str) or not _ENV_NAME.fullmatch(item):
                raise ValueError(
                    "every entry must be an environment variable name (letters, digits and _, "
                    'not starting with a digit), e.g. ["AWS_PROFILE"]'
                )
        return tuple(dict.fromkeys(value))
    if kind == "secret_ref":
        if not isinstance(value, dict):
            raise ValueError(
                "a secret is never written in the config; reference it with one of "
                '{ env = "NAME" }, { file = "/path" } or { keychain = "<keychain profile>" }'
            )
        given = [k for k in ("env", "file", "keychain") if k in value]
        unknown = sorted(set(value) - {"env", "file", "keychain"})
        if (
            unknown
            or len(given) != 1
            or not isinstance(value[given[0]], str)
            or not value[given[0]]
        ):
            raise ValueError(
                "expected exactly one of env, file or keychain, naming where the secret is, "
                'e.g. { env = "CORP_SECRET" }'
            )
        return {given[0]: value[given[0]]}
    if kind == "https_url":
        if not isinstance(value, str) or not value.lower().startswith("https://"):
            raise ValueError("expected an https:// URL (plain http is refused)")
        return value.rstrip("/")
    if kind == "table":
        return _check_table(spec, value)
    if kind == "git_username":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_type_name(value)}")
        problem = git_username_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if TOKEN_MARK in value:
            raise ValueError("must not hold {token}: the credential is git's password")
        bad = _bad_claim_placeholder(value)
        if bad:
            raise ValueError(f"{bad!r} is not a claim placeholder; write {{claims.NAME}}")
        return value
    if kind in ("str_table", "header_table"):
        if not isinstance(value, dict):
            raise ValueError(f"expected a table of strings, got {_type_name(value)}")
        out: dict[str, Any] = {}
        for name, item in value.items():
            if kind == "header_table" and isinstance(item, dict):
                problem = header_name_problem(name)
                if problem is not None:
                    raise ValueError(f"entry {_short(name)}: {problem}")
                out[name] = _header_ref(name, item)
                continue
            if not isinstance(item, str):
                raise ValueError(
                    f'entry "{_short_name(name)}" must be a string, got {_type_name(item)}'
                    + (f" (or a reference: {HEADER_REF_SYNTAX})" if kind == "header_table" else "")
                )
            if kind == "header_table":
                problem = header_name_problem(name)
                if problem is not None:
                    raise ValueError(f"entry {_short(name)}: {problem}")
                problem = header_value_problem(item)
                if problem is not None:
                    raise ValueError(f'entry "{name}": {problem}')
            if any(c in item or c in name for c in "\r\n\0"):
                raise ValueError(f'entry "{_short_name(name)}" must not contain line breaks')
            bad = _bad_claim_placeholder(item)
            if bad:
                raise ValueError(
                    f'entry "{name}": {bad!r} is not a claim placeholder; write {{claims.NAME}}, '
                    "e.g. {claims.oid} or {claims.email}"
                )
            out[name] = item
        return out
    raise AssertionError(f"unknown key type {kind}")


def _check_table(spec: KeySpec, value: Any) -> dict[str, Any]:
    """A table with its own keys (e.g. a vault's ``auth``); errors name the inner key."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a table, got {_type_name(value)}")
    fields = spec.fields or {}
    out: dict[str, Any] = {}
    for name, item in value.items():
        field = fields.get(name)
        if field is None:
            known = ", ".join(sorted(fields))
            raise ValueError(f'unknown key "{name}" in this table (known: {known})')
        try:
            out[name] = check_value(field, item)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    for name, field in fields.items():
        if name not in out:
            if field.required:
                raise ValueError(f'missing key "{name}" ({field.doc})')
            out[name] = field.default
    return out


# A header value by reference: a secret reference, or the credential of another profile.
HEADER_REF_KINDS = ("env", "file", "keychain", "profile")
HEADER_REF_SYNTAX = (
    '{ keychain = "<keychain profile>" }, { env = "NAME" }, { file = "/path" } or '
    '{ profile = "<profile>" }'
)


def _header_ref(name: str, ref: dict[str, Any]) -> dict[str, str]:
    given = [k for k in HEADER_REF_KINDS if k in ref]
    if (
        set(ref) - set(HEADER_REF_KINDS)
        or len(given) != 1
        or not isinstance(ref[given[0]], str)
        or not ref[given[0]]
    ):
        raise ValueError(
            f'entry "{name}": a reference holds exactly one of env, file, keychain or profile, '
            f"naming where the value is: {HEADER_REF_SYNTAX}"
        )
    return {given[0]: ref[given[0]]}


def header_refs(headers: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The headers whose values are references (resolved with the credential, cached with it)."""
    return {name: value for name, value in headers.items() if isinstance(value, dict)}


def header_templates(headers: dict[str, Any]) -> dict[str, str]:
    """The headers written as text (literal, or with {token} / {claims.NAME} placeholders)."""
    return {name: value for name, value in headers.items() if isinstance(value, str)}


def _bad_claim_placeholder(text: str) -> str | None:
    """A malformed ``{claims...}`` placeholder in a header template, if any."""
    for match in re.finditer(r"\{claims[^}]*\}?", text):
        if not re.fullmatch(r"\{claims\.[A-Za-z0-9_.:-]+\}", match.group(0)):
            return match.group(0)
    return None


def describe(spec: KeySpec) -> str:
    if spec.type == "choice":
        return " | ".join(spec.choices)
    names = {
        "str_table": "table of strings",
        "header_table": "table of HTTP header names to values or references",
        "str_list": "array of strings",
        "env_names": "array of environment variable names",
        "secret_ref": "secret reference",
        "https_url": "https URL",
        "table": "table",
        "git_username": "username (may hold {claims.NAME})",
    }
    return names.get(spec.type, spec.type)


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _short_name(name: str) -> str:
    return name if len(name) <= 40 else name[:37] + "..."


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _type_name(value)
    return text if len(text) <= 40 else text[:37] + "..."


BUILTIN_ORIGIN = "built-in default"
DEFAULT_MIN_TTL = 3600.0 + 300.0  # the app's default inferenceCredentialHelperTtlSec + margin

# Keys every profile has, whatever its source.
COMMON_KEYS: dict[str, KeySpec] = {
    "source": KeySpec("str", None, required=True, doc="where the credential comes from"),
    "auth_scheme": KeySpec(
        "choice", "bearer", choices=("bearer", "x-api-key"), doc="how the gateway expects it"
    ),
    "output": KeySpec(
        "choice",
        "token",
        choices=SHAPES,
        doc="stdout shape: token, json (inference helper), headers (a flat header map: MCP, "
        "OTLP), git-credential (username=/password= lines: a plugin marketplace)",
    ),
    "git_username": KeySpec(
        "git_username",
        None,
        doc=f"git's username in the git-credential output (default {GIT_USERNAME}); "
        "{claims.NAME} inserts a token claim",
    ),
    "headers": KeySpec(
        "header_table",
        {},
        doc="headers for the json and headers outputs; {claims.NAME} inserts a token claim, "
        '{token} the credential; a secret by reference: { keychain = "<profile>" }, '
        '{ env = "NAME" }, '
        '{ file = "/path" }, { profile = "<profile>" }',
    ),
    "min_ttl": KeySpec(
        "duration", DEFAULT_MIN_TTL, doc="never print a token with less lifetime left than this"
    ),
    "cache": KeySpec("bool", True, doc="keep fetched tokens in gatekey's file cache"),
    "cache_key_env": KeySpec(
        "env_names",
        (),
        doc="environment variables that select the credential (e.g. AWS_PROFILE): each value "
        "gets its own cache entry",
    ),
}
# Keys that change how a credential is printed, not which credential it is (not in cache keys).
PRESENTATION_KEYS = frozenset(COMMON_KEYS) - {"source"}
