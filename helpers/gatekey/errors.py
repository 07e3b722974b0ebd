"""Every error class gatekey defines, each with its exit code. Standard library only.

What a person can act on is a HelperError: one stderr line and its exit code (the README's table).

    HelperError (1)                one line: the profile, what happened, ``fix`` (the next step)
    ├── ConfigError (78)           names the file, the profile and the key
    │   └── UsageProblem (78)      a command-line value that cannot work, named by its option
    ├── SourceUnavailable (69)     what to install, or which OS it needs
    │   └── CommandNotFound (69)   the program a command source runs is not installed
    ├── CredentialNotFound (3)     what was looked up, where
    ├── AccessDenied (1)           the source refused this identity: withdrawn on purpose
    ├── InteractionRequired (4)    no person present; names the command to run
    ├── TemporaryFailure (75)      unreachable, timed out or 5xx: worth retrying later
    │   └── DeadlineExceeded (75)  the run's time budget for its context ran out
    │       └── LockTimeout (75)   ... waiting for another gatekey process's refresh
    ├── StdoutUnavailable (74)     the payload could not be written (stdout closed, broken, full)
    ├── ExpiredOnArrival (1)       the source's new token is already (or all but) expired
    ├── ClockTrouble (1)           a new token expired or not yet valid by this machine's clock
    ├── BadToken (1)               the source's value cannot be sent in an HTTP header
    ├── BadHeader (1)              a header filled from a claim is not valid HTTP field text
    ├── MissingClaim (78)          a header template names a claim the token does not have
    ├── CheckFailed (1)            gatekey check: a context failed (its table says why)
    └── ChecksFailed (1)           gatekey inspect: a gateway would refuse the credential

Internal errors are never shown as they are: their callers catch them and report a miss, a
HelperError naming the file, or a warning.

    OSError (built-in)
    ├── NotRegular                 a path that is a FIFO, device, socket or directory
    ├── TooLarge                   a file larger than its reader allows
    └── CacheUnusable              the cache directory cannot be used: run without the cache
    ValueError (built-in)
    ├── Unresolvable               a file location that cannot be worked out (no home, relative)
    └── SetError                   an mdm --set the app could not use (a usage error)

Messages are written for the person reading the app's log at 9 a.m. They never contain a secret:
callers pass names, paths and counts, never values.
"""

from __future__ import annotations


class HelperError(Exception):
    """A failure gatekey reports as one stderr line and an exit code.

    ``message`` says what happened; ``fix``, when there is one, the next step, printed after it
    ("...; run: gatekey login -p work"). Doctor shows the two apart.
    """

    exit_code = 1
    fix: str | None = None  # also for errors rebuilt from their attributes (worker.py)

    def __init__(self, message: str, *, profile: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.profile = profile
        self.fix = fix

    def describe(self, *, where: bool = True, fix: bool = True) -> str:
        """The line: what the error is about (its profile; a ConfigError's file and key), what
        happened, and the next step; ``where`` or ``fix`` False leaves that part out."""
        text = self.message if self.fix is None or not fix else f"{self.message}; {self.fix}"
        prefix = self._where() if where else ""
        return f"{prefix}: {text}" if prefix else text

    def _where(self) -> str:
        return "" if self.profile is None else f'profile "{self.profile}"'

    def __str__(self) -> str:
        return self.describe()


class ConfigError(HelperError):
    exit_code = 78

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        profile: str | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, profile=profile, fix=fix)
        self.file = file
        self.key = key

    def _where(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.profile is not None:
            where.append(f'profile "{self.profile}"')
        if self.key:
            where.append(f'key "{self.key}"')
        return ": ".join(where)


class UsageProblem(ConfigError):
    """A command-line value that cannot work (exit 78), named by its option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")


class SourceUnavailable(HelperError):
    exit_code = 69


class CommandNotFound(SourceUnavailable):
    """The program a command source runs is not there (a source built on one words its own)."""


class CredentialNotFound(HelperError):
    exit_code = 3


class AccessDenied(HelperError):
    """The source refused this identity (HTTP 403, AccessDenied): withdrawn on purpose."""

    exit_code = 1


class InteractionRequired(HelperError):
    exit_code = 4


class TemporaryFailure(HelperError):
    exit_code = 75
    retry_after: float | None = None  # what the source asked for (HTTP Retry-After), seconds


class DeadlineExceeded(TemporaryFailure):
    """The run's time budget for this CLAUDE_HELPER_CONTEXT ran out."""


class LockTimeout(DeadlineExceeded):
    """The budget ran out waiting for another gatekey process to finish refreshing."""


class StdoutUnavailable(HelperError):
    """stdout is closed, its reader went away, or its disk is full: nothing was delivered."""

    exit_code = 74


class ExpiredOnArrival(HelperError):
    """The source handed back a token that is already (or all but) expired."""


class ClockTrouble(HelperError):
    """A new token is expired or not yet valid by this machine's clock (exit 1: fix a clock)."""


class BadToken(HelperError):
    """The source returned something that cannot be printed as a credential."""


class BadHeader(HelperError):
    """A header value filled from a token claim is not valid HTTP field text."""


class MissingClaim(HelperError):
    """A header template names a claim the token does not have (or the token is opaque)."""

    exit_code = 78


class CheckFailed(HelperError):
    """``gatekey check``: at least one context failed (the table says which and why)."""


class ChecksFailed(HelperError):
    """``gatekey inspect``: the report was printed; at least one check says a gateway would
    refuse the credential."""


# --- internal: caught by their callers, never shown as they are -------------------------------
class NotRegular(OSError):
    """The path exists but is not a regular file (``what`` says what it is instead)."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path} is {what}, not a regular file")
        self.what = what


class TooLarge(OSError):
    """The file is larger than its reader allows."""


class CacheUnusable(OSError):
    """The cache directory cannot be used (not a directory, read-only, full, no permission,
    another user's). An OSError, so that what handles a failed write handles this too."""


class Unresolvable(ValueError):
    """A file location that cannot be worked out (no home directory, a relative path): never
    taken relative to the working directory, which the app leaves unspecified."""


class SetError(ValueError):
    """A ``mdm --set`` the app could not use; the message names the key (a usage error)."""
