"""`gatekey status`: one line per profile (source, cache state, expiry), or the run log summary."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from gatekey import config, context, kinds, output
from gatekey.cache import FileCache, cache_key
from gatekey.cli.common import State, guarded, pass_state
from gatekey.durations import format_duration
from gatekey.errors import ConfigError, HelperError
from gatekey.token import state


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--runs", is_flag=True, help="Summarise the run log (log_file) instead.")
@pass_state
@guarded
def status(st: State, as_json: bool, runs: bool) -> None:
    """One line per profile: source, cache state, expiry. Never a secret."""
    cfg = config.load()
    if runs:
        _runs_summary(cfg, as_json)
        return
    now = time.time()
    rows = [_status_row(cfg, name, now) for name in cfg.profile_names]
    if as_json:
        output.write_text(json.dumps({"profiles": rows}, indent=2))
        return
    header = ("PROFILE", "SOURCE", "STATE", "EXPIRES IN", "OBTAINED", "ACCOUNT", "STORAGE")
    keys = ("profile", "source", "state", "expires_in", "obtained_at", "account", "storage")
    table = [header] + [tuple(r[k] for k in keys) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        output.write_text(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )


def _runs_summary(cfg: config.Config, as_json: bool) -> None:
    """Runs, cache hit rate, p50/p95 latency and failures by cause, from the run log."""
    from gatekey import runlog

    path, _origin = cfg.log_file
    if path is None:
        raise ConfigError(
            'no run log is configured; add log_file = "~/.local/state/gatekey/runs.jsonl" at '
            "the top of the config to record one line per helper run",
            file=cfg.describe_files(),
            key="log_file",
        )
    entries = runlog.read(path)
    summary = summarise_runs(entries)
    summary["log_file"] = path
    if as_json:
        output.write_text(json.dumps(summary, indent=2))
        return
    if not entries:
        output.write_text(f"no runs recorded yet in {path}")
        return
    lines = [
        f"run log: {path} ({summary['first']} .. {summary['last']})",
        f"runs: {summary['runs']}, cache hit rate: {summary['cache_hit_rate']:.0%}, "
        f"source requests: {summary['source_requests']}",
        f"latency: p50 {summary['p50_ms']:.0f} ms, p95 {summary['p95_ms']:.0f} ms",
        f"failures: {summary['failures']}",
    ]
    for cause, count in summary["failures_by_cause"].items():
        lines.append(f"  {cause}: {count}")
    for name, row in summary["profiles"].items():
        lines.append(
            f"profile {name}: {row['runs']} runs, {row['cache_hits']} cache hits, "
            f"{row['failures']} failures"
        )
    output.write_text("\n".join(lines))


def summarise_runs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    durations = sorted(
        float(e["duration_ms"]) for e in entries if isinstance(e.get("duration_ms"), (int, float))
    )

    def pct(q: float) -> float:
        if not durations:
            return 0.0
        return durations[min(len(durations) - 1, round(q * (len(durations) - 1)))]

    failures = [e for e in entries if e.get("exit") != 0]
    causes: dict[str, int] = {}
    for e in failures:
        cause = f"{e.get('cause', 'unknown')} (exit {e.get('exit')})"
        causes[cause] = causes.get(cause, 0) + 1
    profiles: dict[str, dict[str, int]] = {}
    for e in entries:
        row = profiles.setdefault(
            str(e.get("profile")), {"runs": 0, "cache_hits": 0, "failures": 0}
        )
        row["runs"] += 1
        row["cache_hits"] += e.get("cache") == "hit"
        row["failures"] += e.get("exit") != 0
    hits = sum(1 for e in entries if e.get("cache") == "hit")
    return {
        "runs": len(entries),
        "first": entries[0].get("time") if entries else None,
        "last": entries[-1].get("time") if entries else None,
        "cache_hit_rate": hits / len(entries) if entries else 0.0,
        "source_requests": sum(int(e.get("source_requests") or 0) for e in entries),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "failures": len(failures),
        "failures_by_cause": dict(sorted(causes.items(), key=lambda kv: -kv[1])),
        "profiles": profiles,
    }


def _status_row(cfg: config.Config, name: str, now: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "profile": name,
        "source": cfg.raw_kind(name) or "?",
        "state": "none",
        "expires_in": "-",
        "obtained_at": "-",
        "account": "-",
        "storage": "-",
    }
    try:
        prof = cfg.profile(name)
    except ConfigError as e:
        row.update(state="config error", storage=str(e))
        return row
    if not prof.spec.file_cache or not prof.values["cache"]:
        storing = kinds.capable(prof.spec, kinds.Storing)
        line = storing.storage_line(prof) if storing else "not cached: read on each run"
        row.update(state="n/a", storage=line)
        return row
    from gatekey.refresh import token_store

    store = token_store(prof, context.resolve(cfg), FileCache())
    token, _ = store.read(cache_key(prof.kind, prof.source_settings()))
    row["storage"] = store.describe()
    if kinds.person_signs_in(prof):
        row["storage"] += f"; sign-in kept in the {_sign_in_storage(cfg, prof)}"
    if token is not None:
        row["account"] = token.meta.get("account", "-")
        remaining = token.remaining(now)
        row["state"] = state(token, now, prof.values["min_ttl"])
        row["expires_in"] = "never" if remaining is None else format_duration(remaining)
        row["obtained_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.obtained_at))
    return row


def _sign_in_storage(cfg: config.Config, prof: config.Profile) -> str:
    """Where a profile's sign-in actually is, as its kind tells (kinds.SigningIn)."""
    from gatekey.refresh import Links, make_source

    try:
        source = make_source(prof, Links(cfg))
    except HelperError:
        return "OS keychain (unknown)"
    assert isinstance(source, kinds.SigningIn)  # noqa: S101 - person_signs_in said so
    return source.sign_in_storage()
