#!/usr/bin/env python3
"""Median wall time of gatekey's hot paths next to their peers, measured in one run.

Measures, on this machine and in one process so the figures are comparable:
  python -c pass     the interpreter gatekey is installed in, doing nothing (the floor)
  cache hit          `gatekey` with no arguments, a fresh token already in gatekey's cache
  gatekey-keychain   `gatekey-keychain` reading a key from the real Secret Service
  secret-tool        `secret-tool lookup service gatekey username <account>` (libsecret, C)
  keyring get        `keyring get gatekey <account>` (keyring's CLI, backend auto-detected)

and the ratios the project targets: cache hit <= 2.5x python -c pass, and gatekey-keychain
<= 0.9x keyring get. A private D-Bus session bus and gnome-keyring-daemon (unlocked) are started
for the run and stopped at the end; HOME, config and cache live in a temporary directory.

Each command is run a few times to warm up, then --runs times in rounds; every round runs the
commands in a fresh random order, so drift on the machine spreads over all of them. Each sample is
time.perf_counter() around subprocess.run() with stdin closed (as the app runs the helper).

Usage: .venv/bin/python benchmarks/bench.py [--runs N] [--warmup N] [--json] [--check] [--out DIR]
Writes benchmarks/results/latest.json and latest.md (or into --out). Needs dbus-daemon,
gnome-keyring-daemon and secret-tool (apt: dbus gnome-keyring libsecret-tools; scripts/test.sh
installs them). Exit status: 0, or 1 with --check when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROOT = HERE.parent
# The venv gatekey is installed in: ./.venv, or $GATEKEY_BENCH_VENV. The script runs under its
# interpreter (it re-executes itself there), and `python -c pass` is that same interpreter.
VENV = Path(os.environ.get("GATEKEY_BENCH_VENV") or ROOT / ".venv")
VENV_BIN = VENV / "bin"

ACCOUNT = "bench"
KEYCHAIN_VALUE = "sk-bench-" + "k" * 40
CACHED_TOKEN = "tok-bench-" + "c" * 40

# (key, label, targets): targets are (numerator, denominator, limit) for the ratio checks.
COMMANDS = ("python", "cache_hit", "keychain", "secret_tool", "keyring_get")
LABELS = {
    "python": "python -c pass",
    "cache_hit": "gatekey (cache hit)",
    "keychain": "gatekey-keychain",
    "secret_tool": "secret-tool lookup",
    "keyring_get": "keyring get",
}
RATIOS = {
    "cache_hit_vs_python": ("cache_hit", "python", 2.5),
    "keychain_vs_keyring_get": ("keychain", "keyring_get", 0.9),
    "keychain_vs_secret_tool": ("keychain", "secret_tool", None),  # the C floor: informative
}

# The command source's token: valid for a day, and every fetch is counted, so the benchmark can
# prove that each timed `gatekey` run was a cache hit.
SOURCE_SCRIPT = """\
import json
with open(%r, "a") as f:
    f.write("fetch\\n")
print(json.dumps({"access_token": %r, "expires_in": 86400}))
"""

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from peers import SecretService, isolated_env  # noqa: E402 - the tests' own peer fixture


def base_env(root: Path) -> dict[str, str]:
    return dict(isolated_env(root), GATEKEY_CONFIG=str(root / "config.toml"))


def start_secret_service(env: dict[str, str]) -> SecretService:
    missing = [*SecretService.missing_tools(), *([] if shutil.which("secret-tool") else ["x"])]
    if missing:
        raise SystemExit(
            "bench: needs dbus-daemon, gnome-keyring-daemon and secret-tool "
            "(apt: dbus gnome-keyring libsecret-tools)"
        )
    service = SecretService(env)
    try:
        env["DBUS_SESSION_BUS_ADDRESS"] = service.start()
    except RuntimeError as e:
        raise SystemExit(f"bench: {e}") from None
    return service


def write_config(root: Path) -> None:
    script = root / "print_token.py"
    script.write_text(SOURCE_SCRIPT % (str(root / "fetches.txt"), CACHED_TOKEN))
    (root / "config.toml").write_text(
        'default_profile = "cmd"\n\n'
        "[profiles.cmd]\n"
        'source = "command"\n'
        f"command = [{json.dumps(str(VENV_BIN / 'python'))}, {json.dumps(str(script))}]\n"
        'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n\n'
        "[profiles.kc]\n"
        'source = "keychain"\n'
        'service = "gatekey"\n'
        f'account = "{ACCOUNT}"\n'
    )


def argvs() -> dict[str, list[str]]:
    return {
        "python": [str(VENV_BIN / "python"), "-c", "pass"],
        "cache_hit": [str(VENV_BIN / "gatekey")],
        "keychain": [str(VENV_BIN / "gatekey-keychain")],
        "secret_tool": ["secret-tool", "lookup", "service", "gatekey", "username", ACCOUNT],
        "keyring_get": [str(VENV_BIN / "keyring"), "get", "gatekey", ACCOUNT],
    }


def run_checked(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        argv,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        env=env,
        timeout=60,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(argv)} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return proc.stdout


def prepare(env: dict[str, str], commands: dict[str, list[str]]) -> None:
    """Store the keychain item, fill gatekey's cache, and check every command's answer."""
    run_checked([str(VENV_BIN / "gatekey"), "store", "-p", "kc"], env, KEYCHAIN_VALUE.encode())
    expected = {
        "python": b"",
        "cache_hit": CACHED_TOKEN.encode() + b"\n",  # the first run fetches and caches it
        "keychain": KEYCHAIN_VALUE.encode() + b"\n",
        "secret_tool": KEYCHAIN_VALUE.encode(),
        "keyring_get": KEYCHAIN_VALUE.encode() + b"\n",
    }
    for key, argv in commands.items():
        out = run_checked(argv, env)
        if out != expected[key]:
            raise SystemExit(f"bench: {LABELS[key]} printed {out[:80]!r}, not the expected value")


def sample(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(argv)} failed during timing (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return elapsed


def measure(
    commands: dict[str, list[str]], env: dict[str, str], runs: int, warmup: int
) -> dict[str, list[float]]:
    keys = list(commands)
    for _ in range(warmup):
        for key in keys:
            sample(commands[key], env)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(runs):
        random.shuffle(keys)  # interleaved, in a new order each round
        for key in keys:
            times[key].append(sample(commands[key], env))
    return times


def fetches(root: Path) -> int:
    """How many times gatekey asked the command source for a token (1: all the rest were hits)."""
    path = root / "fetches.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


# --- what every benchmark reports: bench_bundle.py and bench_shapes.py pass their own tables ---
def summarize(
    times: dict[str, list[float]], keys: tuple[str, ...] = COMMANDS
) -> dict[str, dict[str, float]]:
    out = {}
    for key in keys:
        ms = sorted(t * 1000 for t in times[key])
        out[key] = {
            "median_ms": round(statistics.median(ms), 2),
            "min_ms": round(ms[0], 2),
            "p90_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.9))], 2),
            "stdev_ms": round(statistics.stdev(ms), 2) if len(ms) > 1 else 0.0,
            "runs": len(ms),
        }
    return out


def ratios(
    summary: dict[str, dict[str, float]],
    table: dict[str, tuple[str, str, float | None]] = RATIOS,
) -> dict[str, dict[str, float | bool | None]]:
    out: dict[str, dict[str, float | bool | None]] = {}
    for name, (num, den, limit) in table.items():
        value = summary[num]["median_ms"] / summary[den]["median_ms"]
        out[name] = {
            "ratio": round(value, 3),
            "target": limit,
            "met": None if limit is None else value <= limit,
        }
    return out


def machine() -> dict[str, str | int | None]:
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    version = subprocess.run(
        [str(VENV_BIN / "gatekey"), "version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "python": sys.version.split()[0],
        "interpreter": str(VENV_BIN / "python"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "gatekey": version or None,
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def markdown(
    result: dict,
    title: str = "",
    *,
    labels: dict[str, str] = LABELS,
    table: dict[str, tuple[str, str, float | None]] = RATIOS,
    untargeted: str = "floor",
) -> str:
    """The medians and the ratios as Markdown tables under ``title`` (this benchmark's by
    default); ``untargeted`` stands in the target column of a ratio without one."""
    s, r = result["medians"], result["ratios"]
    lines = [
        title
        or (
            f"Benchmark ({result['machine']['date']}, Python {result['machine']['python']}, "
            f"{result['machine']['cpus']} CPUs, {result['runs']} runs after {result['warmup']} "
            "warm-ups, interleaved):"
        ),
        "",
        "| command | median ms | min ms | p90 ms |",
        "|---|---:|---:|---:|",
    ]
    for key in labels:
        m = s[key]
        lines.append(
            f"| `{labels[key]}` | {m['median_ms']:.1f} | {m['min_ms']:.1f} | {m['p90_ms']:.1f} |"
        )
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    for name, (num, den, _limit) in table.items():
        x = r[name]
        target = untargeted if x["target"] is None else f"<= {x['target']}"
        met = "-" if x["met"] is None else ("yes" if x["met"] else "**no**")
        lines.append(f"| {labels[num]} / {labels[den]} | {x['ratio']:.2f} | {target} | {met} |")
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace, result: dict, stem: str, table: str) -> int:
    """Write ``<stem>.json`` and ``<stem>.md`` into --out, print one of them (--json), and the
    exit status: 1 with --check when a target is missed."""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(table)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table, end="")
    return exit_status(result["ratios"], check=args.check)


def use_venv_interpreter(script: str = __file__) -> None:
    """Re-execute ``script`` under the venv's python, where gatekey and the benchmarks'
    libraries (jeepney, msal, requests, trustme, boto3, moto) are installed."""
    python = VENV_BIN / "python"
    if not python.exists():
        raise SystemExit(f"bench: {python} not found; run scripts/test.sh once to create the venv")
    if Path(sys.prefix).resolve() != VENV.resolve():
        path = str(Path(script).resolve())
        os.execv(str(python), [str(python), path, *sys.argv[1:]])  # noqa: S606 - no shell


def parse_args(
    argv: list[str] | None, doc: str, *, runs: int, warmup: int, results: str
) -> argparse.Namespace:
    """The options every benchmark takes: --runs, --warmup, --json, --check, --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--runs", type=int, default=runs, help=f"timed rounds ({runs})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"warm-up rounds ({warmup})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help=f"where to write {results}.json and {results}.md (default: benchmarks/results)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    use_venv_interpreter()
    args = parse_args(argv, __doc__ or "", runs=40, warmup=3, results="latest")
    warmup = args.warmup

    with tempfile.TemporaryDirectory(prefix="gatekey-bench-") as tmp:
        root = Path(tmp)
        env = base_env(root)
        write_config(root)
        service = start_secret_service(env)
        try:
            commands = argvs()
            prepare(env, commands)
            times = measure(commands, env, args.runs, warmup)
            if fetches(root) != 1:
                raise SystemExit(
                    f"bench: gatekey fetched a token {fetches(root)} times; the timed runs of "
                    "`gatekey` were meant to be cache hits"
                )
        finally:
            service.stop()

    summary = summarize(times)
    result = {
        "machine": machine(),
        "runs": args.runs,
        "warmup": warmup,
        "commands": {key: LABELS[key] for key in COMMANDS},
        "medians": summary,
        "ratios": ratios(summary),
    }
    return report(args, result, "latest", markdown(result))


def exit_status(ratio_results: dict[str, dict[str, float | bool | None]], *, check: bool) -> int:
    missed = [name for name, x in ratio_results.items() if x["met"] is False]
    if missed:
        print(f"bench: targets missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if (missed and check) else 0


if __name__ == "__main__":
    sys.exit(main())
