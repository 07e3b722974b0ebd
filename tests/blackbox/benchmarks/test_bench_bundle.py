"""benchmarks/bench_bundle.py runs end to end (the bundle's cache hit next to the venv's), and
its results make benchmarks/figures.py's bundle row. It measures speed; this test only checks
that it works: the figures' shape, the 1.5x target carried, the row rendered from them.

The bundle is the one scripts/test.sh built for this checkout (dist/test-bundle), or one built
here (about 30 s, its build venv cached).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from blackbox_env import REPO
from bundle_build import built_bundle

sys.path.insert(0, str(REPO / "benchmarks"))
import figures

pytestmark = [pytest.mark.slow, pytest.mark.blackbox]

BENCH = REPO / "benchmarks" / "bench_bundle.py"
COMMANDS = ("python", "venv_hit", "bundle_hit")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_bundle(tmp_path_factory, unpacked=True)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def test_the_bundle_benchmark_reports_both_hits_and_makes_the_figures_row(
    bundle_dir: Path, tmp_path: Path
):
    argv = ["--bundle", str(bundle_dir), "--runs", "3", "--warmup", "1", "--json"]
    proc = run_bench(*argv, "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert json.loads((tmp_path / "bundle-latest.json").read_text()) == result
    assert result["machine"]["bundle"] == str(bundle_dir)
    for key in COMMANDS:
        m = result["medians"][key]
        assert m["runs"] == 3, key
        assert 0 < m["min_ms"] <= m["median_ms"] <= m["p90_ms"], key
    ratio = result["ratios"]["bundle_hit_vs_venv_hit"]
    assert ratio["target"] == 1.5
    assert isinstance(ratio["met"], bool)
    expected = (
        result["medians"]["bundle_hit"]["median_ms"] / result["medians"]["venv_hit"]["median_ms"]
    )
    assert ratio["ratio"] == pytest.approx(expected, abs=0.001)
    table = (tmp_path / "bundle-latest.md").read_text()
    for label in ("python -c pass", "venv gatekey (cache hit)", "bundle gatekey (cache hit)"):
        assert label in table, label
    assert "<= 1.5" in table

    # figures.py's row, from these very results (the other benchmarks' of the right shape).
    others = {
        name: {
            "machine": {"cpus": 2, "python": "3.11.7"},
            "medians": {c: {"median_ms": 10.0} for c in ("cache_hit", "refresh", "stampede",
                                                         "read_through")},
            "ratios": {r: {"ratio": 1.0, "target": None, "met": None} for r in rows},
        }
        for name, rows in (
            ("latest", ["cache_hit_vs_python"]),
            ("idp-latest", ["cache_hit_vs_python", "refresh_vs_requests",
                            "stampede_vs_cold_fetch"]),
            ("vault-latest", ["cache_hit_vs_python", "read_through_vs_boto3"]),
        )
    }  # fmt: skip
    others["idp-latest"] |= {"stampede_processes": 16, "stampede_token_requests": {"max": 1}}
    suite = {"properties": {}, "counts": {"passed": 1}}
    args = argparse.Namespace(runs=3, crash_rounds=0, quick=True)
    summary = figures.summarise({**others, "bundle-latest": result}, suite, args, 1.0)
    median = result["medians"]["bundle_hit"]["median_ms"]
    row = (
        f"| cache hit, the bundle (install/build-bundle.sh) | {median:.1f} ms: "
        f"**{ratio['ratio']:.2f}\u00d7** the venv's cache hit (target \u2264 1.5) |"
    )
    assert row in figures.render(summary)
    assert ("bundle-latest.bundle_hit_vs_venv_hit" in summary["missed_targets"]) is not ratio["met"]


def test_the_bundle_benchmark_names_a_missing_bundle(tmp_path: Path):
    proc = run_bench("--bundle", str(tmp_path / "nowhere"), "--runs", "1", "--out", str(tmp_path))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
