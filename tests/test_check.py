"""`gatekey check`: black-box runs of the installed executable against gatekey itself and against
deliberately broken helpers (tests/support/broken_helpers/), plus unit tests of the judge.

Every run asserts that the token never shows in check's own output: check reports a length and
`<redacted>`, never the value.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import SUPPORT, Env, Result, exe
from deadlines import ends_by
from gatekey.diagnostics import check_judge as chk
from peers import alive

pytestmark = pytest.mark.blackbox

BROKEN = SUPPORT / "broken_helpers"
RAN = ("mid-session-refresh", "scheduled-task", "setup-test", "background", "unset")
ALL = ("interactive", *RAN)
SELF_TOKEN = "tok-self-1234567890abcdef"
JSON_TOKEN = "tok-json-fedcba0987654321"
# The token each broken helper prints (see the scripts).
TOKENS = {
    "good": "tok-good-4b1d2c3e4f5a6b7c",
    "banner": "tok-banner-8c7b6a5d4e3f2a1b",
    "slow_mid_session": "tok-slow-1a2b3c4d5e6f7a8b",
    "echo_stderr": "tok-echo-5e4d3c2b1a0f9e8d",
    "echo_stderr_b64": "tok-b64-9f8e7d6c5b4a3928",
    "json_number_header": "tok-json-3c2b1a0f9e8d7c6b",
    "env_probe": "tok-probe-0f1e2d3c4b5a6978",
    "held_open": "tok-held-6a5b4c3d2e1f0a9b",
    "stdout_on_failure": "not signed in",
    "empty": "",
}
SCALE = "0.1"  # with --timeout 20: every limit 2 s
FAST = ("--timeout", "20")


def self_config(gk: Env, extra: str = "") -> None:
    gk.write_config(
        'default_profile = "echo"\n'
        f"{extra}\n"
        "[profiles.echo]\n"
        f'source = "command"\ncommand = ["/bin/echo", "{SELF_TOKEN}"]\n'
        "allow_insecure_cache = true\n"
        "[profiles.jsonp]\n"
        f'source = "command"\ncommand = ["/bin/echo", "{JSON_TOKEN}"]\n'
        'output = "json"\nheaders = { "X-Org-Route" = "prod" }\nallow_insecure_cache = true\n'
        "[profiles.broken]\n"
        'source = "command"\ncommand = ["/bin/false"]\nallow_insecure_cache = true\n'
    )


def assert_no_token(res: Result, token: str) -> None:
    """Neither the token nor its encodings in check's own stdout or stderr."""
    if not token:
        return
    raw = token.encode()
    forms = {
        token,
        urllib.parse.quote(token, safe=""),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    for form in forms:
        assert form not in res.out, f"check printed the token ({form!r}) on stdout"
        assert form not in res.err, f"check printed the token ({form!r}) on stderr"


def assert_not_in_run_log(gk: Env, token: str) -> None:
    """The helper runs check made are logged like any other (when the config has a log_file)."""
    path = getattr(gk, "run_log", None)
    if isinstance(path, Path) and path.is_file():
        assert token not in path.read_text(errors="replace")


def run_check(gk: Env, *args: str, **env: str) -> Result:
    res = gk.run("check", *args, **env)
    assert "Traceback" not in res.err, res.err
    return res


def runs_by_context(res: Result) -> dict[str, dict[str, object]]:
    report = json.loads(res.out)
    return {r["context"]: r for r in report["runs"]}


def table_rows(res: Result) -> dict[str, str]:
    """Table lines of the text report, by context (first column)."""
    rows = {}
    for line in res.out.splitlines():
        first = line.split("  ", 1)[0]
        if first in ALL:
            rows[first] = line
    return rows


# --- gatekey itself ------------------------------------------------------------------------
def test_gatekey_itself_passes_every_context(gk: Env) -> None:
    self_config(gk)
    res = run_check(gk)
    assert res.code == 0, res.out + res.err
    assert f"helper: {exe()}" in res.out
    rows = table_rows(res)
    assert set(rows) == set(ALL)
    assert rows["interactive"].split()[1] == "SKIP"
    assert "--interactive" in rows["interactive"]
    for ctx in RAN:
        assert rows[ctx].split()[1:3] == ["OK", "0"], rows[ctx]
        assert f"token (<redacted>, {len(SELF_TOKEN)} chars)" in rows[ctx]
    assert "all 5 contexts passed" in res.out
    assert "\033[" not in res.out  # no colour when stdout is not a terminal
    assert res.err == ""
    assert_no_token(res, SELF_TOKEN)
    assert_not_in_run_log(gk, SELF_TOKEN)


def test_gatekey_itself_json_profile_interactive_and_limits(gk: Env) -> None:
    self_config(gk, '[timeouts]\nsilent = "7s"\ninteractive = "90s"\n')
    res = run_check(gk, "-p", "jsonp", "--interactive", "--json")
    assert res.code == 0, res.out + res.err
    report = json.loads(res.out)
    assert report["passed"] is True
    assert report["helper"] == exe()
    assert report["profile"] == "jsonp"
    assert "GATEKEY_PROFILE" in report["environment"]
    assert "COUNT_FILE" not in report["environment"]  # the minimal environment
    runs = {r["context"]: r for r in report["runs"]}
    assert set(runs) == set(ALL)
    for ctx, run in runs.items():
        assert run["verdict"] == "ok", run
        assert run["exit_code"] == 0
        assert run["within_limit"] is True
        assert run["problems"] == []
        assert run["output"] == {
            "kind": "json",
            "token": "<redacted>",
            "token_length": len(JSON_TOKEN),
            "headers": 1,
        }, ctx
    assert_not_in_run_log(gk, JSON_TOKEN)
    # The configured [timeouts], except the app's own 20 s clamp under mid-session-refresh.
    limits = {ctx: run["limit"] for ctx, run in runs.items()}
    assert limits == {
        "interactive": 90,
        "mid-session-refresh": 20,
        "scheduled-task": 7,
        "setup-test": 7,
        "background": 7,
        "unset": 7,
    }
    assert_no_token(res, JSON_TOKEN)


def test_gatekey_with_a_failing_source_reports_its_exit(gk: Env) -> None:
    self_config(gk)
    res = run_check(gk, "-p", "broken", "--json")
    assert res.code == 1
    assert res.err.startswith("gatekey: check failed in 5 context(s)")
    for ctx, run in runs_by_context(res).items():
        if ctx == "interactive":
            assert run["verdict"] == "skip"
            continue
        assert run["verdict"] == "fail"
        assert run["problems"] == ["exited 1"]  # gatekey never writes stdout on failure
        assert "command /bin/false exited" in str(run["stderr"])


def test_unknown_profile_is_a_config_error(gk: Env) -> None:
    self_config(gk)
    res = run_check(gk, "-p", "nope")
    assert res.code == 78
    assert res.stdout == b""
    assert 'profile "nope"' in res.err


# --- broken helpers ------------------------------------------------------------------------
CASES = [
    ("banner", "printed a banner before the token", RAN),
    ("stdout_on_failure", "printed to stdout on failure", RAN),
    ("slow_mid_session", "exceeded the 20 s limit under mid-session-refresh", RAN[:1]),
    ("echo_stderr", "echoed the token on stderr", RAN),
    ("echo_stderr_b64", "echoed the token on stderr (base64)", RAN),
    ("empty", "exited 0 with empty output", RAN),
    ("json_number_header", "header values must be strings (X-Tenant: number)", RAN),
    ("held_open", "a child process kept stdout/stderr open", ("background",)),
]  # fmt: skip


@pytest.mark.parametrize(("script", "message", "failing"), CASES, ids=[c[0] for c in CASES])
def test_broken_helper_reported_as_its_specific_failure(
    gk: Env, tmp_path: Path, script: str, message: str, failing: tuple[str, ...]
) -> None:
    helper = str(BROKEN / f"{script}.sh")
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    res = run_check(
        gk,
        "--helper",
        helper,
        *FAST,
        "--json",
        GATEKEY_CHECK_TIME_SCALE=SCALE,
        GATEKEY_TEST_PIDFILE=str(pidfile),
    )
    elapsed = time.monotonic() - t0
    assert res.code == 1, res.out + res.err
    assert res.err.startswith(f"gatekey: check failed in {len(failing)} context(s)"), res.err
    report = json.loads(res.out)
    assert report["passed"] is False
    assert report["helper"] == helper
    assert report["time_scale"] == float(SCALE)
    runs = {r["context"]: r for r in report["runs"]}
    for ctx, run in runs.items():
        if ctx in failing:
            assert run["verdict"] == "fail", run
            assert any(p.startswith(message) for p in run["problems"]), run["problems"]
            assert len(run["problems"]) == 1, run["problems"]  # the one specific failure
        else:
            # (warn: a loaded machine may take most of the scaled limit)
            assert run["verdict"] in (("skip",) if ctx == "interactive" else ("ok", "warn")), run
    assert_no_token(res, TOKENS[script])

    # The same verdicts in the table for people.
    text = run_check(gk, "--helper", helper, *FAST, GATEKEY_CHECK_TIME_SCALE=SCALE)
    assert text.code == 1
    rows = table_rows(text)
    for ctx in failing:
        assert rows[ctx].split()[1] == "FAIL"
        assert message in rows[ctx]
    assert_no_token(text, TOKENS[script])

    if script == "slow_mid_session":
        assert rows["mid-session-refresh"].split()[2] == "killed"
    if script in ("slow_mid_session", "held_open"):
        # Stopped at the (scaled) 2 s limit, the whole process group with it (its child would
        # hold the run for 60 s).
        assert elapsed < ends_by(2), elapsed
        assert runs[failing[0]]["within_limit"] is False
        assert not alive(int(pidfile.read_text())), "the helper's child outlived the limit"


def test_good_foreign_helper_passes_with_contract_default_limits(gk: Env) -> None:
    res = run_check(gk, "--helper", str(BROKEN / "good.sh"), "--json")
    assert res.code == 0, res.out + res.err
    runs = runs_by_context(res)
    assert runs["mid-session-refresh"]["limit"] == 20
    assert all(runs[ctx]["limit"] == 60 for ctx in ALL if ctx != "mid-session-refresh")
    assert_no_token(res, TOKENS["good"])


def test_timeout_option_sets_the_app_limit(gk: Env) -> None:
    res = run_check(gk, "--helper", str(BROKEN / "good.sh"), "--timeout", "30", "--json")
    runs = runs_by_context(res)
    assert runs["scheduled-task"]["limit"] == 30
    assert runs["mid-session-refresh"]["limit"] == 20
    res = run_check(gk, "--helper", str(BROKEN / "good.sh"), "--timeout", "5", "--json")
    assert runs_by_context(res)["mid-session-refresh"]["limit"] == 5


def test_runs_like_the_app(gk: Env) -> None:
    """No arguments, stdin at EOF, cwd /, only the minimal environment, MANUAL_RUN with
    setup-test, no CLAUDE_HELPER_CONTEXT for unset: env_probe.sh exits 9 on any difference."""
    res = run_check(
        gk,
        "--helper",
        str(BROKEN / "env_probe.sh"),
        "--interactive",
        LEAKY_SHELL_VAR="from-the-shell",
        GATEKEY_PROBE="yes",
    )
    assert res.code == 0, res.out + res.err
    assert all(row.split()[1] == "OK" for row in table_rows(res).values())
    assert "LEAKY_SHELL_VAR" not in res.out


def test_missing_helper_cannot_start(gk: Env) -> None:
    res = run_check(gk, "--helper", "/nonexistent/helper --profile x")
    assert res.code == 1
    assert "could not start" in res.out
    assert "one file name" in res.out


def test_profile_and_helper_are_exclusive(gk: Env) -> None:
    res = run_check(gk, "-p", "x", "--helper", "/bin/true")
    assert res.code == 2
    assert "not both" in res.err


# --- the judge (unit) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (b"tok-123456\n", "token"),
        (b"tok-123456", "token"),
        (b"tok-123456\r\n", "token"),
        (b'{"token": "tok-123456", "headers": {"X-A": "b"}}\n', "json"),
        (b'{"token": "tok-123456"}', "json"),
        (b'{\n  "token": "tok-123456",\n  "headers": {}\n}\n', "json"),
        (b"Welcome!\ntok-123456\n", chk.BANNER),
        (b'Signing in...\n{\n  "token": "tok-123456"\n}\n', chk.BANNER),
        (b"tok-123456\ninfo: refreshed ok\n", chk.AFTER),
        (b"tok-123456\n\n", chk.NOT_PAYLOAD),
        (b" tok-123456\n", chk.NOT_PAYLOAD),
        (b"Bearer tok-123456\n", chk.NOT_PAYLOAD),
        (b"\xfftok\n", chk.NOT_PAYLOAD),
        (b'{"token": 5}\n', chk.NOT_PAYLOAD),
        (b'{"token": "tok-123456"\n', chk.NOT_PAYLOAD),
        (b'{"token": "tok-123456", "headers": {"X-A": null}}', chk.HEADER_TYPES),
        (b'{"token": "tok-123456", "headers": ["X-A"]}', chk.HEADER_TYPES),
        (b"\n", chk.EMPTY),
        (b"", chk.EMPTY),
    ],
)
def test_judge_stdout(stdout: bytes, expected: str) -> None:
    j = chk.Judgement()
    chk.judge_stdout(stdout, j)
    if expected in ("token", "json"):
        assert j.problems == []
        assert j.payload is not None
        assert j.payload.kind == expected
        assert j.payload.token == "tok-123456"
    else:
        assert j.problems, stdout
        assert j.problems[0].startswith(expected), j.problems


def test_judge_warns_on_ignored_json_keys() -> None:
    j = chk.Judgement()
    chk.judge_stdout(b'{"token": "tok-123456", "expires_in": 3600}\n', j)
    assert j.problems == []
    assert j.warnings == ["JSON keys the app ignores: expires_in"]


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("ok, refreshed\n", None),
        ("got tok+0123456789/abcdef\n", chk.ECHOED),
        ("url: ?t=tok%2B0123456789%2Fabcdef\n", f"{chk.ECHOED} (URL-encoded)"),
        ("basic dG9rKzAxMjM0NTY3ODkvYWJjZGVm\n", f"{chk.ECHOED} (base64)"),
        ("prefix: tok+01234567...\n", chk.ECHOED_PART),
    ],
)
def test_leaks(stderr: str, expected: str | None) -> None:
    assert chk.leaks("tok+0123456789/abcdef", stderr) == expected
