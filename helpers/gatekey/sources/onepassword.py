"""The onepassword source: one field of a 1Password item, read with the 1Password CLI.

Runs ``op read --no-newline <reference>`` (no shell) through the command source's machinery:
stdin closed, stdout captured (never the app's), stderr relayed with the secret masked, the
process group stopped at the timeout or deadline. ``op`` signs in through the desktop app or
``OP_SERVICE_ACCOUNT_TOKEN``, both inherited from the environment.
"""

from __future__ import annotations

from gatekey import logs
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import (
    CommandNotFound,
    ConfigError,
    CredentialNotFound,
    HelperError,
    InteractionRequired,
)
from gatekey.kinds import Linker
from gatekey.sources.command import CommandSource
from gatekey.token import Token

INSTALL_URL = "https://developer.1password.com/docs/cli/get-started/"
# What `op` says on stderr, and what it means for us.
NOT_SIGNED_IN = ("not currently signed in", "signin", "session expired", "authorization")
NOT_FOUND = (
    "isn't an item",
    "isn't a vault",
    "could not find",
    "could not get item",
    "no item",
    "isn't a field",
    "does not have a field",
)


class OnePasswordSource(CommandSource):
    program_key = "op_path"

    def __init__(self, profile: Profile, links: Linker | None = None) -> None:
        del links  # an op:// reference names no other profile
        self.profile = profile
        self.reference: str = profile.values["reference"]
        if not self.reference.startswith("op://") or self.reference.count("/") < 4:
            raise ConfigError(
                "expected a secret reference like op://<vault>/<item>/<field>",
                file=profile.origins.get("reference"),
                profile=profile.name,
                key="reference",
            )
        self.argv = [profile.values["op_path"], "read", "--no-newline", self.reference]
        if profile.values["account"]:
            self.argv[2:2] = ["--account", profile.values["account"]]

    def fetch(self, run: RunContext) -> Token:
        try:
            stdout, stderr, code = self._run(run)
        except CommandNotFound as e:
            raise CommandNotFound(
                f"the 1Password CLI ({self.argv[0]}) is not installed or not on PATH",
                profile=self.profile.name,
                fix=f"install it ({INSTALL_URL}) or set op_path",
            ) from e
        if code != 0:
            self._relay(stderr)
            raise self._error(stderr.decode("utf-8", "replace"), code)
        value = stdout.decode("utf-8", "replace").strip()
        if not value:
            raise CredentialNotFound(
                f"{self.reference} is empty in 1Password", profile=self.profile.name
            )
        logs.register_secret(value)
        self._relay(stderr)
        return Token.from_expires_in(
            value, None, source="onepassword", cache_ttl=self.profile.values["cache_ttl"]
        )

    def _error(self, stderr: str, code: int) -> HelperError:
        text = stderr.lower()
        name = self.profile.name
        if any(marker in text for marker in NOT_FOUND):
            return CredentialNotFound(
                f"1Password has no {self.reference}; check the vault, item and field names "
                "(op item get <item> --vault <vault>)",
                profile=name,
            )
        if any(marker in text for marker in NOT_SIGNED_IN):
            return InteractionRequired(
                "the 1Password CLI is not signed in; unlock the 1Password app (with CLI "
                "integration on), or run: op signin",
                profile=name,
            )
        return HelperError(f"op read failed with status {code}", profile=name)
