"""Secret hygiene across the whole suite (issue 7, item 6): record, register, scan.

Every subprocess a test runs through ``subprocess`` (``run``, ``Popen.communicate``) is recorded:
argv, environment, stdin, stdout, stderr, exit code (``install()`` patches ``Popen`` once per
worker; ``tests/conftest.py`` gives each test a fresh ``Recorder``). Every Python process started
with ``tests/support`` on ``PYTHONPATH`` (gatekey itself, and the stand-ins it runs as
children), and the browser stand-ins, append their own ``/proc/self/cmdline`` to
``$GATEKEY_TEST_ARGV_LOG`` (``sitecustomize.py``).

Secrets are registered as they come into being: what a successful helper run printed (the
token, and every header value of a JSON payload), what ``gatekey store`` read on stdin, the
value of every secret-named environment variable a gatekey process was given (client secrets,
Vault tokens, AppRole secret IDs...), the token values and MSAL secrets (refresh tokens) in the
test's gatekey cache, and anything a test registers itself. A JWT's signature is registered on
its own as well.

After the test, none of them (nor its base64, base64url or URL-encoded form) may appear in:
the stderr of any gatekey process; its stdout, except a successful run's payload (no command,
``get``, ``inspect --show-token``); any process's argv, gatekey's and its children's; any gatekey
run log; any file name in the cache. Nor may a part of one that gatekey's redaction masks (the
README: any run of 6 characters, or its first and last 3 as two words of one line, as CLIs print
a masked key) appear in the stderr of the gatekey run it came from, or anywhere for a secret the
test registered (``partial_leaks``; not counting parts made only of lowercase letters, as
ordinary words are). Findings name the place,
the form and the secret's origin, never the secret.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import tomllib

MIN_LENGTH = 8  # shorter test values ("tok-1") match ordinary text; they prove nothing
RUN = 6  # gatekey masks any run of this many characters of a secret (gatekey.logs.WINDOW)...
AFFIX = 3  # ...and a word starting with its first 3, with a later word ending with its last 3
_NOT_WORD = re.compile(r"[^A-Za-z0-9]")
NO_RUN = -1  # a secret found in a cache: not of one run, checked whole only
ARGV_LOG = "GATEKEY_TEST_ARGV_LOG"
COMMANDS = {
    "get",
    "store",
    "erase",
    "login",
    "logout",
    "status",
    "config",
    "version",
    "inspect",
    "doctor",
    "check",
    "mdm",
    "wrap",
}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|CREDENTIAL", re.IGNORECASE)
NOT_A_SECRET_NAME = re.compile(r"(_FILE|_PATH|_DIR|_URL|_ADDR|_HELPER|_CONTEXT)$", re.IGNORECASE)


@dataclass
class Run:
    argv: list[str]
    env: dict[str, str] | None
    stdin: bytes | None
    stdout: bytes
    stderr: bytes
    code: int | None

    @property
    def is_gatekey(self) -> bool:
        if not self.argv:
            return False
        if Path(self.argv[0]).name.startswith("gatekey"):
            return True
        return any(
            a == "-m" and b == "gatekey" for a, b in zip(self.argv, self.argv[1:], strict=False)
        )

    @property
    def command(self) -> str | None:
        words = [a for a in self.argv[1:] if a in COMMANDS]
        return words[0] if words else None

    @property
    def payload_ok(self) -> bool:
        """A successful run whose stdout is, by design, the credential."""
        if self.code != 0:
            return False
        command = self.command
        return command in (None, "get") or (command == "inspect" and "--show-token" in self.argv)

    def describe(self) -> str:
        """The executable, the command and the options, never an argument's value."""
        words = [Path(self.argv[0]).name] + [
            a.split("=")[0] for a in self.argv[1:] if a in COMMANDS or a.startswith("-")
        ]
        return f"`{' '.join(words)}`"


def forms(secret: str) -> dict[str, str]:
    """The secret as it could leak: raw, base64 / base64url at any alignment, URL-encoded."""
    out = {"raw": secret}
    data = secret.encode()
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + data).decode()
        # Only the characters that depend on the secret's bytes alone, whatever surrounds it.
        start, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
        inner = encoded[start:end]
        out[f"base64 (offset {k})"] = inner
        out[f"base64url (offset {k})"] = inner.replace("+", "-").replace("/", "_")
    out["url-encoded"] = quote(secret, safe="")
    out["form-encoded"] = quote_plus(secret)
    unique: dict[str, str] = {}
    for name, text in out.items():
        if text not in unique.values():
            unique[name] = text
    return unique


class Recorder:
    """One test's subprocesses and secrets."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.secrets: dict[str, str] = {}  # value -> where it came from
        # value -> the runs whose stderr must not hold part of it (None: every place). A run's
        # own secrets only: across runs, test data shares pieces without any leak (the hex of
        # an address as one example's token and another's namespace).
        self.partial_scope: dict[str, set[int] | None] = {}
        self.extra_logs: list[Path] = []

    def register(self, value: str, origin: str, run: int | None = None) -> None:
        value = value.encode("utf-8", "replace").decode("utf-8").strip()  # lone surrogates
        if len(value) < MIN_LENGTH:
            return
        self._scope(value, run)
        if value in self.secrets:
            return
        self.secrets[value] = origin
        parts = value.split(".")
        if len(parts) == 3 and len(parts[2]) >= MIN_LENGTH:  # a JWS: its signature alone
            self.secrets.setdefault(parts[2], f"{origin} (JWT signature)")
            self._scope(parts[2], run)

    def _scope(self, value: str, run: int | None) -> None:
        scope = self.partial_scope.setdefault(value, set())
        if scope is not None:
            if run is None:
                self.partial_scope[value] = None
            else:
                scope.add(run)

    # --- registration from what was recorded ------------------------------------------------
    def _register_from_runs(self) -> None:
        for i, run in enumerate(self.runs):
            if not run.is_gatekey:
                continue
            for name, value in (run.env or {}).items():
                secret_named = SECRET_NAME.search(name) and not NOT_A_SECRET_NAME.search(name)
                if secret_named and not value.startswith(("/", "{")):  # a path, a JSON setting
                    self.register(value, f"environment variable {name}", i)
            if run.command == "store" and run.stdin:
                self.register(run.stdin.decode("utf-8", "replace"), "`gatekey store` stdin", i)
            if run.payload_ok and run.command != "inspect":
                for value in payload_values(run.stdout):
                    self.register(value, f"printed by {run.describe()}", i)

    def _register_from_caches(self) -> None:
        for cache in self._paths("GATEKEY_CACHE_DIR"):
            for path in cache.glob("tokens/*.json"):
                data = _json(path)
                if isinstance(data, dict) and isinstance(data.get("token"), str):
                    self.register(data["token"], "gatekey's token cache", NO_RUN)
            for path in cache.glob("msal/*.json"):
                for value in _secrets_in(_json(path)):
                    self.register(value, "MSAL's state (refresh/access/ID token)", NO_RUN)

    def _paths(self, variable: str) -> set[Path]:
        """The existing paths a recorded run was given in ``variable`` (fuzzed values included:
        too long, not a path at all)."""
        found = set()
        for run in self.runs:
            value = (run.env or {}).get(variable)
            try:
                if value and Path(value).exists():
                    found.add(Path(value))
            except (OSError, ValueError):
                continue
        return found

    def run_logs(self) -> set[Path]:
        logs = set(self.extra_logs)
        for config in self._paths("GATEKEY_CONFIG"):
            try:
                log_file = tomllib.loads(config.read_text()).get("log_file")
            except (OSError, ValueError):
                continue
            if isinstance(log_file, str):
                logs.add(Path(os.path.expanduser(log_file)))
        return {p for p in logs if p.is_file()}

    # --- the scan -------------------------------------------------------------------------
    def partial_places(self) -> Iterator[tuple[int | None, str, str]]:
        """(run index or None, where, text) for every place gatekey's redaction covers: its
        stderr, its run logs."""
        for i, run in enumerate(self.runs):
            if run.is_gatekey:
                yield (
                    i,
                    f"stderr of run {i + 1} {run.describe()}",
                    run.stderr.decode("utf-8", "replace"),
                )
        for path in sorted(self.run_logs()):
            yield None, f"run log {path.name}", _text(path)

    def places(self) -> Iterator[tuple[str, str, str]]:
        """(where, text, allowed) for every place a secret must not be: a secret that is in
        ``allowed`` is not a leak there (a command's own arguments, written in the config)."""
        # A value written in a config file is the config's: a command's own arguments, or
        # `config show` / `mdm --gatekey-config` printing the config, are not leaks of it.
        configs = "\n".join(_text(p) for p in self._paths("GATEKEY_CONFIG"))
        for i, run in enumerate(self.runs):
            if not run.is_gatekey:
                continue
            label = f"run {i + 1} {run.describe()}"
            yield f"argv of {label}", "\0".join(run.argv), ""
            yield f"stderr of {label}", run.stderr.decode("utf-8", "replace"), ""
            if not run.payload_ok:
                out = run.stdout.decode("utf-8", "replace")
                yield f"stdout of {label} (exit {run.code})", out, configs if run.code == 0 else ""
        for path in self._paths(ARGV_LOG):
            where = f"argv of a process gatekey ran ({path.name})"
            yield where, _text(path), configs
        for path in sorted(self.run_logs()):
            yield f"run log {path.name}", _text(path), ""
        for cache in self._paths("GATEKEY_CACHE_DIR"):
            names = [str(p.relative_to(cache)) for p in cache.rglob("*")] if cache.is_dir() else []
            yield f"file names in the cache {cache.name}", "\n".join(names), ""

    def findings(self) -> list[str]:
        self._register_from_runs()
        self._register_from_caches()
        found = []
        places = list(self.places())
        partial_places = list(self.partial_places())
        for secret, origin in self.secrets.items():
            digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
            whole = set()  # places that hold it whole: no need to say that part of it is there
            for form, text in forms(secret).items():
                if len(text) < MIN_LENGTH:
                    continue
                for where, haystack, allowed in places:
                    if text in haystack and secret not in allowed:
                        found.append(f"a secret ({origin}; sha256 {digest}) is in {where} ({form})")
                        whole.add(where)
            scope = self.partial_scope.get(secret)
            for run, where, haystack in partial_places:
                if where in whole or not (scope is None or run in scope):
                    continue
                found += [
                    f"part of a secret ({origin}; sha256 {digest}) is in {where} ({how})"
                    for how in partial_leaks(secret, haystack)
                ]
        return sorted(set(found))


def partial_leaks(secret: str, text: str, *, words: bool = False) -> list[str]:
    """How ``text`` shows part of ``secret`` that gatekey must mask, never saying which part:
    a run of RUN characters; or, on one line, a word starting with its first AFFIX (or more)
    characters and a later word ending with its last AFFIX (or more), as in ``sk-Zq9...mPL``
    (a word: delimited by the line's ends or a character other than an ASCII letter or digit).

    Parts made only of lowercase letters count only with ``words``: test secrets are often
    made of words (``conf-secret``), and a message of gatekey's that says "secret" before
    gatekey has read that secret gives nothing away. (gatekey itself masks them all.)
    """
    found = []
    runs = _runs_of(secret, words)
    if any(text[i : i + RUN] in runs for i in range(len(text) - RUN + 1)):
        found.append(f"a run of {RUN} characters")
    head, tail = secret[:AFFIX], secret[-AFFIX:]
    if len(secret) > AFFIX and (words or not (_is_word(head) and _is_word(tail))):
        for line in text.splitlines():
            starts = [
                at for at in _find_all(line, head) if at == 0 or _NOT_WORD.match(line[at - 1])
            ]
            ends = [
                at + AFFIX
                for at in _find_all(line, tail)
                if at + AFFIX == len(line) or _NOT_WORD.match(line[at + AFFIX])
            ]
            if starts and ends and min(starts) + AFFIX <= max(ends) - AFFIX:
                found.append(f"its first and last {AFFIX} characters on one line")
                break
    return found


def _is_word(text: str) -> bool:
    return text.isascii() and text.isalpha() and text.islower()


@functools.lru_cache(maxsize=4)
def _runs_of(secret: str, words: bool) -> frozenset[str]:
    runs = (secret[i : i + RUN] for i in range(len(secret) - RUN + 1))
    return frozenset(run for run in runs if words or not _is_word(run))


def _find_all(text: str, part: str) -> Iterator[int]:
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


def payload_values(stdout: bytes) -> Iterable[str]:
    """The secrets in a payload, in every output shape: a bare token; json's token and header
    values; the headers shape's values (and the token inside ``Bearer <t>``); git-credential's
    password."""
    text = stdout.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return [text]
        if isinstance(data, dict):
            if "token" in data:
                values = [data.get("token")]
                headers = data.get("headers")
                if isinstance(headers, dict):
                    values += list(headers.values())
            else:  # output = "headers": a flat map, the credential under its scheme
                values = list(data.values())
                values += [v[7:] for v in values if isinstance(v, str) and v[:7] == "Bearer "]
            return [v for v in values if isinstance(v, str) and v]
    if text.startswith("username=") or "\npassword=" in text:  # output = "git-credential"
        lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return [lines["password"]] if lines.get("password") else [text]
    return [text] if text else []


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:  # a directory, gone, unreadable: nothing recorded there
        return ""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError, RecursionError):
        return None


def _secrets_in(data: Any, depth: int = 0) -> Iterator[str]:
    if depth > 20:  # MSAL's state is four levels deep; a damaged file may be anything
        return
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "secret" and isinstance(value, str):
                yield value
            else:
                yield from _secrets_in(value, depth + 1)
    elif isinstance(data, list):
        for value in data:
            yield from _secrets_in(value, depth + 1)


# --- recording ------------------------------------------------------------------------------
current: Recorder | None = None
_installed = False


def install() -> None:
    """Record every subprocess whose output is collected with communicate() (run() does)."""
    global _installed
    if _installed:
        return
    _installed = True
    original_init = subprocess.Popen.__init__
    original_communicate = subprocess.Popen.communicate

    def init(self: subprocess.Popen[Any], args: Any, *a: Any, **kw: Any) -> None:
        self._hygiene = (args, kw.get("env"))  # type: ignore[attr-defined]
        original_init(self, args, *a, **kw)

    def communicate(self: subprocess.Popen[Any], input: Any = None, timeout: Any = None) -> Any:
        out, err = original_communicate(self, input, timeout)
        recorder = current
        if recorder is not None:
            args, env = getattr(self, "_hygiene", (None, None))
            argv = [os.fspath(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
            recorder.runs.append(
                Run(argv, env, _bytes(input), _bytes(out), _bytes(err), self.returncode)
            )
        return out, err

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    subprocess.Popen.communicate = communicate  # type: ignore[method-assign]


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8", "replace") if isinstance(value, str) else bytes(value)
