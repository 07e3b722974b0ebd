"""Black-box tests of the aws-secrets-manager source against a real Secrets Manager API (moto's
server behind the counting proxy of support/moto_peer.py).

The installed executables run as the app runs them: a subprocess, stdin closed, a private HOME,
config and cache, CLAUDE_HELPER_CONTEXT set. What is asserted is what the app and an admin see:
stdout bytes, the exit code, stderr lines, how many GetSecretValue requests reached the server,
and that the secret is never on stderr (also with --debug) nor in any file gatekey writes.

The cached secret lives in the kernel keyring (there is no D-Bus here, so no OS keychain): where
a test needs a cached copy to be older than it is, ``age_cached_secret`` rewrites that kernel
entry's timestamps, as time passing would (also for cache_ttl rotation: a 2 s cache_ttl and a real
sleep made the runs meant to fall inside it race the clock on a busy machine).
Every test's kernel entries are dropped when the module ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blackbox_env import Env, Result
from deadlines import HANG_S, asks_allowed, deadline_of, ends_by
from moto_peer import MotoServer, moto_server
from rounds import rounds
from vault_cases import (
    age_cached_secret,
    assert_fails,
    assert_no_leak_of,
    assert_prints,
    cached_secrets_forgotten_at_end,
    run_app,
    run_get,
    write_llm_profile,
)

pytestmark = pytest.mark.blackbox

SECRET_ID = "prod/gateway/team-ml"
SECRET = "sk-AWS-9f8e7d6c5b4a3210"
ROTATED = "sk-AWS-NEW-77aa66bb55cc"
USERNAME = "svc-Mlusr-Q4Zx"  # a non-secret value beside the key in a JSON secret
ALL_VALUES = (SECRET, ROTATED, USERNAME)
# Every context in which a fresh cached copy may be printed without asking AWS (None:
# CLAUDE_HELPER_CONTEXT unset, and no TTY; the last: a value newer apps may send). For
# mid-session-refresh, which may only reuse a copy obtained in the last minute, see below.
CACHE_CONTEXTS = (
    "interactive",
    "scheduled-task",
    "setup-test",
    "background",
    None,
    "some-future-value",
)


# --- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def _remember_for_cleanup() -> Iterator[Callable[[Env], None]]:
    """Remembers this module's tests' environments; their cached secrets are dropped at the end."""
    with cached_secrets_forgotten_at_end() as remember:
        yield remember


@pytest.fixture(autouse=True)
def _forget_cached_secrets(gk: Env, _remember_for_cleanup: Callable[[Env], None]) -> Iterator[None]:
    yield
    _remember_for_cleanup(gk)


@pytest.fixture
def moto(moto_module: MotoServer, gk: Env) -> MotoServer:
    """The shared server, emptied, with gk's environment pointed at it."""
    moto_module.reset()
    gk.vars.update(moto_module.env())
    return moto_module


def configure(
    gk: Env, extra: str = "", *, silent: str | None = None, secret_id: str = SECRET_ID
) -> None:
    write_llm_profile(
        gk,
        'source = "aws-secrets-manager"',
        f'secret_id = "{secret_id}"',
        extra=extra,
        silent=silent,
    )


def assert_no_leak(gk: Env, *results: Result) -> None:
    """No secret on any run's stderr, nor in any file gatekey (or anything else) left in the
    test's HOME, runtime directory or cache directory."""
    assert_no_leak_of(ALL_VALUES, gk, *results)


# --- values -----------------------------------------------------------------------------------
def test_plain_secret_is_printed_byte_exact(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)
    first = run_app(gk)
    assert_prints(first, SECRET)
    assert moto.get_secret_value_calls(SECRET_ID) == 1
    again = [run_app(gk), run_get(gk), gk.run("--debug", "get", context="background")]
    for result in again:
        assert result.code == 0, result.err
        assert result.stdout == (SECRET + "\n").encode()
    assert again[0].err == again[1].err == ""
    assert moto.get_secret_value_calls(SECRET_ID) == 1  # all three from the cache
    fetched = gk.run("--debug", "get", "--force-refresh", context="background")
    assert fetched.stdout == (SECRET + "\n").encode()
    assert "printing a new token from the aws-secrets-manager source" in fetched.err
    assert moto.get_secret_value_calls(SECRET_ID) == 2
    assert_no_leak(gk, first, *again, fetched)
    assert list(gk.cache_dir.glob("tokens/*")) == []  # a vault secret never goes to a file


def test_json_secret_with_json_key(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, {"username": USERNAME, "api_key": SECRET})
    configure(gk, 'json_key = "api_key"')
    first = run_app(gk)
    assert_prints(first, SECRET)
    debug = gk.run("--debug", "get", "--force-refresh", context="interactive")
    assert debug.stdout == (SECRET + "\n").encode()
    assert_no_leak(gk, first, debug)


def test_missing_json_key_is_a_config_error_listing_keys_not_values(
    moto: MotoServer, gk: Env
) -> None:
    moto.create_secret(SECRET_ID, {"username": USERNAME, "api_key": SECRET})
    configure(gk, 'json_key = "token"')
    err = assert_fails(run_app(gk), 78)
    assert str(gk.config_path) in err
    assert 'profile "llm"' in err
    assert 'key "json_key"' in err
    assert "'token'" in err
    assert "api_key" in err
    assert "username" in err
    debug = gk.run("--debug", "get", context="background")
    assert debug.code == 78
    assert debug.stdout == b""
    assert_no_leak(gk, debug)


def test_a_secret_that_is_not_json_with_json_key_is_a_config_error(
    moto: MotoServer, gk: Env
) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk, 'json_key = "api_key"')
    err = assert_fails(run_app(gk), 78)
    assert 'key "json_key"' in err
    assert "not JSON" in err
    assert SECRET not in err


# --- caching ----------------------------------------------------------------------------------
def test_rotation_shows_after_cache_ttl(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk, 'cache_ttl = "10m"')
    assert_prints(run_app(gk), SECRET)
    moto.put_value(SECRET_ID, ROTATED)  # AWSCURRENT moves to the new version
    assert_prints(run_app(gk), SECRET)  # the cached copy, within cache_ttl
    assert_prints(run_get(gk), SECRET)
    assert moto.get_secret_value_calls() == 1
    age_cached_secret(gk, 11 * 60)
    assert_prints(run_app(gk), ROTATED)
    assert moto.get_secret_value_calls() == 2
    assert_prints(run_app(gk), ROTATED)  # and the new copy is cached again
    assert_prints(run_get(gk), ROTATED)
    assert moto.get_secret_value_calls() == 2


def test_a_cache_hit_does_not_call_aws_in_any_context_that_may_use_it(
    moto: MotoServer, gk: Env
) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)
    assert_prints(run_app(gk, context="setup-test"), SECRET)  # the first run fetches
    assert moto.get_secret_value_calls() == 1
    runs = []
    for context in CACHE_CONTEXTS:
        runs += [run_app(gk, context=context), run_get(gk, context=context)]
        for result in runs[-2:]:
            assert_prints(result, SECRET)
        assert moto.get_secret_value_calls() == 1, context or "unset"
    assert_no_leak(gk, *runs)


def test_mid_session_refresh_reads_through_a_copy_older_than_a_minute(
    moto: MotoServer, gk: Env
) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)  # cache_ttl: the default 15 minutes
    assert_prints(run_app(gk), SECRET)
    # A copy obtained moments ago (another run refreshed just now) is reused even here.
    assert_prints(run_app(gk, context="mid-session-refresh"), SECRET)
    assert_prints(run_get(gk, context="mid-session-refresh"), SECRET)
    assert moto.get_secret_value_calls() == 1
    moto.put_value(SECRET_ID, ROTATED)
    age_cached_secret(gk, 120)  # obtained two minutes ago: still fresh for cache_ttl
    assert_prints(run_app(gk, context="background"), SECRET)
    assert moto.get_secret_value_calls() == 1
    # The app just had the key rejected: read through to AWS.
    assert_prints(run_app(gk, context="mid-session-refresh"), ROTATED)
    assert moto.get_secret_value_calls() == 2
    # ... and now the copy is moments old, so the app's other callers reuse it.
    assert_prints(run_get(gk, context="mid-session-refresh"), ROTATED)
    assert_prints(run_app(gk, context="background"), ROTATED)
    assert moto.get_secret_value_calls() == 2
    age_cached_secret(gk, 120)
    assert_prints(run_get(gk, context="mid-session-refresh"), ROTATED)
    assert moto.get_secret_value_calls() == 3
    # --force-refresh reads through whatever the age.
    assert_prints(run_get(gk, "--force-refresh"), ROTATED)
    assert moto.get_secret_value_calls() == 4


def test_cache_ttl_zero_reads_through_on_every_run(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk, "cache_ttl = 0")
    runs = [run_app(gk), run_app(gk), run_get(gk, context="interactive")]
    for result in runs:
        assert_prints(result, SECRET)
    assert moto.get_secret_value_calls() == 3
    moto.put_value(SECRET_ID, ROTATED)
    assert_prints(run_app(gk), ROTATED)
    assert moto.get_secret_value_calls() == 4
    assert_no_leak(gk, *runs)


# --- failures at the source -------------------------------------------------------------------
def test_missing_secret_exits_3(moto: MotoServer, gk: Env) -> None:
    configure(gk)
    err = assert_fails(run_app(gk), 3)
    assert SECRET_ID in err
    assert moto.get_secret_value_calls() == 1


def test_access_denied_exits_1_naming_the_permission(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)
    denied = moto.user_without_access()
    err = assert_fails(run_app(gk, **denied), 1)
    assert "secretsmanager:GetSecretValue" in err
    assert SECRET_ID in err
    debug = gk.run("--debug", "get", "--force-refresh", context="background", **denied)
    assert debug.code == 1
    assert debug.stdout == b""
    assert_no_leak(gk, debug)


def _cache_then_withdraw(moto: MotoServer, gk: Env, how: str) -> dict[str, str]:
    """Cache the secret, then delete it or take the caller's access away (``how``), and let the
    cached copy fall due; the environment to run with."""
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)
    assert_prints(run_app(gk), SECRET)
    if how == "deleted":
        moto.delete_secret(SECRET_ID)
        env = {}
    else:
        env = moto.user_without_access()
    age_cached_secret(gk, 16 * 60)  # past cache_ttl, well within max_stale
    return env


WITHDRAWN = [("deleted", 3), ("denied", 1)]


@pytest.mark.parametrize(("how", "code"), WITHDRAWN)
def test_a_withdrawn_secret_is_not_served_from_the_cache(
    moto: MotoServer, gk: Env, how: str, code: int
) -> None:
    env = _cache_then_withdraw(moto, gk, how)
    assert_fails(run_app(gk, **env), code)


@pytest.mark.parametrize(("how", "code"), WITHDRAWN)
def test_a_withdrawn_secret_stays_withdrawn_on_the_next_runs(
    moto: MotoServer, gk: Env, how: str, code: int
) -> None:
    env = _cache_then_withdraw(moto, gk, how)
    assert_fails(run_app(gk, **env), code)
    # The app's next caller, moments later (inside the failure's backoff).
    assert_fails(run_app(gk, context="background", **env), code)


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "InternalServiceError"), (503, "ServiceUnavailable"), (400, "ThrottlingException")],
)
def test_5xx_and_throttling_exit_75_after_one_attempt(
    moto: MotoServer, gk: Env, status: int, code: str
) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)
    moto.inject(status=status, code=code, times=5)
    err = assert_fails(run_app(gk), 75)
    assert code in err
    assert moto.get_secret_value_calls() == 1  # no SDK retries: one attempt per run


def test_a_server_that_does_not_answer_is_75_within_the_deadline(gk: Env, tmp_path: Path) -> None:
    # A server of its own, so that the delayed request is not counted in another test.
    with moto_server(tmp_path / "slow") as server:
        server.create_secret(SECRET_ID, SECRET)
        gk.vars.update(server.env())
        configure(gk, silent="2s")
        server.inject(delay=HANG_S, times=5)  # answers long after ends_by(2 s)
        result = run_app(gk)
        err = assert_fails(result, 75)
        assert result.elapsed < ends_by(2), result.elapsed
        assert "time limit" in err
        # One request reached the server (and is still held there): no SDK retry.
        assert server.arrivals("GetSecretValue") == 1


def test_server_down_nothing_cached_is_75(gk: Env, tmp_path: Path) -> None:
    with moto_server(tmp_path / "down") as server:
        server.create_secret(SECRET_ID, SECRET)
        gk.vars.update(server.env())
    configure(gk)  # the documented deadlines: the refusal ends the run, not a deadline
    for context in ("scheduled-task", "interactive"):
        result = run_app(gk, context=context)
        err = assert_fails(result, 75)
        assert result.elapsed < deadline_of("scheduled-task"), result.elapsed  # it did not wait
        assert "AWS Secrets Manager" in err


def test_server_down_serves_the_cached_copy_with_one_warning_until_max_stale(
    gk: Env, tmp_path: Path
) -> None:
    with moto_server(tmp_path / "down") as server:
        server.create_secret(SECRET_ID, SECRET)
        gk.vars.update(server.env())
        configure(gk)  # cache_ttl 15 minutes, max_stale 24 hours: the defaults
        assert_prints(run_app(gk), SECRET)
    age_cached_secret(gk, 16 * 60)  # due to be read again
    stale = run_app(gk)
    assert_prints(stale, SECRET, warnings=1)
    assert "could not refresh" in stale.err
    assert "cannot reach AWS Secrets Manager" in stale.err
    runs = [
        stale,
        run_get(gk),
        run_app(gk, context="interactive"),
        gk.run("--debug", "get", context="setup-test"),
    ]
    for result in runs[1:3]:
        assert_prints(result, SECRET, warnings=1)
    assert runs[3].code == 0, runs[3].err
    assert runs[3].stdout == (SECRET + "\n").encode()
    assert_no_leak(gk, *runs)
    # Past max_stale the copy is no longer served: the outage is reported.
    age_cached_secret(gk, 24 * 3600)
    assert_fails(run_app(gk, context="interactive"), 75)


def test_an_outage_is_not_asked_again_by_every_caller(moto: MotoServer, gk: Env) -> None:
    """Runs in a row during an outage: the negative cache spares the server."""
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk)
    moto.inject(status=503, times=1000)
    # 50 in benchmarks/figures.py; CI's 12 catch a negative cache that forgets (12 requests, or
    # more than one per 5 s backoff step), as tests/reliability/test_source_faults.py explains.
    runs = rounds("GATEKEY_OUTAGE_RUNS", ci=12)
    t0 = time.monotonic()
    results = [run_app(gk, context="background") for _ in range(runs)]
    elapsed = time.monotonic() - t0
    calls = moto.get_secret_value_calls()
    print(f"\n{runs} runs during an outage in {elapsed:.1f} s: {calls} GetSecretValue requests")
    for result in results:
        assert_fails(result, 75)
    assert "not asking again until" in results[-1].err
    assert "--force-refresh" in results[-1].err
    assert 1 <= calls <= asks_allowed(elapsed), calls  # one per backoff step (5 s, 10 s…)
    # A person retries at once.
    assert_fails(run_app(gk, context="interactive"), 75)
    assert_fails(run_get(gk, "--force-refresh"), 75)
    assert moto.get_secret_value_calls() == calls + 2


# --- region and profile -----------------------------------------------------------------------
def _aws_files(gk: Env, config: str, credentials: str = "") -> dict[str, str]:
    """An AWS config of the test's own (no region, no keys in the environment)."""
    aws = gk.root / "aws"
    aws.mkdir(exist_ok=True)
    (aws / "config").write_text(config)
    (aws / "credentials").write_text(credentials)
    env = dict(gk.vars, AWS_CONFIG_FILE=str(aws / "config"))
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(aws / "credentials")
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        env.pop(name, None)
    return env


def test_region_key_chooses_the_region(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)  # in us-east-1
    gk.vars = _aws_files(gk, "[default]\n")
    configure(gk)
    err = assert_fails(run_app(gk), 78)
    assert 'key "region"' in err
    configure(gk, 'region = "eu-west-1"')
    assert_fails(run_app(gk), 3)
    configure(gk, 'region = "us-east-1"')
    assert_prints(run_app(gk), SECRET)


def test_profile_key_uses_that_aws_profile(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    key_id, secret_key = gk.vars["AWS_ACCESS_KEY_ID"], gk.vars["AWS_SECRET_ACCESS_KEY"]
    env = _aws_files(
        gk,
        "[default]\nregion = eu-west-1\n\n[profile ml-dev]\nregion = us-east-1\n",
        f"[ml-dev]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret_key}\n",
    )
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    gk.vars = env
    configure(gk, 'profile = "ml-dev"')
    assert_prints(run_app(gk), SECRET)
    assert [s.access_key_id for s in moto.seen if s.action == "GetSecretValue"] == [key_id]


def test_an_aws_profile_that_does_not_exist_is_a_config_error(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    configure(gk, 'profile = "no-such-profile"')
    err = assert_fails(run_app(gk), 78)
    assert 'key "profile"' in err
    assert "no-such-profile" in err
    assert str(gk.config_path) in err
    assert moto.get_secret_value_calls() == 0


def test_no_credentials_at_all_asks_for_a_sign_in(moto: MotoServer, gk: Env) -> None:
    moto.create_secret(SECRET_ID, SECRET)
    del gk.vars["AWS_ACCESS_KEY_ID"], gk.vars["AWS_SECRET_ACCESS_KEY"]
    configure(gk)
    err = assert_fails(run_app(gk), 4)
    assert "aws sso login" in err
    assert moto.get_secret_value_calls() == 0
