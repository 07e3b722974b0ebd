"""The credential commands: get, store, erase, login and logout of one profile."""

from __future__ import annotations

import sys
from typing import Any

import click

from gatekey import config, context, kinds, logs, output, runner
from gatekey.cache import FileCache, cache_key
from gatekey.cli.common import Duration, State, guarded, pass_state, profile_option
from gatekey.cli.signin_cmds import can_ask, confirm, depending_on, listing, others_of
from gatekey.cli.signin_cmds import login as login  # cli.main adds the commands from here
from gatekey.cli.signin_cmds import logout as logout
from gatekey.errors import HelperError

MAX_SECRET_BYTES = 64 * 1024


@click.command("get")
@profile_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(output.FORMATS),
    default=None,
    help="token | json | headers (MCP, OTLP) | git-credential (a marketplace): default the "
    "profile's output, or a wrapper's GATEKEY_OUTPUT; header (for curl) | env (for Claude Code).",
)
@click.option(
    "--min-ttl",
    type=Duration(),
    default=None,
    help="Refresh unless this much lifetime is left (90s, 15m, 1h).",
)
@click.option("--force-refresh", is_flag=True, help="Ignore cached tokens and remembered failures.")
@pass_state
@guarded
def get(
    st: State, profile: str | None, fmt: str | None, min_ttl: float | None, force_refresh: bool
) -> None:
    """Print a profile's credential."""
    runner.helper_run(
        st.family, profile=profile, fmt=fmt, min_ttl=min_ttl, force_refresh=force_refresh
    )


def _keychain_source(
    st: State, profile: str | None
) -> tuple[Any, config.Profile, context.RunContext, config.Config]:
    from gatekey.refresh import Links, make_source

    cfg = config.load()
    prof = cfg.profile(config.select_profile(cfg, profile, st.family))
    source = make_source(prof, Links(cfg))
    return source, prof, context.resolve(cfg), cfg


def _read_secret() -> str:
    if sys.stdin is None or sys.stdin.closed:
        raise HelperError(
            'no secret given: pipe it on stdin, e.g. printf %s "$KEY" | gatekey store'
        )
    if sys.stdin.isatty():
        try:
            value = click.prompt("Secret", hide_input=True, confirmation_prompt=True, err=True)
        except click.Abort as e:
            if isinstance(e.__context__, KeyboardInterrupt):  # Ctrl-C: exit 130, as shells do
                raise KeyboardInterrupt from None
            raise HelperError("nothing stored: the input ended (Ctrl-D) at the prompt") from None
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


@click.command("store")
@profile_option
@pass_state
@guarded
def store(st: State, profile: str | None) -> None:
    """Store a secret in the keychain, read from stdin (or a hidden prompt); never from argv."""
    source, prof, run, _cfg = _keychain_source(st, profile)
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
        f'gatekey: stored the credential of profile "{prof.name}" in the keychain ({source.where})',
        err=True,
    )


@click.command("erase")
@profile_option
@click.option(
    "-y", "--yes", is_flag=True, help="Do not ask before erasing what other profiles use too."
)
@pass_state
@guarded
def erase(st: State, profile: str | None, yes: bool) -> None:
    """Remove a profile's stored secret (keychain) and its cached tokens."""
    from gatekey.refresh import token_store

    source, prof, run, cfg = _keychain_source(st, profile)
    key = cache_key(prof.kind, prof.source_settings())
    stores = isinstance(source, kinds.Storing)
    # The same kind and source settings are the same credential: one cache key, one entry.
    shared = [p.name for p in others_of(cfg, prof) if cache_key(p.kind, p.source_settings()) == key]
    readers = depending_on(cfg, {prof.name, *shared}) if stores else []
    if (shared or readers) and not yes and can_ask():
        question = f'erasing profile "{prof.name}" also {_erase_reach(shared, readers)}. Go on?'
        if not confirm(question, default=False):
            raise HelperError("nothing was erased", profile=prof.name)
    removed = token_store(prof, run, FileCache()).delete(key)
    removed = FileCache().delete(key) or removed
    erased = stores and source.erase(run)
    what = [f"the keychain entry ({source.where})"] if erased else []
    what += ["its cached token"] if removed else []
    said = "erased " + " and ".join(what) if what else "nothing to erase (nothing stored or cached)"
    reach = _erase_reach(shared if removed or erased else [], readers if erased else [])
    line = f'gatekey: profile "{prof.name}": {said}'
    click.echo(line + (f"; this also {reach}" if reach else ""), err=True)


def _erase_reach(shared: list[str], readers: list[str]) -> str:
    """Who else an erase reaches: profiles of the very same credential, and those that read a
    secret from this keychain entry ({ keychain = ... })."""
    parts = []
    if shared:
        parts.append(
            f"erases it for {listing(shared)} (the same credential: identical source settings)"
        )
    if readers:
        parts.append(
            f"takes the secret that {listing(readers)} read{'s' if len(readers) == 1 else ''}"
        )
    return " and ".join(parts)
