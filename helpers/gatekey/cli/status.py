"""`gatekey status`: one line per profile (source, cache state, expiry), or the run log summary."""

from __future__ import annotations

import json
import logging
import textwrap
import time
from typing import Any

import click

from gatekey import config, context, kinds, output
from gatekey.cache import FileCache, cache_key
from gatekey.cli.common import State, guarded, no_argument_profile, pass_state
from gatekey.diagnostics.present import table, terminal_width
from gatekey.durations import format_duration
from gatekey.errors import ConfigError, HelperError
from gatekey.token import state


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--runs", is_flag=True, help="Summarise the run log (log_file) instead.")
@pass_state
@guarded
def status(st: State, as_json: bool, runs: bool) -> None:
    """One line per profile: is its credential there (stored, cached, signed in), when it
    expires, where it is kept, and which profile Claude's no-argument run uses. Never a secret.

    A profile the config gets wrong is listed as "config error" and the error is reported on
    stderr (exit 78) after the table.
    """
    cfg = config.load()
    if runs:
        _runs_summary(cfg, as_json)
        return
    now = time.time()
    selected, why = no_argument_profile(cfg, st.family)
    run = context.RunContext("status", interactive=False, timeout=cfg.timeout("silent"))
    problems: list[ConfigError] = []
    rows = [_status_row(cfg, name, now, run, problems) for name in cfg.profile_names]
    for row in rows:
        row["selected"] = row["profile"] == selected
    if as_json:
        doc = {"profiles": rows, "no_argument_profile": selected, "selected_because": why}
        output.write_text(json.dumps(doc, indent=2))
    else:
        prog = click.get_current_context().find_root().info_name or "gatekey"
        output.write_text("\n".join(_table(rows, selected, why, prog)))
    for problem in problems[1:]:
        click.echo(f"gatekey: {problem}", err=True)
    if problems:
        raise problems[0]


def _table(rows: list[dict[str, Any]], selected: str | None, why: str, prog: str) -> list[str]:
    header = ("  PROFILE", "SOURCE", "STATE", "EXPIRES IN", "OBTAINED", "ACCOUNT", "STORAGE")
    keys = ("source", "state", "expires_in", "obtained", "account", "storage")
    cells = [
        (("* " if r["selected"] else "  ") + r["profile"], *(r[k] for k in keys)) for r in rows
    ]
    lines = table(cells, header)
    notes: dict[str, list[str]] = {}
    for r in rows:
        if r["note"]:
            notes.setdefault(r["note"], []).append(r["profile"])
    if selected is not None:
        said = [f"* used by a no-argument run ({prog} as Claude runs it): {why}"]
    else:
        said = [f"No profile is used by a no-argument run ({prog} as Claude runs it): {why}"]
    said += [f"{', '.join(names)}: {note}" for note, names in notes.items()]
    width = terminal_width()
    lines.append("")
    for text in said:
        lines += textwrap.wrap(text, width, subsequent_indent="  ") if width else [text]
    return lines


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


def _status_row(
    cfg: config.Config, name: str, now: float, run: context.RunContext, problems: list[ConfigError]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "profile": name,
        "source": cfg.raw_kind(name) or "?",
        "state": "none",
        "expires_in": "-",
        "obtained_at": "-",
        "obtained": "-",
        "account": "-",
        "storage": "-",
        "note": None,  # why a state is unknown (said once under the table)
        "error": None,
    }
    from gatekey.refresh import Links, make_source, token_store

    try:
        prof = cfg.profile(name)
        source = make_source(prof, Links(cfg))  # what the schema cannot check, too
    except ConfigError as e:
        problems.append(e)
        row.update(state="config error", error=str(e))
        return row
    except HelperError as e:  # the kind cannot run here (a plugin or SDK missing)
        row.update(state="unavailable", note=e.message)
        return row
    if not prof.spec.file_cache or not prof.values["cache"]:
        storing = kinds.capable(prof.spec, kinds.Storing)
        line = storing.storage_line(prof) if storing else "not cached: read on each run"
        held, why = _held(source, run)
        row.update(state=held, storage=line, note=why)
        return row
    store = token_store(prof, run, FileCache())
    token, _ = store.read(cache_key(prof.kind, prof.source_settings()))
    row["storage"] = store.describe()
    if token is not None:
        row["account"] = token.meta.get("account", "-")
        remaining = token.remaining(now)
        row["state"] = state(token, now, prof.values["min_ttl"])
        row["expires_in"] = "never" if remaining is None else format_duration(remaining)
        row["obtained_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.obtained_at))
        row["obtained"] = f"{format_duration(max(now - token.obtained_at, 0))} ago"
    if kinds.person_signs_in(prof) and isinstance(source, kinds.SigningIn):
        account, sign_in, row["note"] = _sign_in(source, run)
        row["storage"] += f"; {sign_in}"
        if row["account"] == "-" and account:
            row["account"] = account  # a refreshed token may not name its account
    return row


def _held(source: Any, run: context.RunContext) -> tuple[str, str | None]:
    """A stored secret's state, asked without reading it where the store allows (kinds.Holding):
    "stored" or "not stored", or "unknown" and why it cannot tell."""
    if not isinstance(source, kinds.Holding):
        return "n/a", None
    try:
        return ("stored" if source.holds(run) else "not stored"), None
    except HelperError as e:
        return "unknown", e.message


def _sign_in(
    source: kinds.SigningIn, run: context.RunContext
) -> tuple[str | None, str, str | None]:
    """(account, what the storage column says of the sign-in, why it is unknown), read only,
    as doctor reads it. Where it really is: in a file when Linux has no Secret Service, whatever
    the profile asked for (the store's own warning about that is this column's business)."""
    quiet = logging.getLogger("gatekey.sources")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        signed_in = source.sign_in_state(run)
    except HelperError as e:
        return None, "sign-in unknown", e.message
    finally:
        quiet.setLevel(level)
    where = "OS keychain" if signed_in.storage == "keychain" else "user-only file (not encrypted)"
    if signed_in.account is None:
        return None, f"not signed in (it would be kept in the {where})", None
    return signed_in.account, f"sign-in kept in the {where}", None
