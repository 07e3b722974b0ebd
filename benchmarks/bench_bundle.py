#!/usr/bin/env python3
"""The bundle's cache hit next to the venv's, measured in one run (issue 16).

  python -c pass        the venv's interpreter doing nothing (the floor of a Python helper)
  venv cache hit        the venv's `gatekey` (console script), no arguments, a fresh token cached
  bundle cache hit      the bundle's `gatekey` (install/build-bundle.sh), the same cache and config

and the target: bundle cache hit <= 1.5x the venv's. Both executables serve the same profile from
the same cache (a `command` source whose token is valid for a day; the benchmark fails unless the
source ran exactly once). Rounds are interleaved in a new random order, as bench.py does.

Usage: .venv/bin/python benchmarks/bench_bundle.py [--bundle DIR] [--runs N] [--json] [--check]
--bundle defaults to dist/bundle/gatekey-*/ (build it with `bash install/build-bundle.sh`).
Writes bundle-latest.json and bundle-latest.md into benchmarks/results (or --out).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import (  # noqa: E402
    ROOT,
    VENV_BIN,
    base_env,
    fetches,
    machine,
    measure,
    parse_args,
    run_checked,
    use_venv_interpreter,
    write_config,
)

COMMANDS = ("python", "venv_hit", "bundle_hit")
LABELS = {
    "python": "python -c pass",
    "venv_hit": "venv gatekey (cache hit)",
    "bundle_hit": "bundle gatekey (cache hit)",
}
RATIOS = {
    "bundle_hit_vs_venv_hit": ("bundle_hit", "venv_hit", 1.5),
    "venv_hit_vs_python": ("venv_hit", "python", None),
    "bundle_hit_vs_python": ("bundle_hit", "python", None),
}
CACHED = b"tok-bench-" + b"c" * 40 + b"\n"


def find_bundle(given: str | None) -> Path:
    if given:
        bundle = Path(given).resolve()
        # One line, not a traceback from the first run of a missing executable.
        if not (bundle / "gatekey").is_file():
            raise SystemExit(f"bench: no bundle at {bundle} (no gatekey executable in it)")
        return bundle
    found = sorted(p for p in (ROOT / "dist" / "bundle").glob("gatekey-*") if p.is_dir())
    if not found:
        raise SystemExit("bench: no bundle in dist/bundle; run: bash install/build-bundle.sh")
    return found[-1]


def summarize(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    import statistics

    out = {}
    for key in COMMANDS:
        ms = sorted(t * 1000 for t in times[key])
        out[key] = {
            "median_ms": round(statistics.median(ms), 2),
            "min_ms": round(ms[0], 2),
            "p90_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.9))], 2),
            "runs": len(ms),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    use_venv_interpreter(__file__)
    args_list = list(sys.argv[1:] if argv is None else argv)
    bundle_arg = None
    if "--bundle" in args_list:
        i = args_list.index("--bundle")
        if i + 1 == len(args_list):
            raise SystemExit("bench: --bundle needs a folder (install/build-bundle.sh's)")
        bundle_arg = args_list[i + 1]
        del args_list[i : i + 2]
    args = parse_args(args_list, __doc__ or "", runs=40, warmup=3, results="bundle-latest")
    bundle = find_bundle(bundle_arg)
    commands = {
        "python": [str(VENV_BIN / "python"), "-c", "pass"],
        "venv_hit": [str(VENV_BIN / "gatekey")],
        "bundle_hit": [str(bundle / "gatekey")],
    }
    with tempfile.TemporaryDirectory(prefix="gatekey-bench-") as tmp:
        root = Path(tmp)
        env = base_env(root)
        write_config(root)
        for key in ("venv_hit", "bundle_hit"):
            out = run_checked(commands[key], env)
            if out != CACHED:
                raise SystemExit(f"bench: {LABELS[key]} printed {out[:60]!r}")
        times = measure(commands, env, args.runs, args.warmup)
        if fetches(root) != 1:
            raise SystemExit(f"bench: the source ran {fetches(root)} times; hits expected")
    summary = summarize(times)
    ratios = {}
    for name, (num, den, limit) in RATIOS.items():
        value = summary[num]["median_ms"] / summary[den]["median_ms"]
        met = None if limit is None else value <= limit
        ratios[name] = {"ratio": round(value, 3), "target": limit, "met": met}
    result = {
        "machine": {**machine(), "bundle": str(bundle)},
        "runs": args.runs,
        "warmup": args.warmup,
        "commands": {key: LABELS[key] for key in COMMANDS},
        "medians": summary,
        "ratios": ratios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bundle-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "bundle-latest.md").write_text(table)
    print(json.dumps(result, indent=2) if args.json else table, end="" if not args.json else "\n")
    missed = [n for n, r in ratios.items() if r["met"] is False]
    if missed:
        print(f"bench: targets missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed and args.check else 0


def markdown(result: dict) -> str:
    lines = [
        f"Bundle benchmark ({result['machine']['date']}, {result['runs']} runs, interleaved):",
        "",
        "| command | median ms | min ms | p90 ms |",
        "|---|---:|---:|---:|",
    ]
    for key in COMMANDS:
        m = result["medians"][key]
        lines.append(
            f"| `{LABELS[key]}` | {m['median_ms']:.1f} | {m['min_ms']:.1f} | {m['p90_ms']:.1f} |"
        )
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    for name, (num, den, _limit) in RATIOS.items():
        x = result["ratios"][name]
        target = "-" if x["target"] is None else f"<= {x['target']}"
        met = "-" if x["met"] is None else ("yes" if x["met"] else "**no**")
        lines.append(f"| {LABELS[num]} / {LABELS[den]} | {x['ratio']:.2f} | {target} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
