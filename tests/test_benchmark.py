"""The benchmark runs end to end. It measures speed; this test only checks that it works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.keychain]

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
MEASUREMENTS = ("python", "cache_hit", "keychain", "secret_tool", "keyring_get")
TARGETS = {"cache_hit_vs_python": 2.5, "keychain_vs_keyring_get": 0.9}


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def test_the_benchmark_reports_every_measurement_and_both_ratios(tmp_path):
    proc = run_bench("--runs", "3", "--warmup", "1", "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert json.loads((tmp_path / "latest.json").read_text()) == result
    assert result["runs"] == 3
    for key in MEASUREMENTS:
        figures = result["medians"][key]
        assert figures["runs"] == 3, key
        assert figures["median_ms"] > 0, key
        assert figures["min_ms"] <= figures["median_ms"] <= figures["p90_ms"], key
    for name, target in TARGETS.items():
        ratio = result["ratios"][name]
        assert ratio["target"] == target
        assert ratio["ratio"] > 0
        assert isinstance(ratio["met"], bool)
    assert result["ratios"]["keychain_vs_secret_tool"]["target"] is None  # the C floor

    table = (tmp_path / "latest.md").read_text()
    for label in ("python -c pass", "cache hit", "gatekey-keychain", "secret-tool", "keyring get"):
        assert label in table, label
    assert "<= 2.5" in table
    assert "<= 0.9" in table


def test_the_benchmark_prints_a_table_and_rejects_bad_options(tmp_path):
    proc = run_bench("--runs", "1", "--warmup", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "| `python -c pass` |" in proc.stdout
    assert "gatekey-keychain / keyring get" in proc.stdout
    bad = run_bench("--runs", "0", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert "--runs" in bad.stderr


def test_check_fails_only_when_a_target_is_missed():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_under_test", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def summary(**medians: float) -> dict[str, dict[str, float]]:
        return {key: {"median_ms": ms} for key, ms in medians.items()}

    fast = bench.ratios(
        summary(python=12, cache_hit=25, keychain=100, secret_tool=14, keyring_get=190)
    )
    assert fast["cache_hit_vs_python"]["met"] is True
    assert fast["keychain_vs_keyring_get"]["met"] is True
    assert bench.exit_status(fast, check=True) == 0

    slow = bench.ratios(
        summary(python=12, cache_hit=31, keychain=100, secret_tool=14, keyring_get=190)
    )
    assert slow["cache_hit_vs_python"]["met"] is False  # 2.58 > 2.5
    assert bench.exit_status(slow, check=False) == 0
    assert bench.exit_status(slow, check=True) == 1

    slow_keychain = bench.ratios(
        summary(python=12, cache_hit=25, keychain=180, secret_tool=14, keyring_get=190)
    )
    assert slow_keychain["keychain_vs_keyring_get"]["met"] is False  # 0.95 > 0.9
    assert bench.exit_status(slow_keychain, check=True) == 1
