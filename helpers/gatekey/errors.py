"""The error tree: each failure a person can act on, with its exit code. Standard library only.

    HelperError (1)            one line with a next step
    ├── ConfigError (78)       names the file, the profile and the key
    ├── SourceUnavailable (69) what to install, or which OS it needs
    ├── CredentialNotFound (3) what was looked up, where
    ├── InteractionRequired (4) no person present; names the command to run
    ├── TemporaryFailure (75)  unreachable, timed out or 5xx: worth retrying later
    └── StdoutUnavailable (74) the payload could not be written (stdout closed, broken, full)

Messages are written for the person reading the app's log at 9 a.m. They never contain a secret:
callers pass names, paths and counts, never values.
"""

from __future__ import annotations


class HelperError(Exception):
    """A failure gatekey reports as one stderr line and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, profile: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.profile = profile

    def __str__(self) -> str:
        if self.profile is not None:
            return f'profile "{self.profile}": {self.message}'
        return self.message


class ConfigError(HelperError):
    exit_code = 78

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        profile: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, profile=profile)
        self.file = file
        self.key = key

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.profile is not None:
            where.append(f'profile "{self.profile}"')
        if self.key:
            where.append(f'key "{self.key}"')
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class SourceUnavailable(HelperError):
    exit_code = 69


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
