"""The source contract's adapters: how to set each source kind up as working, misconfigured,
unreachable, and gone after a success (issue 13; tests/blackbox/sources/test_source_contract.py
runs the contract, as keyring's ``BackendBasicTests`` does for every backend).

One ``Adapter`` subclass per kind, registered in ``ADAPTERS`` under the kind's name: a new kind
gets the whole contract by adding one. Each uses the real peer where one runs here:

- ``keychain``: the real Secret Service (gnome-keyring on a private D-Bus, support/peers.py);
- ``oidc`` / ``entra``: the real OpenID provider (node-oidc-provider; the Entra-style issuer
  with ``authority_host`` for ``entra``), client credentials;
- ``vault``, ``azure-key-vault``: contract tests against a fake (support/fake_vault.py,
  support/fake_keyvault.py, the latter trusting the Entra-style provider's tokens);
- ``aws-secrets-manager``: moto (support/moto_peer.py);
- ``onepassword``: support/fake_op as ``op`` on PATH; ``command``: a script of the test's own;
- ``token-file`` and ``token-file-bare``: the example plugin kind (tests/support/plugin_kind),
  registered by entry point (scripts/test.sh installs it).

The network peers sit behind the test's own FaultProxy in ``forward`` mode; ``refuse`` is the
source gone (same address, so the same cache key). An unreachable source is an address where
nothing listens: a port bound and never listened on, held for the test.

Peers start once per module (support/contract_peers.py); everything a test starts itself its
``Adapter`` stops (``close``), and the cached secrets it left in the kernel keyring are
dropped.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from contract_peers import (
    AWS_SECRET_ID,
    KEYVAULT_SECRET,
    PROFILE,
    SECRET,
    VAULT_TOKEN,
    Env,
    Peers,
    config_toml,
)
from fault_proxy import FaultProxy
from gatekey import sources
from gatekey.kinds import SourceSpec
from oidc_peer import API_AUDIENCE, CONF_CLIENT
from peers import SecretService
from vault_cases import age_cached_secret, drop_kernel_keys

SUPPORT = Path(__file__).resolve().parent
CONF_SECRET_ENV = "CONF_SECRET"  # a secret-named variable: the hygiene checker registers it
OP_REFERENCE = "op://Engineering/LiteLLM/credential"
# Identity providers' tokens live 3600 s (AT_TTL); below the default min_ttl (65 min) every
# fetch would warn that the token is short-lived, so their profiles ask for less.
IDP_MIN_TTL = "10m"
CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")


class Mistake(NamedTuple):
    """A bad config: keys over the working profile's (None removes one), the key the error
    must name, and words its message holds."""

    overrides: dict[str, Any]
    key: str
    words: tuple[str, ...] = ()


class Failure(NamedTuple):
    """How a run fails: its exit code, and words its one stderr line holds (any of them)."""

    code: int
    words: tuple[str, ...]


# --- the adapters -----------------------------------------------------------------------------
class Adapter:
    """One source kind, set up in one test's ``gk``. Subclasses fill in the kind's specifics."""

    kind: ClassVar[str]
    # What the working source holds: printed byte-exact. None: the source issues it (a JWT).
    credential: ClassVar[str | None] = SECRET
    # How a run fails with nothing cached when the source is unreachable (``unreachable``).
    unreachable_failure: ClassVar[Failure] = Failure(75, ("cannot reach",))
    storage_words: ClassVar[tuple[str, ...]] = ("vault cache",)  # in status's storage column
    probe_words: ClassVar[tuple[str, ...]] = ()  # in doctor's OK source line
    probe_reaches_source: ClassVar[bool] = True  # whether the probe FAILs an unreachable one

    def __init__(self, gk: Env, peers: Peers, tmp: Path) -> None:
        self.gk, self.peers, self.tmp = gk, peers, tmp
        self.cleanup = ExitStack()
        self.caches: list[Path] = [gk.cache_dir]

    @property
    def spec(self) -> SourceSpec:
        spec = sources.find(self.kind)
        assert spec is not None, f"source kind {self.kind} is not installed"
        return spec

    # What each kind says --------------------------------------------------------------------
    def start(self) -> None:
        """Make the source work (peers, files, environment) and write the working config."""

    def profile(self) -> dict[str, Any]:
        """The working profile's keys (``source`` comes first, added here)."""
        raise NotImplementedError

    def other_profiles(self) -> dict[str, dict[str, Any]]:
        """Profiles the working one links to (Key Vault's credential_from)."""
        return {}

    def unreachable(self) -> dict[str, Any]:
        """Profile keys (over the working ones) that point where nothing answers."""
        raise NotImplementedError

    def go_away(self) -> None:
        """The working source, after a success: gone (same profile, nothing answers)."""
        raise NotImplementedError

    def own_mistake(self) -> Mistake | None:
        """A well-typed value the kind itself refuses (it cannot work)."""
        return None

    def check_credential(self, value: str) -> None:
        assert value == self.credential, "the run printed something else than the credential"

    def secrets(self) -> list[str]:
        """Every secret this kind's set-up holds, registered with the hygiene checker."""
        return [SECRET]

    # Shared machinery -----------------------------------------------------------------------
    def write(self, **overrides: Any) -> None:
        keys = {"source": self.kind, **self.profile(), **overrides}
        keys = {k: v for k, v in keys.items() if v is not None}
        self.gk.write_config(config_toml({PROFILE: keys, **self.other_profiles()}))

    def fresh_cache(self, name: str) -> dict[str, str]:
        """Environment for a run with a cache directory of its own (a new machine's)."""
        path = self.gk.root / f"cache-{name}"
        path.mkdir(exist_ok=True)
        self.caches.append(path)
        return {"GATEKEY_CACHE_DIR": str(path)}

    def refused_port(self) -> int:
        """A port bound and never listened on, held until the test ends: connection refused."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.cleanup.callback(sock.close)
        port: int = sock.getsockname()[1]
        return port

    def front(self, upstream: str, **options: Any) -> FaultProxy:
        """The test's own proxy in front of a shared peer: ``refuse`` is the source gone."""
        proxy = FaultProxy(self.tmp / "proxy", upstream, **options)
        self.cleanup.callback(proxy.stop)
        return proxy

    def make_due(self) -> None:
        """The cached copy: still valid, due for a refresh (past cache_ttl, a minute old)."""
        age_cached_secret(self.gk, 16 * 60, PROFILE)

    def close(self) -> None:
        self.cleanup.close()
        for cache in self.caches:
            drop_kernel_keys(cache)


class Keychain(Adapter):
    kind = "keychain"
    unreachable_failure = Failure(69, ("Secret Service",))
    storage_words = ("keychain (", "read on each run")
    probe_words = ("answers (an OS keychain)",)

    def start(self) -> None:
        missing = SecretService.missing_tools()
        assert not missing, f"{missing} not installed; run scripts/test.sh (it installs them)"
        self.service = SecretService(self.gk.vars)
        self.cleanup.callback(self.service.stop)
        self.gk.vars["DBUS_SESSION_BUS_ADDRESS"] = self.service.start()
        self.write()
        stored = self.gk.run("store", "-p", PROFILE, stdin=SECRET.encode())
        assert stored.code == 0, stored.err

    def profile(self) -> dict[str, Any]:
        return {}

    def unreachable(self) -> dict[str, Any]:
        self.gk.vars["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={self.tmp / 'no-bus'}"
        return {}

    def go_away(self) -> None:
        self.service.stop()

    def own_mistake(self) -> Mistake:
        return Mistake({"backend": "keyring.backends.fail.Keyring"}, "backend")  # not secure


class Command(Adapter):
    kind = "command"
    unreachable_failure = Failure(69, ("not found",))
    probe_words = ("found at",)

    def start(self) -> None:
        # The script prints the secret it reads from a file: never the secret in an argv.
        self.secret_file = self.tmp / "command-secret"
        self.secret_file.write_text(SECRET)
        self.script = self.tmp / "token-tool"
        self.script.write_text(
            f"#!{sys.executable}\nimport sys\nsys.stdout.write(open(sys.argv[1]).read())\n"
        )
        self.script.chmod(0o700)
        self.write()

    def profile(self) -> dict[str, Any]:
        return {"command": [str(self.script), str(self.secret_file)]}

    def unreachable(self) -> dict[str, Any]:
        return {"command": [str(self.tmp / "not-installed" / "token-tool")]}

    def go_away(self) -> None:
        self.script.unlink()

    def own_mistake(self) -> Mistake:
        return Mistake({"parse": "yaml"}, "parse")


class Idp(Adapter):
    """oidc and entra: client credentials at the real provider, behind a proxy."""

    credential = None
    storage_words = ("file cache",)
    probe_words = ("discovery",)

    def start(self) -> None:
        self.provider = self.peers.provider(self.kind)
        self.proxy = self.front(self.provider.origin, upstream_ca=self.provider.ca)
        self.gk.vars[CONF_SECRET_ENV] = CONF_CLIENT[1]
        self.write()

    def where(self, origin: str) -> dict[str, Any]:
        raise NotImplementedError

    def profile(self) -> dict[str, Any]:
        return {
            **self.where(self.proxy.origin),
            "client_id": CONF_CLIENT[0],
            "client_secret": {"env": CONF_SECRET_ENV},
            "flow": "client-credentials",
            "ca_bundle": self.proxy.ca,
            "min_ttl": IDP_MIN_TTL,
        }

    def unreachable(self) -> dict[str, Any]:
        return self.where(f"https://127.0.0.1:{self.refused_port()}")

    def go_away(self) -> None:
        self.proxy.mode = "refuse"

    def make_due(self) -> None:
        now = time.time()
        self.gk.edit_entry(expires_at=now + 300, obtained_at=now - 3300)  # below min_ttl

    def check_credential(self, value: str) -> None:
        parts = value.split(".")
        assert len(parts) == 3, "not a JWS"
        claims = json.loads(_b64url(parts[1]))
        assert claims["iss"] == self.provider.issuer, claims
        assert claims["aud"] == API_AUDIENCE, claims
        assert claims["client_id"] == CONF_CLIENT[0], claims

    def secrets(self) -> list[str]:
        return [CONF_CLIENT[1]]


class Oidc(Idp):
    kind = "oidc"

    def where(self, origin: str) -> dict[str, Any]:
        return {"issuer": f"{origin}{self.provider.issuer_path}", "scopes": ["api.read"]}

    def own_mistake(self) -> Mistake:
        return Mistake({"issuer": "https://127.0.0.1"}, "issuer")  # MSAL needs a path


class Entra(Idp):
    kind = "entra"

    def where(self, origin: str) -> dict[str, Any]:
        return {
            "tenant": self.provider.tenant,
            "authority_host": origin,
            "scopes": [f"{API_AUDIENCE}/.default"],
        }


class Vault(Adapter):
    kind = "vault"
    probe_words = ("unsealed",)

    def start(self) -> None:
        vault = self.peers.vault()
        self.proxy = self.front(vault.address, upstream_ca=vault.ca)
        self.gk.vars["VAULT_TOKEN"] = VAULT_TOKEN
        self.write()

    def profile(self) -> dict[str, Any]:
        return {"address": self.proxy.origin, "ca_bundle": self.proxy.ca, "path": "app"}

    def unreachable(self) -> dict[str, Any]:
        return {"address": f"https://127.0.0.1:{self.refused_port()}"}

    def go_away(self) -> None:
        self.proxy.mode = "refuse"

    def own_mistake(self) -> Mistake:
        auth = {"method": "jwt", "role": "llm", "jwt_from": "nobody"}  # no such profile
        return Mistake({"auth": auth}, "auth.jwt_from")

    def secrets(self) -> list[str]:
        return [SECRET, VAULT_TOKEN]


class AwsSecretsManager(Adapter):
    kind = "aws-secrets-manager"
    probe_words = ("AWS SDK is installed",)
    probe_reaches_source = False  # it checks the SDK; doctor's token check reads the secret

    def start(self) -> None:
        moto = self.peers.moto()
        # moto checks SigV4 against the Host the client signed: relayed unchanged.
        self.proxy = self.front(moto.endpoint, rewrite=False, preserve_host=True)
        self.gk.vars.update(moto.env())
        self.gk.vars["AWS_CA_BUNDLE"] = self.proxy.ca
        self.gk.vars["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = self.proxy.origin
        self.write()

    def profile(self) -> dict[str, Any]:
        return {"secret_id": AWS_SECRET_ID}

    def unreachable(self) -> dict[str, Any]:
        origin = f"https://127.0.0.1:{self.refused_port()}"
        self.gk.vars["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = origin
        return {}

    def go_away(self) -> None:
        self.proxy.mode = "refuse"

    def secrets(self) -> list[str]:
        return [SECRET, self.gk.vars["AWS_SECRET_ACCESS_KEY"]]


class AzureKeyVault(Adapter):
    kind = "azure-key-vault"
    probe_words = ("Key Vault",)

    def start(self) -> None:
        self.provider = self.peers.provider("entra")
        kv = self.peers.keyvault()
        self.proxy = self.front(kv.url, upstream_ca=kv.ca)
        self.gk.vars[CONF_SECRET_ENV] = CONF_CLIENT[1]
        self.write()

    def profile(self) -> dict[str, Any]:
        return {
            "vault_url": self.proxy.origin,
            "secret_name": KEYVAULT_SECRET,
            "credential_from": "corp",
            "ca_bundle": self.proxy.ca,
        }

    def other_profiles(self) -> dict[str, dict[str, Any]]:
        """The entra profile that gives Key Vault tokens (straight to the provider)."""
        provider = self.provider
        return {
            "corp": {
                "source": "entra",
                "tenant": provider.tenant,
                "authority_host": provider.origin,
                "client_id": CONF_CLIENT[0],
                "client_secret": {"env": CONF_SECRET_ENV},
                "flow": "client-credentials",
                "scopes": ["api.read"],
                "ca_bundle": provider.ca,
                "token_cache": "file",
                "min_ttl": IDP_MIN_TTL,
            }
        }

    def unreachable(self) -> dict[str, Any]:
        return {"vault_url": f"https://127.0.0.1:{self.refused_port()}"}

    def go_away(self) -> None:
        self.proxy.mode = "refuse"

    def own_mistake(self) -> Mistake:
        return Mistake({"credential_from": "nobody"}, "credential_from")  # no such profile

    def secrets(self) -> list[str]:
        return [SECRET, CONF_CLIENT[1]]


class OnePassword(Adapter):
    kind = "onepassword"
    unreachable_failure = Failure(69, ("not installed",))
    probe_words = ("found at",)

    def start(self) -> None:
        self.bin = self.tmp / "bin"
        self.bin.mkdir()
        (self.bin / "op").symlink_to(SUPPORT / "fake_op")
        data = self.tmp / "op-data.json"
        data.write_text(json.dumps({OP_REFERENCE.removeprefix("op://"): SECRET}))
        self.gk.vars.update(
            PATH=f"{self.bin}{os.pathsep}{self.gk.vars['PATH']}",
            FAKE_OP_PYTHON=sys.executable,
            FAKE_OP_DATA=str(data),
        )
        self.write()

    def profile(self) -> dict[str, Any]:
        return {"reference": OP_REFERENCE}

    def unreachable(self) -> dict[str, Any]:
        return {"op_path": str(self.tmp / "not-installed" / "op")}

    def go_away(self) -> None:
        (self.bin / "op").unlink()  # uninstalled

    def own_mistake(self) -> Mistake:
        return Mistake({"reference": "Engineering/LiteLLM/x"}, "reference")  # not op://


class TokenFile(Adapter):
    """The example plugin kind (tests/support/plugin_kind), registered by entry point."""

    kind = "token-file"
    unreachable_failure = Failure(75, ("no token file",))
    storage_words = ("file cache",)
    probe_words = ("user-only",)

    def start(self) -> None:
        self.file = self.tmp / "token"
        self.file.write_text(SECRET + "\n")
        self.file.chmod(0o600)
        self.write()

    def profile(self) -> dict[str, Any]:
        return {"path": str(self.file)}

    def unreachable(self) -> dict[str, Any]:
        return {"path": str(self.tmp / "no-such-token")}

    def go_away(self) -> None:
        self.file.unlink()

    def make_due(self) -> None:
        now = time.time()
        self.gk.edit_entry(obtained_at=now - 600, refresh_at=now - 300)  # cache_ttl 5 min

    def own_mistake(self) -> Mistake:
        return Mistake({"path": "token"}, "path")  # relative: the app's cwd is unspecified


class TokenFileBare(TokenFile):
    """The same plugin kind with nothing but ``fetch``: doctor's source line is SKIP."""

    kind = "token-file-bare"


ADAPTERS: dict[str, type[Adapter]] = {
    adapter.kind: adapter
    for adapter in (
        Keychain,
        Command,
        Entra,
        Oidc,
        Vault,
        AwsSecretsManager,
        AzureKeyVault,
        OnePassword,
        TokenFile,
        TokenFileBare,
    )
}


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
