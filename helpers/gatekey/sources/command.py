"""The command source: run an argument vector (never a shell) and take the token it prints.

Turns any CLI that prints a token (``az account get-access-token``, a gateway's own login tool)
into a cached, context-aware, contract-clean helper. The child's stdout is captured (it never
reaches the app); its stderr is passed to ours with the token masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Any

from gatekey import logs
from gatekey.checks import FAIL, OK, Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import CommandNotFound, DeadlineExceeded, HelperError, SourceUnavailable
from gatekey.kinds import Linker, ProbeKit
from gatekey.process import Child
from gatekey.token import Token, is_time

log = logging.getLogger(__name__)


class CommandSource:
    program_key = "command"  # the key naming the program, for doctor's fix

    def __init__(self, profile: Profile, links: Linker | None = None) -> None:
        del links  # a command names no other profile
        self.profile = profile
        self.argv: list[str] = profile.values["command"]

    def probe(self, kit: ProbeKit) -> Check:
        """The program is there and executable (it is not run: that is the token check)."""
        import shutil

        program = self.argv[0]
        found = shutil.which(program)
        if found is None:
            fix = f"install it, or set {self.program_key} to its absolute path"
            return Check("source", FAIL, f"{program} is not found, or not executable", [fix])
        note = "" if os.path.isabs(program) else " (an absolute path is safer: PATHs differ)"
        return Check("source", OK, f"{program} found at {found}{note}", [], {"path": found})

    def fetch(self, run: RunContext) -> Token:
        stdout, stderr, code = self._run(run)
        if code != 0:
            self._relay(stderr)
            raise HelperError(
                f"command {self.argv[0]} exited with status {code}; run it in a terminal to see "
                "why",
                profile=self.profile.name,
            )
        value, expires_in, expires_at = self._parse(stdout)
        logs.register_secret(value)  # before relaying: the child may have echoed it
        self._relay(stderr)
        if expires_at is not None:
            now = time.time()
            return Token(value, expires_at=expires_at, obtained_at=now, source="command")
        return Token.from_expires_in(
            value, expires_in, source="command", cache_ttl=self.profile.values["cache_ttl"]
        )

    def _relay(self, stderr: bytes) -> None:
        label = f'profile "{self.profile.name}" ({os.path.basename(self.argv[0])})'
        for line in stderr.decode("utf-8", "replace").splitlines():
            if line.strip():
                log.warning("%s: %s", label, logs.redact(line))

    def _run(self, run: RunContext) -> tuple[bytes, bytes, int]:
        left = run.check(f"starting {self.argv[0]}")
        limit = self.profile.values.get("timeout")
        timeout = left if limit is None else min(left, float(limit))
        try:
            child = Child(self.argv, children=run.children)  # the watchdog stops its group
        except FileNotFoundError:
            raise CommandNotFound(
                f"command not found: {self.argv[0]}",
                profile=self.profile.name,
                fix="install it or give its absolute path",
            ) from None
        except OSError as e:
            raise SourceUnavailable(
                f"cannot run {self.argv[0]} ({e.strerror})", profile=self.profile.name
            ) from None
        with child:
            code = child.wait(timeout)
            if code is None:
                within = (
                    f"its timeout ({timeout:g} s)"
                    if timeout < left
                    else f"the {run.name} time limit ({run.timeout:g} s)"
                )
                raise DeadlineExceeded(
                    f"command {self.argv[0]} did not finish within {within}",
                    profile=self.profile.name,
                )
        return child.stdout, child.stderr, code

    def _parse(self, stdout: bytes) -> tuple[str, float | None, float | None]:
        """(token, lifetime in seconds or None, expiry time or None) from the command's output."""
        text = stdout.decode("utf-8", "replace").strip()
        if self.profile.values["parse"] == "raw":
            return text, None, None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise HelperError(
                f'command {self.argv[0]} did not print JSON (parse = "json")',
                profile=self.profile.name,
            ) from None
        value = _dig(data, self.profile.values["token_path"])
        if not isinstance(value, str):
            raise HelperError(
                f"command {self.argv[0]} printed JSON without a string at "
                f"{self.profile.values['token_path']!r} (token_path)",
                profile=self.profile.name,
            )
        expires_path = self.profile.values.get("expires_path")
        if expires_path is not None:
            return value, None, self._expiry(_dig(data, expires_path), expires_path)
        path = self.profile.values["expires_in_path"]
        if path is None:
            return value, None, None
        expires_in = _dig(data, path)
        if isinstance(expires_in, str):  # "3600", as some tools print it
            with contextlib.suppress(ValueError):
                expires_in = int(expires_in.strip())
        if not is_time(expires_in):  # a number, not a bool, finite and of sane size
            raise HelperError(
                f"command {self.argv[0]} printed JSON without a number of seconds at "
                f"{path!r} (expires_in_path)",
                profile=self.profile.name,
            )
        return value, float(expires_in), None

    def _expiry(self, raw: Any, path: str) -> float:
        when = parse_time(raw)
        if when is None:
            raise HelperError(
                f"command {self.argv[0]} printed JSON without a time at {path!r} (expires_path: "
                "epoch seconds or an ISO 8601 date-time)",
                profile=self.profile.name,
            )
        return when


def parse_time(raw: Any) -> float | None:
    """Epoch seconds (or milliseconds) as a number or digits, or an ISO 8601 date-time.

    A date-time without a zone is local time: what ``az account get-access-token`` prints in
    ``expiresOn`` (its ``expires_on`` is epoch seconds).
    """
    from datetime import datetime

    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = float(raw)
        return seconds / 1000.0 if seconds > 1e11 else seconds
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp()  # naive: local time, as datetime.timestamp() assumes


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data
