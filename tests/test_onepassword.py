"""Black-box tests of the onepassword source, with support/fake_op standing in for the 1Password
CLI (`op read`, its flags, its error messages, a hang, a biometric prompt, noisy stderr).

The installed executables run as the app runs them: a subprocess, stdin closed, a private HOME,
config and cache, CLAUDE_HELPER_CONTEXT set. `op` is a link to fake_op in a bin directory put
first on PATH; every invocation is logged (argv, pid; never the value) to FAKE_OP_LOG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import SUPPORT, Env, Result

pytestmark = pytest.mark.blackbox

FAKE_OP = SUPPORT / "fake_op"
INSTALL_URL = "https://developer.1password.com/docs/cli/get-started/"
REFERENCE = "op://Engineering/LiteLLM/credential"
SECRET = "Zq4Wm81Lx0-uT7vB2nE5"
OTHER = "Hk3Pd9Rf6Sa1-other-item"
ALL_VALUES = (SECRET, OTHER)

# Drops the cached copies of every profile of the given tests' configs from the kernel keyring
# (they would otherwise stay there for max_stale, 24 h). Reads a JSON list of environments.
_FORGET = """
import contextlib, json, os, sys
from gatekey import config, kernelkeys, securecache
from gatekey.cache import FileCache
from gatekey.refresh import profile_cache_key
for env in json.load(sys.stdin):
    os.environ.clear()
    os.environ.update(env)
    with contextlib.suppress(Exception):
        cfg = config.load()
        for name in cfg.profile_names:
            with contextlib.suppress(Exception):
                key = profile_cache_key(cfg.profile(name))
                kernelkeys.delete(securecache.kernel_name(FileCache(), key))
"""
# Rewrites the cached copy's timestamps in the kernel keyring, as time passing would.
_AGE = """
import json, sys
from gatekey import config, kernelkeys, securecache
from gatekey.cache import FileCache
from gatekey.refresh import profile_cache_key
prof = config.load().profile(sys.argv[1])
name = securecache.kernel_name(FileCache(), profile_cache_key(prof))
data = json.loads(kernelkeys.read(name))
for field in ("obtained_at", "refresh_at"):
    if data.get(field) is not None:
        data[field] -= float(sys.argv[2])
assert kernelkeys.write(name, json.dumps(data).encode(), timeout=3600)
"""


@dataclass
class Op:
    """The fake `op` on gk's PATH, its data and its invocation log."""

    bin: Path
    data: Path
    log: Path

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in entries if kind is None or e["event"] == kind]

    def argvs(self) -> list[list[str]]:
        return [e["argv"] for e in self.events("invoked")]


@pytest.fixture(scope="module")
def _used_environments() -> Iterator[list[dict[str, str]]]:
    """The environments of this module's tests; their cached secrets are dropped at the end
    (one process for all of them)."""
    used: list[dict[str, str]] = []
    yield used
    subprocess.run(
        [sys.executable, "-c", _FORGET],
        input=json.dumps(used).encode(),
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def op(gk: Env, tmp_path: Path, _used_environments: list[dict[str, str]]) -> Iterator[Op]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "op").symlink_to(FAKE_OP)
    data = tmp_path / "op-data.json"
    data.write_text(
        json.dumps(
            {"Engineering/LiteLLM/credential": SECRET, "Engineering/Other/credential": OTHER}
        )
    )
    log = tmp_path / "op-log.jsonl"
    gk.vars.update(
        PATH=f"{bin_dir}{os.pathsep}{gk.vars['PATH']}",
        FAKE_OP_PYTHON=sys.executable,
        FAKE_OP_DATA=str(data),
        FAKE_OP_LOG=str(log),
    )
    yield Op(bin_dir, data, log)
    if gk.config_path.exists():
        _used_environments.append(dict(gk.vars))


def configure(gk: Env, extra: str = "", *, reference: str = REFERENCE, silent: str = "5s") -> None:
    gk.write_config(
        'default_profile = "llm"\n\n'
        f'[timeouts]\nsilent = "{silent}"\nmid_session_refresh = "{silent}"\n\n'
        "[profiles.llm]\n"
        'source = "onepassword"\n'
        f'reference = "{reference}"\n'
        f"{extra}\n"
    )


def run_app(gk: Env, context: str | None = "scheduled-task", **env: str) -> Result:
    """What the app runs: gatekey-vault, no arguments."""
    return gk.run(exe_name="gatekey-vault", context=context, **env)


def run_get(gk: Env, *args: str, context: str | None = "scheduled-task", **env: str) -> Result:
    return gk.run("get", "-p", "llm", *args, context=context, **env)


def assert_prints(result: Result, value: str, *, warnings: int = 0) -> None:
    assert result.code == 0, result.err
    assert result.stdout == (value + "\n").encode()
    lines = result.err.splitlines()
    assert len(lines) == warnings, result.err
    assert all(line.startswith("gatekey: warning: ") for line in lines), result.err


def assert_fails(result: Result, code: int) -> str:
    """A clean failure: the code, nothing on stdout, and on stderr only ``gatekey:`` lines: op's
    own stderr relayed as warnings (masked), then exactly one error line, which is returned."""
    result.assert_clean_failure(code)
    lines = result.err.splitlines()
    assert all(line.startswith("gatekey: ") for line in lines), result.err
    relayed, last = lines[:-1], lines[-1]
    assert all(line.startswith('gatekey: warning: profile "llm" (op): ') for line in relayed), (
        result.err
    )
    assert not last.startswith("gatekey: warning:"), result.err
    return last


def assert_no_leak(gk: Env, *results: Result) -> None:
    """No secret on any run's stderr, nor in any file under the cache directory, HOME or the
    runtime directory (the fake op's data file lives elsewhere)."""
    for result in results:
        for value in ALL_VALUES:
            assert value not in result.err, f"{value!r} on stderr of {result.argv}:\n{result.err}"
    for top in (gk.cache_dir, gk.root / "home", gk.root / "run"):
        for path in top.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for value in ALL_VALUES:
                    assert value.encode() not in data, f"{value!r} in {path}"


def assert_only_the_reference_in_argv(op: Op) -> None:
    """The secret is never passed to op (it is what op prints): the argv holds only flags and
    the reference."""
    for argv in op.argvs():
        assert argv[-1].startswith("op://"), argv
        assert all(value not in arg for arg in argv for value in ALL_VALUES), argv
    assert all(value not in op.log.read_text() for value in ALL_VALUES)


def age_cached_secret(gk: Env, seconds: float, profile: str = "llm") -> None:
    done = subprocess.run(
        [sys.executable, "-c", _AGE, profile, str(seconds)],
        env=gk.vars,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no pipes and waits only to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], timeout: float = 3.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _running(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if _running(pid)]


# --- values -----------------------------------------------------------------------------------
def test_the_value_is_printed_with_op_read_no_newline(op: Op, gk: Env) -> None:
    configure(gk)
    first = run_app(gk)
    assert_prints(first, SECRET)
    assert op.argvs() == [["read", "--no-newline", REFERENCE]]
    assert op.events("invoked")[0]["op_env"] == []  # nothing of ours handed over as OP_*
    # Cached: the next runs do not start op again.
    again = [run_app(gk), run_get(gk), run_app(gk, context="interactive")]
    for result in again:
        assert_prints(result, SECRET)
    debug = gk.run("--debug", "get", "--force-refresh", context="background")
    assert debug.code == 0, debug.err
    assert debug.stdout == (SECRET + "\n").encode()
    assert len(op.argvs()) == 2
    assert_only_the_reference_in_argv(op)
    assert_no_leak(gk, first, *again, debug)
    assert list(gk.cache_dir.glob("tokens/*")) == []  # a vault secret never goes to a file


def test_account_is_passed_as_op_account(op: Op, gk: Env) -> None:
    configure(gk, 'account = "my-team.1password.com"')
    assert_prints(run_app(gk), SECRET)
    [argv] = op.argvs()
    assert argv[argv.index("--account") + 1] == "my-team.1password.com"
    assert "--no-newline" in argv
    assert argv[0] == "read"
    assert argv[-1] == REFERENCE
    assert len(argv) == 5
    assert_only_the_reference_in_argv(op)


def test_cache_ttl_zero_runs_op_every_time(op: Op, gk: Env) -> None:
    configure(gk, "cache_ttl = 0")
    runs = [run_app(gk), run_get(gk), run_app(gk, context="mid-session-refresh")]
    for result in runs:
        assert_prints(result, SECRET)
    assert len(op.argvs()) == 3
    assert_no_leak(gk, *runs)


def test_mid_session_refresh_reads_through_a_copy_older_than_a_minute(op: Op, gk: Env) -> None:
    configure(gk)
    assert_prints(run_app(gk), SECRET)
    assert_prints(run_app(gk, context="mid-session-refresh"), SECRET)  # moments old: reused
    assert len(op.argvs()) == 1
    age_cached_secret(gk, 120)
    assert_prints(run_app(gk, context="background"), SECRET)
    assert len(op.argvs()) == 1
    assert_prints(run_app(gk, context="mid-session-refresh"), SECRET)
    assert len(op.argvs()) == 2


# --- op's failures ----------------------------------------------------------------------------
def test_signed_out_exits_4_naming_op_signin(op: Op, gk: Env) -> None:
    configure(gk)
    last = assert_fails(run_app(gk, FAKE_OP_SIGNED_OUT="1"), 4)
    assert "op signin" in last
    assert "1Password" in last


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("op://Engineering/NoSuchItem/credential", id="item"),
        pytest.param("op://Engineering/LiteLLM/nofield", id="field"),
        pytest.param("op://NoSuchVault/LiteLLM/credential", id="vault"),
    ],
)
def test_a_missing_item_field_or_vault_exits_3(op: Op, gk: Env, reference: str) -> None:
    configure(gk, reference=reference)
    last = assert_fails(run_app(gk), 3)
    assert reference in last


def test_noisy_stderr_is_relayed_with_the_secret_masked(op: Op, gk: Env) -> None:
    configure(gk)
    result = run_app(gk, FAKE_OP_NOISY="1")
    assert_prints(result, SECRET, warnings=3)
    assert "resolving secret reference" in result.err
    assert "resolved to [redacted]" in result.err
    debug = gk.run("--debug", "get", "--force-refresh", context="background", FAKE_OP_NOISY="1")
    assert debug.code == 0, debug.err
    assert debug.stdout == (SECRET + "\n").encode()
    assert "[redacted]" in debug.err
    assert_no_leak(gk, result, debug)


@pytest.mark.parametrize("how", ["1", "stubborn"])
def test_a_hung_op_is_stopped_at_the_deadline_with_its_process_group(
    op: Op, gk: Env, how: str
) -> None:
    configure(gk, silent="3s")
    result = run_app(gk, FAKE_OP_HANG=how, FAKE_OP_HANG_SECONDS="30")
    last = assert_fails(result, 75)
    assert result.elapsed < 3 + 1.5, result.elapsed
    assert "time limit" in last
    [hang] = op.events("hang")
    assert wait_gone([hang["pid"], hang["child_pid"]]) == []


def test_op_timeout_key_stops_it_sooner(op: Op, gk: Env) -> None:
    configure(gk, 'timeout = "1s"', silent="8s")
    result = run_app(gk, FAKE_OP_HANG="1", FAKE_OP_HANG_SECONDS="30")
    last = assert_fails(result, 75)
    assert result.elapsed < 1 + 1.5, result.elapsed
    assert "timeout (1 s)" in last
    [hang] = op.events("hang")
    assert wait_gone([hang["pid"], hang["child_pid"]]) == []


def test_a_hung_op_with_a_cached_copy_prints_it_within_the_deadline(op: Op, gk: Env) -> None:
    configure(gk, 'timeout = "1s"', silent="3s")
    assert_prints(run_app(gk), SECRET)
    age_cached_secret(gk, 16 * 60)  # past cache_ttl (15 minutes)
    result = run_app(gk, FAKE_OP_HANG="1", FAKE_OP_HANG_SECONDS="30")
    assert_prints(result, SECRET, warnings=1)
    assert result.elapsed < 3, result.elapsed
    [hang] = op.events("hang")
    assert wait_gone([hang["pid"], hang["child_pid"]]) == []
    assert_no_leak(gk, result)


@pytest.mark.parametrize("context", ["scheduled-task", "interactive"])
def test_an_authorization_prompt_with_stdin_closed_fails_at_once(
    op: Op, gk: Env, context: str
) -> None:
    configure(gk, silent="5s")
    result = run_app(gk, context=context, FAKE_OP_PROMPT="1")
    last = assert_fails(result, 4)
    assert "op signin" in last
    assert result.elapsed < 3, result.elapsed
    [prompt] = op.events("prompt")
    assert (prompt["tty"], prompt["stdin"]) == ("unavailable", "eof")


def test_op_not_installed_exits_69_naming_the_install_page(op: Op, gk: Env) -> None:
    configure(gk, 'op_path = "/nonexistent/op"')
    last = assert_fails(run_app(gk), 69)
    assert INSTALL_URL in last
    assert "/nonexistent/op" in last
    # And with the default op_path, an op that is not on PATH.
    (op.bin / "op").unlink()
    configure(gk)
    last = assert_fails(run_app(gk), 69)
    assert INSTALL_URL in last
    assert op.argvs() == []


@pytest.mark.parametrize(
    "reference",
    ["Engineering/LiteLLM/credential", "https://Engineering/LiteLLM/credential", "op://LiteLLM"],
)
def test_a_reference_that_is_not_an_op_url_is_a_config_error(
    op: Op, gk: Env, reference: str
) -> None:
    configure(gk, reference=reference)
    last = assert_fails(run_app(gk), 78)
    assert 'key "reference"' in last
    assert "op://" in last
    assert str(gk.config_path) in last
    assert op.argvs() == []
