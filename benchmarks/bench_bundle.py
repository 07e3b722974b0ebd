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
    markdown,
    measure,
    parse_args,
    ratios,
    report,
    run_checked,
    summarize,
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
    summary = summarize(times, COMMANDS)
    result = {
        "machine": {**machine(), "bundle": str(bundle)},
        "runs": args.runs,
        "warmup": args.warmup,
        "commands": {key: LABELS[key] for key in COMMANDS},
        "medians": summary,
        "ratios": ratios(summary, RATIOS),
    }
    title = f"Bundle benchmark ({result['machine']['date']}, {args.runs} runs, interleaved):"
    table = markdown(result, title, labels=LABELS, table=RATIOS, untargeted="-")
    return report(args, result, "bundle-latest", table)


if __name__ == "__main__":
    sys.exit(main())
