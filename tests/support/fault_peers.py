"""The network source kinds, each in front of its peer behind a fault proxy (fault_proxy.py), for
the reliability tests (test_source_faults.py, test_slow_sources.py).

- ``oidc`` / ``entra``: the real OpenID provider (the session's ``oidc_provider`` /
  ``entra_provider``), client credentials;
- ``vault``: the fake Vault (fake_vault.py);
- ``aws``: moto (moto_peer.py; the test module's ``moto_module`` fixture), trusted through
  AWS_CA_BUNDLE;
- ``azure``: the fake Key Vault (fake_keyvault.py), its bearer token from an ``entra`` profile
  at the real provider (not behind the proxy).

``start_peer`` starts one, writes ``gk``'s config for it (``Peer.configure`` rewrites it for
another origin or deadlines), and leaves the stopping to the caller's ExitStack.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import Env
from deadlines import MID_SESSION_S, SILENT_S
from fake_keyvault import fake_keyvault
from fake_vault import fake_vault
from fault_proxy import FaultProxy
from gatekey import kernelkeys
from oidc_peer import API_AUDIENCE, CONF_CLIENT, OidcProvider
from vault_cases import kernel_names


@dataclass(frozen=True)
class Budget:
    """The deadlines of a config here: of background (``silent``) and mid-session-refresh."""

    silent: float
    mid: float

    def toml(self) -> str:
        """The config's first line (an inline table, so that it can go before any profile's
        table); none for the documented deadlines."""
        if self == DOCUMENTED:
            return ""
        return (
            f'timeouts = {{ silent = "{self.silent:g}s", mid_session_refresh = "{self.mid:g}s" }}\n'
        )


DOCUMENTED = Budget(SILENT_S, MID_SESSION_S)  # no [timeouts]: what users get

SECRET = "sk-" + secrets.token_urlsafe(24)  # random: found anywhere else, it is a leak
VAULT_TOKEN = "hvs." + secrets.token_urlsafe(24)
CONF_SECRET_ENV = "CONF_SECRET"


@dataclass
class Peer:
    """One source kind with a network peer behind ``proxy``; ``gk`` is configured for it."""

    kind: str
    gk: Env
    proxy: FaultProxy
    configure: Callable[[str, Budget], None]  # write the config (and env) for this origin
    make_due: Callable[[], None]  # the cached copy: still valid, due for a refresh
    error_body: Callable[[int], bytes]  # what this kind of source answers with a status
    secret: str | None = None  # what a vault-like source holds (IdPs: whatever prime printed)
    warm: Callable[[], None] = lambda: None  # obtain what the source itself needs (a token)

    def prime(self) -> str:
        return prime(self.gk, self.secret)


def prime(gk: Env, expected: str | None = None) -> str:
    """One successful run (with a person's budget); the token it printed."""
    r = gk.run(context="interactive")
    assert r.code == 0, r.err
    assert r.err == "", r.err
    token = r.out.rstrip("\n")
    assert token, r.stdout
    if expected is not None:
        assert token == expected
    return token


def _idp_make_due(gk: Env) -> Callable[[], None]:
    def make_due() -> None:
        now = time.time()
        gk.edit_entry(expires_at=now + 300, obtained_at=now - 3300)  # min_ttl is 10 min

    return make_due


def age_secret(gk: Env, seconds: float = 16 * 60) -> None:
    """The (only) cached secret of ``gk``'s cache directory, ``seconds`` older (default: past
    cache_ttl, 15 min, well within max_stale), as time passing would: its kernel keyring entry
    rewritten."""
    [name] = kernel_names(gk)
    raw = kernelkeys.read(name)
    assert raw is not None
    data = json.loads(raw)
    for key in ("obtained_at", "refresh_at"):
        if data.get(key) is not None:
            data[key] -= seconds
    assert kernelkeys.write(name, json.dumps(data).encode(), timeout=3600)


def _vault_make_due(gk: Env) -> Callable[[], None]:
    return lambda: age_secret(gk)


def _idp_error_body(status: int) -> bytes:
    # What IdPs send when rate-limited or failing; not every provider uses OAuth's error codes
    # there (Okta's 429 is {"errorCode": "E0000047", ...}).
    return json.dumps(
        {"errorCode": "E0000047", "errorSummary": f"HTTP {status} from the test proxy"}
    ).encode()


def _idp_peer(
    kind: str,
    gk: Env,
    tmp_path: Path,
    stack: ExitStack,
    provider: OidcProvider,
    budget: Budget,
) -> Peer:
    proxy = stack.enter_context(
        FaultProxy(tmp_path / "proxy", provider.origin, upstream_ca=provider.ca)
    )
    gk.vars[CONF_SECRET_ENV] = CONF_CLIENT[1]

    def configure(origin: str, budget: Budget = DOCUMENTED) -> None:
        if kind == "oidc":
            where = f'issuer = "{origin}{provider.issuer_path}"\nscopes = ["api.read"]\n'
        else:
            where = (
                f'tenant = "{provider.tenant}"\nauthority_host = "{origin}"\n'
                f'scopes = ["{API_AUDIENCE}/.default"]\n'
            )
        gk.write_config(
            budget.toml() + f'default_profile = "svc"\n\n[profiles.svc]\nsource = "{kind}"\n{where}'
            f'client_id = "{CONF_CLIENT[0]}"\nclient_secret = {{ env = "{CONF_SECRET_ENV}" }}\n'
            f'flow = "client-credentials"\nca_bundle = "{proxy.ca}"\nmin_ttl = "10m"\n'
        )

    configure(proxy.origin, budget)
    return Peer(kind, gk, proxy, configure, _idp_make_due(gk), _idp_error_body)


def _vault_peer(gk: Env, tmp_path: Path, stack: ExitStack, request: Any, budget: Budget) -> Peer:
    vault = stack.enter_context(fake_vault(tmp_path / "vault"))
    vault.add_token(VAULT_TOKEN, policies=["root"], ttl=0)
    vault.put_secret("app", {"api_key": SECRET})
    proxy = stack.enter_context(FaultProxy(tmp_path / "proxy", vault.address, upstream_ca=vault.ca))
    gk.vars["VAULT_TOKEN"] = VAULT_TOKEN

    def configure(origin: str, budget: Budget = DOCUMENTED) -> None:
        gk.write_config(
            budget.toml() + 'default_profile = "llm"\n\n[profiles.llm]\nsource = "vault"\n'
            f'address = "{origin}"\nca_bundle = "{proxy.ca}"\npath = "app"\n'
        )

    def body(status: int) -> bytes:
        return json.dumps({"errors": [f"HTTP {status} from the test proxy"]}).encode()

    configure(proxy.origin, budget)
    return Peer("vault", gk, proxy, configure, _vault_make_due(gk), body, SECRET)


AWS_CODES = {429: "ThrottlingException", 500: "InternalServiceError", 503: "ServiceUnavailable"}


def _aws_peer(gk: Env, tmp_path: Path, stack: ExitStack, request: Any, budget: Budget) -> Peer:
    moto = request.getfixturevalue("moto_module")
    secret_id = f"prod/gateway/{tmp_path.name}"  # the server is shared: a name of its own
    moto.create_secret(secret_id, SECRET)
    # moto checks SigV4 against the Host the client signed: relay it unchanged.
    proxy = stack.enter_context(
        FaultProxy(tmp_path / "proxy", moto.endpoint, rewrite=False, preserve_host=True)
    )
    gk.vars.update(moto.env())
    gk.vars["AWS_CA_BUNDLE"] = proxy.ca

    def configure(origin: str, budget: Budget = DOCUMENTED) -> None:
        gk.vars["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = origin
        gk.write_config(
            budget.toml() + 'default_profile = "llm"\n\n[profiles.llm]\n'
            f'source = "aws-secrets-manager"\nsecret_id = "{secret_id}"\n'
        )

    def body(status: int) -> bytes:
        code = AWS_CODES.get(status, "InternalServiceError")
        return json.dumps({"__type": code, "message": "from the test proxy"}).encode()

    configure(proxy.origin, budget)
    return Peer("aws", gk, proxy, configure, _vault_make_due(gk), body, SECRET)


def _azure_peer(gk: Env, tmp_path: Path, stack: ExitStack, request: Any, budget: Budget) -> Peer:
    op: OidcProvider = request.getfixturevalue("entra_provider")
    kv = stack.enter_context(fake_keyvault(tmp_path, op))
    kv.set_secret("db-pass", SECRET)
    proxy = stack.enter_context(FaultProxy(tmp_path / "proxy", kv.url, upstream_ca=kv.ca))
    gk.vars[CONF_SECRET_ENV] = CONF_CLIENT[1]
    entra = (
        f'[profiles.corp]\nsource = "entra"\ntenant = "{op.tenant}"\n'
        f'authority_host = "{op.origin}"\nclient_id = "{CONF_CLIENT[0]}"\n'
        f'client_secret = {{ env = "{CONF_SECRET_ENV}" }}\nflow = "client-credentials"\n'
        f'scopes = ["api.read"]\nca_bundle = "{op.ca}"\ntoken_cache = "file"\nmin_ttl = "10m"\n\n'
    )

    def configure(origin: str, budget: Budget = DOCUMENTED) -> None:
        gk.write_config(
            budget.toml() + 'default_profile = "kv"\n\n' + entra + "[profiles.kv]\n"
            f'source = "azure-key-vault"\nvault_url = "{origin}"\nsecret_name = "db-pass"\n'
            f'credential_from = "corp"\nca_bundle = "{proxy.ca}"\n'
        )

    def body(status: int) -> bytes:
        code = {429: "Throttled", 500: "InternalServerError", 503: "ServiceUnavailable"}
        error = {"code": code.get(status, "InternalServerError"), "message": "test proxy"}
        return json.dumps({"error": error}).encode()

    def warm() -> None:  # the entra token for Key Vault, so that only the vault is asked after
        r = gk.run("get", "-p", "corp", context="interactive")
        assert r.code == 0, r.err

    configure(proxy.origin, budget)
    return Peer("azure", gk, proxy, configure, _vault_make_due(gk), body, SECRET, warm)


def start_peer(
    kind: str,
    gk: Env,
    tmp_path: Path,
    stack: ExitStack,
    request: pytest.FixtureRequest,
    budget: Budget = DOCUMENTED,
) -> Peer:
    """``kind`` (oidc, entra, vault, aws, azure) configured in ``gk`` with ``budget``, behind a
    proxy in ``forward`` mode; what it starts stops when ``stack`` closes."""
    if kind in ("oidc", "entra"):
        provider = request.getfixturevalue(f"{kind}_provider")  # oidc_ or entra_provider
        return _idp_peer(kind, gk, tmp_path, stack, provider, budget)
    builders = {"vault": _vault_peer, "aws": _aws_peer, "azure": _azure_peer}
    return builders[kind](gk, tmp_path, stack, request, budget)
