"""The command line (click). Helper runs go through runner.helper_run; errors, runner.guard."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import click

from gatekey import __version__, config, context, kinds, logs, output, runner
from gatekey.cache import FileCache, cache_key
from gatekey.durations import format_duration, parse_duration
from gatekey.errors import ConfigError, HelperError
from gatekey.kinds import FAMILIES
from gatekey.token import state

MAX_SECRET_BYTES = 64 * 1024


class Duration(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


class State:
    def __init__(self, family: str | None, verbose: int, debug: bool) -> None:
        self.family = family
        self.verbose = verbose
        self.debug = debug

    def guard(self, fn: Any) -> None:
        runner.guard(fn, debug=self.debug)


pass_state = click.make_pass_decorator(State)
profile_option = click.option(
    "-p",
    "--profile",
    metavar="NAME",
    help="Profile to use (default: GATEKEY_PROFILE, default_profile, or the only one).",
)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More detail on stderr (never a secret).")
@click.option("--debug", is_flag=True, help="Debug logs and tracebacks on stderr (never a secret).")
@click.pass_context
def gatekey(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Print a gateway credential for Claude (no arguments), or manage and debug credentials.

    With no command, prints the default profile's credential exactly as Claude Desktop's
    inferenceCredentialHelper and Claude Code's apiKeyHelper expect.
    """
    family = ctx.obj.family if isinstance(ctx.obj, State) else None
    ctx.obj = State(family, verbose, debug)
    logs.setup(verbose, debug)
    if ctx.invoked_subcommand is None:
        ctx.obj.guard(lambda: runner.helper_run(family))


@gatekey.command()
@profile_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(output.FORMATS),
    default=None,
    help="token | json (profile's output by default) | header (for curl) | env (for Claude Code).",
)
@click.option(
    "--min-ttl",
    type=Duration(),
    default=None,
    help="Refresh unless this much lifetime is left (90s, 15m, 1h).",
)
@click.option("--force-refresh", is_flag=True, help="Ignore cached tokens and remembered failures.")
@pass_state
def get(
    st: State, profile: str | None, fmt: str | None, min_ttl: float | None, force_refresh: bool
) -> None:
    """Print a profile's credential."""
    st.guard(
        lambda: runner.helper_run(
            st.family, profile=profile, fmt=fmt, min_ttl=min_ttl, force_refresh=force_refresh
        )
    )


def _keychain_source(
    st: State, profile: str | None
) -> tuple[Any, config.Profile, context.RunContext]:
    from gatekey.refresh import Links, make_source

    cfg = config.load()
    prof = cfg.profile(config.select_profile(cfg, profile, st.family))
    source = make_source(prof, Links(cfg))
    return source, prof, context.resolve(cfg)


def _read_secret() -> str:
    if sys.stdin is None or sys.stdin.closed:
        raise HelperError(
            'no secret given: pipe it on stdin, e.g. printf %s "$KEY" | gatekey store'
        )
    if sys.stdin.isatty():
        value = click.prompt("Secret", hide_input=True, confirmation_prompt=True, err=True)
    else:
        data = sys.stdin.buffer.read(MAX_SECRET_BYTES + 1)
        if len(data) > MAX_SECRET_BYTES:
            raise HelperError(f"the secret on stdin is larger than {MAX_SECRET_BYTES // 1024} KiB")
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise HelperError("the secret on stdin is not UTF-8 text") from None
    value = value.strip()  # `echo KEY | gatekey store` adds a newline; keys never end in space
    if not value:
        raise HelperError("no secret given: stdin was empty")
    logs.register_secret(value)
    output.check_token(value)
    return value


@gatekey.command()
@profile_option
@pass_state
def store(st: State, profile: str | None) -> None:
    """Store a secret in the keychain, read from stdin (or a hidden prompt); never from argv."""

    def do() -> None:
        source, prof, run = _keychain_source(st, profile)
        if not isinstance(source, kinds.Storing):
            raise HelperError(
                f"uses source {prof.kind!r}, which gets its credential elsewhere; "
                "only keychain profiles store one",
                profile=prof.name,
            )
        value = _read_secret()
        source.store(value, run)
        FileCache().delete(cache_key(prof.kind, prof.source_settings()))
        click.echo(
            f'gatekey: stored the credential of profile "{prof.name}" in the keychain '
            f"({source.where})",
            err=True,
        )

    st.guard(do)


@gatekey.command()
@profile_option
@pass_state
def erase(st: State, profile: str | None) -> None:
    """Remove a profile's stored secret (keychain) and its cached tokens."""

    def do() -> None:
        from gatekey.refresh import token_store

        source, prof, run = _keychain_source(st, profile)
        key = cache_key(prof.kind, prof.source_settings())
        removed = token_store(prof, run, FileCache()).delete(key)
        removed = FileCache().delete(key) or removed
        what = "its cached token" if removed else "nothing was cached"
        if isinstance(source, kinds.Storing):
            erased = source.erase(run)
            what = f"the keychain entry ({source.where})" if erased else "nothing was stored"
        click.echo(f'gatekey: profile "{prof.name}": erased {what}', err=True)

    st.guard(do)


@gatekey.command()
@profile_option
@pass_state
def login(st: State, profile: str | None) -> None:
    """Sign in interactively (whatever CLAUDE_HELPER_CONTEXT says), so later runs are silent."""

    def do() -> None:
        from gatekey.refresh import Links, make_source, profile_cache_key

        cfg = config.load()
        prof = cfg.profile(config.select_profile(cfg, profile, st.family))
        source = make_source(prof, Links(cfg))
        if not isinstance(source, kinds.SigningIn):
            raise HelperError(f"uses source {prof.kind!r}, which has no sign-in", profile=prof.name)
        run = context.RunContext(
            "login", interactive=True, timeout=cfg.timeout("interactive"), force_refresh=True
        )
        cache = FileCache()
        key = profile_cache_key(prof)
        with cache.lock(key, run):
            token = source.login(run)
            cache.write(key, token)
            cache.clear_failure(key)
        who = token.meta.get("account")
        click.echo(
            f'gatekey: profile "{prof.name}": signed in' + (f" as {who}" if who else ""),
            err=True,
        )

    st.guard(do)


@gatekey.command()
@profile_option
@click.option("--all", "all_accounts", is_flag=True, help="Forget every account of the profile.")
@pass_state
def logout(st: State, profile: str | None, all_accounts: bool) -> None:
    """Forget a profile's sign-in and cached tokens; later silent runs need a new login."""

    def do() -> None:
        from gatekey.refresh import Links, make_source, profile_cache_key

        cfg = config.load()
        prof = cfg.profile(config.select_profile(cfg, profile, st.family))
        source = make_source(prof, Links(cfg))
        run = context.RunContext("logout", interactive=False, timeout=cfg.timeout("silent"))
        removed = FileCache().delete(profile_cache_key(prof))
        if isinstance(source, kinds.SigningIn):
            removed = bool(source.logout(run, all_accounts=all_accounts)) or removed
        click.echo(
            f'gatekey: profile "{prof.name}": '
            + ("signed out" if removed else "was not signed in"),
            err=True,
        )

    st.guard(do)


@gatekey.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--runs", is_flag=True, help="Summarise the run log (log_file) instead.")
@pass_state
def status(st: State, as_json: bool, runs: bool) -> None:
    """One line per profile: source, cache state, expiry. Never a secret."""

    def do() -> None:
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

    st.guard(do)


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


@gatekey.group("config")
def config_group() -> None:
    """Show, locate and validate the configuration."""


@config_group.command("path")
def config_path() -> None:
    """Print where gatekey looks for its config files, highest precedence first."""
    for (path, _required), label in zip(config.locate(), ("managed", "user"), strict=True):
        present = "present" if os.path.exists(path) else "absent"
        output.write_text(f"{label}: {path} ({present})")


@config_group.command("show")
@profile_option
@pass_state
def config_show(st: State, profile: str | None) -> None:
    """Print every effective value and where it came from (config holds no secrets)."""

    def do() -> None:
        cfg = config.load()
        lines = [f"# files: {cfg.describe_files()}"]
        for key, (value, origin) in cfg.top_level().items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value, key)}  # {origin}")
        for name in [profile] if profile else cfg.profile_names:
            prof = cfg.profile(name)  # a mistake fails the command before anything is printed
            lines.append(f"\n[profiles.{_toml_key(name)}]")
            for key in sorted(prof.values, key=lambda k: (k != "source", k)):
                value = prof.values[key]
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value, key)}  # {prof.origins[key]}")
        output.write_text("\n".join(lines))

    st.guard(do)


@config_group.command("validate")
@pass_state
def config_validate(st: State) -> None:
    """Check every config file and profile, and what a no-argument run would select."""

    def do() -> None:
        cfg = config.load()
        problems: list[ConfigError] = []
        from gatekey.refresh import Links, make_source

        for name in cfg.profile_names:
            try:
                make_source(cfg.profile(name), Links(cfg))  # sources check what the schema cannot
            except ConfigError as e:
                problems.append(e)
        try:
            runner.require_family(st.family)
            selected = config.select_profile(cfg, None, st.family)
            if selected not in cfg.profile_names:  # e.g. GATEKEY_PROFILE names no profile
                cfg.profile(selected)
        except ConfigError as e:
            problems.append(e)
        for problem in problems[1:]:
            click.echo(f"gatekey: {problem}", err=True)
        if problems:
            raise problems[0]
        click.echo(
            f"gatekey: configuration is valid ({len(cfg.profile_names)} profile(s); "
            f"files: {cfg.describe_files()})",
            err=True,
        )

    st.guard(do)


@gatekey.command()
def version() -> None:
    """Print gatekey's version."""
    output.write_text(f"gatekey {__version__} (Python {sys.version.split()[0]})")


def _toml_key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else json.dumps(name)


def _toml_value(value: Any, key: str) -> str:
    if key in ("min_ttl",) or key.startswith("timeouts."):
        return json.dumps(f"{value:g}s")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(value)


def cli_main(family: str | None = None) -> None:
    prog = "gatekey" if family is None else f"gatekey-{family}"
    if family is not None and family not in FAMILIES:
        raise AssertionError(family)
    runner.ensure_std_streams()
    try:
        code = gatekey.main(prog_name=prog, obj=State(family, 0, False), standalone_mode=False)
    except click.UsageError as e:
        if e.message.startswith("Got unexpected extra argument"):
            # click would echo the argument, and the usual mistake is `gatekey store <secret>`.
            e = click.UsageError(
                "unexpected extra argument(s), not shown in case one is a secret; gatekey never "
                "takes a secret as an argument: pipe it to `gatekey store` instead",
                ctx=e.ctx,
            )
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        runner.fail("aborted", 1)
    except HelperError as e:  # raised outside a guarded command (e.g. stdout full in `version`)
        runner.fail(str(e), e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _register_commands() -> None:
    """inspect, doctor, check (gatekey.diagnose_cli) and mdm, wrap (gatekey.fleet): their heavy
    imports load when they run."""
    from gatekey import diagnose_cli
    from gatekey.fleet import mdm, wrap

    for command in (*diagnose_cli.COMMANDS, mdm.command, wrap.command):
        gatekey.add_command(command)


_register_commands()
