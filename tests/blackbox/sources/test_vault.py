"""Contract tests of the ``vault`` source against a fake Vault: no Vault or OpenBao binary can run
here, so the installed ``gatekey-vault`` is run as the app runs it (a subprocess, stdin closed,
CLAUDE_HELPER_CONTEXT set) against tests/support/fake_vault.py, which follows Vault's documented
HTTP API (KV v1/v2 envelopes, namespaces, policies, JWT and AppRole logins, sealed, 429, 5xx).
The JWT chain uses the real OpenID provider peer: the fake verifies gatekey's JWT against the
provider's JWKS, as Vault's JWT auth method does.

What is asserted is what the app and Vault see: stdout bytes, exit codes, stderr lines and the
fake's request log; and that no secret value, Vault token, JWT or secret_id ever reaches stderr
(``--debug`` runs included) or any file of gatekey's cache directory (except the IdP profile's
own access token, which gatekey keeps in its 0600 file cache by design, as for any IdP profile).

Cached secrets and Vault login tokens live in the kernel keyring (securecache.py), keyed by a
hash of the test's cache directory; every test removes its entries when it ends.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import vault_cases
from blackbox_env import Env, Result, exe
from deadlines import deadline_of, ends_by
from fake_vault import FakeVault, fake_vault
from oidc_peer import API_AUDIENCE, CONF_CLIENT, PUBLIC_CLIENT, OidcProvider
from vault_cases import age_cached_secret, drop_kernel_keys, kernel_names

pytestmark = [pytest.mark.blackbox]


def _value(prefix: str) -> str:
    """A random secret: any match anywhere can only be a leak."""
    return prefix + secrets.token_urlsafe(24)


SECRET = _value("sk-")
ROTATED = _value("sk-")
ENG_SECRET = _value("sk-")
OPS_SECRET = _value("sk-")
ROOT_TOKEN = _value("hvs.")
READ_TOKEN = _value("hvs.")
OTHER_TOKEN = _value("hvs.")
SECRET_ID = _value("sid-")
ROLE_ID = "role-" + secrets.token_hex(8)
KV2_PATH = "secret/data/app"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
CONF_SECRET_ENV = "CONF_SECRET"
ROLE = "llm-users"


# --- config ------------------------------------------------------------------------------------
def vault_profile(
    fake: FakeVault | None,
    *,
    name: str = "llm",
    address: str | None = "",
    auth: str | None = None,
    **keys: str | int,
) -> str:
    """TOML for one vault profile reading ``path`` (default ``app``) from ``fake``.

    ``address=""``: the fake's; ``None``: no address key. ``auth``: the inline table's TOML.
    Other keys are written as given (``json.dumps`` quotes strings the TOML way)."""
    lines = [f"[profiles.{name}]", 'source = "vault"']
    if address == "" and fake is not None:
        address = fake.address
    if address:
        lines.append(f'address = "{address}"')
    if fake is not None and fake.address.startswith("https://"):
        lines.append(f'ca_bundle = "{fake.ca}"')
    keys.setdefault("path", "app")
    lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    if auth:
        lines.append(f"auth = {auth}")
    return "\n".join(lines) + "\n\n"


def oidc_cc_profile(op: OidcProvider, name: str = "corp") -> str:
    """Client credentials for conf-client: JWTs with ``aud`` https://api.example.test."""
    return (
        f'[profiles.{name}]\nsource = "oidc"\nissuer = "{op.issuer}"\n'
        f'client_id = "{CONF_CLIENT[0]}"\nclient_secret = {{ env = "{CONF_SECRET_ENV}" }}\n'
        f'flow = "client-credentials"\nscopes = ["api.read"]\nca_bundle = "{op.ca}"\n'
        'min_ttl = "10m"\n\n'
    )


def write(gk: Env, *profiles: str, timeouts: str = "") -> None:
    text = "".join(profiles)
    if timeouts:
        text += f"[timeouts]\n{timeouts}\n"
    gk.write_config(text)


# --- runs and what they may show --------------------------------------------------------------
def run(gk: Env, *args: str, context: str | None = "background", **env: str) -> Result:
    return gk.run(*args, exe_name="gatekey-vault", context=context, **env)


def cache_files(gk: Env) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(gk.cache_dir.rglob("*")) if p.is_file()]


def idp_entry(path: Path, data: bytes) -> bool:
    """The oidc profile's own cache entry: IdP access tokens live in gatekey's 0600 file cache
    by design (README, Identity providers); only vault-like secrets must stay out of files."""
    return (
        path.parent.name == "tokens"
        and json.loads(data).get("source") == "oidc"
        and path.stat().st_mode & 0o077 == 0
    )


def assert_no_leak(r: Result, gk: Env, *values: str) -> None:
    """No secret value, Vault token, secret_id or JWT (nor a fragment) on stderr; none in a
    file of the cache directory either, except a JWT in its IdP profile's entry."""
    files = cache_files(gk)
    for value in (SECRET, ROTATED, ENG_SECRET, OPS_SECRET, SECRET_ID, *values):
        assert value not in r.err, "a secret reached stderr"
        if len(value) >= 20:  # a random one: any 12 of its characters can only be a leak
            assert value[4:16] not in r.err, "a fragment of a secret reached stderr"
        for path, data in files:
            if value.encode() in data:
                assert JWT.fullmatch(value), f"a secret is in the cache file {path}"
                assert idp_entry(path, data), f"a JWT is in the cache file {path}"
    assert not JWT.search(r.err), r.err
    assert "hvs." not in r.err, r.err


def assert_prints(r: Result, gk: Env, value: str, *secrets_: str) -> None:
    """Success per the contract: exactly the value and a newline, and nothing on stderr."""
    vault_cases.assert_prints(r, value)
    assert_no_leak(r, gk, *secrets_)


def assert_fails(r: Result, gk: Env, code: int, *words: str, hidden: tuple[str, ...] = ()) -> None:
    """A clean failure: the code, no stdout, one ``gatekey:`` line holding ``words``."""
    vault_cases.assert_fails(r, code, *words)
    assert_no_leak(r, gk, *hidden)


def reads(fake: FakeVault, path: str = KV2_PATH) -> int:
    return fake.count(path, method="GET")


def logins(fake: FakeVault, mount: str = "jwt") -> int:
    return fake.count(f"auth/{mount}/login")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def env(gk: Env) -> Iterator[Env]:
    """``gk``; its kernel keyring entries removed afterwards (the kernel would keep them)."""
    yield gk
    drop_kernel_keys(gk.cache_dir)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVault]:
    """A fake Vault over HTTPS holding SECRET at secret/app (KV v2); ROOT_TOKEN may read anything,
    READ_TOKEN only secret/data/app."""
    with fake_vault(tmp_path / "vault") as v:
        v.add_token(ROOT_TOKEN, policies=["root"], ttl=0)
        v.add_policy("app-read", [KV2_PATH])
        v.add_token(READ_TOKEN, policies=["app-read"])
        v.put_secret("app", {"api_key": SECRET})
        yield v


# ==============================================================================================
# 1. Token auth, KV v1/v2, fields, namespaces, address
# ==============================================================================================
def test_vault_token_from_the_environment_kv2(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake))
    r = run(env, VAULT_TOKEN=READ_TOKEN)
    assert_prints(r, env, SECRET, READ_TOKEN)
    [read] = [q for q in fake.requests if q.api_path == KV2_PATH]
    assert (read.method, read.status, read.namespace) == ("GET", 200, None)
    assert read.accessor == fake.accessor(READ_TOKEN)
    assert READ_TOKEN not in " ".join(r.argv)
    # a debug run explains itself without showing the token or the value
    r = run(env, "--debug", "get", "-p", "llm", "--force-refresh", VAULT_TOKEN=READ_TOKEN)
    assert r.code == 0, r.err
    assert r.stdout == SECRET.encode() + b"\n"
    assert "debug" in r.err.lower(), r.err
    assert_no_leak(r, env, READ_TOKEN)
    assert reads(fake) == 2


def test_vault_token_file_in_home(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake))
    token_file = Path(env.vars["HOME"]) / ".vault-token"
    token_file.write_text(READ_TOKEN + "\n")  # as `vault login` leaves it
    token_file.chmod(0o600)
    assert_prints(run(env), env, SECRET, READ_TOKEN)
    assert fake.requests[-1].accessor == fake.accessor(READ_TOKEN)


def test_VAULT_TOKEN_wins_over_the_token_file(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake))
    (Path(env.vars["HOME"]) / ".vault-token").write_text(OTHER_TOKEN)
    assert_prints(run(env, VAULT_TOKEN=READ_TOKEN), env, SECRET, READ_TOKEN, OTHER_TOKEN)
    assert fake.requests[-1].accessor == fake.accessor(READ_TOKEN)


def test_auth_token_reference_wins_over_VAULT_TOKEN_and_the_token_file(
    env: Env, fake: FakeVault
) -> None:
    write(
        env, vault_profile(fake, auth='{ method = "token", token = { env = "LLM_VAULT_TOKEN" } }')
    )
    (Path(env.vars["HOME"]) / ".vault-token").write_text(OTHER_TOKEN)
    r = run(env, VAULT_TOKEN=OTHER_TOKEN, LLM_VAULT_TOKEN=READ_TOKEN)
    assert_prints(r, env, SECRET, READ_TOKEN, OTHER_TOKEN)
    assert [q.accessor for q in fake.requests] == [fake.accessor(READ_TOKEN)]


def test_no_vault_token_exits_4_with_the_vault_login_hint(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake))
    r = run(env)
    assert_fails(r, env, 4, "vault login", "VAULT_TOKEN")
    assert fake.requests == []  # nothing sent without a token


def test_kv1_mount(env: Env, fake: FakeVault) -> None:
    fake.put_secret("team/app", {"api_key": SECRET}, mount="kv", kv_version=1)
    write(env, vault_profile(fake, mount="kv", path="team/app", kv_version=1))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    assert [q.api_path for q in fake.requests] == ["kv/team/app"]


def test_kv_version_mismatch_is_not_found_with_a_hint(env: Env, fake: FakeVault) -> None:
    fake.put_secret("app", {"api_key": SECRET}, mount="kv", kv_version=1)
    write(env, vault_profile(fake, mount="kv"))  # kv_version 2 (default) on a v1 mount
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 3, "kv/data/app", "kv_version = 1", hidden=(ROOT_TOKEN,))
    write(env, vault_profile(fake, kv_version=1))  # kv_version 1 on the v2 mount "secret"
    r = run(env, context="interactive", VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 3, "secret/app", "kv_version = 2", hidden=(ROOT_TOKEN,))


def test_field_choice(env: Env, fake: FakeVault) -> None:
    fake.put_secret("multi", {"api_key": SECRET, "owner": ROTATED})
    # field given
    write(env, vault_profile(fake, path="multi", field="api_key", cache_ttl=0))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    # several fields and no field: 78 naming the fields, never their values
    write(env, vault_profile(fake, path="multi", cache_ttl=0))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 78, "api_key, owner", "field", hidden=(ROOT_TOKEN,))
    # a field the secret lacks: 3 naming it and what there is
    write(env, vault_profile(fake, path="multi", field="token", cache_ttl=0))
    r = run(env, context="interactive", VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 3, "'token'", "api_key, owner", hidden=(ROOT_TOKEN,))
    # one field and no field: that one
    write(env, vault_profile(fake, cache_ttl=0))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)


def test_namespace_header_and_isolation(env: Env, fake: FakeVault) -> None:
    fake.put_secret("app", {"api_key": ENG_SECRET}, namespace="eng")
    fake.put_secret("app", {"api_key": OPS_SECRET}, namespace="ops")
    fake.add_policy("app-read", [KV2_PATH], namespace="eng")
    eng_token = fake.add_token(policies=["app-read"], namespace="eng")
    write(env, vault_profile(fake, namespace="eng"))
    assert_prints(run(env, VAULT_TOKEN=eng_token), env, ENG_SECRET, eng_token)
    assert [(q.api_path, q.namespace, q.status) for q in fake.requests] == [(KV2_PATH, "eng", 200)]
    # the root namespace's token reads every namespace; each has its own secret
    write(env, vault_profile(fake, namespace="ops"))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, OPS_SECRET, ROOT_TOKEN)
    assert fake.requests[-1].namespace == "ops"
    # a token of namespace eng is worth nothing in ops (read through: ops's value is cached)
    write(env, vault_profile(fake, namespace="ops", cache_ttl=0))
    r = run(env, VAULT_TOKEN=eng_token)
    assert_fails(r, env, 1, KV2_PATH, "namespace ops", hidden=(eng_token,))


def test_VAULT_ADDR_and_VAULT_NAMESPACE_fallbacks(env: Env, fake: FakeVault) -> None:
    fake.put_secret("app", {"api_key": ENG_SECRET}, namespace="eng")
    write(env, vault_profile(fake, address=None))
    r = run(env, VAULT_ADDR=fake.address, VAULT_NAMESPACE="eng", VAULT_TOKEN=ROOT_TOKEN)
    assert_prints(r, env, ENG_SECRET, ROOT_TOKEN)
    assert [(q.api_path, q.namespace) for q in fake.requests] == [(KV2_PATH, "eng")]
    # the profile's own address and namespace win over the environment
    write(env, vault_profile(fake, namespace="eng", name="llm2"))
    r = run(
        env,
        VAULT_ADDR=f"https://127.0.0.1:{free_port()}",
        VAULT_NAMESPACE="ops",
        VAULT_TOKEN=ROOT_TOKEN,
    )
    assert_prints(r, env, ENG_SECRET, ROOT_TOKEN)
    assert [(q.api_path, q.namespace) for q in fake.requests] == [(KV2_PATH, "eng")] * 2


@pytest.mark.parametrize("variable", ["VAULT_NAMESPACE", "VAULT_ADDR"])
def test_a_cached_secret_belongs_to_the_VAULT_ADDR_and_VAULT_NAMESPACE_it_came_from(
    env: Env, tmp_path: Path, variable: str
) -> None:
    with (
        fake_vault(tmp_path / "a", tls=False) as first,
        fake_vault(tmp_path / "b", tls=False) as second,
    ):
        for v, value in ((first, ENG_SECRET), (second, OPS_SECRET)):
            v.add_token(ROOT_TOKEN, policies=["root"])
            v.put_secret("app", {"api_key": value}, namespace="eng")
        if variable == "VAULT_NAMESPACE":
            first.put_secret("app", {"api_key": OPS_SECRET}, namespace="ops")
            write(env, vault_profile(first))
            runs = [{"VAULT_NAMESPACE": "eng"}, {"VAULT_NAMESPACE": "ops"}]
        else:
            write(env, vault_profile(None, address=None, namespace="eng"))
            runs = [{"VAULT_ADDR": first.address}, {"VAULT_ADDR": second.address}]
        assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN, **runs[0]), env, ENG_SECRET, ROOT_TOKEN)
        # the other Vault / namespace holds another value: it must be read, not the cached one
        assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN, **runs[1]), env, OPS_SECRET, ROOT_TOKEN)
        assert reads(first) + reads(second) == 2


def test_no_address_is_a_config_error(env: Env) -> None:
    write(env, vault_profile(None, address=None))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 78, "address", "VAULT_ADDR", '"llm"', hidden=(ROOT_TOKEN,))


# ==============================================================================================
# 2. Errors
# ==============================================================================================
def test_missing_secret_exits_3_suggesting_kv_version(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake, path="nope"))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 3, "secret/data/nope", "kv_version", hidden=(ROOT_TOKEN,))


def test_soft_deleted_kv2_secret_says_it_is_deleted(env: Env, fake: FakeVault) -> None:
    fake.delete_secret("app")
    write(env, vault_profile(fake))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 3, KV2_PATH, "deleted", hidden=(ROOT_TOKEN,))
    assert "kv_version" not in r.err


def test_policy_denied_exits_1_naming_the_api_path(env: Env, fake: FakeVault) -> None:
    fake.put_secret("other", {"api_key": ROTATED})
    write(env, vault_profile(fake, path="other"))
    r = run(env, VAULT_TOKEN=READ_TOKEN)
    assert_fails(r, env, 1, "secret/data/other", "policy", hidden=(READ_TOKEN,))
    assert fake.requests[-1].status == 403


def test_unknown_token_exits_1(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake))
    r = run(env, VAULT_TOKEN=OTHER_TOKEN)
    assert_fails(r, env, 1, KV2_PATH, hidden=(OTHER_TOKEN,))


def test_sealed_exits_75(env: Env, fake: FakeVault) -> None:
    fake.seal()
    write(env, vault_profile(fake))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 75, "sealed", hidden=(ROOT_TOKEN,))


@pytest.mark.parametrize("status", [500, 502, 429])
def test_5xx_and_429_exit_75(env: Env, fake: FakeVault, status: int) -> None:
    fake.status_override(status, headers={"Retry-After": "1"} if status == 429 else None)
    write(env, vault_profile(fake))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 75, f"HTTP {status}", hidden=(ROOT_TOKEN,))


def test_a_hung_vault_exits_75_within_the_deadline(env: Env, fake: FakeVault) -> None:
    fake.hang = True
    write(env, vault_profile(fake), timeouts='silent = "3s"')
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 75, hidden=(ROOT_TOKEN,))
    assert r.elapsed < ends_by(3), r.elapsed  # its silent deadline (deadlines.ends_by)
    assert reads(fake) == 1


def test_connection_refused_exits_75(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake, address=f"https://127.0.0.1:{free_port()}"))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 75, "127.0.0.1", hidden=(ROOT_TOKEN,))


def test_plain_http_to_this_machine_is_allowed(env: Env, tmp_path: Path) -> None:
    with fake_vault(tmp_path / "plain", tls=False) as plain:
        plain.add_token(ROOT_TOKEN, policies=["root"])
        plain.put_secret("app", {"api_key": SECRET})
        assert plain.address.startswith("http://127.0.0.1:")
        write(env, vault_profile(plain))
        assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
        assert reads(plain) == 1


@pytest.mark.parametrize(
    "address", ["http://vault.example.com:8200", "http://10.0.0.5:8200", "ftp://127.0.0.1"]
)
def test_plain_http_to_another_host_is_a_config_error(env: Env, address: str) -> None:
    write(env, vault_profile(None, address=address))
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert_fails(r, env, 78, address, "https://", "address", hidden=(ROOT_TOKEN,))


# ==============================================================================================
# 3. Caching
# ==============================================================================================
def test_second_run_is_served_from_the_cache(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    assert reads(fake) == 1
    for ctx in ("background", "setup-test", "interactive", None):
        assert_prints(run(env, context=ctx), env, SECRET)  # no token needed for a hit
    r = run(env, "get", "-p", "llm")
    assert_prints(r, env, SECRET)
    assert reads(fake) == 1
    assert len(kernel_names(env)) == 1  # the secret, in the kernel keyring


def test_rotation_is_seen_after_cache_ttl(env: Env, fake: FakeVault) -> None:
    # Time passes by aging the cached copy (a 2 s cache_ttl and a sleep raced the clock).
    write(env, vault_profile(fake, cache_ttl="10m"))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    fake.put_secret("app", {"api_key": ROTATED})
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    assert reads(fake) == 1
    age_cached_secret(env, 11 * 60)
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, ROTATED, ROOT_TOKEN)
    assert reads(fake) == 2


def test_kv1_lease_duration_caps_cache_ttl(env: Env, fake: FakeVault) -> None:
    fake.enable_kv("kv", version=1, default_lease_ttl=1)
    fake.put_secret("app", {"api_key": SECRET}, mount="kv", kv_version=1)
    write(env, vault_profile(fake, mount="kv", kv_version=1, cache_ttl="15m"))
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    age_cached_secret(env, 60)  # past the 1 s lease, far inside cache_ttl
    assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
    assert reads(fake, "kv/app") == 2


def test_cache_ttl_0_reads_every_run(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake, cache_ttl=0))
    for n in (1, 2, 3):
        assert_prints(run(env, VAULT_TOKEN=ROOT_TOKEN), env, SECRET, ROOT_TOKEN)
        assert reads(fake) == n
    assert kernel_names(env) == []  # nothing stored


def cache_until_due(gk: Env, fake: FakeVault, token: str) -> None:
    """Read the secret with ``token`` into the cache, then age it until it is due for a re-read
    (cache_ttl 10 min), as time passing would."""
    write(gk, vault_profile(fake, cache_ttl="10m"))
    assert_prints(run(gk, VAULT_TOKEN=token), gk, SECRET, token)
    age_cached_secret(gk, 11 * 60)


@pytest.mark.parametrize("outage", ["sealed", "down", "500"])
def test_stale_value_served_with_one_warning_when_vault_is_unreachable(
    env: Env, fake: FakeVault, outage: str
) -> None:
    cache_until_due(env, fake, ROOT_TOKEN)
    if outage == "sealed":
        fake.seal()
    elif outage == "500":
        fake.status_override(500, times=5)
    else:
        fake.stop()
    r = run(env, VAULT_TOKEN=ROOT_TOKEN)
    assert r.code == 0, r.err
    assert r.stdout == SECRET.encode() + b"\n"
    assert r.err.count("\n") == 1, r.err
    assert r.err.startswith("gatekey: "), r.err
    assert "warning" in r.err.lower(), r.err
    assert "cached" in r.err
    assert_no_leak(r, env, ROOT_TOKEN)


@pytest.mark.parametrize("withdrawn", ["deleted", "denied"])
def test_deleted_or_denied_secret_is_never_served_stale(
    env: Env, fake: FakeVault, withdrawn: str
) -> None:
    cache_until_due(env, fake, READ_TOKEN)
    if withdrawn == "deleted":
        fake.delete_secret("app")
    else:
        fake.add_policy("app-read", [])
    r = run(env, VAULT_TOKEN=READ_TOKEN)
    assert_fails(r, env, 3 if withdrawn == "deleted" else 1, KV2_PATH, hidden=(READ_TOKEN,))
    assert reads(fake) == 2


# ==============================================================================================
# 4. The JWT chain: IdP sign-in → Vault JWT login → secret
# ==============================================================================================
@pytest.fixture
def jwt_fake(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[FakeVault]:
    """A fake Vault (its own CA) whose JWT mount trusts the provider's JWKS and issuer; role
    ROLE may read secret/data/app, with 1 h tokens."""
    with fake_vault(tmp_path / "jwt-vault") as v:
        v.enable_jwt(
            jwks_url=oidc_provider.discovery()["jwks_uri"],
            jwks_ca_pem=Path(oidc_provider.ca).read_text(),
            bound_issuer=oidc_provider.issuer,
        )
        v.add_policy("app-read", [KV2_PATH])
        v.add_jwt_role(
            ROLE, bound_audiences=[API_AUDIENCE], token_policies=["app-read"], token_ttl=3600
        )
        v.put_secret("app", {"api_key": SECRET})
        yield v


def jwt_auth(role: str = ROLE, jwt_from: str = "corp") -> str:
    return f'{{ method = "jwt", jwt_from = "{jwt_from}", role = "{role}" }}'


def configure_jwt_chain(
    gk: Env, op: OidcProvider, fake: FakeVault, role: str = ROLE, **keys: str | int
) -> None:
    """conf-client's client credentials (its secret in the environment), and the vault profile
    ``llm`` (more ``keys``) logging in to ``fake`` as ``role`` with the JWT they obtain."""
    gk.vars[CONF_SECRET_ENV] = CONF_CLIENT[1]
    write(gk, oidc_cc_profile(op), vault_profile(fake, auth=jwt_auth(role), **keys))


def idp_tokens(gk: Env) -> list[str]:
    """The JWTs the oidc profile cached (gatekey's file cache holds IdP access tokens)."""
    found = []
    for path in (gk.cache_dir / "tokens").glob("*.json"):
        value = json.loads(path.read_text()).get("token")
        if isinstance(value, str) and JWT.fullmatch(value):
            found.append(value)
    return found


def test_jwt_login_chain_caches_and_renews_the_vault_token(
    env: Env, oidc_provider: OidcProvider, jwt_fake: FakeVault
) -> None:
    configure_jwt_chain(env, oidc_provider, jwt_fake, cache_ttl="10m")
    r = run(env)
    assert_prints(r, env, SECRET)
    [jwt] = idp_tokens(env)
    assert JWT.fullmatch(jwt)
    login, read = jwt_fake.requests
    assert (login.method, login.api_path, login.role, login.status) == (
        "POST",
        "auth/jwt/login",
        ROLE,
        200,
    )
    assert (read.api_path, read.status, read.accessor) == (KV2_PATH, 200, login.accessor)
    [vault_token] = jwt_fake.issued_tokens()
    assert_no_leak(r, env, vault_token, jwt, CONF_CLIENT[1])

    # After cache_ttl the secret is read again with the cached Vault token: no second login.
    age_cached_secret(env, 11 * 60)
    r = run(env, "--debug", "get", "-p", "llm")
    assert r.code == 0, r.err
    assert r.stdout == SECRET.encode() + b"\n"
    assert "debug" in r.err.lower()
    assert_no_leak(r, env, vault_token, jwt, CONF_CLIENT[1])
    assert (logins(jwt_fake), reads(jwt_fake)) == (1, 2)
    assert jwt_fake.requests[-1].accessor == login.accessor

    # Vault revokes the token early: one new login, then the read succeeds.
    jwt_fake.revoke_token(login.accessor)
    r = run(env, "get", "-p", "llm", "--force-refresh")
    assert_prints(r, env, SECRET, vault_token, jwt)
    assert logins(jwt_fake) == 2
    assert [q.status for q in jwt_fake.requests[-3:]] == [403, 200, 200]
    second = jwt_fake.requests[-2]
    assert second.api_path == "auth/jwt/login"

    # The token's lease ends (by Vault's clock): again one new login.
    jwt_fake.advance(3601)
    r = run(env, "--debug", "get", "-p", "llm", "--force-refresh")
    assert r.code == 0, r.err
    assert r.stdout == SECRET.encode() + b"\n"
    assert logins(jwt_fake) == 3
    assert [q.status for q in jwt_fake.requests[-3:]] == [403, 200, 200]
    tokens = jwt_fake.issued_tokens()
    assert len(tokens) == 3
    assert_no_leak(r, env, *tokens, *idp_tokens(env), jwt, CONF_CLIENT[1])
    assert jwt_fake.requests[-1].accessor == jwt_fake.requests[-2].accessor  # the new login's


def test_a_vault_token_leased_for_less_than_the_margin_is_not_reused(
    env: Env, oidc_provider: OidcProvider, jwt_fake: FakeVault
) -> None:
    """A login token is renewed a minute before its lease ends: one leased for 30 s never is."""
    jwt_fake.add_jwt_role(
        "short", bound_audiences=[API_AUDIENCE], token_policies=["app-read"], token_ttl=30
    )
    configure_jwt_chain(env, oidc_provider, jwt_fake, "short", cache_ttl=0)
    before = oidc_provider.token_requests()
    for _ in range(2):
        assert_prints(run(env), env, SECRET)
    assert (logins(jwt_fake), reads(jwt_fake)) == (2, 2)
    assert oidc_provider.token_requests() == before + 1  # the JWT itself was reused


def test_jwt_login_in_a_namespace(
    env: Env, oidc_provider: OidcProvider, jwt_fake: FakeVault
) -> None:
    jwt_fake.enable_jwt(
        jwks_url=oidc_provider.discovery()["jwks_uri"],
        jwks_ca_pem=Path(oidc_provider.ca).read_text(),
        bound_issuer=oidc_provider.issuer,
        namespace="eng",
    )
    jwt_fake.add_policy("app-read", [KV2_PATH], namespace="eng")
    jwt_fake.add_jwt_role(
        ROLE, bound_audiences=[API_AUDIENCE], token_policies=["app-read"], namespace="eng"
    )
    jwt_fake.put_secret("app", {"api_key": ENG_SECRET}, namespace="eng")
    configure_jwt_chain(env, oidc_provider, jwt_fake, namespace="eng")
    r = run(env)
    assert_prints(r, env, ENG_SECRET, *jwt_fake.issued_tokens())
    assert [(q.api_path, q.namespace, q.status) for q in jwt_fake.requests] == [
        ("auth/jwt/login", "eng", 200),
        (KV2_PATH, "eng", 200),
    ]


def test_jwt_login_with_a_wrong_role_exits_1(
    env: Env, oidc_provider: OidcProvider, jwt_fake: FakeVault
) -> None:
    configure_jwt_chain(env, oidc_provider, jwt_fake, "nobody")
    r = run(env)
    assert_fails(r, env, 1, "refused the JWT login", "nobody", hidden=tuple(idp_tokens(env)))
    assert reads(jwt_fake) == 0
    assert jwt_fake.issued_tokens() == []


def test_jwt_rejected_audience_exits_1(
    env: Env, oidc_provider: OidcProvider, jwt_fake: FakeVault
) -> None:
    jwt_fake.add_jwt_role("other-api", bound_audiences=["https://other.example.test"])
    configure_jwt_chain(env, oidc_provider, jwt_fake, "other-api")
    r = run(env)
    assert_fails(r, env, 1, "refused the JWT login", "aud", hidden=tuple(idp_tokens(env)))


def test_jwt_from_a_non_idp_profile_is_a_config_error(env: Env, jwt_fake: FakeVault) -> None:
    write(
        env,
        '[profiles.static]\nsource = "keychain"\n\n',
        vault_profile(jwt_fake, auth=jwt_auth(jwt_from="static")),
    )
    r = run(env)
    assert_fails(r, env, 78, "jwt_from", "static", '"llm"')
    assert jwt_fake.requests == []


def test_jwt_from_a_missing_profile_is_a_config_error(env: Env, jwt_fake: FakeVault) -> None:
    write(env, vault_profile(jwt_fake, auth=jwt_auth(jwt_from="ghost")))
    r = run(env)
    assert_fails(r, env, 78, "ghost")
    assert jwt_fake.requests == []


def test_jwt_from_a_profile_not_signed_in_exits_4(
    env: Env, oidc_provider: OidcProvider, jwt_fake: FakeVault
) -> None:
    user = (
        f'[profiles.person]\nsource = "oidc"\nissuer = "{oidc_provider.issuer}"\n'
        f'client_id = "{PUBLIC_CLIENT}"\nscopes = ["api.read"]\nflow = "device-code"\n'
        f'ca_bundle = "{oidc_provider.ca}"\ntoken_cache = "file"\nmin_ttl = "10m"\n\n'
    )
    write(env, user, vault_profile(jwt_fake, auth=jwt_auth(jwt_from="person")))
    for ctx in ("background", "mid-session-refresh"):
        r = run(env, context=ctx)
        assert_fails(r, env, 4, "gatekey login -p person")
    assert jwt_fake.requests == []


# ==============================================================================================
# 5. AppRole
# ==============================================================================================
def approle(role_id: str | None = ROLE_ID) -> str:
    """auth for AppRole ``role_id``, the secret_id from $LLM_SECRET_ID."""
    role = f'role_id = "{role_id}", ' if role_id else ""
    return f'{{ method = "approle", {role}secret_id = {{ env = "LLM_SECRET_ID" }} }}'


def test_approle_login_with_secret_id_from_the_environment(env: Env, fake: FakeVault) -> None:
    fake.add_approle(ROLE_ID, SECRET_ID, ["app-read"], token_ttl=3600, role_name="llm")
    write(env, vault_profile(fake, auth=approle(), cache_ttl="10m"))
    r = run(env, LLM_SECRET_ID=SECRET_ID)
    assert_prints(r, env, SECRET, *fake.issued_tokens())
    login = fake.requests[0]
    assert (login.api_path, login.role, login.status) == ("auth/approle/login", "llm", 200)
    assert fake.requests[1].accessor == login.accessor
    # the login token is cached: after cache_ttl, a read without a login (nor the secret_id)
    age_cached_secret(env, 11 * 60)
    r = run(env, "--debug", "get", "-p", "llm")
    assert r.code == 0, r.err
    assert r.stdout == SECRET.encode() + b"\n"
    assert_no_leak(r, env, *fake.issued_tokens())
    assert (logins(fake, "approle"), reads(fake)) == (1, 2)


def test_approle_wrong_secret_id_exits_1(env: Env, fake: FakeVault) -> None:
    fake.add_approle(ROLE_ID, SECRET_ID, ["app-read"])
    write(env, vault_profile(fake, auth=approle()))
    wrong = _value("sid-")
    r = run(env, LLM_SECRET_ID=wrong)
    assert_fails(r, env, 1, "refused the AppRole login", hidden=(wrong,))
    assert fake.issued_tokens() == [ROOT_TOKEN, READ_TOKEN]


def test_approle_without_role_id_is_a_config_error(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake, auth=approle(role_id=None)))
    r = run(env, LLM_SECRET_ID=SECRET_ID)
    assert_fails(r, env, 78, "auth.role_id", '"llm"')
    assert fake.requests == []


# ==============================================================================================
# 6. Vault tokens and secret_ids never on a command line
# ==============================================================================================
def test_literal_tokens_in_the_config_are_refused(env: Env, fake: FakeVault) -> None:
    write(env, vault_profile(fake, auth=f'{{ method = "token", token = "{READ_TOKEN}" }}'))
    r = run(env)
    assert_fails(r, env, 78, "auth", hidden=(READ_TOKEN,))
    assert fake.requests == []


def test_no_process_carries_the_secret_id_or_vault_token_in_argv(env: Env, fake: FakeVault) -> None:
    """gatekey reads the secret_id and the Vault token from its environment / config references
    and spawns nothing for vault: while it waits on Vault (hung), no process of this machine
    has either in its argv, and gatekey has no child process."""
    fake.add_approle(ROLE_ID, SECRET_ID, ["app-read"])
    fake.hang = True
    write(env, vault_profile(fake, auth=approle()), timeouts='silent = "10s"')
    proc = subprocess.Popen(
        [exe("gatekey-vault")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **env.vars,
            "CLAUDE_HELPER_CONTEXT": "background",
            "LLM_SECRET_ID": SECRET_ID,
            "VAULT_TOKEN": ROOT_TOKEN,
        },
        cwd=env.root,
    )
    try:
        # gatekey logs in long before its deadline (silent = "10s", the documented one)
        deadline = time.monotonic() + deadline_of("background")
        while logins(fake, "approle") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logins(fake, "approle") == 1, "gatekey never reached the login"
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children == []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes()
            except OSError:
                continue
            assert SECRET_ID.encode() not in argv, cmdline
            assert ROOT_TOKEN.encode() not in argv, cmdline
    finally:
        proc.kill()  # the hung run is of no further interest (test_a_hung_vault... covers it)
        out, err = proc.communicate()
    assert out == b""
    assert SECRET_ID.encode() not in err
