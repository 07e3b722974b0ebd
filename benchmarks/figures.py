"""Every figure gatekey publishes, measured in one run: the benchmarks and the reliability counts.

    .venv/bin/python benchmarks/figures.py                 # about 15 minutes on 2 cores
    .venv/bin/python benchmarks/figures.py --quick         # fewer rounds, reliability suite only
    .venv/bin/python benchmarks/figures.py --update-readme # and rewrite README's figures table

In order, on this machine:

1. ``bench.py`` (cache hit, keychain), ``bench_idp.py`` (IdP cache hit, cold refresh, stampede)
   and ``bench_vault.py`` (vault cache hit, read-through), each writing its JSON results;
2. the test suite (``--quick``: ``tests/reliability`` only) under pytest-xdist with a JUnit XML
   report and ``GATEKEY_CRASH_ROUNDS`` (200 unless ``--quick``); the reliability tests record
   their counts as properties (outage requests per source and fault, crash rounds survived and
   sign-ins lost, concurrency rounds) and every test records what the secret-hygiene check
   scanned and found (tests/support/hygiene.py); ``LONG_ROUNDS`` sets the long outage,
   concurrency and fuzz rounds (CI runs fewer: tests/support/rounds.py);
3. one summary: ``results/summary.md`` (the markdown table the README shows) and
   ``results/summary.json``.

Exit status 1 if a test failed, a target was missed or a secret was found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import use_venv_interpreter  # noqa: E402

ROOT = HERE.parent
README = ROOT / "README.md"
BEGIN, END = "<!-- figures -->", "<!-- /figures -->"
# The long rounds the published figures come from (CI runs fewer: tests/support/rounds.py):
# environment variable -> (count, count with --quick).
LONG_ROUNDS = {
    "GATEKEY_OUTAGE_RUNS": (50, 20),
    "GATEKEY_CONCURRENCY_ROUNDS": (20, 6),
    "GATEKEY_FUZZ_EXAMPLES": (20, 8),
}
BENCHES = (
    ("bench.py", "latest"),
    ("bench_idp.py", "idp-latest"),
    ("bench_vault.py", "vault-latest"),
    ("bench_bundle.py", "bundle-latest"),  # after build-bundle.sh (see main)
)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    bench: dict[str, Any] = {}
    # The bundle's cache hit is measured against the venv's in the same run: build it first
    # (install/build-bundle.sh; its build venv is cached, the build itself takes ~30 s).
    step("install/build-bundle.sh")
    subprocess.run(
        ["bash", str(ROOT / "install" / "build-bundle.sh")], check=True, stdout=subprocess.DEVNULL
    )
    for script, name in BENCHES:
        step(f"{script} --runs {args.runs}")
        subprocess.run(
            [sys.executable, str(HERE / script), "--runs", str(args.runs), "--out", str(args.out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        bench[name] = json.loads((args.out / f"{name}.json").read_text())
    junit = args.out / "suite.xml"
    targets = ["tests/reliability"] if args.quick else ["tests"]
    step(f"pytest {' '.join(targets)} (GATEKEY_CRASH_ROUNDS={args.crash_rounds})")
    env = dict(os.environ, GATEKEY_CRASH_ROUNDS=str(args.crash_rounds))
    env.update(
        {name: str(quick if args.quick else full) for name, (full, quick) in LONG_ROUNDS.items()}
    )
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadfile",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit2",
            *targets,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    suite = read_junit(junit)
    summary = summarise(bench, suite, args, time.monotonic() - started)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = render(summary)
    (args.out / "summary.md").write_text(table)
    print(table)
    if args.update_readme:
        update_readme(table)
    ok = tests.returncode == 0 and summary["ok"]
    return 0 if ok else 1


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="reliability suite only, fewer rounds")
    p.add_argument("--runs", type=int, help="timed runs per benchmark command (default 30; 10)")
    p.add_argument("--crash-rounds", type=int, help="SIGKILL rounds per crash test (200; 50)")
    p.add_argument("--update-readme", action="store_true", help="rewrite README's figures")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    args = p.parse_args(argv)
    args.runs = args.runs or (10 if args.quick else 30)
    args.crash_rounds = args.crash_rounds or (50 if args.quick else 200)
    return args


def step(text: str) -> None:
    print(f"figures: {text}", file=sys.stderr, flush=True)


# --- the suite's counts ---------------------------------------------------------------------
def read_junit(path: Path) -> dict[str, Any]:
    """Outcome counts, and every recorded property by test id."""
    counts: dict[str, int] = defaultdict(int)
    props: dict[str, dict[str, str]] = {}
    # Our own pytest's report, just written: not untrusted input.
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        test_id = f"{case.get('classname')}::{case.get('name')}"
        children = {child.tag for child in case}
        if "skipped" in children:
            skipped = case.find("skipped")
            kind = (
                "xfailed"
                if skipped is not None and "xfail" in (skipped.get("type") or "")
                else "skipped"
            )
            counts[kind] += 1
        elif children & {"failure", "error"}:
            counts["failed"] += 1
        else:
            counts["passed"] += 1
        found = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        if found:
            props[test_id] = found
    return {"counts": dict(counts), "properties": props}


def _sum(props: dict[str, dict[str, str]], name: str) -> int:
    return sum(int(float(p[name])) for p in props.values() if name in p)


def summarise(
    bench: dict[str, Any], suite: dict[str, Any], args: argparse.Namespace, took: float
) -> dict[str, Any]:
    props: dict[str, dict[str, str]] = suite["properties"]
    ratios = {
        f"{name}.{key}": value
        for name, result in bench.items()
        for key, value in result["ratios"].items()
    }
    outage: dict[str, dict[str, int]] = {}
    for values in props.values():
        for key, value in values.items():
            if m := re.fullmatch(r"outage_requests_(.+)", key):
                runs = values.get(f"outage_runs_{m[1]}", "0")
                outage[m[1]] = {"requests": int(float(value)), "runs": int(float(runs))}
    crash = {
        test_id.rsplit("::", 1)[-1]: {k: v for k, v in values.items() if k.startswith("crash_")}
        for test_id, values in props.items()
        if "crash_rounds" in values
    }
    concurrency = {
        test_id.rsplit("::", 1)[-1]: {
            k.removeprefix("concurrency_"): v
            for k, v in values.items()
            if k.startswith("concurrency_")
        }
        for test_id, values in props.items()
        if "concurrency_rounds" in values
    }
    hygiene = {
        "tests": sum(1 for p in props.values() if "hygiene_runs" in p),
        "gatekey_runs_recorded": _sum(props, "hygiene_runs"),
        "secrets_registered": _sum(props, "hygiene_secrets"),
        "secrets_found": _sum(props, "hygiene_findings"),
    }
    missed = [name for name, r in ratios.items() if r["met"] is False]
    return {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": bench["latest"]["machine"],
        "runs": args.runs,
        "crash_rounds": args.crash_rounds,
        "scope": "tests/reliability" if args.quick else "whole suite",
        "seconds": round(took),
        "medians": {name: r["medians"] for name, r in bench.items()},
        "ratios": ratios,
        "stampede": {
            "processes": bench["idp-latest"]["stampede_processes"],
            "max_token_requests": bench["idp-latest"]["stampede_token_requests"]["max"],
        },
        "outage": outage,
        "crash": crash,
        "concurrency": concurrency,
        "hygiene": hygiene,
        "tests": suite["counts"],
        "missed_targets": missed,
        "ok": not missed and hygiene["secrets_found"] == 0 and not suite["counts"].get("failed"),
    }


# --- the table --------------------------------------------------------------------------------
TIMES = "\u00d7"  # the multiplication sign
SPEED_ROWS = (  # label, results, command, ratio, what the ratio compares with
    (
        "cache hit, `command` source",
        "latest",
        "cache_hit",
        "cache_hit_vs_python",
        "`python -c pass`",
    ),
    (
        "keychain read, real Secret Service",
        "latest",
        "keychain",
        "keychain_vs_keyring_get",
        "`keyring get`",
    ),
    (
        "cache hit, IdP profile",
        "idp-latest",
        "cache_hit",
        "cache_hit_vs_python",
        "`python -c pass`",
    ),
    (
        "cold refresh (refresh-token grant)",
        "idp-latest",
        "refresh",
        "refresh_vs_requests",
        "a minimal `requests` script",
    ),
    (
        "stampede: 16 processes, expired token",
        "idp-latest",
        "stampede",
        "stampede_vs_cold_fetch",
        "one cold fetch",
    ),
    (
        "cache hit, vault (kernel keyring)",
        "vault-latest",
        "cache_hit",
        "cache_hit_vs_python",
        "`python -c pass`",
    ),
    (
        "read-through, AWS Secrets Manager",
        "vault-latest",
        "read_through",
        "read_through_vs_boto3",
        "a minimal boto3 script",
    ),
    (
        "cache hit, the bundle (install/build-bundle.sh)",
        "bundle-latest",
        "bundle_hit",
        "bundle_hit_vs_venv_hit",
        "the venv's cache hit",
    ),
)


def render(s: dict[str, Any]) -> str:
    rows = []
    for label, bench, command, name, baseline in SPEED_ROWS:
        if f"{bench}.{name}" not in s["ratios"]:  # an older results folder: no bundle figures
            continue
        x = s["ratios"][f"{bench}.{name}"]
        target = "" if x["target"] is None else f" (target \u2264 {x['target']:g})"
        median = s["medians"][bench][command]["median_ms"]
        rows.append((label, f"{median:.1f} ms: **{x['ratio']:.2f}{TIMES}** {baseline}{target}"))
    rows[4] = (
        rows[4][0],
        rows[4][1] + f"; {s['stampede']['max_token_requests']} token request per round at most",
    )
    for name, c in sorted(s["concurrency"].items()):
        rows.append(
            (
                f"concurrency ({name.split('[')[-1].rstrip(']')}): {c['processes']} processes "
                f"{TIMES} {c['rounds']} rounds, rotating refresh tokens",
                f"{c['token_requests']} token requests (one per profile per round), "
                f"{c['invalid_grant']} `invalid_grant`; wall per round median "
                f"{float(c['round_wall_median_s']):.2f} s, "
                f"max {float(c['round_wall_max_s']):.2f} s",
            )
        )
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key, v in sorted(s["outage"].items()):
        kind, _, fault = key.partition("_")
        by_kind[kind].append(f"{fault}: {v['requests']}")
    runs = max((v["runs"] for v in s["outage"].values()), default=0)
    for kind, parts in by_kind.items():
        rows.append((f"outage, `{kind}`: source requests in {runs} rapid runs", ", ".join(parts)))
    for name, c in sorted(s["crash"].items()):
        lost = int(c.get("crash_lost_sign_ins", 0))
        limit = " (a regression: the requirement is 0)" if lost else ""
        if "crash_saved_after_kill" in c:  # kills after the refresh left, saved by its worker
            limit += f"; {int(c['crash_saved_after_kill'])} kills saved by the refresh worker"
        what = name.removeprefix("test_sigkill_at_random_points_of_").replace("_", " ")
        what = what.replace("[", " (").replace("]", ")")
        rows.append(
            (
                f"crash: SIGKILL at random points of {what}",
                f"{c['crash_rounds']} kills: the cache valid or absent after every one; sign-ins "
                f"lost: {lost}{limit}; next run at most "
                f"{float(c.get('crash_next_run_max_s', 0)):.2f} s",
            )
        )
    h = s["hygiene"]
    rows.append(
        (
            "secrets found (raw, base64, base64url, URL-encoded)",
            f"**{h['secrets_found']}**, in {h['gatekey_runs_recorded']} recorded gatekey runs "
            f"of {h['tests']} tests ({h['secrets_registered']} secrets registered)",
        )
    )
    t, m = s["tests"], s["machine"]
    head = (
        f"Measured {s['date']} in one run of `.venv/bin/python benchmarks/figures.py` "
        f"({s['seconds'] // 60} min; {m['cpus']} cores, Python {m['python']}; medians of "
        f"{s['runs']} timed runs per command; {s['crash_rounds']} crash rounds; {s['scope']}: "
        f"{t.get('passed', 0)} passed, {t.get('failed', 0)} failed, {t.get('xfailed', 0)} "
        f"xfailed, {t.get('skipped', 0)} skipped).\n\n"
    )
    lines = ["| figure | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    return head + "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + table + text[end:])


if __name__ == "__main__":
    use_venv_interpreter(__file__)
    sys.exit(main())
