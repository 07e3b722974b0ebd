"""Black-box tests of the onepassword source, with support/fake_op standing in for the 1Password
CLI (`op read`, its flags, its error messages, a hang, a biometric prompt, noisy stderr).

The installed executables run as the app runs them: a subprocess, stdin closed, a private HOME,
config and cache, CLAUDE_HELPER_CONTEXT set. `op` is a link to fake_op in a bin directory put
first on PATH; every invocation is logged (argv, pid; never the value) to FAKE_OP_LOG.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from blackbox_env import SUPPORT, Env, Result
from deadlines import HANG_S, deadline_of, ends_by
from peers import alive
from vault_cases import (
    age_cached_secret,
    assert_no_leak_of,
    assert_prints,
    cached_secrets_forgotten_at_end,
    run_app,
    run_get,
    write_llm_profile,
)

pytestmark = pytest.mark.blackbox

FAKE_OP = SUPPORT / "fake_op"
INSTALL_URL = "https://developer.1password.com/docs/cli/get-started/"
REFERENCE = "op://Engineering/LiteLLM/credential"
SECRET = "Zq4Wm81Lx0-uT7vB2nE5"
OTHER = "Hk3Pd9Rf6Sa1-other-item"
ALL_VALUES = (SECRET, OTHER)


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
def _remember_for_cleanup() -> Iterator[Callable[[Env], None]]:
    """Remembers this module's tests' environments; their cached secrets are dropped at the end."""
    with cached_secrets_forgotten_at_end() as remember:
        yield remember


@pytest.fixture
def op(gk: Env, tmp_path: Path, _remember_for_cleanup: Callable[[Env], None]) -> Iterator[Op]:
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
    _remember_for_cleanup(gk)


def configure(
    gk: Env, extra: str = "", *, reference: str = REFERENCE, silent: str | None = None
) -> None:
    write_llm_profile(
        gk, 'source = "onepassword"', f'reference = "{reference}"', extra=extra, silent=silent
    )


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
    assert_no_leak_of(ALL_VALUES, gk, *results)


def assert_only_the_reference_in_argv(op: Op) -> None:
    """The secret is never passed to op (it is what op prints): the argv holds only flags and
    the reference."""
    for argv in op.argvs():
        assert argv[-1].startswith("op://"), argv
        assert all(value not in arg for arg in argv for value in ALL_VALUES), argv
    assert all(value not in op.log.read_text() for value in ALL_VALUES)


# A hung op sleeps on for HANG_S unless stopped: polling up to a documented deadline for it to be
# gone tells the two apart on any machine.
def wait_gone(pids: list[int], timeout: float = deadline_of("background")) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def assert_op_stopped(op: Op) -> None:
    """The op that hung, and the child it started, are gone (the process group was stopped)."""
    [hang] = op.events("hang")
    assert wait_gone([hang["pid"], hang["child_pid"]]) == []


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


@pytest.mark.parametrize(
    ("extra", "silent", "hang", "limit", "why"),
    [
        pytest.param("", "3s", "1", 3, "time limit", id="deadline"),
        pytest.param("", "3s", "stubborn", 3, "time limit", id="deadline-stubborn"),
        pytest.param('timeout = "1s"', "8s", "1", 1, "timeout (1 s)", id="op-timeout-key-sooner"),
    ],
)
def test_a_hung_op_is_stopped_with_its_process_group(
    op: Op, gk: Env, extra: str, silent: str, hang: str, limit: float, why: str
) -> None:
    """At the deadline of the context (``silent``), or sooner at the profile's own ``timeout``."""
    configure(gk, extra, silent=silent)
    result = run_app(gk, FAKE_OP_HANG=hang, FAKE_OP_HANG_SECONDS=f"{HANG_S:g}")
    last = assert_fails(result, 75)
    assert result.elapsed < ends_by(limit), result.elapsed
    assert why in last
    assert_op_stopped(op)


def test_a_hung_op_with_a_cached_copy_prints_it_within_the_deadline(op: Op, gk: Env) -> None:
    configure(gk, 'timeout = "1s"', silent="3s")
    assert_prints(run_app(gk), SECRET)
    age_cached_secret(gk, 16 * 60)  # past cache_ttl (15 minutes)
    result = run_app(gk, FAKE_OP_HANG="1", FAKE_OP_HANG_SECONDS=f"{HANG_S:g}")
    assert_prints(result, SECRET, warnings=1)
    assert result.elapsed < ends_by(3), result.elapsed  # its silent deadline, not op's hang
    assert_op_stopped(op)
    assert_no_leak(gk, result)


@pytest.mark.parametrize("context", ["scheduled-task", "interactive"])
def test_an_authorization_prompt_with_stdin_closed_fails_at_once(
    op: Op, gk: Env, context: str
) -> None:
    configure(gk)
    result = run_app(gk, context=context, FAKE_OP_PROMPT="1")
    last = assert_fails(result, 4)
    assert "op signin" in last
    # Before any documented deadline: a run waiting for an answer at the prompt would wait
    # for its deadline (10 s, or a person's 120 s).
    assert result.elapsed < deadline_of("scheduled-task"), result.elapsed
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
