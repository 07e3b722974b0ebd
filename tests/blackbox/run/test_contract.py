"""Black-box tests of the installed executables, run the way Claude Desktop runs them.

No argument (unless a test is about the CLI), stdin closed, CLAUDE_HELPER_CONTEXT set (or not),
a private config and cache. Every assertion is on what the app sees: stdout bytes, the exit code,
stderr lines, and how often the token source was asked (the counting source's $COUNT_FILE).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blackbox_env import CONTEXTS, SILENT_CONTEXTS, SUPPORT, Env, Result, exe
from deadlines import EARLY_S, HANG_S, deadline_of, ends_by
from hit_modules import imported
from peers import alive

pytestmark = pytest.mark.blackbox

NOISY_SOURCE = SUPPORT / "noisy_source.py"
ALL_CONTEXTS = (*CONTEXTS, None)  # None: CLAUDE_HELPER_CONTEXT unset (and no TTY: silent)
SECRET = "gkS3cr3tV4lue-0123456789abcdef"
# For runs that wait out their deadline (a source that hangs): 1 s in every context. A run that
# must finish some work keeps the documented deadlines (no [timeouts]): see hanging_source_fails.
FAST_S = 1.0
FAST_TIMEOUTS = '[timeouts]\nsilent = "1s"\nmid_session_refresh = "1s"\ninteractive = "1s"\n'
STOP_S = 2.0
STOP_TIMEOUTS = '[timeouts]\nsilent = "2s"\nmid_session_refresh = "2s"\ninteractive = "2s"\n'
HANG = f"{HANG_S:g}"  # SLEEP for the counting source: far past any deadline here


def ctx_id(ctx: str | None) -> str:
    return ctx or "unset"


# --- helpers: the cache entry, profiles, processes -----------------------------------------------
def entry_path(gk: Env) -> Path:
    return gk.entry_path()


def read_entry(gk: Env) -> dict:
    return json.loads(gk.entry_path().read_text())


def edit_entry(gk: Env, **fields: float) -> None:
    gk.edit_entry(**fields)


def forget_failures(gk: Env) -> None:
    gk.forget_failures()


def make_stale(gk: Env) -> None:
    """Remaining lifetime below min_ttl (3900 s) but well above the expiry margin; not recent."""
    now = time.time()
    edit_entry(gk, expires_at=now + 1000, obtained_at=now - 6200)


def make_expired(gk: Env, remaining: float = -10) -> None:
    now = time.time()
    edit_entry(gk, expires_at=now + remaining, obtained_at=now - 7200)


def noisy_profile(name: str = "noisy", extra: str = "") -> str:
    return (
        f'[profiles.{name}]\nsource = "command"\n'
        f'command = ["{sys.executable}", "{NOISY_SOURCE}"]\n'
        'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
        f"allow_insecure_cache = true\n{extra}\n"
    )


def echo_profile(name: str, token: str, extra: str = "") -> str:
    """A command profile whose source prints a fixed token (raw), valid for two hours."""
    return (
        f'[profiles.{name}]\nsource = "command"\n'
        f'command = ["{sys.executable}", "-c", "print(\'{token}\')"]\n'
        f'cache_ttl = "2h"\n{extra}\n'
    )


def lines(result: Result) -> list[str]:
    return result.err.splitlines()


def assert_ok(result: Result, payload: bytes, *, quiet: bool = True) -> None:
    assert result.code == 0, f"exit {result.code}; stderr: {result.err}"
    assert result.stdout == payload
    if quiet:
        assert result.stderr == b"", result.err
    assert "Traceback" not in result.err


def assert_failure(result: Result, code: int, *, debug: bool = False) -> None:
    """A failure per the contract: the code, empty stdout, and the last stderr line the error.

    Lines before it may be the source's own stderr relayed as warnings (all prefixed), and with
    debug logging on, debug lines and a traceback.
    """
    assert result.code == code, f"exit {result.code}, expected {code}; stderr: {result.err}"
    assert result.stdout == b"", result.stdout
    assert result.err.endswith("\n"), result.err
    if not debug:
        assert "Traceback" not in result.err, result.err
        assert all(line.startswith("gatekey: ") for line in lines(result)), result.err
    assert lines(result)[-1].startswith("gatekey: "), result.err
    assert not lines(result)[-1].startswith("gatekey: warning:"), result.err


def source_pids(gk: Env) -> list[int]:
    path = Path(gk.vars["COUNT_FILE"])
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def hanging_source_fails(gk: Env, **extra: str) -> Result:
    """A background run whose source hangs: it ends at its deadline (FAST_TIMEOUTS), exit 75,
    and the failure is remembered. Then the config keeps the documented deadlines: the runs
    after it report the remembered failure or fetch, and are not to race a 1 s deadline on a
    busy machine (a run that wrongly asked the hanging source would wait out 10 s and fail)."""
    gk.write_config(FAST_TIMEOUTS + gk.counting_profile())
    first = gk.run(context="background", SLEEP=HANG, **extra)
    gk.write_config(gk.counting_profile())
    return first


# The source gets SIGTERM, then SIGKILL, at gatekey's deadline; it would sleep on for HANG_S.
# Polling up to a documented silent deadline for it to be gone tells the two apart on any machine.
def assert_gone(pids: list[int], within: float = deadline_of("background")) -> None:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)], "the source process outlived gatekey's deadline"


# --- contexts and the cache ----------------------------------------------------------------------
@pytest.mark.parametrize("fastpath", [True, False], ids=["cache-hit", "no-fastpath"])
@pytest.mark.parametrize("ctx", ALL_CONTEXTS, ids=ctx_id)
def test_cached_token_is_printed_byte_exact_in_every_context(gk, ctx, fastpath):
    gk.write_config(gk.counting_profile())
    env = {} if fastpath else {"GATEKEY_NO_FASTPATH": "1"}
    for _ in range(4):
        assert_ok(gk.run(context=ctx, **env), b"tok-1\n")
    assert gk.count() == 1, "a fresh cached token must not be fetched again"

    # Obtained 45 s ago: every context reuses it, mid-session-refresh included (< 60 s).
    edit_entry(gk, obtained_at=time.time() - 45)
    assert_ok(gk.run(context=ctx, **env), b"tok-1\n")
    assert gk.count() == 1

    # Obtained 2 min ago, still far from expiry: only mid-session-refresh asks again.
    edit_entry(gk, obtained_at=time.time() - 120)
    if ctx == "mid-session-refresh":
        assert_ok(gk.run(context=ctx, **env), b"tok-2\n")
        assert gk.count() == 2
        assert_ok(gk.run(context=ctx, **env), b"tok-2\n")  # the new one is < 60 s old
        assert gk.count() == 2
        assert read_entry(gk)["token"] == "tok-2"
    else:
        assert_ok(gk.run(context=ctx, **env), b"tok-1\n")
        assert gk.count() == 1


@pytest.mark.parametrize("raw", [" MID-SESSION-REFRESH ", "Mid-Session-Refresh"])
def test_context_value_is_normalised(gk, raw):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(context="background"), b"tok-1\n")
    edit_entry(gk, obtained_at=time.time() - 120)
    assert_ok(gk.run(context=raw), b"tok-2\n")
    assert gk.count() == 2


def test_unknown_context_is_silent_and_uses_the_cache(gk):
    gk.write_config(gk.counting_profile())
    for _ in range(3):
        assert_ok(gk.run(context="some-future-context"), b"tok-1\n")
    assert gk.count() == 1


def test_cache_survives_a_profile_edit_that_changes_only_presentation(gk):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    gk.write_config(gk.counting_profile(extra='output = "json"\nheaders = { X-A = "1" }'))
    assert_ok(gk.run(), b'{"token": "tok-1", "headers": {"X-A": "1"}}\n')
    assert_ok(gk.run(), b'{"token": "tok-1", "headers": {"X-A": "1"}}\n')  # cache hit again
    assert gk.count() == 1


# --- output formats ------------------------------------------------------------------------------
HEADERS_TOML = 'headers = { X-Org-Route = "prod", x-portkey-metadata = \'{"_user":"alice"}\' }'
HEADERS_JSON = '{"X-Org-Route": "prod", "x-portkey-metadata": "{\\"_user\\":\\"alice\\"}"}'
ENV_HEADERS = (
    'export ANTHROPIC_CUSTOM_HEADERS=\'X-Org-Route: prod\nx-portkey-metadata: {"_user":"alice"}\'\n'
)


@pytest.mark.parametrize(
    ("scheme", "fmt", "expected"),
    [
        ("bearer", "token", "tok-1\n"),
        ("x-api-key", "token", "tok-1\n"),
        ("bearer", "json", f'{{"token": "tok-1", "headers": {HEADERS_JSON}}}\n'),
        ("x-api-key", "json", f'{{"token": "tok-1", "headers": {HEADERS_JSON}}}\n'),
        ("bearer", "header", "Authorization: Bearer tok-1\n"),
        ("x-api-key", "header", "x-api-key: tok-1\n"),
        ("bearer", "env", "export ANTHROPIC_AUTH_TOKEN=tok-1\n" + ENV_HEADERS),
        ("x-api-key", "env", "export ANTHROPIC_API_KEY=tok-1\n" + ENV_HEADERS),
    ],
)
def test_get_format_exact_bytes(gk, scheme, fmt, expected):
    gk.write_config(gk.counting_profile(extra=f'auth_scheme = "{scheme}"\n{HEADERS_TOML}'))
    for _ in range(2):  # fetched, then from the cache
        assert_ok(gk.run("get", "--format", fmt, context="background"), expected.encode())
    assert gk.count() == 1


def test_json_output_of_a_no_argument_run(gk):
    gk.write_config(gk.counting_profile(extra=f'output = "json"\n{HEADERS_TOML}'))
    expected = f'{{"token": "tok-1", "headers": {HEADERS_JSON}}}\n'.encode()
    for _ in range(3):  # full path, then cache hits
        result = gk.run(context="scheduled-task")
        assert_ok(result, expected)
        assert json.loads(result.stdout) == {
            "token": "tok-1",
            "headers": {"X-Org-Route": "prod", "x-portkey-metadata": '{"_user":"alice"}'},
        }
    assert gk.count() == 1


def test_json_output_without_headers(gk):
    gk.write_config(gk.counting_profile(extra='output = "json"'))
    for _ in range(2):
        assert_ok(gk.run(), b'{"token": "tok-1", "headers": {}}\n')


def test_env_format_quotes_the_token_for_the_shell(gk):
    token = "tok'$(id)`x`\"$HOME;rm${IFS}-rf"  # no whitespace: gatekey refuses it in tokens
    gk.write_config(gk.counting_profile())
    result = gk.run("get", "--format", "env", TOKEN=token)
    assert result.code == 0, result.err
    assert result.stdout.startswith(b"export ANTHROPIC_AUTH_TOKEN=")
    shell = subprocess.run(
        ["bash", "-c", 'eval "$(cat)"; printf %s "$ANTHROPIC_AUTH_TOKEN"'],
        input=result.stdout,
        capture_output=True,
        check=True,
    )
    assert shell.stdout.decode() == token


# --- profile selection ---------------------------------------------------------------------------
TWO_PROFILES = echo_profile("alpha", "tok-alpha") + echo_profile("beta", "tok-beta")


def test_gatekey_profile_env_selects(gk):
    gk.write_config(TWO_PROFILES)
    for _ in range(2):
        assert_ok(gk.run(GATEKEY_PROFILE="beta"), b"tok-beta\n")
        assert_ok(gk.run(GATEKEY_PROFILE="alpha"), b"tok-alpha\n")


def test_default_profile_selects_and_env_overrides_it(gk):
    gk.write_config('default_profile = "beta"\n' + TWO_PROFILES)
    for _ in range(2):
        assert_ok(gk.run(), b"tok-beta\n")
        assert_ok(gk.run(GATEKEY_PROFILE="alpha"), b"tok-alpha\n")


def test_the_only_profile_is_used(gk):
    gk.write_config(echo_profile("solo", "tok-solo"))
    for _ in range(2):
        assert_ok(gk.run(), b"tok-solo\n")


def test_editing_default_profile_is_seen_by_the_next_run(gk):
    gk.write_config('default_profile = "alpha"\n' + TWO_PROFILES)
    assert_ok(gk.run(), b"tok-alpha\n")
    assert_ok(gk.run(), b"tok-alpha\n")
    gk.write_config('default_profile = "beta"  # changed\n' + TWO_PROFILES)
    assert_ok(gk.run(), b"tok-beta\n")


def test_several_profiles_without_a_default_is_a_config_error_listing_them(gk):
    gk.write_config(TWO_PROFILES)
    result = gk.run()
    result.assert_clean_failure(78)
    assert len(lines(result)) == 1
    assert "alpha" in result.err
    assert "beta" in result.err
    assert "default_profile" in result.err


def test_unknown_profile_lists_the_profiles(gk):
    gk.write_config(TWO_PROFILES)
    result = gk.run(GATEKEY_PROFILE="gamma")
    result.assert_clean_failure(78)
    assert "gamma" in result.err
    assert "alpha, beta" in result.err


def test_default_profile_naming_a_missing_profile(gk):
    gk.write_config('default_profile = "gamma"\n' + TWO_PROFILES)
    result = gk.run()
    result.assert_clean_failure(78)
    assert "gamma" in result.err
    assert "alpha, beta" in result.err


@pytest.mark.parametrize("with_config", [False, True], ids=["no-config", "command-config"])
def test_gatekey_idp_without_an_idp_profile_is_a_config_error(gk, with_config):
    if with_config:
        gk.write_config(gk.counting_profile())
    for args in ((), ("get",)):
        result = gk.run(*args, exe_name="gatekey-idp")
        result.assert_clean_failure(78)
        assert len(lines(result)) == 1
        assert "no identity-provider (Entra ID, OIDC) profiles are configured" in result.err
    assert gk.count() == 0


KEYCHAIN_AND_COMMAND = '[profiles.kc]\nsource = "keychain"\n\n' + echo_profile("cmd", "tok-cmd")


def test_gatekey_vault_serves_the_command_profile(gk):
    gk.write_config(KEYCHAIN_AND_COMMAND)
    for _ in range(2):
        assert_ok(gk.run(exe_name="gatekey-vault"), b"tok-cmd\n")
    # plain gatekey cannot choose between the two
    gk.run().assert_clean_failure(78)


def test_gatekey_vault_skips_a_default_profile_of_another_family(gk):
    gk.write_config('default_profile = "kc"\n' + KEYCHAIN_AND_COMMAND)
    assert_ok(gk.run(exe_name="gatekey-vault"), b"tok-cmd\n")


def test_gatekey_vault_refuses_a_keychain_profile(gk):
    gk.write_config(KEYCHAIN_AND_COMMAND)
    result = gk.run(exe_name="gatekey-vault", GATEKEY_PROFILE="kc")
    result.assert_clean_failure(78)
    assert "gatekey -p kc" in result.err


def test_gatekey_keychain_refuses_a_command_profile(gk):
    gk.write_config(KEYCHAIN_AND_COMMAND)
    # Warm the cache hit for plain gatekey first: the refusal must not be bypassed by it.
    assert_ok(gk.run(GATEKEY_PROFILE="cmd"), b"tok-cmd\n")
    assert_ok(gk.run(GATEKEY_PROFILE="cmd"), b"tok-cmd\n")
    for _ in range(2):
        result = gk.run(exe_name="gatekey-keychain", GATEKEY_PROFILE="cmd")
        result.assert_clean_failure(78)
        assert len(lines(result)) == 1
        assert "keychain" in result.err
        assert "gatekey -p cmd" in result.err


# --- stale, expired, failing and slow sources ----------------------------------------------------
@pytest.mark.parametrize(
    "ctx", ["background", "mid-session-refresh", "interactive", None], ids=ctx_id
)
def test_stale_token_with_a_failing_source_is_printed_with_one_warning(gk, ctx):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    make_stale(gk)
    result = gk.run(context=ctx, FAIL="1")
    assert result.code == 0, result.err
    assert result.stdout == b"tok-1\n"
    assert gk.count() == 2, "a stale token must be refreshed first"
    warnings = [line for line in lines(result) if "could not refresh" in line]
    assert len(warnings) == 1, result.err
    assert warnings[0].startswith("gatekey: warning: ")
    assert "expires in" in warnings[0]
    # Besides it, only the source's own stderr (relayed, prefixed) may appear.
    others = [line for line in lines(result) if line not in warnings]
    assert all(line.startswith("gatekey: warning: ") for line in others), result.err
    assert all("failing on purpose" in line for line in others), result.err


@pytest.mark.parametrize("remaining", [-10, 10], ids=["past", "inside-margin"])
@pytest.mark.parametrize("ctx", ["background", "mid-session-refresh", "interactive"])
def test_expired_token_with_a_failing_source_fails(gk, ctx, remaining):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    make_expired(gk, remaining)
    result = gk.run(context=ctx, FAIL="1")
    assert_failure(result, 1)
    assert "tok-1" not in result.err
    assert gk.count() == 2


def test_source_failing_with_no_cache_fails_cleanly(gk):
    gk.write_config(gk.counting_profile())
    result = gk.run(FAIL="3")
    assert_failure(result, 1)
    assert "exited with status 3" in result.err
    assert not (gk.cache_dir / "tokens").exists() or not list(
        (gk.cache_dir / "tokens").glob("*.json")
    )


def test_token_expired_on_arrival_is_refused_and_not_cached(gk):
    gk.write_config(gk.counting_profile())
    result = gk.run(EXPIRES_IN="10")
    assert_failure(result, 1)
    assert "too soon" in result.err
    remembered = gk.run()  # the failure is remembered briefly: the source is not asked again
    assert_failure(remembered, 1)
    assert "not asking again until" in remembered.err
    assert gk.count() == 1
    forget_failures(gk)
    assert_ok(gk.run(), b"tok-2\n")
    assert gk.count() == 2


@pytest.mark.slow
@pytest.mark.parametrize("ctx", [*ALL_CONTEXTS, "some-future-context"], ids=ctx_id)
def test_slow_source_is_stopped_at_the_context_deadline(gk, ctx):
    # 2 s, not FAST_S: the source must have started (and counted) before the deadline stops
    # it, and on a busy machine starting gatekey and then the source can take most of a second.
    gk.write_config(STOP_TIMEOUTS + gk.counting_profile())
    result = gk.run(context=ctx, SLEEP=HANG)
    result.assert_clean_failure(75)
    assert "time limit" in result.err
    assert STOP_S - EARLY_S <= result.elapsed < ends_by(STOP_S), result.elapsed
    assert gk.count() == 1
    assert_gone(source_pids(gk))


@pytest.mark.slow
def test_negative_cache_spares_the_source_in_silent_contexts(gk):
    hanging_source_fails(gk).assert_clean_failure(75)
    assert gk.count() == 1
    for ctx in SILENT_CONTEXTS:
        again = gk.run(context=ctx, SLEEP=HANG)
        again.assert_clean_failure(75)
        assert "not asking again until" in again.err
        assert "--force-refresh" in again.err
        # before its (documented) deadline: asking the hanging source would have waited it out
        limit = deadline_of(ctx)
        assert again.elapsed < limit, "a remembered failure must be reported at once"
    assert gk.count() == 1, "the source was asked again within the backoff"
    # A person is present: ask again (and succeed); the remembered failure is forgotten.
    assert_ok(gk.run(context="interactive"), b"tok-2\n")
    assert gk.count() == 2
    assert_ok(gk.run(context="background"), b"tok-2\n")
    assert not list((gk.cache_dir / "failures").glob("*.json"))


@pytest.mark.slow
def test_negative_cache_with_a_stale_token_prints_the_stale_token(gk):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    make_stale(gk)
    first = hanging_source_fails(gk)
    assert first.code == 0, first.err
    assert first.stdout == b"tok-1\n"
    second = gk.run(context="background", SLEEP=HANG)
    assert second.code == 0, second.err
    assert second.stdout == b"tok-1\n"
    assert "not asking again until" in second.err
    assert second.elapsed < deadline_of("background")  # it did not wait for the source
    assert gk.count() == 2


@pytest.mark.slow
def test_force_refresh_ignores_the_negative_cache(gk):
    hanging_source_fails(gk).assert_clean_failure(75)
    result = gk.run("get", "--force-refresh", context="background")
    assert_ok(result, b"tok-2\n")
    assert gk.count() == 2
    assert_ok(gk.run(context="background"), b"tok-2\n")
    assert gk.count() == 2


@pytest.mark.slow
def test_unset_context_with_a_terminal_is_interactive(gk):
    """No CLAUDE_HELPER_CONTEXT but a TTY on stderr: a person is there, so ask again."""
    hanging_source_fails(gk).assert_clean_failure(75)
    assert gk.count() == 1
    primary, replica = os.openpty()
    try:
        proc = subprocess.run(
            [exe()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=replica,
            env=gk.vars,
            cwd=gk.root,
            timeout=30,
        )
    finally:
        os.close(replica)
        os.close(primary)
    assert proc.returncode == 0
    assert proc.stdout == b"tok-2\n"
    assert gk.count() == 2


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"{",
        b"[]",
        b'{"token": 5}',
        b'{"token": "tok-x"}',
        b"\xff\xfe",
        b" " * (1 << 20) + b"{}",
    ],
    ids=["empty", "truncated", "array", "bad-token", "no-times", "binary", "too-large"],
)
def test_damaged_cache_entry_is_a_miss_not_a_failure(gk, damage):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    entry_path(gk).write_bytes(damage)
    for ctx in ("background", "mid-session-refresh"):
        assert_ok(gk.run(context=ctx), b"tok-2\n")
    assert gk.count() == 2
    assert read_entry(gk)["token"] == "tok-2"


def test_token_obtained_in_the_future_is_not_trusted(gk):
    """The clock moved back an hour: the entry's obtained_at is ahead of now."""
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    now = time.time()
    edit_entry(gk, obtained_at=now + 3600, expires_at=now + 3600 + 7200)
    assert_ok(gk.run(context="background"), b"tok-2\n")
    assert gk.count() == 2


def test_removed_config_is_noticed_by_the_cache_hit(gk):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    assert_ok(gk.run(), b"tok-1\n")
    gk.config_path.unlink()
    gk.run().assert_clean_failure(78)


def test_cache_files_are_private(gk):
    gk.write_config(gk.counting_profile())
    gk.cache_dir.chmod(0o755)  # an existing directory a umask left open is tightened
    assert_ok(gk.run(), b"tok-1\n")
    assert gk.cache_dir.stat().st_mode & 0o777 == 0o700
    for path in gk.cache_dir.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def test_unusable_cache_directory_still_serves_the_token(gk):
    gk.write_config(gk.counting_profile())
    blocker = gk.root / "not-a-directory"
    blocker.write_text("x")
    result = gk.run(GATEKEY_CACHE_DIR=str(blocker))
    assert "internal error" not in result.err, result.err
    assert result.code == 0, result.err
    assert result.stdout == b"tok-1\n"
    assert str(blocker) in result.err  # a warning naming the cache directory


def test_force_refresh_fetches_anew_and_updates_the_cache(gk):
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    assert_ok(gk.run("get", "--force-refresh"), b"tok-2\n")
    assert_ok(
        gk.run("get", "--force-refresh", "--format", "header"), b"Authorization: Bearer tok-3\n"
    )
    assert gk.count() == 3
    assert_ok(gk.run(), b"tok-3\n")
    assert_ok(gk.run("get"), b"tok-3\n")
    assert gk.count() == 3


def test_short_lived_token_is_printed_with_one_warning_then_reused(gk):
    gk.write_config(gk.counting_profile())
    first = gk.run(context="background", EXPIRES_IN="600")
    assert first.code == 0, first.err
    assert first.stdout == b"tok-1\n"
    assert len(lines(first)) == 1, first.err
    assert lines(first)[0].startswith("gatekey: warning: ")
    assert "inferenceCredentialHelperTtlSec" in first.err
    assert "at most 300" in first.err
    for ctx in ALL_CONTEXTS:
        again = gk.run(context=ctx, EXPIRES_IN="600")
        assert_ok(again, b"tok-1\n")
    assert gk.count() == 1
    # A minute later a new one is fetched: the old one keeps getting closer to expiry.
    edit_entry(gk, obtained_at=time.time() - 61, expires_at=time.time() + 539)
    again = gk.run(context="background", EXPIRES_IN="600")
    assert again.code == 0, again.err
    assert again.stdout == b"tok-2\n"
    assert gk.count() == 2


def test_long_enough_min_ttl_silences_the_short_lifetime_warning(gk):
    gk.write_config(gk.counting_profile(extra='min_ttl = "5m"'))
    assert_ok(gk.run(EXPIRES_IN="600"), b"tok-1\n")


# --- secrets never reach stderr ------------------------------------------------------------------
VERBOSITY = [
    pytest.param(("-v",), {}, id="-v"),
    pytest.param(("-vv",), {}, id="-vv"),
    pytest.param(("--debug",), {}, id="--debug"),
    pytest.param((), {"GATEKEY_LOG_LEVEL": "debug"}, id="GATEKEY_LOG_LEVEL"),
    pytest.param((), {"GATEKEY_LOG_LEVEL": "debug", "GATEKEY_NO_FASTPATH": "1"}, id="no-fastpath"),
]
COMMANDS = [(), ("get",)]  # the helper run with global options, and `gatekey get`


def is_debug(flags: tuple[str, ...], env: dict[str, str]) -> bool:
    return "--debug" in flags or "-vv" in flags or bool(env)


def assert_no_secret(result: Result, secret: str = SECRET) -> None:
    err = result.err
    encoded = base64.b64encode(secret.encode()).decode().rstrip("=")
    for needle in (secret, secret[:8], encoded, encoded[:12]):
        assert needle not in err, f"{needle!r} leaked into stderr: {err}"


@pytest.mark.parametrize(("flags", "env"), VERBOSITY)
def test_no_secret_in_stderr_on_success_paths(gk, flags, env):
    gk.write_config(gk.counting_profile())
    for command in COMMANDS:
        for _ in range(2):  # a miss (then a hit)
            result = gk.run(*flags, *command, TOKEN=SECRET, **env)
            assert_ok(result, SECRET.encode() + b"\n", quiet=False)
            assert_no_secret(result)
        make_expired(gk)
    miss = gk.run(*flags, TOKEN=SECRET, **env)
    assert_ok(miss, SECRET.encode() + b"\n", quiet=False)
    assert_no_secret(miss)
    if is_debug(flags, env):
        assert "gatekey: debug: " in miss.err, "the debug run said nothing"
    short = gk.run(*flags, "get", "--force-refresh", TOKEN=SECRET, EXPIRES_IN="600", **env)
    assert_ok(short, SECRET.encode() + b"\n", quiet=False)
    assert "inferenceCredentialHelperTtlSec" in short.err
    assert_no_secret(short)


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "env"), VERBOSITY)
def test_no_secret_in_stderr_on_failure_paths(gk, flags, env):
    gk.write_config(gk.counting_profile())  # the documented deadlines: no run here waits
    debug = is_debug(flags, env)
    assert gk.run(TOKEN=SECRET).code == 0
    for command in COMMANDS:
        make_stale(gk)
        forget_failures(gk)
        fallback = gk.run(*flags, *command, TOKEN="other-" + SECRET, FAIL="1", **env)
        assert_ok(fallback, SECRET.encode() + b"\n", quiet=False)
        assert "could not refresh" in fallback.err
        assert_no_secret(fallback)
        make_expired(gk)
        forget_failures(gk)
        failed = gk.run(*flags, *command, FAIL="1", **env)
        assert_failure(failed, 1, debug=debug)
        assert_no_secret(failed)
        make_expired(gk, remaining=5)
        forget_failures(gk)
        arrival = gk.run(*flags, *command, TOKEN="new-" + SECRET, EXPIRES_IN="20", **env)
        assert_failure(arrival, 1, debug=debug)
        assert_no_secret(arrival)
        assert_no_secret(arrival, "new-" + SECRET)
    # A source that times out while a stale secret is cached, then the remembered failure.
    make_stale(gk)
    forget_failures(gk)
    gk.write_config(FAST_TIMEOUTS + gk.counting_profile())  # this run waits out its deadline
    slow = gk.run(*flags, context="background", SLEEP=HANG, **env)
    assert_ok(slow, SECRET.encode() + b"\n", quiet=False)
    assert_no_secret(slow)
    gk.write_config(gk.counting_profile())
    make_expired(gk)
    remembered = gk.run(*flags, context="background", **env)
    assert_failure(remembered, 75, debug=debug)
    assert "not asking again" in remembered.err
    assert_no_secret(remembered)


def test_source_echoing_the_token_on_stderr_gets_it_masked(gk):
    gk.write_config(noisy_profile())
    text = "fetched {token}\\nencoded {b64}\\nAuthorization: Bearer {token}\\n"
    runs = ((), ("--debug",), ("-v", "get"), ("--debug", "get", "--force-refresh"))
    for i, args in enumerate(runs):
        if i:
            make_expired(gk)  # so that every run fetches (and relays) again
        result = gk.run(*args, TOKEN=SECRET, STDERR_TEXT=text)
        assert result.code == 0, result.err
        assert result.stdout == SECRET.encode() + b"\n"
        assert_no_secret(result)
        assert result.err.count("[redacted]") == 3, result.err
        assert "fetched [redacted]" in result.err


def test_failing_source_echoing_the_cached_token_gets_it_masked(gk):
    gk.write_config(noisy_profile())
    assert gk.run(TOKEN=SECRET).code == 0
    make_stale(gk)
    result = gk.run(
        TOKEN="unrelated-new-token", FAIL="1", STDERR_TEXT=f"refresh of {SECRET} failed\\n"
    )
    assert result.code == 0, result.err
    assert result.stdout == SECRET.encode() + b"\n"  # the fallback prints it...
    assert_no_secret(result)  # ...so it is a known secret and must be masked in the log


def test_source_echoing_a_token_prefix_gets_it_masked(gk):
    gk.write_config(noisy_profile())
    result = gk.run(TOKEN=SECRET, STDERR_TEXT="using token {prefix}...\\n")
    assert result.code == 0, result.err
    assert_no_secret(result)


# --- the cache hit imports only the standard library ---------------------------------------------
FORBIDDEN = ("click", "keyring", "secretstorage", "jeepney", "msal", "requests", "tomllib", "tomli")
FULL_PATH_MODULES = ("gatekey.runner", "gatekey.config", "gatekey.cli", "gatekey.refresh")


def imported_modules(argv: list[str], gk: Env) -> tuple[set[str], bytes]:
    return imported(argv, gk.vars, gk.root)


@pytest.mark.parametrize("ctx", ALL_CONTEXTS, ids=ctx_id)
def test_cache_hit_imports_only_the_standard_library(gk, ctx):
    gk.write_config(gk.counting_profile(extra=f'output = "json"\n{HEADERS_TOML}'))
    assert gk.run(context=ctx).code == 0  # warm-up: fills the cache and the index
    if ctx is not None:
        gk.vars["CLAUDE_HELPER_CONTEXT"] = ctx
    baseline, _ = imported_modules(["-c", "pass"], gk)  # interpreter start-up (site, .pth)
    names, stdout = imported_modules([exe("gatekey")], gk)
    assert stdout.startswith(b'{"token": "tok-1"'), stdout
    assert gk.count() == 1
    assert "gatekey.fastpath" in names
    assert not [m for m in FULL_PATH_MODULES if m in names], sorted(names)
    tops = {name.split(".")[0] for name in names}
    for forbidden in (*FORBIDDEN, "typing"):
        assert forbidden not in tops, f"the cache hit imported {forbidden}"
    foreign = sorted(
        top
        for top in {name.split(".")[0] for name in names - baseline}
        if top not in sys.stdlib_module_names and top != "gatekey"
    )
    assert not foreign, f"the cache hit imported non-stdlib modules: {foreign}"


def test_installed_script_runs_the_venv_python_directly():
    script = Path(exe("gatekey"))
    first = script.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("#!"), first
    interpreter = first[2:].strip().split()[0]
    assert Path(interpreter) == Path(sys.executable), (interpreter, sys.executable)
    real = os.path.realpath(interpreter)
    assert ".pyenv/shims" not in real
    with open(real, "rb") as f:
        assert f.read(4) == b"\x7fELF", f"{real} is not a native executable (a shim script?)"
    for name in ("gatekey-keychain", "gatekey-idp", "gatekey-vault"):
        assert Path(exe(name)).read_bytes().split(b"\n", 1)[0].decode() == first


# --- stdout purity -------------------------------------------------------------------------------
def test_source_stderr_junk_never_reaches_stdout(gk):
    gk.write_config(noisy_profile())
    banner = "Welcome to VaultCLI 1.2!\\n\\rprogress 50%\\r100%\\n\\x1b[31mred\\x1b[0m\\nno newline"
    for args in ((), ("get",), ("get", "--force-refresh"), ("-v",)):
        result = gk.run(*args, TOKEN="tok-pure", STDERR_TEXT=banner, JUNK="3000")
        assert result.code == 0, result.err
        assert result.stdout == b"tok-pure\n"
        assert all(line.startswith(b"gatekey: ") for line in result.stderr.split(b"\n")[:-1])


def test_source_printing_a_banner_on_stdout_is_refused_not_printed(gk):
    gk.write_config(
        '[profiles.banner]\nsource = "command"\n'
        f'command = ["{sys.executable}", "-c", "print(\'Hello!\'); print(\'tok-x\')"]\n'
    )
    result = gk.run()
    assert_failure(result, 1)
    assert "whitespace" in result.err
    assert "tok-x" not in result.err


@pytest.mark.slow
def test_source_leaving_a_background_child_does_not_hold_the_run(gk):
    """A command that prints its token, exits, and leaves a child holding its stdout/stderr.

    The command is done when it exits: gatekey prints its token at once instead of waiting for
    the pipes to close (which would end at the deadline). The child is the command's business.
    """
    pid_file = gk.root / "bg.pid"
    script = f"sleep {HANG} & echo $! > {pid_file}; echo tok-bg"
    gk.write_config(
        '[profiles.bg]\nsource = "command"\n'
        f'command = ["/bin/sh", "-c", "{script}"]\ncache_ttl = "2h"\n'
    )
    try:
        result = gk.run(context="background")
        assert_ok(result, b"tok-bg\n")
        # Waiting for the child's pipes would have taken the run to its (documented) deadline
        # and failed it: ending before that is "at once", on any machine.
        assert result.elapsed < deadline_of("background"), result.elapsed
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_closed_stderr_never_prints_a_payload_with_a_failure(gk):
    gk.write_config(gk.counting_profile())
    proc = subprocess.run(
        ["/bin/sh", "-c", 'exec "$@" 2>&-', "sh", exe()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=gk.vars,
        cwd=gk.root,
        timeout=30,
    )
    assert (proc.returncode == 0) == (proc.stdout == b"tok-1\n"), (proc.returncode, proc.stdout)
    assert proc.stdout in (b"", b"tok-1\n")


def test_stdin_fully_closed(gk):
    """The app may start the helper with no stdin at all (fd 0 closed, not /dev/null)."""
    gk.write_config(gk.counting_profile())
    for _ in range(2):
        proc = subprocess.run(
            ["/bin/sh", "-c", 'exec "$@" <&-', "sh", exe()],
            capture_output=True,
            env=gk.vars,
            cwd=gk.root,
            timeout=30,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"tok-1\n", b"")
    assert gk.count() == 1


def test_debug_log_level_explains_a_cache_hit(gk):
    """GATEKEY_LOG_LEVEL=debug takes the full path so that the app's log says what happened."""
    gk.write_config(gk.counting_profile())
    assert_ok(gk.run(), b"tok-1\n")
    quiet = gk.run()
    assert_ok(quiet, b"tok-1\n")  # the standard-library cache hit: nothing on stderr
    explained = gk.run(GATEKEY_LOG_LEVEL="debug")
    assert_ok(explained, b"tok-1\n", quiet=False)
    assert 'profile "cmd": printing the cached token (expires in ' in explained.err
    assert gk.count() == 1


@pytest.mark.parametrize(
    "printed",
    ['{"access_token": "tok"}', "Bearer tok-1", "tok-1 tok-2"],
    ids=["json", "bearer", "two"],
)
def test_a_credential_with_whitespace_is_refused_with_a_hint(gk, printed):
    gk.write_config(
        '[profiles.raw]\nsource = "command"\n'
        f'command = [{json.dumps(sys.executable)}, "-c", {json.dumps(f"print({printed!r})")}]\n'
    )
    result = gk.run()
    result.assert_clean_failure(1)
    assert "whitespace" in result.err
    assert 'parse = "json"' in result.err
