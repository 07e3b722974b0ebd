#!/usr/bin/env python3
"""Median wall time of gatekey's identity-provider paths next to their floors, in one run.

Against the real OpenID provider of the test suite (node-oidc-provider over HTTPS on 127.0.0.1,
started for the run and stopped at the end), measures on this machine:
  python -c pass      the interpreter gatekey is installed in, doing nothing (the floor)
  cache hit           `gatekey`, an `oidc` client-credentials profile, a fresh token cached
  cold refresh        `gatekey`, a signed-in device-code profile: gatekey's token file deleted
                      and MSAL's access token expired, so the run redeems the refresh token
  requests refresh    a minimal script (same interpreter): one refresh-token POST with requests,
                      its own sign-in, verifying TLS against certifi's bundle (requests' default)
                      plus the test CA; it prints the access token and keeps the rotated one
  cold fetch          `gatekey`, the client-credentials profile, its cached token expired
  stampede            16 `gatekey` started together on that expired token: until all 16 exit

and the targets: cache hit <= 2.5x python -c pass, cold refresh <= 2x requests refresh,
stampede <= 2x cold fetch, and exactly one token request per stampede. Every timed run is
checked against the provider's request log: the cache hits made no token request, every other
run (and every stampede) exactly one.

Rounds are interleaved as in bench.py: warm-ups, then --runs rounds running the six measurements
in a new random order each round. A sample is time.perf_counter() around the process(es), stdin
closed, with their CPU time (getrusage of the children); the preparation of a sample (deleting or
expiring cached tokens) is not timed.

Usage: .venv/bin/python benchmarks/bench_idp.py [--runs N] [--warmup N] [--json] [--check]
       [--out DIR]
Writes benchmarks/results/idp-latest.json and idp-latest.md (or into --out). Needs node and the
provider's npm packages (scripts/test.sh installs both). Exit status: 0, or 1 with --check when
a target is missed.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import certifi

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

from peers import isolated_env  # bench.py put tests/support on the path

if TYPE_CHECKING:
    from oidc_peer import OidcProvider

STAMPEDE = 16
CONF_SECRET = "conf-secret"  # noqa: S105 - the test provider's client secret
DEVICE_URL = re.compile(r"\(or open (https://\S+)\)")

COMMANDS = ("python", "cache_hit", "refresh", "requests_refresh", "cold_fetch", "stampede")
LABELS = {
    "python": "python -c pass",
    "cache_hit": "gatekey (IdP cache hit)",
    "refresh": "gatekey (cold refresh)",
    "requests_refresh": "requests refresh POST",
    "cold_fetch": "gatekey (cold fetch)",
    "stampede": f"{STAMPEDE} x gatekey (stampede)",
}
# Token requests every timed run of a measurement must make (else the figure is meaningless).
EXPECTED_REQUESTS = {
    "python": 0,
    "cache_hit": 0,
    "refresh": 1,
    "requests_refresh": 1,
    "cold_fetch": 1,
}
RATIOS = {
    "cache_hit_vs_python": ("cache_hit", "python", 2.5),
    # 1.5 until issue 12: a refresh that may rotate the sign-in now runs in a worker process
    # that a kill cannot stop (worker.py), one more interpreter start (~30 ms) per refresh,
    # which happens once per token lifetime. Crash safety is worth that; the target says so.
    "refresh_vs_requests": ("refresh", "requests_refresh", 2.0),
    "stampede_vs_cold_fetch": ("stampede", "cold_fetch", 2.0),
}

# The floor for a cold refresh: what any script has to do, and nothing more.
BASELINE_SCRIPT = """\
import os
import sys

import requests

state, token_endpoint, ca = sys.argv[1:4]
with open(state) as f:
    refresh_token = f.read().strip()
s = requests.Session()
s.verify = ca
s.trust_env = False
r = s.post(
    token_endpoint,
    data={
        "client_id": "public-client",
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": "api.read openid profile offline_access",
    },
    timeout=10,
)
r.raise_for_status()
body = r.json()
tmp = state + ".tmp"
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    f.write(body["refresh_token"])
os.replace(tmp, state)  # the refresh token rotated: keep the new one for the next run
print(body["access_token"])
"""


# --- the provider, the config and the sign-ins ---------------------------------------------------
def start_provider(root: Path) -> OidcProvider:
    from oidc_peer import OidcProvider, make_tls, missing_tools

    missing = missing_tools()
    if missing:
        raise SystemExit(
            f"bench: the OpenID provider needs {', '.join(missing)} (scripts/test.sh installs it)"
        )
    try:
        return OidcProvider(make_tls(root / "tls"), root / "provider")
    except (RuntimeError, TimeoutError) as e:
        raise SystemExit(f"bench: {e}") from None


def write_config(root: Path, op: OidcProvider) -> Path:
    common = (
        f'source = "oidc"\nissuer = "{op.issuer}"\nca_bundle = "{op.ca}"\nscopes = ["api.read"]\n'
    )
    path = root / "config.toml"
    path.write_text(
        "[profiles.svc]\n"
        + common
        + 'client_id = "conf-client"\nclient_secret = { env = "CONF_SECRET" }\n'
        'flow = "client-credentials"\nmin_ttl = "10m"\n\n'
        "[profiles.user]\n" + common + 'client_id = "public-client"\nflow = "device-code"\n'
        'token_cache = "file"\nmin_ttl = "10m"\n'
    )
    return path


def scenario_env(root: Path, config: Path, name: str, profile: str) -> dict[str, str]:
    """The isolated environment with its own cache directory, selecting ``profile``."""
    cache = root / f"cache-{name}"
    cache.mkdir(mode=0o700)
    return dict(
        isolated_env(root),
        GATEKEY_CONFIG=str(config),
        GATEKEY_CACHE_DIR=str(cache),
        GATEKEY_PROFILE=profile,
        CONF_SECRET=CONF_SECRET,
    )


def sign_in(env: dict[str, str], op: OidcProvider) -> None:
    """`gatekey login -p user` through the device code, approved as alice."""
    from oidc_peer import approve

    proc = subprocess.Popen(
        [str(VENV_BIN / "gatekey"), "login", "-p", "user"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        seen, deadline = b"", time.monotonic() + 30
        while not (match := DEVICE_URL.search(seen.decode(errors="replace"))):
            ready, _, _ = select.select([proc.stderr], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(proc.stderr.fileno(), 65536) if ready else b""
            if not chunk:
                raise SystemExit(f"bench: gatekey login showed no device code: {seen!r}")
            seen += chunk
        approve(match.group(1), op.ca)
        _, rest = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise SystemExit(f"bench: gatekey login exited {proc.returncode}: {seen + rest!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- gatekey's caches ----------------------------------------------------------------------------
def one_file(directory: Path) -> Path:
    files = sorted(directory.glob("*.json"))
    if len(files) != 1:
        raise SystemExit(f"bench: expected one entry in {directory}, found {len(files)}")
    return files[0]


def msal_state(env: dict[str, str]) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The MSAL cache file of a token_cache = "file" profile: (path, its blob, MSAL's cache)."""
    path = one_file(Path(env["GATEKEY_CACHE_DIR"]) / "msal")
    blob = json.loads(json.loads(path.read_text())["blob"])
    return path, blob, json.loads(blob["msal"])


def refresh_token(env: dict[str, str]) -> str:
    _, _, cache = msal_state(env)
    tokens = list(cache.get("RefreshToken", {}).values())
    if len(tokens) != 1:
        raise SystemExit(f"bench: expected one refresh token in MSAL's cache, found {len(tokens)}")
    return str(tokens[0]["secret"])


def make_refresh_cold(env: dict[str, str]) -> None:
    """Delete gatekey's cached token and expire MSAL's access token: only the refresh token is
    left, so the next run redeems it (as an hour after the last refresh)."""
    for path in (Path(env["GATEKEY_CACHE_DIR"]) / "tokens").glob("*.json"):
        path.unlink()
    path, blob, cache = msal_state(env)
    past = str(int(time.time()) - 60)
    for entry in cache.get("AccessToken", {}).values():
        entry["expires_on"] = entry["extended_expires_on"] = past
        entry.pop("refresh_on", None)
    blob["msal"] = json.dumps(cache)
    path.write_text(json.dumps({"blob": json.dumps(blob)}))


def expire_cached_token(env: dict[str, str]) -> None:
    """Move gatekey's cached client-credentials token an hour and two minutes into the past."""
    path = one_file(Path(env["GATEKEY_CACHE_DIR"]) / "tokens")
    entry = json.loads(path.read_text())
    now = time.time()
    entry["expires_at"], entry["obtained_at"] = now - 120, now - 3720
    path.write_text(json.dumps(entry))


# --- samples -------------------------------------------------------------------------------------
def stampede(argv: list[str], env: dict[str, str]) -> float:
    """Start STAMPEDE processes together; the wall time until the last one has exited."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        started = time.perf_counter()
        for _ in range(STAMPEDE):
            procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                )
            )
        results = [p.communicate(timeout=60) for p in procs]
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:  # interrupted: leave no process behind
            if p.poll() is None:
                p.kill()
                p.wait()
    failed = [
        (p.returncode, err) for p, (_, err) in zip(procs, results, strict=True) if p.returncode != 0
    ]
    printed = {out for out, _ in results}
    if failed or len(printed) != 1 or not next(iter(printed)).strip():
        raise SystemExit(f"bench: the stampede failed: {failed[:2]!r}, {len(printed)} outputs")
    return elapsed


class Measurement:
    """One measurement: an untimed preparation, then the timed run(s)."""

    def __init__(self, run: Callable[[], float], prepare: Callable[[], None] | None = None):
        self.run, self.prepare = run, prepare

    def __call__(self, op: OidcProvider) -> tuple[float, float, int]:
        """(wall seconds, CPU seconds of the processes, token requests the provider saw) of the
        timed part."""
        if self.prepare:
            self.prepare()
        before, cpu = op.token_requests(), children_cpu()
        elapsed = self.run()
        return elapsed, children_cpu() - cpu, op.token_requests() - before


def children_cpu() -> float:
    """User + system CPU seconds of every child process that has been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measurements(root: Path, op: OidcProvider, config: Path) -> dict[str, Measurement]:
    gatekey = [str(VENV_BIN / "gatekey")]
    hit = scenario_env(root, config, "hit", "svc")
    cold = scenario_env(root, config, "cold", "svc")
    user = scenario_env(root, config, "user", "user")
    baseline = scenario_env(root, config, "baseline", "user")

    # Fill the caches and check every command's answer before anything is timed.
    for env in (hit, cold):
        if not run_checked(gatekey, env).strip():
            raise SystemExit("bench: gatekey printed no token for the client-credentials profile")
    sign_in(user, op)
    sign_in(baseline, op)  # the baseline's own grant: rotating one never revokes the other
    state = root / "baseline-rt"
    state.write_text(refresh_token(baseline))
    state.chmod(0o600)
    script = root / "refresh_baseline.py"
    script.write_text(BASELINE_SCRIPT)
    # requests verifies against certifi's bundle by default; the test CA is appended so the
    # baseline pays for a real trust store, as gatekey does (the OS store) and as any script
    # talking to a real provider would.
    bundle = root / "baseline-ca.pem"
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + Path(op.ca).read_text())
    requests_argv = [str(VENV_BIN / "python"), str(script), str(state), op.token_endpoint, bundle]
    plain = {k: v for k, v in hit.items() if k not in ("CONF_SECRET", "GATEKEY_PROFILE")}

    make_refresh_cold(user)
    first, second = run_checked(gatekey, user), run_checked(requests_argv, plain)
    if first.count(b".") != 2 or second.count(b".") != 2:
        raise SystemExit("bench: the refreshes did not print access tokens (JWTs)")

    return {
        "python": Measurement(lambda: sample([str(VENV_BIN / "python"), "-c", "pass"], hit)),
        "cache_hit": Measurement(lambda: sample(gatekey, hit)),
        "refresh": Measurement(lambda: sample(gatekey, user), lambda: make_refresh_cold(user)),
        "requests_refresh": Measurement(lambda: sample(requests_argv, plain)),
        "cold_fetch": Measurement(lambda: sample(gatekey, cold), lambda: expire_cached_token(cold)),
        "stampede": Measurement(lambda: stampede(gatekey, cold), lambda: expire_cached_token(cold)),
    }


def measure(
    op: OidcProvider, steps: dict[str, Measurement], runs: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[int]]]:
    keys = list(steps)
    for _ in range(warmup):
        for key in keys:
            steps[key](op)
    times: dict[str, list[float]] = {key: [] for key in keys}
    cpus: dict[str, list[float]] = {key: [] for key in keys}
    requests: dict[str, list[int]] = {key: [] for key in keys}
    for _ in range(runs):
        random.shuffle(keys)  # interleaved, in a new order each round
        for key in keys:
            elapsed, cpu, made = steps[key](op)
            expected = EXPECTED_REQUESTS.get(key)
            if expected is not None and made != expected:
                raise SystemExit(
                    f"bench: a timed run of {LABELS[key]} made {made} token requests, not "
                    f"{expected}; the measurement would not be what it claims"
                )
            times[key].append(elapsed)
            cpus[key].append(cpu)
            requests[key].append(made)
    return times, cpus, requests


# --- results -------------------------------------------------------------------------------------
def stats(seconds: list[float], cpu_seconds: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in seconds)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "min_ms": round(ms[0], 2),
        "p90_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.9))], 2),
        "stdev_ms": round(statistics.stdev(ms), 2) if len(ms) > 1 else 0.0,
        # CPU time of the measured process(es), user + system: the stampede's is 16 processes'.
        "cpu_median_ms": round(statistics.median(cpu_seconds) * 1000, 2),
        "runs": len(ms),
    }


def ratios(medians: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, (num, den, limit) in RATIOS.items():
        value = medians[num]["median_ms"] / medians[den]["median_ms"]
        out[name] = {"ratio": round(value, 3), "target": limit, "met": value <= limit}
    return out


def stampede_check(counts: list[int]) -> dict[str, Any]:
    """The stampede's token requests per round: every round must have made exactly one."""
    return {"max": max(counts), "rounds": len(counts), "target": 1, "met": set(counts) == {1}}


def requests_text(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def markdown(result: dict[str, Any]) -> str:
    m, r, s = result["machine"], result["ratios"], result["stampede_token_requests"]
    lines = [
        f"IdP benchmark ({m['date']}, Python {m['python']}, {m['cpus']} CPUs, {result['runs']} "
        f"runs after {result['warmup']} warm-ups, interleaved; node-oidc-provider on 127.0.0.1):",
        "",
        "| measurement | median ms | min ms | p90 ms | CPU ms | token requests per run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in COMMANDS:
        x = result["medians"][key]
        lines.append(
            f"| `{LABELS[key]}` | {x['median_ms']:.1f} | {x['min_ms']:.1f} | {x['p90_ms']:.1f} "
            f"| {x['cpu_median_ms']:.0f} | {requests_text(result['token_requests'][key])} |"
        )
    lines += ["", "| ratio | value | target | met |", "|---|---:|---:|---|"]
    for name, (num, den, _limit) in RATIOS.items():
        x = r[name]
        met = "yes" if x["met"] else "**no**"
        lines.append(
            f"| {LABELS[num]} / {LABELS[den]} | {x['ratio']:.2f} | <= {x['target']} | {met} |"
        )
    met = "yes" if s["met"] else "**no**"
    lines.append(
        f"| token requests per stampede (most in {s['rounds']} rounds) | {s['max']} | = 1 | {met} |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    use_venv_interpreter(__file__)
    args = parse_args(argv, __doc__ or "", runs=20, warmup=2, results="idp-latest")
    warmup = args.warmup

    # A plain `kill` must still stop the provider and remove the temporary directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="gatekey-bench-idp-") as tmp:
        root = Path(tmp)
        op = start_provider(root)
        try:
            config = write_config(root, op)
            steps = measurements(root, op, config)
            times, cpus, made = measure(op, steps, args.runs, warmup)
        finally:
            op.stop()

    medians = {key: stats(times[key], cpus[key]) for key in COMMANDS}
    result = {
        "machine": machine(),
        "runs": args.runs,
        "warmup": warmup,
        "stampede_processes": STAMPEDE,
        "commands": {key: LABELS[key] for key in COMMANDS},
        "medians": medians,
        "token_requests": {key: made[key] for key in COMMANDS},
        "ratios": ratios(medians),
        "stampede_token_requests": stampede_check(made["stampede"]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "idp-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "idp-latest.md").write_text(table)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table, end="")

    checks = {**result["ratios"], "stampede_token_requests": result["stampede_token_requests"]}
    return exit_status(checks, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
