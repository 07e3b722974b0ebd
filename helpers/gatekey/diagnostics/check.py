"""`gatekey check`: run a credential helper exactly as the app does, once per context, and judge it.

Each run is what Claude Desktop / Cowork does (reference/contract.md): the executable by absolute
path, no arguments, stdin at end of file (/dev/null), the filesystem root as working directory,
its own process group (killed whole at the time limit), and a minimal environment:

- PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TMPDIR, DBUS_SESSION_BUS_ADDRESS;
- every XDG_* and GATEKEY_* variable (GATEKEY_PROFILE set to -p's profile);
- the proxy variables HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (either case);
- on Windows also SYSTEMROOT, SYSTEMDRIVE, WINDIR, COMSPEC, PATHEXT, TEMP, TMP, USERPROFILE,
  USERNAME, HOMEDRIVE, HOMEPATH, APPDATA, LOCALAPPDATA, PROGRAMDATA (Python needs them);
- CLAUDE_HELPER_CONTEXT for the context under test (absent for "unset"), plus
  CLAUDE_HELPER_MANUAL_RUN=1 with setup-test, as the app sets it.
Anything else in the shell (VAULT_ADDR, AWS_PROFILE, ...) is deliberately missing: the app is
started from the desktop, not from the admin's shell.

Time limits: mid-session-refresh 20 s (the app's clamp); otherwise gatekey's configured
``[timeouts]`` (interactive; silent for the other contexts and "unset", which without a terminal
is silent), or, for a foreign ``--helper``, the app's default inferenceCredentialHelperTimeoutSec
of 60 s. ``--timeout`` checks against another app timeout. The interactive context is skipped
unless ``--interactive`` is given: a sign-in may open a browser.

For tests only (not in --help): GATEKEY_CHECK_TIME_SCALE=0.05 multiplies every limit, so a
helper that overruns the 20 s clamp is caught in one second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from typing import Any

from gatekey import config, context, logs, process
from gatekey.errors import HelperError
from gatekey.token import printable

CONTEXTS = (context.INTERACTIVE, context.MID_SESSION, *context.SILENT_CONTEXTS, "unset")
APP_DEFAULT_TIMEOUT = 60.0  # inferenceCredentialHelperTimeoutSec's default
APP_MID_SESSION_CLAMP = 20.0
CLAUDE_CODE_SLOW = 10.0  # Claude Code warns when its apiKeyHelper takes longer
SCALE_ENV = "GATEKEY_CHECK_TIME_SCALE"
KILLED_GRACE = 2.0  # seconds to read what a killed helper wrote (its group is gone)
PASS_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR",
    "DBUS_SESSION_BUS_ADDRESS", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY",
    "https_proxy", "http_proxy", "all_proxy", "no_proxy",
)  # fmt: skip
PASS_ENV_WINDOWS = (
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE",
    "USERNAME", "HOMEDRIVE", "HOMEPATH", "APPDATA", "LOCALAPPDATA", "PROGRAMDATA",
)  # fmt: skip
PASS_PREFIXES = ("XDG_", "GATEKEY_")
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


class CheckFailed(HelperError):
    """At least one context failed (the table says which and why)."""


# --- running ---------------------------------------------------------------------------------
@dataclass
class Capture:
    """What one run did. ``code`` is None when it never started or was killed at the limit."""

    code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    seconds: float = 0.0
    timed_out: bool = False
    held_open: bool = False
    start_error: str | None = None


def minimal_env(ctx: str, profile: str | None, environ: dict[str, str]) -> dict[str, str]:
    """The environment of one run (see the module docstring)."""
    names = PASS_ENV + (PASS_ENV_WINDOWS if sys.platform == "win32" else ())
    env = {k: v for k, v in environ.items() if k in names or k.startswith(PASS_PREFIXES)}
    env.pop(SCALE_ENV, None)
    if profile is not None:
        env["GATEKEY_PROFILE"] = profile
    if ctx != "unset":
        env[context.ENV] = ctx
    if ctx == "setup-test":
        env["CLAUDE_HELPER_MANUAL_RUN"] = "1"
    return env


def run_helper(path: str, env: dict[str, str], limit: float) -> Capture:
    """Run ``path`` with no arguments the way the app does; stop its process group at ``limit``."""
    started = time.monotonic()
    try:
        child = process.Child([path], env=env, cwd=os.path.abspath(os.sep))
    except OSError as e:
        return Capture(start_error=e.strerror or type(e).__name__)
    with child:
        code = child.wait(limit)
        cap = Capture(code=code, timed_out=code is None)
        if not cap.timed_out:
            # The app reads until end of file: a child that inherited the pipes keeps it waiting.
            cap.held_open = not child.drain(max(started + limit - time.monotonic(), 0))
        cap.seconds = min(time.monotonic() - started, limit)
        if cap.held_open:
            child.kill()
        if cap.timed_out or cap.held_open:
            child.drain(KILLED_GRACE)  # what it wrote before it was killed
        cap.stdout, cap.stderr = child.stdout, child.stderr
    return cap


# --- judging ---------------------------------------------------------------------------------
@dataclass
class Payload:
    """What a successful run printed, without the token (only its length)."""

    kind: str  # "token" | "json"
    token: str = field(repr=False)
    headers: int = 0


@dataclass
class Judgement:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    payload: Payload | None = None


def _json_type(value: object) -> str:
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
        j.problems.append(f'{HEADER_TYPES} ("headers" is a JSON {_json_type(headers)})')
        headers = {}
    wrong = [f"{name}: {_json_type(v)}" for name, v in headers.items() if not isinstance(v, str)]
    if wrong:
        j.problems.append(f"{HEADER_TYPES} ({', '.join(wrong)})")
    bad_names = [name for name in headers if not HEADER_NAME.fullmatch(name)]
    if bad_names:
        j.problems.append(f"header names not valid in HTTP: {', '.join(map(repr, bad_names))}")
    # Names only: a header value may itself be a secret.
    broken = [n for n, v in headers.items() if isinstance(v, str) and not _header_safe(v)]
    if broken:
        names = ", ".join(broken)
        j.problems.append(f"header values must not contain line breaks or controls ({names})")
    unknown = sorted(set(doc) - {"token", "headers"})
    if unknown:
        j.warnings.append(f"JSON keys the app ignores: {', '.join(unknown)}")
    j.payload = Payload("json", token, len(headers))


def _header_safe(value: str) -> bool:
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


def judge(ctx: str, cap: Capture, limit: float, nominal: float) -> Judgement:
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
    judge_stdout(cap.stdout, j)
    if j.payload is None:
        return j
    token = j.payload.token
    logs.register_secret(token)  # masks it in anything this process logs or shows
    leak = leaks(token, stderr)
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
    elif ctx == "unset" and cap.seconds > CLAUDE_CODE_SLOW * limit / nominal:
        j.warnings.append("Claude Code (apiKeyHelper) warns when a helper takes over 10 s")
    return j


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _stderr_tail(stderr: bytes) -> str | None:
    lines = [x.strip() for x in stderr.decode("utf-8", "replace").splitlines() if x.strip()]
    if not lines:
        return None
    tail = logs.redact(lines[-1])
    return tail if len(tail) <= 160 else tail[:157] + "..."


# --- the command -----------------------------------------------------------------------------
def default_helper(family: str | None) -> str:
    """The installed executable this command belongs to (gatekey, gatekey-vault, ...)."""
    name = "gatekey" if family is None else f"gatekey-{family}"
    names = (name + ".exe", name) if sys.platform == "win32" else (name,)
    candidates = []
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) in names:
        candidates.append(argv0 if os.path.dirname(argv0) else shutil.which(argv0) or "")
    # python -m gatekey: the scripts next to this interpreter (a venv's bin), then the scheme's.
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidates += [os.path.join(folder, n) for n in names]
    candidates.append(shutil.which(name) or "")
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise HelperError(f"cannot find the installed {name} executable; give it with --helper PATH")


def _limits(cfg: config.Config | None, app_timeout: float | None) -> dict[str, float]:
    if app_timeout is not None:
        limits = dict.fromkeys(CONTEXTS, app_timeout)
    elif cfg is None:
        limits = dict.fromkeys(CONTEXTS, APP_DEFAULT_TIMEOUT)
    else:
        limits = dict.fromkeys(CONTEXTS, cfg.timeout("silent"))
        limits[context.INTERACTIVE] = cfg.timeout("interactive")
    # The app's own clamp, whatever the helper configured for itself (gatekey stays below it).
    limits[context.MID_SESSION] = min(app_timeout or APP_MID_SESSION_CLAMP, APP_MID_SESSION_CLAMP)
    return limits


def _time_scale() -> float:
    raw = os.environ.get(SCALE_ENV, "").strip()
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        scale = 0.0
    if not 0 < scale <= 1:
        raise HelperError(f"{SCALE_ENV} must be a number in (0, 1] (it is for tests)")
    return scale


def check(
    family: str | None,
    profile: str | None,
    helper: str | None,
    app_timeout: float | None,
    interactive: bool,
) -> dict[str, Any]:
    """Run every context and return the report (no secret in it)."""
    notes = []
    selected = None
    cfg = None
    if helper is None:
        cfg = config.load()
        selected = config.select_profile(cfg, profile, family)
        prof = cfg.profile(selected)  # an unknown or broken profile stops here, exit 78
        notes.append(f"profile {selected} (source {prof.kind})")
        path = default_helper(family)
    else:
        path = os.path.abspath(helper)
        if path != helper:
            notes.append(f"the app needs an absolute path: checking {path}")
        if " " in helper and not os.path.exists(path):
            notes.append("the app takes the whole value as one file name: no arguments")
    scale = _time_scale()
    if scale != 1:
        notes.append(f"limits scaled by {scale:g} ({SCALE_ENV}; for tests)")
    limits = _limits(cfg, app_timeout)
    environ = dict(os.environ)
    runs = []
    for ctx in CONTEXTS:
        nominal = limits[ctx]
        row: dict[str, Any] = {"context": ctx, "limit": nominal * scale}
        if scale != 1:
            row["nominal_limit"] = nominal
        if ctx == context.INTERACTIVE and not interactive:
            row.update(verdict="skip", exit_code=None, seconds=None, within_limit=None)
            row.update(output=None, problems=[], warnings=[], stderr=None)
            row["note"] = "not run: a sign-in may open a browser; --interactive runs it"
            runs.append(row)
            continue
        env = minimal_env(ctx, profile, environ)
        cap = run_helper(path, env, nominal * scale)
        j = judge(ctx, cap, nominal * scale, nominal)
        row.update(
            verdict="fail" if j.problems else "warn" if j.warnings else "ok",
            exit_code=cap.code,
            seconds=None if cap.start_error else round(cap.seconds, 3),
            within_limit=None if cap.start_error else not (cap.timed_out or cap.held_open),
            output=None
            if j.payload is None
            else {
                "kind": j.payload.kind,
                "token": "<redacted>",
                "token_length": len(j.payload.token),
                "headers": j.payload.headers,
            },
            problems=j.problems,
            warnings=j.warnings,
            stderr=_stderr_tail(cap.stderr) if j.problems else None,
        )
        runs.append(row)
    env_names = sorted(minimal_env("setup-test", profile, environ))
    return {
        "helper": path,
        "profile": selected if helper is None else profile,
        "passed": all(r["verdict"] != "fail" for r in runs),
        "time_scale": scale,
        "environment": env_names,
        "notes": notes,
        "runs": runs,
    }
