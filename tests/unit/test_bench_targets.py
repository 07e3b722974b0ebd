"""benchmarks/bench.py's targets, in process: a ratio over its target fails the --check run (the
benchmarks themselves run in tests/blackbox/benchmarks/test_benchmark.py)."""

from __future__ import annotations

import pytest

from blackbox_env import REPO

BENCH = REPO / "benchmarks" / "bench.py"


@pytest.mark.keychain
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
