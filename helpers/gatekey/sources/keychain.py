"""The keychain source: a long-lived gateway key kept in the OS keychain (``gatekey store``)."""

from __future__ import annotations

import time

from gatekey.checks import OK, WARN, Check
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import ConfigError, CredentialNotFound
from gatekey.keystore import (
    ChunkedStore,
    RawStore,
    call_with_deadline,
    default_backend,
    is_secure,
    open_store,
)
from gatekey.kinds import Linker, ProbeKit
from gatekey.token import Token

PROBE = ("gatekey-doctor", "probe")  # an entry doctor looks up (never written) to test access


class KeychainSource:
    """Reads, stores and erases one keychain entry. Never caches, prints or exits."""

    def __init__(
        self, profile: Profile, links: Linker | None = None, raw: RawStore | None = None
    ) -> None:
        del links  # a keychain entry names no other profile
        self.profile = profile
        self.service: str = profile.values["service"]
        self.account: str = profile.values["account"]
        self.backend_path: str = profile.values["backend"] or default_backend()
        if not profile.values["allow_insecure_backend"] and not is_secure(self.backend_path):
            raise ConfigError(
                f"backend {self.backend_path} is not an OS keychain (it may keep secrets in a "
                "plaintext file); use the platform keychain, or set allow_insecure_backend = true "
                "to accept it",
                file=profile.origins.get("backend"),
                profile=profile.name,
                key="backend",
            )
        self._raw = raw

    def _store(self, run: RunContext) -> ChunkedStore:
        raw = self._raw or open_store(self.backend_path, interactive=run.interactive)
        return ChunkedStore(raw)

    @property
    def where(self) -> str:
        return f"service {self.service}, account {self.account}"

    @classmethod
    def storage_line(cls, profile: Profile) -> str:
        backend = profile.values.get("backend") or default_backend()
        short = backend.removeprefix("keyring.backends.").removesuffix(".Keyring")
        return f"keychain ({short}), read on each run"

    def probe(self, kit: ProbeKit) -> Check:
        """Looks up an entry that is never written: the backend answers, and is it secure?"""
        store = open_store(self.backend_path, interactive=False)
        call_with_deadline(lambda: store.get(*PROBE), kit.run_context(), "asking the keychain")
        backend = self.backend_path
        data = {"backend": backend, "secure": is_secure(backend)}
        if not is_secure(backend):
            return Check(
                "source",
                WARN,
                f"keychain backend {backend} answers, but it is not an OS keychain (it may keep "
                "secrets in a plaintext file)",
                ["remove backend and allow_insecure_backend to use the platform keychain"],
                data,
            )
        return Check("source", OK, f"keychain backend {backend} answers (an OS keychain)", [], data)

    def fetch(self, run: RunContext) -> Token:
        store = self._store(run)
        value = call_with_deadline(
            lambda: store.get(self.service, self.account), run, "reading the keychain"
        )
        if value is None:
            raise CredentialNotFound(
                f"no credential stored in the keychain ({self.where})",
                profile=self.profile.name,
                fix=f"run: gatekey store -p {self.profile.name}",
            )
        return Token(value, expires_at=None, obtained_at=time.time(), source="keychain")

    def holds(self, run: RunContext) -> bool:
        """Whether the entry exists (status): the Secret Service finds it without reading the
        secret; keyring's other backends can only tell by reading it."""
        raw = self._raw or open_store(self.backend_path, interactive=run.interactive)
        exists = getattr(raw, "exists", None)
        if exists is None:
            store = ChunkedStore(raw)
            return call_with_deadline(
                lambda: store.get(self.service, self.account) is not None,
                run,
                "reading the keychain",
            )
        return bool(
            call_with_deadline(
                lambda: exists(self.service, self.account), run, "asking the keychain"
            )
        )

    # Writers take the entry's lock first (readers never do): they take turns, and each one
    # sweeps the chunks earlier writers left (see gatekey.chunks).
    def store(self, value: str, run: RunContext) -> None:
        store = self._store(run)
        store.lock(self.service, self.account, run)
        call_with_deadline(
            lambda: store.set(self.service, self.account, value), run, "writing to the keychain"
        )

    def erase(self, run: RunContext) -> bool:
        store = self._store(run)
        store.lock(self.service, self.account, run)
        return call_with_deadline(
            lambda: store.delete(self.service, self.account), run, "erasing from the keychain"
        )
