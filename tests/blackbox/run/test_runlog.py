"""The run log (top-level ``log_file``): one JSON line per helper run, never a token; and
``gatekey status --runs``, its summary. Black-box: the installed executables as subprocesses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from blackbox_env import Env

TOKEN = "sk-runlog-0123456789abcdef"
FIELDS = {
    "time",
    "profile",
    "executable",
    "context",
    "outcome",
    "exit",
    "duration_ms",
    "cache",
    "source_requests",
}


def configure(gk: Env, *, log: bool = True) -> Path:
    path = gk.root / "state" / "runs.jsonl"
    top = (f'log_file = "{path}"\n' if log else "") + 'default_profile = "cmd"\n'
    # "bad" differs in a setting, so it has a cache entry of its own (none, when it fails)
    bad = gk.counting_profile("bad", extra='cache_ttl = "1m"')
    gk.write_config(top + gk.counting_profile() + bad, run_log=log)
    return path


def entries(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_no_token(path: Path, *tokens: str) -> None:
    text = path.read_text()
    for token in tokens:
        for start in range(0, len(token) - 7):
            assert token[start : start + 8] not in text, "a piece of a token is in the run log"


def test_no_log_file_no_log(gk: Env) -> None:
    path = configure(gk, log=False)
    assert gk.run(TOKEN=TOKEN).code == 0
    assert not path.exists()
    assert not (gk.root / "state").exists()


def test_a_miss_a_hit_and_a_failure_each_leave_one_line(gk: Env) -> None:
    path = configure(gk)
    assert gk.run(context="background", TOKEN=TOKEN).stdout == f"{TOKEN}\n".encode()
    assert gk.run(context="background", TOKEN=TOKEN).code == 0  # the stdlib cache hit
    assert gk.run("get", "-p", "bad", context="scheduled-task", FAIL="3").code == 1
    miss, hit, failure = entries(path)
    assert [e["profile"] for e in (miss, hit, failure)] == ["cmd", "cmd", "bad"]
    for entry in (miss, hit, failure):
        assert set(entry) >= FIELDS, entry
        assert isinstance(entry["duration_ms"], (int, float))
        assert entry["duration_ms"] >= 0
    assert (miss["outcome"], miss["cache"], miss["source_requests"], miss["exit"]) == (
        "fetched",
        "miss",
        1,
        0,
    )
    assert (hit["outcome"], hit["cache"], hit["source_requests"], hit["exit"]) == (
        "cache",
        "hit",
        0,
        0,
    )
    assert miss["context"] == hit["context"] == "background"
    assert (failure["outcome"], failure["exit"], failure["context"]) == (
        "error",
        1,
        "scheduled-task",
    )
    assert failure["source_requests"] == 1
    assert failure["cause"] == "HelperError"
    assert "exited with status 3" in str(failure["message"])
    assert_no_token(path, TOKEN)


def test_the_log_and_its_directory_are_user_only(gk: Env) -> None:
    path = configure(gk)
    assert gk.run(TOKEN=TOKEN).code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_concurrent_runs_never_interleave_lines(gk: Env) -> None:
    path = configure(gk)
    results = gk.run_together([None] * 12, TOKEN=TOKEN, SLEEP="0.2")
    assert all(code == 0 for code, *_ in results)
    lines = entries(path)  # every line parses: no two writes interleaved
    assert len(lines) == 12
    assert sum(int(str(e["source_requests"])) for e in lines) == 1  # single flight
    assert_no_token(path, TOKEN)


def test_status_runs_summarises_the_log(gk: Env) -> None:
    path = configure(gk)
    for _ in range(3):
        assert gk.run(TOKEN=TOKEN).code == 0
    assert gk.run("get", "-p", "bad", context="background", FAIL="1").code == 1
    r = gk.run("status", "--runs", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.stdout)
    assert summary["runs"] == 4
    assert summary["cache_hit_rate"] == 0.5
    assert summary["failures"] == 1
    assert summary["failures_by_cause"] == {"HelperError (exit 1)": 1}
    assert summary["source_requests"] == 2
    assert summary["p95_ms"] >= summary["p50_ms"] > 0
    assert summary["log_file"] == str(path)
    text = gk.run("status", "--runs")
    assert text.code == 0
    assert "runs: 4, cache hit rate: 50%" in text.out
    assert "HelperError (exit 1): 1" in text.out
    assert TOKEN not in text.out + text.err


def test_status_runs_without_a_log_file_names_the_key(gk: Env) -> None:
    configure(gk, log=False)
    r = gk.run("status", "--runs")
    r.assert_clean_failure(78)
    assert 'key "log_file"' in r.err


def test_a_damaged_log_is_read_around_and_an_unwritable_one_never_fails_a_run(gk: Env) -> None:
    path = configure(gk)
    path.parent.mkdir(mode=0o700)
    path.write_text('{"profile": "cmd", "exit": 0, "cache": "hit", "duration_ms": 1}\nnot json\n')
    path.chmod(0o600)
    assert gk.run(TOKEN=TOKEN).code == 0
    summary = json.loads(gk.run("status", "--runs", "--json").stdout)
    assert summary["runs"] == 2
    path.unlink()
    path.mkdir()  # a directory where the log should be: the run still prints its token
    r = gk.run("get", "--force-refresh", TOKEN=TOKEN)
    assert r.code == 0
    assert r.stdout == f"{TOKEN}\n".encode()
    assert r.err == ""


def test_log_file_must_be_a_string(gk: Env) -> None:
    gk.write_config("log_file = 3\n" + gk.counting_profile())  # the only profile
    r = gk.run()
    r.assert_clean_failure(78)
    assert 'key "log_file"' in r.err
