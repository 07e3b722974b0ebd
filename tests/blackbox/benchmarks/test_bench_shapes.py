"""The shapes benchmark (benchmarks/bench_shapes.py) runs end to end: every measurement, its
three ratios and its table. It measures speed; this test only checks that it works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from blackbox_env import REPO

pytestmark = pytest.mark.slow

BENCH = REPO / "benchmarks" / "bench_shapes.py"
MEASUREMENTS = ("python", "default_hit", "wrapped_token", "wrapped_headers")
TARGETS = {"wrapped_headers_vs_default_hit": 1.2, "wrapped_headers_vs_wrapped_token": 1.1}


def test_the_shapes_benchmark_reports_every_measurement_and_its_ratios(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "3", "--warmup", "1", "--json", "--out", tmp_path],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert json.loads((tmp_path / "shapes-latest.json").read_text()) == result
    for key in MEASUREMENTS:
        figures = result["medians"][key]
        assert figures["runs"] == 3, key
        assert 0 < figures["min_ms"] <= figures["median_ms"] <= figures["p90_ms"], key
    for name, target in TARGETS.items():
        assert result["ratios"][name]["target"] == target
        assert result["ratios"][name]["ratio"] > 0
        assert isinstance(result["ratios"][name]["met"], bool)
    table = (tmp_path / "shapes-latest.md").read_text()
    assert "wrapper --format headers (hit)" in table
    assert "<= 1.2" in table
