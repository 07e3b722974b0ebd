"""The credential commands: get, store, erase, login and logout of one profile."""

from __future__ import annotations

import sys
from typing import Any

import click

from gatekey import config, context, kinds, logs, output, runner
from gatekey.cache import FileCache, cache_key
from gatekey.cli.common import Duration, State, guarded, pass_state, profile_option
from gatekey.errors import HelperError

MAX_SECRET_BYTES = 64 * 1024


@click.command("get")
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
        f'gatekey: stored the credential of profile "{prof.name}" in the keychain ({source.where})',
        err=True,
    )


@click.command("erase")
@profile_option
@pass_state
@guarded
def erase(st: State, profile: str | None) -> None:
    """Remove a profile's stored secret (keychain) and its cached tokens."""
    from gatekey.refresh import token_store

    source, prof, run = _keychain_source(st, profile)
    key = cache_key(prof.kind, prof.source_settings())
    removed = token_store(prof, run, FileCache()).delete(key)
    removed = FileCache().delete(key) or removed
    erased = isinstance(source, kinds.Storing) and source.erase(run)
    what = [f"the keychain entry ({source.where})"] if erased else []
    what += ["its cached token"] if removed else []
    said = "erased " + " and ".join(what) if what else "nothing to erase (nothing stored or cached)"
    click.echo(f'gatekey: profile "{prof.name}": {said}', err=True)


@click.command("login")
@profile_option
@pass_state
@guarded
def login(st: State, profile: str | None) -> None:
    """Sign in interactively (whatever CLAUDE_HELPER_CONTEXT says), so later runs are silent."""
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


@click.command("logout")
@profile_option
@click.option("--all", "all_accounts", is_flag=True, help="Forget every account of the profile.")
@pass_state
@guarded
def logout(st: State, profile: str | None, all_accounts: bool) -> None:
    """Forget a profile's sign-in and cached tokens; later silent runs need a new login."""
    from gatekey.refresh import Links, make_source, profile_cache_key

    cfg = config.load()
    prof = cfg.profile(config.select_profile(cfg, profile, st.family))
    source = make_source(prof, Links(cfg))
    run = context.RunContext("logout", interactive=False, timeout=cfg.timeout("silent"))
    removed = FileCache().delete(profile_cache_key(prof))
    if isinstance(source, kinds.SigningIn):
        removed = bool(source.logout(run, all_accounts=all_accounts)) or removed
    click.echo(
        f'gatekey: profile "{prof.name}": ' + ("signed out" if removed else "was not signed in"),
        err=True,
    )
