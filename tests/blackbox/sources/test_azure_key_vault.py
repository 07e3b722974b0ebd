"""Black-box tests of the ``azure-key-vault`` source: the installed ``gatekey-vault``, run as the
app runs it (no arguments, stdin closed, CLAUDE_HELPER_CONTEXT set), against the fake Key Vault
(tests/support/fake_keyvault.py: the documented Get Secret over HTTPS, bearer tokens verified
against the real OpenID provider's JWKS) with Key Vault tokens from an ``entra`` profile using
client credentials against the Entra-style provider (``entra_provider``).

These are contract tests against a fake, not against Key Vault. What is asserted is what the app
and the vault see: stdout bytes, exit codes, stderr lines, and the fake's request log.

The cached secret lives in the kernel keyring (securecache.py), keyed by a hash of the test's
cache directory; every test removes its entries when it ends (the kernel would otherwise keep
them for ``max_stale``). Aging a cached copy past the 60 s of ``mid-session-refresh`` is done by
rewriting that kernel entry, as ``Env.edit_entry`` (blackbox_env.py) does for the file cache.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vault_cases
from blackbox_env import CONTEXTS, Env, Result
from deadlines import EARLY_S, ends_by
from fake_keyvault import KEY_VAULT_RESOURCE, FakeKeyVault, LoggedRequest, fake_keyvault
from oidc_peer import CONF_CLIENT, OidcProvider
from vault_cases import drop_kernel_keys, kernel_names

pytestmark = [pytest.mark.oidc, pytest.mark.blackbox]

SECRET_NAME = "db-pass"
# Random per run, so a match anywhere can only be a leak; the prefix check catches partial ones.
SECRET = "akv-" + secrets.token_urlsafe(24)
ROTATED = "akv-" + secrets.token_urlsafe(24)
ALL_CONTEXTS = (*CONTEXTS, None)  # None: CLAUDE_HELPER_CONTEXT unset (no TTY here: silent)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
SECRET_ENV = "CONF_SECRET"  # the variable holding conf-client's secret


def ctx_id(ctx: str | None) -> str:
    return ctx or "unset"


# --- config ------------------------------------------------------------------------------------
def entra_profile(op: OidcProvider, *, name: str = "corp", scopes: str = '["api.read"]') -> str:
    """Client credentials for conf-client against the Entra-style provider: tokens with
    ``aud`` https://api.example.test, which the fake trusts by default."""
    assert op.tenant, "needs the Entra-style provider"
    return (
        f'[profiles.{name}]\nsource = "entra"\ntenant = "{op.tenant}"\n'
        f'authority_host = "{op.origin}"\nclient_id = "{CONF_CLIENT[0]}"\n'
        f'client_secret = {{ env = "{SECRET_ENV}" }}\nflow = "client-credentials"\n'
        f'scopes = {scopes}\nca_bundle = "{op.ca}"\ntoken_cache = "file"\nmin_ttl = "10m"\n\n'
    )


def kv_profile(
    fake: FakeKeyVault,
    *,
    name: str = "kv",
    secret_name: str = SECRET_NAME,
    credential_from: str = "corp",
    vault_url: str | None = None,
    extra: str = "",
) -> str:
    return (
        f'[profiles.{name}]\nsource = "azure-key-vault"\n'
        f'vault_url = "{vault_url or fake.url}"\nsecret_name = "{secret_name}"\n'
        f'credential_from = "{credential_from}"\nca_bundle = "{fake.ca}"\n{extra}\n\n'
    )


def configure(
    gk: Env,
    op: OidcProvider,
    fake: FakeKeyVault,
    *,
    kv: str = "",
    timeouts: str = "",
    more: str = "",
    **profile: str,
) -> None:
    """One entra profile ``corp`` and one azure-key-vault profile ``kv`` (extra TOML ``kv``)."""
    text = entra_profile(op) + kv_profile(fake, extra=kv, **profile) + more
    if timeouts:
        text += f"[timeouts]\n{timeouts}\n"
    gk.write_config(text)


# --- runs and what they may show --------------------------------------------------------------
def vault(gk: Env, *args: str, context: str | None = "background") -> Result:
    """The installed gatekey-vault; a silent context unless told otherwise."""
    return gk.run(*args, exe_name="gatekey-vault", context=context)


def access_tokens(gk: Env) -> list[str]:
    """The Key Vault access tokens gatekey obtained (the entra profile's file-cached tokens)."""
    found = []
    for path in (gk.cache_dir / "tokens").glob("*.json"):
        value = json.loads(path.read_text()).get("token")
        if isinstance(value, str) and value.count(".") == 2:
            found.append(value)
    return found


def assert_no_leak(r: Result, gk: Env, *values: str) -> None:
    """Neither a secret value (nor its first characters) nor an access token on stderr."""
    for value in (SECRET, ROTATED, *values):
        assert value not in r.err, "a secret value reached stderr"
        assert value[:14] not in r.err, "the start of a secret value reached stderr"
    for token in access_tokens(gk):
        assert token not in r.err, "the access token reached stderr"
        assert token.rsplit(".", 1)[1] not in r.err, "a token signature reached stderr"
    assert not JWT.search(r.err), r.err


def assert_prints(r: Result, gk: Env, value: str = SECRET) -> None:
    """Success per the contract: exactly the value and a newline, and nothing on stderr."""
    vault_cases.assert_prints(r, value)
    assert_no_leak(r, gk)


def assert_fails(r: Result, gk: Env, code: int, *words: str) -> None:
    vault_cases.assert_fails(r, code, *words)
    assert_no_leak(r, gk)


def gets(fake: FakeKeyVault) -> int:
    """Requests for the secret that the fake answered with its value."""
    return fake.count(SECRET_NAME, status=200)


def cache_the_secret(gk: Env, op: OidcProvider, fake: FakeKeyVault, **config: str) -> None:
    """``configure``, then one run: it reads the secret, which is cached from then on."""
    configure(gk, op, fake, **config)
    assert_prints(vault(gk), gk)


def run_against_a_vault_of_its_own(
    gk: Env, tmp_path: Path, op: OidcProvider, **options: Any
) -> tuple[Result, LoggedRequest]:
    """One run against a fake vault made with ``options`` and holding SECRET; the result, and
    the last request the vault logged."""
    with fake_keyvault(tmp_path, op, **options) as fake:
        fake.set_secret(SECRET_NAME, SECRET)
        configure(gk, op, fake)
        return vault(gk), fake.requests[-1]


# --- the kernel keyring, where the cached secret lives -----------------------------------------
def age_cached_secret(gk: Env, seconds: float) -> None:
    """As if the (only) cached secret had been read ``seconds`` earlier."""
    from gatekey import kernelkeys

    [name] = kernel_names(gk)
    raw = kernelkeys.read(name)
    assert raw is not None
    data = json.loads(raw)
    data["obtained_at"] -= seconds
    if data.get("refresh_at") is not None:
        data["refresh_at"] -= seconds
    assert kernelkeys.write(name, json.dumps(data).encode(), timeout=3600)


@pytest.fixture
def env(gk: Env) -> Iterator[Env]:
    """``gk`` with the client secret in the environment; cached secrets removed afterwards."""
    gk.vars[SECRET_ENV] = CONF_CLIENT[1]
    yield gk
    drop_kernel_keys(gk.cache_dir)


@pytest.fixture
def kv(tmp_path: Path, entra_provider: OidcProvider) -> Iterator[FakeKeyVault]:
    """The fake vault holding SECRET as the latest version of SECRET_NAME; conf-client may read."""
    with fake_keyvault(tmp_path, entra_provider) as fake:
        fake.set_secret(SECRET_NAME, SECRET)
        yield fake


# --- success and the cache --------------------------------------------------------------------
@pytest.mark.parametrize("first", ALL_CONTEXTS, ids=ctx_id)
def test_prints_the_secret_then_serves_it_from_the_cache(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, first: str | None
) -> None:
    configure(env, entra_provider, kv)
    assert_prints(vault(env, context=first), env)
    assert gets(kv) == 1
    assert kv.requests[-1].path == f"/secrets/{SECRET_NAME}"
    assert kv.requests[-1].api_version == "7.5"
    assert kv.requests[-1].sub == CONF_CLIENT[0]
    # Every context may use a copy read moments ago (mid-session-refresh: less than 60 s old).
    for ctx in ALL_CONTEXTS:
        assert_prints(vault(env, context=ctx), env)
    assert gets(kv) == 1, "a cached secret was read from the vault again"
    assert kv.count() == 1


def test_mid_session_refresh_reads_through_a_copy_older_than_a_minute(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    cache_the_secret(env, entra_provider, kv)
    age_cached_secret(env, 120)
    assert_prints(vault(env, context="background"), env)  # still within cache_ttl (15m)
    assert gets(kv) == 1
    assert_prints(vault(env, context="mid-session-refresh"), env)
    assert gets(kv) == 2
    # ...and the copy it just read serves the next runs, mid-session-refresh included.
    assert_prints(vault(env, context="mid-session-refresh"), env)
    assert_prints(vault(env, context="scheduled-task"), env)
    assert gets(kv) == 2


def test_force_refresh_reads_through(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    cache_the_secret(env, entra_provider, kv)
    assert_prints(vault(env, "get", "--force-refresh"), env)
    assert_prints(vault(env, "get", "-p", "kv"), env)
    assert gets(kv) == 2


def test_a_pinned_version(env: Env, entra_provider: OidcProvider, kv: FakeKeyVault) -> None:
    first = kv.versions(SECRET_NAME)[0]
    kv.set_secret(SECRET_NAME, ROTATED)  # the latest is now another value
    cache_the_secret(env, entra_provider, kv, kv=f'version = "{first}"')
    assert kv.requests[-1].path == f"/secrets/{SECRET_NAME}/{first}"
    assert kv.requests[-1].status == 200
    assert_prints(vault(env), env, SECRET)
    assert gets(kv) == 1


def test_cache_ttl_0_reads_through_every_run(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    configure(env, entra_provider, kv, kv="cache_ttl = 0")
    for n, ctx in enumerate(("background", "interactive", None, "setup-test"), start=1):
        assert_prints(vault(env, context=ctx), env)
        assert gets(kv) == n
    assert kernel_names(env) == [], "cache_ttl = 0 must store nothing"


def test_rotation_is_picked_up_after_cache_ttl(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    # Time passes by aging the cached copy (a 2 s cache_ttl and a sleep raced the clock).
    cache_the_secret(env, entra_provider, kv, kv='cache_ttl = "10m"')
    kv.set_secret(SECRET_NAME, ROTATED)
    assert_prints(vault(env), env, SECRET)  # the cached copy, until cache_ttl passes
    assert gets(kv) == 1
    age_cached_secret(env, 11 * 60)
    assert_prints(vault(env), env, ROTATED)
    assert_prints(vault(env), env, ROTATED)
    assert gets(kv) == 2


def test_rotation_is_picked_up_after_cache_ttl_when_the_secret_has_an_expiry_date(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    in_90_days = time.time() + 90 * 86400
    kv.set_secret(SECRET_NAME, SECRET, exp=in_90_days)  # Key Vault policies often require exp
    cache_the_secret(env, entra_provider, kv, kv='cache_ttl = "10m"')
    kv.set_secret(SECRET_NAME, ROTATED, exp=in_90_days)
    age_cached_secret(env, 11 * 60)
    assert_prints(vault(env), env, ROTATED)


# --- errors -----------------------------------------------------------------------------------
def test_missing_secret_is_exit_3_naming_it(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    # Not "no-such-secret": any 6 characters of the client secret ("conf-secret") are masked.
    configure(env, entra_provider, kv, secret_name="no-such-item")
    r = vault(env)
    assert_fails(r, env, 3, "no-such-item", kv.url)
    assert kv.requests[-1].status == 404


def test_missing_version_is_exit_3_naming_it(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    missing = "0" * 32
    configure(env, entra_provider, kv, kv=f'version = "{missing}"')
    assert_fails(vault(env), env, 3, SECRET_NAME, missing)


def test_principal_not_allowed_is_exit_1_naming_the_role(
    env: Env, tmp_path: Path, entra_provider: OidcProvider
) -> None:
    r, request = run_against_a_vault_of_its_own(env, tmp_path, entra_provider, allow=())
    assert request.status == 403
    assert_fails(r, env, 1, "Key Vault Secrets User", SECRET_NAME, 'profile "corp"')


def test_disabled_secret_is_exit_1_and_never_served_from_the_cache(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    cache_the_secret(env, entra_provider, kv)
    kv.disable(SECRET_NAME)
    r = vault(env, "get", "--force-refresh")
    assert_fails(r, env, 1, "disabled", SECRET_NAME)
    assert kv.requests[-1].status == 403


def test_wrong_audience_is_exit_1_explaining_the_challenge(
    env: Env, tmp_path: Path, entra_provider: OidcProvider
) -> None:
    # A vault that wants tokens for Key Vault's resource; the profile's scopes get the API's.
    r, request = run_against_a_vault_of_its_own(
        env, tmp_path, entra_provider, audience=KEY_VAULT_RESOURCE
    )
    assert request.status == 401
    assert request.bearer
    assert_fails(
        r,
        env,
        1,
        "AKV10022",  # Key Vault's own reason
        'profile "corp"',  # whose token it was
        f"resource {KEY_VAULT_RESOURCE}",  # what the challenge asks for
        f"authorization {entra_provider.origin}/{entra_provider.tenant}",
        "scopes",  # what to change
    )


def test_wrong_audience_advice_follows_the_challenge(
    env: Env, tmp_path: Path, entra_provider: OidcProvider
) -> None:
    r, _ = run_against_a_vault_of_its_own(
        env, tmp_path, entra_provider, audience=KEY_VAULT_RESOURCE
    )
    assert_fails(r, env, 1, f'["{KEY_VAULT_RESOURCE}/.default"]')


@pytest.mark.parametrize("status", [503, 429])
def test_vault_unavailable_with_nothing_cached_is_exit_75(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, status: int
) -> None:
    configure(env, entra_provider, kv)
    kv.status_override = (status, {"Retry-After": "1"}, None, None)
    assert_fails(vault(env), env, 75, f"HTTP {status}")
    assert kv.count() == 1  # one attempt, no retry storm


@pytest.mark.parametrize("status", [503, 429])
def test_vault_unavailable_serves_the_stale_copy_with_one_warning(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, status: int
) -> None:
    cache_the_secret(env, entra_provider, kv, kv='cache_ttl = "10m"')
    age_cached_secret(env, 11 * 60)
    kv.status_override = (status, {}, None, None)
    r = vault(env)
    assert r.code == 0, r.err
    assert r.stdout == SECRET.encode() + b"\n"
    assert r.err.count("\n") == 1, f"expected exactly one warning line: {r.err!r}"
    assert r.err.startswith("gatekey: warning: "), r.err
    assert f"HTTP {status}" in r.err
    assert_no_leak(r, env)
    assert gets(kv) == 1
    assert kv.count() == 2  # it did ask the vault again


def test_a_copy_older_than_max_stale_is_not_served(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    cache_the_secret(env, entra_provider, kv, kv='max_stale = "1h"')
    age_cached_secret(env, 2 * 3600)  # past cache_ttl (15m) and max_stale
    kv.status_override = (503, {}, None, None)
    assert_fails(vault(env), env, 75, "HTTP 503")


def test_stale_warning_reads_as_a_sentence(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    cache_the_secret(env, entra_provider, kv)
    kv.status_override = (503, {}, None, None)
    r = vault(env, "get", "--force-refresh")
    assert r.code == 0, r.err
    assert "which has no known expiry" in r.err, r.err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("context", "timeout_key"),
    [("scheduled-task", "silent"), ("mid-session-refresh", "mid_session_refresh")],
)
def test_hanging_vault_is_exit_75_within_the_deadline(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, context: str, timeout_key: str
) -> None:
    configure(env, entra_provider, kv, timeouts=f'{timeout_key} = "3s"')
    # The Key Vault token first (a person's budget): the 3 s are then all the vault's to hang.
    assert env.run("get", "-p", "corp", context="interactive").code == 0
    kv.hang = True
    r = vault(env, context=context)
    assert_fails(r, env, 75, "time limit")
    assert 3 - EARLY_S < r.elapsed < ends_by(3), f"took {r.elapsed:.2f} s with a 3 s deadline"
    assert [q.status for q in kv.requests] == [None]  # it reached the vault and was held


@pytest.mark.parametrize(
    ("target", "kind"),
    [("kc", "keychain"), ("idp", "oidc")],
)
def test_credential_from_a_non_entra_profile_is_exit_78(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, target: str, kind: str
) -> None:
    others = (
        '[profiles.kc]\nsource = "keychain"\n\n'
        f'[profiles.idp]\nsource = "oidc"\nissuer = "{entra_provider.issuer}"\n'
        f'client_id = "{CONF_CLIENT[0]}"\nca_bundle = "{entra_provider.ca}"\n\n'
    )
    configure(env, entra_provider, kv, credential_from=target, more=others)
    r = vault(env)
    assert_fails(r, env, 78, 'profile "kv"', 'key "credential_from"', repr(target), repr(kind))
    assert kv.count() == 0


def test_credential_from_a_missing_profile_is_exit_78_naming_the_key(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    configure(env, entra_provider, kv, credential_from="nope")
    r = vault(env)
    assert_fails(r, env, 78, "nope", 'profile "kv"', 'key "credential_from"')
    assert kv.count() == 0


@pytest.mark.parametrize(
    ("profile", "key"),
    [
        ({"vault_url": "http://127.0.0.1:1"}, "vault_url"),
        ({"secret_name": "db_pass"}, "secret_name"),
    ],
    ids=["http-vault-url", "bad-secret-name"],
)
def test_bad_profile_is_exit_78_naming_the_key(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, profile: dict[str, str], key: str
) -> None:
    configure(env, entra_provider, kv, **profile)
    assert_fails(vault(env), env, 78, 'profile "kv"', f'key "{key}"')
    assert_fails(vault(env, "config", "validate", context=None), env, 78, f'key "{key}"')
    assert kv.count() == 0


# --- where the secret is (not) kept -----------------------------------------------------------
def test_the_secret_is_never_written_to_a_file(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    cache_the_secret(env, entra_provider, kv)
    assert_prints(vault(env), env)
    assert_prints(vault(env, "get", "--force-refresh"), env)
    status = vault(env, "status")
    assert status.code == 0, status.err
    assert SECRET not in status.out

    files = [p for p in env.root.rglob("*") if p.is_file()]
    assert any(p.is_relative_to(env.cache_dir) for p in files), "the run used no cache at all?"
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data, f"the secret was written to {path}"
        assert SECRET[:14].encode() not in data, f"the start of the secret is in {path}"
    # It is cached, in the kernel keyring: one entry, holding the value.
    from gatekey import kernelkeys

    [name] = kernel_names(env)
    raw = kernelkeys.read(name)
    assert raw is not None
    assert json.loads(raw)["token"] == SECRET


# --- config validate --------------------------------------------------------------------------
def test_config_validate_passes_for_a_good_profile(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault
) -> None:
    configure(
        env, entra_provider, kv, kv='version = "0123abcd"\ncache_ttl = "5m"\nmax_stale = "1h"'
    )
    r = vault(env, "config", "validate", context=None)
    assert r.code == 0, r.err
    assert r.stdout == b""
    assert r.err.startswith("gatekey: configuration is valid (2 profile(s);"), r.err
    assert kv.count() == 0  # validating reads nothing


@pytest.mark.parametrize("target", ["nope", "kc"])
def test_config_validate_checks_credential_from(
    env: Env, entra_provider: OidcProvider, kv: FakeKeyVault, target: str
) -> None:
    configure(
        env, entra_provider, kv, credential_from=target, more='[profiles.kc]\nsource = "keychain"\n'
    )
    r = vault(env, "config", "validate", context=None)
    assert r.code == 78, r.err
    assert 'key "credential_from"' in r.err
