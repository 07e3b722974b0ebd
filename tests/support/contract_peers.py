"""What the source contract's adapters (support/contract.py) share: the peers a module starts
once, the secrets they hold, and the config files the adapters write.

``Peers`` starts each peer on first use and stops them all in ``close`` (a module-scoped
fixture of tests/blackbox/sources/test_source_contract.py): the fake Vault, moto and the fake
Key Vault, each holding ``SECRET``. The OpenID providers are the session's
(tests/conftest.py), reached through ``Peers.fixture``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

from fake_keyvault import fake_keyvault
from fake_vault import fake_vault
from moto_peer import moto_server
from oidc_peer import OidcProvider

PROFILE = "contract"  # the working profile's name in every config
# Random per run: found anywhere it must not be, it is a leak (the hygiene checker looks).
SECRET = "sk-" + secrets.token_urlsafe(24)
VAULT_TOKEN = "hvs." + secrets.token_urlsafe(24)
AWS_SECRET_ID = "prod/gateway"
KEYVAULT_SECRET = "db-pass"


class Result(Protocol):
    """What a run of the ``gk`` fixture returns (tests/conftest.py)."""

    code: int
    stdout: bytes
    stderr: bytes
    elapsed: float

    @property
    def err(self) -> str: ...


class Env(Protocol):
    """The ``gk`` fixture (tests/conftest.py): a private HOME, config and cache."""

    root: Path
    vars: dict[str, str]

    @property
    def cache_dir(self) -> Path: ...

    @property
    def config_path(self) -> Path: ...

    def write_config(self, text: str, *, run_log: bool = True) -> Path: ...

    def run(self, *args: str, context: str | None = None, **extra: Any) -> Any: ...

    def edit_entry(self, **fields: float) -> None: ...


# --- TOML ---------------------------------------------------------------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII used here
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def config_toml(profiles: dict[str, dict[str, Any]], default: str = PROFILE) -> str:
    """A config of ``profiles`` ({name: {key: value}}), ``default`` the no-argument profile."""
    text = f"default_profile = {toml_value(default)}\n"
    for name, keys in profiles.items():
        text += f"\n[profiles.{name}]\n"
        text += "".join(f"{key} = {toml_value(value)}\n" for key, value in keys.items())
    return text


# --- shared peers ---------------------------------------------------------------------------
class Peers:
    """The module's peers, each started on first use and stopped by ``close``. ``fixture``
    gets a conftest fixture by name (the session's OpenID providers): the requesting test's
    ``request.getfixturevalue``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fixture: Callable[[str], Any] = _no_fixture
        self._stack = ExitStack()
        self._made: dict[str, Any] = {}

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._made:
            self._made[name] = make()
        return self._made[name]

    def provider(self, kind: str) -> OidcProvider:
        """The session's provider: ``/oidc`` issuer for oidc, Entra-style for entra."""
        name = "entra_provider" if kind == "entra" else "oidc_provider"
        provider: OidcProvider = self._once(name, lambda: self.fixture(name))
        return provider

    def vault(self) -> Any:
        def make() -> Any:
            vault = self._stack.enter_context(fake_vault(self.root / "vault"))
            vault.add_token(VAULT_TOKEN, policies=["root"], ttl=0)
            vault.put_secret("app", {"api_key": SECRET})
            return vault

        return self._once("vault", make)

    def moto(self) -> Any:
        def make() -> Any:
            server = self._stack.enter_context(moto_server(self.root / "moto"))
            server.create_secret(AWS_SECRET_ID, SECRET)
            return server

        return self._once("moto", make)

    def keyvault(self) -> Any:
        def make() -> Any:
            kv = self._stack.enter_context(fake_keyvault(self.root, self.provider("entra")))
            kv.set_secret(KEYVAULT_SECRET, SECRET)
            return kv

        return self._once("keyvault", make)

    def close(self) -> None:
        self._stack.close()


def _no_fixture(name: str) -> Any:
    raise RuntimeError(f"Peers.fixture is not set: cannot get {name}")
