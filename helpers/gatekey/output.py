"""The stdout contract: the one module that writes a payload to stdout. Standard library only.

Shapes: what a helper run prints, one per kind of consumer (a profile's ``output``, or
``GATEKEY_OUTPUT`` as a ``gatekey wrap --format`` wrapper sets it):
- ``token``          the bare credential (inferenceCredentialHelper, apiKeyHelper, a marketplace)
- ``json``           ``{"token": "...", "headers": {...}}`` (inferenceCredentialHelper)
- ``headers``        a flat JSON object of header names to strings: the credential under the
                     profile's auth scheme plus its headers (MCP headersHelper, otlpHeadersHelper,
                     bootstrapHeadersHelper)
- ``git-credential`` ``username=<git_username>`` and ``password=<token>`` lines, as a git
                     credential helper answers ``get`` (a plugin marketplace's credentialHelper)
``gatekey get --format`` offers these and two for people:
- ``header`` ``Authorization: Bearer <t>`` or ``x-api-key: <t>`` for curl debugging
- ``env``    shell exports for Claude Code (``ANTHROPIC_AUTH_TOKEN`` / ``ANTHROPIC_API_KEY``)
Every payload is one write of bytes ending in a newline.
"""

from __future__ import annotations

import json
import os

from gatekey.errors import BadHeader, BadToken, ConfigError, MissingClaim, StdoutUnavailable
from gatekey.token import credential_problem

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the cache hit ~3 ms
if TYPE_CHECKING:
    from collections.abc import Mapping

SHAPES = ("token", "json", "headers", "git-credential")
FORMATS = (*SHAPES, "header", "env")
# The shape a wrapper pins (gatekey wrap --format): it wins over the profile's ``output``.
SHAPE_ENV = "GATEKEY_OUTPUT"
# git's username when the profile sets no git_username: GitHub requires it for app installation
# tokens and ignores the username for personal tokens; GitLab and Azure DevOps accept any
# non-empty one for personal access tokens. (GitLab OAuth tokens want "oauth2", Bitbucket's
# "x-token-auth": set git_username.) A gateway that checks the password alone ignores it.
GIT_USERNAME = "x-access-token"


def pinned_shape() -> str | None:
    """The shape ``GATEKEY_OUTPUT`` pins (None when unset or blank); ConfigError for a value
    that is not a shape (a wrapper edited by hand, a typo in an environment)."""
    raw = os.environ.get(SHAPE_ENV, "").strip()
    if not raw:
        return None
    if raw not in SHAPES:
        shown = raw if len(raw) <= 40 and raw.isprintable() else "(not a shape name)"
        raise ConfigError(
            f"{SHAPE_ENV} is {shown!r}, which is not an output shape; expected one of "
            f"{', '.join(SHAPES)} (gatekey wrap --format writes it)"
        )
    return raw


def check_token(value: str) -> None:
    """Refuse values that would corrupt the payload or smuggle a header (never echo the value)."""
    problem = credential_problem(value)
    if problem is not None:
        raise BadToken(
            f"the source returned a credential that cannot be sent in an HTTP header: {problem}; "
            "check what the source returns"
        )


# RFC 9110 field names are tokens; gatekey also bounds their length (a name is a word or two).
MAX_HEADER_NAME = 256
# A header value gatekey prints (static or from a claim); gateways refuse far less in all.
MAX_HEADER_VALUE = 8192
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid HTTP field name (RFC 9110 token), or None."""
    if not isinstance(name, str) or not name:
        return "a header name must not be empty"
    if len(name) > MAX_HEADER_NAME:
        return f"a header name must be at most {MAX_HEADER_NAME} characters"
    if not _TCHAR.issuperset(name):
        return (
            "a header name may hold only letters, digits and !#$%&'*+-.^_`|~ "
            "(no spaces, colons or other characters)"
        )
    return None


def header_value_problem(value: object) -> str | None:
    """Why ``value`` is not valid HTTP field text, or None (never quotes the value).

    Tabs and printable characters only: a CR or LF would end the header and start another
    (``alice\r\nAuthorization: ...``), NUL and other controls are refused by servers, and
    Unicode line or paragraph separators and invisible format characters are refused too.
    """
    if not isinstance(value, str):
        return "a header value must be a string"
    if len(value) > MAX_HEADER_VALUE:
        return f"a header value must be at most {MAX_HEADER_VALUE} characters"
    if value.isprintable() or all(c == "\t" or c.isprintable() for c in value):
        return None
    return "a header value must not contain line breaks or control characters"


CLAIM_MARK = "{claims."
TOKEN_MARK = "{token}"  # noqa: S105 - the placeholder, not a secret


def fill_claims(
    headers: Mapping[str, object], token: str, *, what: str = "header"
) -> dict[str, str]:
    """The text headers with ``{claims.NAME}`` (dotted for nested claims) replaced by the
    token's claim values and ``{token}`` by the credential itself (a gateway that wants it twice).

    Only those placeholders are special, so JSON header values such as
    ``{"_user": "{claims.email}"}`` keep their own braces. Values that are not text (a profile's
    references, resolved with the credential: Token.headers) are not headers to fill. ``what``
    names the template in messages (``git_username`` fills its claims here too).
    """
    texts = {name: value for name, value in headers.items() if isinstance(value, str)}
    if not any(CLAIM_MARK in v or TOKEN_MARK in v for v in texts.values()):
        return texts
    import re

    from gatekey.token import jwt_claims

    claims = jwt_claims(token) if any(CLAIM_MARK in v for v in texts.values()) else None
    filled = {}
    for name, template in texts.items():
        used: list[str] = []
        label = f'header "{name}"' if what == "header" else what

        def value(match: re.Match[str], label: str = label, used: list[str] = used) -> str:
            claim = match.group(1)
            if claim is None:  # {token}: checked by check_token
                return token
            used.append(claim)
            if claims is None:
                raise MissingClaim(
                    f"{label} inserts {{claims.{claim}}}, but the token is not a JWT "
                    "(it is opaque), so it has no claims"
                )
            found: object = claims
            for part in claim.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if found is None or isinstance(found, (dict, list)):
                raise MissingClaim(f"{label}: the token has no claim {claim!r}")
            return str(found).lower() if isinstance(found, bool) else str(found)

        filled[name] = re.sub(r"\{(?:token|claims\.([A-Za-z0-9_.:-]+))\}", value, template)
        problem = header_value_problem(filled[name])
        if problem is not None and what == "header":  # git_user() says its own
            # A claim is often user-editable at the IdP (name, email): never let it add a header.
            raise BadHeader(
                f'header "{name}": the token\'s claim {", ".join(used)} does not make a valid '
                f"header value ({problem}); fix the claim at the identity provider or take it "
                "out of headers"
            )
    return filled


def render(
    value: str,
    fmt: str,
    *,
    auth_scheme: str,
    headers: Mapping[str, object],
    resolved: dict[str, str] | None = None,
    git_username: str | None = None,
) -> bytes:
    """The payload. ``headers``: the profile's (its text ones are filled here); ``resolved``:
    the values of its references, obtained with the credential (Token.headers);
    ``git_username``: the profile's (None: GIT_USERNAME)."""
    check_token(value)
    if fmt in ("json", "env", "headers"):
        filled = fill_claims(headers, value)
        filled.update(resolved or {})
        for name, item in filled.items():  # static ones were checked with the config
            problem = header_name_problem(name) or header_value_problem(item)
            if problem is not None:
                raise BadHeader(f"headers: {problem}")
    if fmt == "token":
        text = value
    elif fmt == "json":
        text = json.dumps({"token": value, "headers": filled}, ensure_ascii=False)
    elif fmt == "headers":
        text = json.dumps(header_map(value, auth_scheme, filled), ensure_ascii=False)
    elif fmt == "git-credential":
        text = f"username={git_user(git_username, value)}\npassword={value}"
    elif fmt == "header":
        text = (
            f"Authorization: Bearer {value}" if auth_scheme == "bearer" else f"x-api-key: {value}"
        )
    elif fmt == "env":
        import shlex

        var = "ANTHROPIC_AUTH_TOKEN" if auth_scheme == "bearer" else "ANTHROPIC_API_KEY"
        lines = [f"export {var}={shlex.quote(value)}"]
        if filled:
            joined = "\n".join(f"{k}: {v}" for k, v in filled.items())
            lines.append(f"export ANTHROPIC_CUSTOM_HEADERS={shlex.quote(joined)}")
        text = "\n".join(lines)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return (text + "\n").encode("utf-8")


def header_map(value: str, auth_scheme: str, filled: dict[str, str]) -> dict[str, str]:
    """The ``headers`` shape: the credential as the gateway expects it, then the profile's
    headers. A profile may not set the credential's own header (config.py refuses it); one that
    still arrives here (an edited cache index) must not replace or shadow the credential."""
    name = "Authorization" if auth_scheme == "bearer" else "x-api-key"
    if any(other.lower() == name.lower() for other in filled):
        raise BadHeader(f"headers: {name} is the credential's own header and may not be set")
    credential = f"Bearer {value}" if auth_scheme == "bearer" else value
    return {name: credential, **filled}


def git_username_problem(text: object) -> str | None:
    """Why ``text`` cannot be git's username (after its claims are filled in), or None."""
    problem = header_value_problem(text)  # a line break would end git's line and start another
    if problem is not None:
        return problem.replace("a header value", "git_username")
    if not text:
        return "git_username must not be empty"
    if ":" in str(text):  # HTTP Basic (RFC 7617) ends the user-id at the first colon
        return "git_username must not contain a colon (HTTP Basic cannot carry it)"
    return None


def git_user(template: str | None, value: str) -> str:
    """git's username: the profile's ``git_username`` with its ``{claims.NAME}`` filled in
    (never the credential: ``{token}`` is refused with the config and here)."""
    if template is None:
        return GIT_USERNAME
    if TOKEN_MARK in template:
        raise BadHeader("git_username may not hold {token}: the credential is the password")
    user = fill_claims({"git_username": template}, value, what="git_username")["git_username"]
    problem = git_username_problem(user)
    if problem is not None:
        raise BadHeader(
            f"git_username: the token's claims do not make a valid username ({problem}); fix the "
            "claim at the identity provider or change git_username"
        )
    return user


def write_payload(payload: bytes, fd: int = 1) -> None:
    """Write the payload with as few writes as the OS allows (OSError if it cannot be)."""
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def undelivered(error: OSError) -> StdoutUnavailable:
    """The one-line failure for a payload that could not be written to stdout."""
    import errno

    why = {
        errno.EPIPE: "the reader closed it (broken pipe)",
        errno.EBADF: "it is closed",
        errno.ENOSPC: "no space left on the device it writes to",
    }.get(error.errno or 0, error.strerror or type(error).__name__)
    return StdoutUnavailable(
        f"could not write the credential to stdout: {why}, so it was not delivered; connect "
        "gatekey's output to the program that reads it"
    )


def write_text(text: str) -> None:
    """Human output of the non-helper commands (status, config show, version).

    Flushed at once, so a reader that went away (``| head``) is noticed here, where the CLI
    treats it as the end of the output, not at exit.
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        discard_stdout()
        raise SystemExit(0) from None  # the reader went away (| head): the output simply ends
    except OSError as e:
        discard_stdout()
        raise StdoutUnavailable(f"could not write to stdout ({e.strerror})") from None


def stdout_open() -> bool:
    """Whether fd 1 is open at all (``gatekey >&-`` closes it)."""
    try:
        os.fstat(1)
    except OSError:
        return False
    return True


def discard_stdout() -> None:
    """Point fd 1 at /dev/null and drop what is buffered: the interpreter's own flush at exit
    must not fail again (and print "Exception ignored") on the broken or full stdout."""
    import sys

    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    except OSError:
        pass
