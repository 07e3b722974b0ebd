#!/usr/bin/env python3
"""Median wall time of gatekey's AWS Secrets Manager paths next to their floors, in one run.

Against moto's Secrets Manager on 127.0.0.1 (tests/support/moto_peer.py: moto's server behind a
small counting proxy, started for the run and stopped at the end), measures on this machine:
  python -c pass   the interpreter gatekey is installed in, doing nothing (the floor)
  cache hit        `gatekey-vault`, an `aws-secrets-manager` profile whose secret an earlier run
                   cached (default cache_ttl, 15m)
  read-through     `gatekey-vault`, the same secret from a profile with cache_ttl = 0: every run
                   reads AWS
  boto3 script     a minimal script (same interpreter, same environment): one
                   boto3.client("secretsmanager").get_secret_value(SecretId=...), prints
                   SecretString

and the targets: cache hit <= 2.5x python -c pass, read-through <= 1.3x the boto3 script. Every
run (warm-ups included) is checked against the GetSecretValue requests the proxy relayed: none
for a cache hit, exactly one for a read-through and for the script. The proxy is in front of both
gatekey and the script, so it costs them the same.

No Secret Service is started: on Linux a vault secret's cache lives in the kernel keyring (the
user keyring, memory only), which serves the cache hit with the standard library alone; the OS
keychain copy gatekey also tries to write is unreachable here, which costs only the cache fill.
Without a usable kernel keyring (not Linux, or keyctl blocked by a seccomp profile such as
Docker's default) nothing is cached and the benchmark stops. The cached secret is erased from
the keyring (`gatekey erase`) at the end.

Rounds are interleaved as in bench.py: --warmup rounds, then --runs rounds, each running the four
measurements in a new random order. A sample is time.perf_counter() around the process, stdin
closed, with its CPU time (getrusage of the children), as in bench_idp.py.

Usage: .venv/bin/python benchmarks/bench_vault.py [--runs N] [--warmup N] [--json] [--check]
       [--out DIR]
Writes benchmarks/results/vault-latest.json and vault-latest.md (or into --out). Needs boto3 and
moto[server] in the venv (the test extra). Exit status: 0, or 1 with --check when a target is
missed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (
    VENV_BIN,
    exit_status,
    machine,
    parse_args,
    run_checked,
    sample,
    use_venv_interpreter,
)
from bench_idp import Measurement, requests_text, stats

from peers import isolated_env  # bench.py put tests/support on the path

SECRET_ID = "bench/litellm/team"  # noqa: S105 - a name, not a secret
SECRET = "sk-vault-bench-" + "v" * 40

COMMANDS = ("python", "cache_hit", "read_through", "boto3")
LABELS = {
    "python": "python -c pass",
    "cache_hit": "gatekey-vault (cache hit)",
    "read_through": "gatekey-vault (read-through, cache_ttl = 0)",
    "boto3": "boto3 get_secret_value script",
}
# GetSecretValue requests every run of a measurement must make (else the figure is meaningless).
EXPECTED_CALLS = {"python": 0, "cache_hit": 0, "read_through": 1, "boto3": 1}
RATIOS = {
    "cache_hit_vs_python": ("cache_hit", "python", 2.5),
    "read_through_vs_boto3": ("read_through", "boto3", 1.3),
}

# The floor for a read-through: what any Python script fetching the secret has to do.
BASELINE_SCRIPT = """\
import sys

import boto3

print(boto3.client("secretsmanager").get_secret_value(SecretId=sys.argv[1])["SecretString"])
"""

CONFIG = f"""\
[profiles.hit]
source = "aws-secrets-manager"
secret_id = "{SECRET_ID}"

[profiles.through]
source = "aws-secrets-manager"
secret_id = "{SECRET_ID}"
cache_ttl = 0
"""


def scenario_env(root: Path, aws: dict[str, str], profile: str) -> dict[str, str]:
    """The isolated environment plus moto's, with its own cache directory, selecting
    ``profile``."""
    cache = root / f"cache-{profile}"
    cache.mkdir(mode=0o700, exist_ok=True)
    return {
        **isolated_env(root),
        **aws,
        "GATEKEY_CONFIG": str(root / "config.toml"),
        "GATEKEY_CACHE_DIR": str(cache),
        "GATEKEY_PROFILE": profile,
    }


def measurements(
    root: Path, counter: SimpleNamespace, hit: dict[str, str], through: dict[str, str]
) -> dict[str, Measurement]:
    """The four measurements; every command's answer and the cache are checked first."""
    script = root / "get_secret_value.py"
    script.write_text(BASELINE_SCRIPT)
    vault = [str(VENV_BIN / "gatekey-vault")]
    argvs = {
        "python": ([str(VENV_BIN / "python"), "-c", "pass"], hit),
        "cache_hit": (vault, hit),
        "read_through": (vault, through),
        "boto3": ([str(VENV_BIN / "python"), str(script), SECRET_ID], through),
    }
    for key in COMMANDS[1:]:  # the first `gatekey-vault` run for `hit` reads AWS and caches it
        argv, env = argvs[key]
        if run_checked(argv, env) != SECRET.encode() + b"\n":
            raise SystemExit(f"bench: {LABELS[key]} did not print the secret")
    steps = {
        key: Measurement(lambda argv=argv, env=env: sample(argv, env))
        for key, (argv, env) in argvs.items()
    }
    if steps["cache_hit"](counter)[2] != 0:
        raise SystemExit(
            "bench: the secret was not cached: a cache hit needs the kernel keyring (Linux, "
            "keyctl not blocked by a seccomp profile); this benchmark starts no Secret Service"
        )
    return steps


def measure(
    counter: SimpleNamespace, steps: dict[str, Measurement], runs: int, warmup: int
) -> dict[str, list[tuple[float, float, int]]]:
    """(wall s, CPU s, GetSecretValue calls) of each timed run; warm-ups are checked too."""
    order = list(steps)
    samples: dict[str, list[tuple[float, float, int]]] = {key: [] for key in order}
    for round_no in range(warmup + runs):
        random.shuffle(order)  # interleaved, in a new order each round
        for key in order:
            elapsed, cpu, calls = steps[key](counter)
            if calls != EXPECTED_CALLS[key]:
                raise SystemExit(
                    f"bench: a run of {LABELS[key]} made {calls} GetSecretValue requests, not "
                    f"{EXPECTED_CALLS[key]}; the measurement would not be what it claims"
                )
            if round_no >= warmup:
                samples[key].append((elapsed, cpu, calls))
    return samples


def erase_cached_secret(env: dict[str, str]) -> None:
    """Leave no copy of the secret in this user's kernel keyring (it would live for a day)."""
    proc = subprocess.run(
        [str(VENV_BIN / "gatekey-vault"), "erase", "-p", env["GATEKEY_PROFILE"]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=60,
    )
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip()
        print(f"bench: could not erase the cached secret: {why}", file=sys.stderr)


def run_against_moto(
    root: Path, runs: int, warmup: int
) -> dict[str, list[tuple[float, float, int]]]:
    """Start moto, store the secret, measure; erase the cached secret and stop moto, whatever
    happens."""
    from moto_peer import MotoServer

    try:
        moto = MotoServer(root / "moto")
    except (RuntimeError, TimeoutError, OSError) as e:
        raise SystemExit(f"bench: moto's server did not start: {e}") from None
    hit: dict[str, str] | None = None
    try:
        moto.create_secret(SECRET_ID, SECRET)
        (root / "config.toml").write_text(CONFIG)
        aws = moto.env()
        hit, through = scenario_env(root, aws, "hit"), scenario_env(root, aws, "through")
        # Measurement counts "token requests": here, the GetSecretValue requests moto saw.
        counter = SimpleNamespace(token_requests=moto.get_secret_value_calls)
        return measure(counter, measurements(root, counter, hit, through), runs, warmup)
    finally:
        if hit is not None:
            erase_cached_secret(hit)
        moto.stop()


# --- results -------------------------------------------------------------------------------------
def ratios(medians: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    values = {
        name: medians[n]["median_ms"] / medians[d]["median_ms"]
        for name, (n, d, _) in RATIOS.items()
    }
    return {
        name: {"ratio": round(values[name], 3), "target": limit, "met": values[name] <= limit}
        for name, (_, _, limit) in RATIOS.items()
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Vault benchmark ({m['date']}, Python {m['python']}, {m['cpus']} CPUs, {result['runs']} "
        f"runs after {result['warmup']} warm-ups, interleaved; moto's Secrets Manager on "
        "127.0.0.1):",
        "",
        "| measurement | median ms | min ms | p90 ms | CPU ms | GetSecretValue per run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in COMMANDS:
        x = result["medians"][key]
        calls = requests_text(result["get_secret_value_calls"][key])
        lines.append(
            f"| `{LABELS[key]}` | {x['median_ms']:.1f} | {x['min_ms']:.1f} | {x['p90_ms']:.1f} "
            f"| {x['cpu_median_ms']:.0f} | {calls} |"
        )
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    for name, (num, den, _limit) in RATIOS.items():
        x = result["ratios"][name]
        lines.append(
            f"| {LABELS[num]} / {LABELS[den]} | {x['ratio']:.2f} | <= {x['target']} "
            f"| {'yes' if x['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    use_venv_interpreter(__file__)
    args = parse_args(argv, __doc__ or "", runs=20, warmup=2, results="vault-latest")

    # A plain `kill` must still stop moto, erase the cached secret and remove the directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="gatekey-bench-vault-") as tmp:
        samples = run_against_moto(Path(tmp), args.runs, args.warmup)

    medians = {
        key: stats([s[0] for s in samples[key]], [s[1] for s in samples[key]]) for key in COMMANDS
    }
    result = {
        "machine": machine(),
        "runs": args.runs,
        "warmup": args.warmup,
        "secret_id": SECRET_ID,
        "commands": {key: LABELS[key] for key in COMMANDS},
        "medians": medians,
        "get_secret_value_calls": {key: [s[2] for s in samples[key]] for key in COMMANDS},
        "ratios": ratios(medians),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vault-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "vault-latest.md").write_text(table)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table, end="")
    return exit_status(result["ratios"], check=args.check)


if __name__ == "__main__":
    sys.exit(main())
