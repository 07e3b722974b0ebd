"""The benchmark runs end to end. It measures speed; this test only checks that it works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from blackbox_env import REPO

pytestmark = pytest.mark.slow

BENCH = REPO / "benchmarks" / "bench.py"
BENCH_IDP = BENCH.with_name("bench_idp.py")
MEASUREMENTS = ("python", "cache_hit", "keychain", "secret_tool", "keyring_get")
TARGETS = {"cache_hit_vs_python": 2.5, "keychain_vs_keyring_get": 0.9}


def run_bench(*args: str, script: Path = BENCH) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


@pytest.mark.keychain
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


@pytest.mark.keychain
def test_the_benchmark_prints_a_table_and_rejects_bad_options(tmp_path):
    proc = run_bench("--runs", "1", "--warmup", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "| `python -c pass` |" in proc.stdout
    assert "gatekey-keychain / keyring get" in proc.stdout
    bad = run_bench("--runs", "0", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert "--runs" in bad.stderr


IDP_MEASUREMENTS = {  # token requests each timed run must have made (the stampede: reported)
    "python": 0,
    "cache_hit": 0,
    "refresh": 1,
    "requests_refresh": 1,
    "cold_fetch": 1,
    "stampede": None,
}
IDP_TARGETS = {"cache_hit_vs_python": 2.5, "refresh_vs_requests": 2.0, "stampede_vs_cold_fetch": 2}


@pytest.mark.oidc
def test_the_idp_benchmark_reports_every_measurement_and_the_three_ratios(tmp_path):
    proc = run_bench("--runs", "2", "--warmup", "0", "--out", str(tmp_path), script=BENCH_IDP)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "idp-latest.json").read_text())
    assert result["runs"] == 2
    assert result["stampede_processes"] == 16
    for key, requests in IDP_MEASUREMENTS.items():
        figures = result["medians"][key]
        assert figures["runs"] == 2, key
        assert figures["median_ms"] > 0, key
        assert figures["min_ms"] <= figures["median_ms"] <= figures["p90_ms"], key
        made = result["token_requests"][key]
        assert len(made) == 2, key
        if requests is not None:
            assert made == [requests] * 2, key
    for name, target in IDP_TARGETS.items():
        ratio = result["ratios"][name]
        assert ratio["target"] == target
        assert ratio["ratio"] > 0
        assert isinstance(ratio["met"], bool)
    stampede = result["stampede_token_requests"]
    assert stampede["rounds"] == 2
    assert stampede["target"] == 1
    assert isinstance(stampede["met"], bool)

    table = (tmp_path / "idp-latest.md").read_text()
    assert proc.stdout == table
    for label in ("python -c pass", "cache hit", "cold refresh", "requests refresh", "cold fetch"):
        assert label in table, label
    assert "16 x gatekey (stampede)" in table
    for target in ("<= 2.5", "<= 2.0", "= 1"):
        assert target in table, target


BENCH_VAULT = BENCH.with_name("bench_vault.py")
VAULT_MEASUREMENTS = {"python": 0, "cache_hit": 0, "read_through": 1, "boto3": 1}  # calls per run
VAULT_TARGETS = {"cache_hit_vs_python": 2.5, "read_through_vs_boto3": 1.3}


def _kernel_keyring_usable() -> bool:
    from gatekey import kernelkeys

    return kernelkeys.available()


@pytest.mark.skipif(
    not _kernel_keyring_usable(), reason="the vault cache hit needs the kernel keyring"
)
def test_the_vault_benchmark_reports_every_measurement_and_both_ratios(tmp_path):
    proc = run_bench("--runs", "2", "--warmup", "0", "--out", str(tmp_path), script=BENCH_VAULT)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "vault-latest.json").read_text())
    assert result["runs"] == 2
    for key, calls in VAULT_MEASUREMENTS.items():
        figures = result["medians"][key]
        assert figures["runs"] == 2, key
        assert figures["median_ms"] > 0, key
        assert figures["min_ms"] <= figures["median_ms"] <= figures["p90_ms"], key
        assert result["get_secret_value_calls"][key] == [calls] * 2, key
    for name, target in VAULT_TARGETS.items():
        ratio = result["ratios"][name]
        assert ratio["target"] == target
        assert ratio["ratio"] > 0
        assert isinstance(ratio["met"], bool)

    table = (tmp_path / "vault-latest.md").read_text()
    assert proc.stdout == table
    for label in ("python -c pass", "cache hit", "read-through", "boto3 get_secret_value"):
        assert label in table, label
    for target in ("<= 2.5", "<= 1.3"):
        assert target in table, target


def test_the_vault_benchmark_checks_its_targets_and_options(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_vault_under_test", BENCH_VAULT)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def medians(**ms: float) -> dict[str, dict[str, float]]:
        return {key: {"median_ms": value} for key, value in ms.items()}

    fast = bench.ratios(medians(python=12, cache_hit=29, read_through=300, boto3=240))
    assert {name: x["met"] for name, x in fast.items()} == dict.fromkeys(VAULT_TARGETS, True)
    assert bench.exit_status(fast, check=True) == 0

    slow = bench.ratios(medians(python=12, cache_hit=29, read_through=320, boto3=240))
    assert slow["read_through_vs_boto3"]["met"] is False  # 1.33 > 1.3
    assert bench.exit_status(slow, check=False) == 0
    assert bench.exit_status(slow, check=True) == 1

    bad = run_bench("--runs", "0", "--out", str(tmp_path), script=BENCH_VAULT)
    assert bad.returncode == 2
    assert "--runs" in bad.stderr
    assert not list(tmp_path.iterdir())  # refused before anything ran
