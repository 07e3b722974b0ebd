"""A gatekey source kind in one module: ``source = "token-file"`` reads the credential from a file.

For a token another program keeps up to date (a sidecar, a CI job, a workload identity
agent). What a kind is made of:

1. a ``SourceSpec`` (below): the kind's name, family, config keys and caching. gatekey loads
   it (importing this module: keep an SDK's import inside the functions that need it) only
   when a profile names a kind that is not built in, and validates the profile's keys against
   it (an unknown, misspelt or mistyped key exits 78 naming the file, the profile and the key);
2. a source class named by ``SourceSpec.factory``, built as ``factory(profile, links)`` with
   the profile's validated values. ``fetch`` is all a kind must implement: it returns a
   ``Token`` or raises one of gatekey's errors, whose class is the exit code. It never caches,
   prints or exits: gatekey caches, falls back to the cached copy, enforces the deadline and
   prints;
3. optional capabilities, the protocols of ``gatekey.kinds``: this kind is ``Probing`` (doctor's
   "source" line comes from ``probe``). ``Storing``, ``SigningIn`` and ``CheckingTokens`` are
   implemented the same way, by defining their methods.

The entry point in pyproject.toml (group ``gatekey.sources``) registers ``SPEC``; ``BARE_SPEC``
is the same kind with nothing but ``fetch`` (doctor says SKIP for its source line).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from gatekey.checks import FAIL, OK, WARN, Check
from gatekey.errors import ConfigError, TemporaryFailure
from gatekey.kinds import Linker, ProbeKit, Profile, SourceSpec
from gatekey.schema import KeySpec
from gatekey.token import Token

if TYPE_CHECKING:
    from gatekey.context import RunContext

KIND = "token-file"
MAX_BYTES = 16 * 1024  # gatekey prints no credential longer than 16 KiB anyway

SPEC = SourceSpec(
    kind=KIND,
    family="vault",  # served by gatekey-vault as well as gatekey
    keys={
        "path": KeySpec("str", None, required=True, doc="the token file (an absolute path)"),
        "cache_ttl": KeySpec("duration", 300.0, doc="read the file again after this long"),
    },
    factory="gatekey_token_file:TokenFileSource",
    # The token is in a plain file already: gatekey's user-only cache file is no weaker, and
    # serves the cache hit (and a fallback while the file is being replaced).
    file_cache=True,
    summary="a token kept in a file by another program (example plugin)",
)


class TokenFileSource:
    """Reads the token file named by ``path``; never writes it."""

    def __init__(self, profile: Profile, links: Linker) -> None:
        del links  # names no other profile (a kind that does lists its keys in SourceSpec.links)
        self.profile = profile
        self.path = os.path.expanduser(profile.values["path"])
        if not os.path.isabs(self.path):  # the app's working directory is unspecified
            raise ConfigError(
                "must be an absolute path (or start with ~)",
                file=profile.origins.get("path"),
                profile=profile.name,
                key="path",
            )

    def fetch(self, run: RunContext) -> Token:
        run.check(f"reading {self.path}")  # a kind that waits asks the deadline how long it may
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            # Worth retrying (the writer may be replacing it): exit 75, and a cached copy is
            # printed meanwhile. CredentialNotFound (exit 3) would mean "withdrawn: never print
            # a cached copy".
            raise TemporaryFailure(f"no token file at {self.path}") from None
        except OSError as e:  # messages carry names and reasons, never a value
            raise TemporaryFailure(f"cannot read {self.path} ({e.strerror})") from None
        value = data.decode("utf-8", "replace").rstrip("\r\n")
        if not value:  # being written by a writer that truncates first: read it again later
            raise TemporaryFailure(f"{self.path} is empty")
        # gatekey checks that the value is a printable credential before it prints or caches it.
        return Token.from_expires_in(
            value, None, source=KIND, cache_ttl=self.profile.values["cache_ttl"]
        )

    # kinds.Probing: doctor's "source" line. Looks, never reads the token.
    def probe(self, kit: ProbeKit) -> Check:
        del kit  # no network: nothing to borrow from doctor
        fix = f"write the token to {self.path}, or correct path in the profile"
        try:
            st = os.stat(self.path)
        except OSError as e:
            return Check("source", FAIL, f"token file {self.path}: {e.strerror}", [fix])
        if not stat.S_ISREG(st.st_mode):
            return Check("source", FAIL, f"token file {self.path} is not a regular file", [fix])
        if st.st_mode & 0o077:
            return Check(
                "source",
                WARN,
                f"token file {self.path} is open to other users (mode {st.st_mode & 0o777:04o})",
                [f"chmod 600 {self.path}"],
            )
        return Check("source", OK, f"token file {self.path} is there, user-only", [])


class BareTokenFileSource:
    """The least a kind implements: ``fetch``. Declares no capability."""

    def __init__(self, profile: Profile, links: Linker) -> None:
        self._file = TokenFileSource(profile, links)

    def fetch(self, run: RunContext) -> Token:
        return self._file.fetch(run)


BARE_SPEC = SPEC._replace(kind="token-file-bare", factory="gatekey_token_file:BareTokenFileSource")
