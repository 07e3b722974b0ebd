"""What every command shares: the State click passes down, the shared options, and @guarded."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

import click

from gatekey import config, runner
from gatekey.durations import parse_duration
from gatekey.errors import ConfigError, HelperError

P = ParamSpec("P")


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
    """The group's options and the executable's family (gatekey-idp...), for every command."""

    def __init__(self, family: str | None, verbose: int, debug: bool) -> None:
        self.family = family
        self.verbose = verbose
        self.debug = debug

    def guard(self, fn: Callable[[], None]) -> None:
        runner.guard(lambda: _without_abort(fn), debug=self.debug)


def _without_abort(fn: Callable[[], None]) -> None:
    """click turns Ctrl-C and Ctrl-D at a prompt into Abort; say which it was: an interrupt
    (exit 130, as a shell expects) or the end of input (one line saying nothing was done)."""
    try:
        fn()
    except click.Abort as e:
        if isinstance(e.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if isinstance(e.__context__, EOFError):
            raise HelperError("the input ended (Ctrl-D) at the prompt; nothing was done") from None
        raise HelperError("cancelled; nothing was done") from None


def _complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of -p: the config's profile names (none if the config cannot load)."""
    try:
        names = config.load().profile_names
    except Exception:
        return []
    return [name for name in names if name.startswith(incomplete)]


pass_state = click.make_pass_decorator(State)
profile_option = click.option(
    "-p",
    "--profile",
    metavar="NAME",
    shell_complete=_complete_profiles,
    help="Profile to use (default: GATEKEY_PROFILE, default_profile, or the only one).",
)


def guarded(fn: Callable[Concatenate[State, P], None]) -> Callable[Concatenate[State, P], None]:
    """Run a command's body under runner.guard: every failure becomes one stderr line and its
    documented exit code. Goes under @pass_state; click's own usage errors must be raised before
    (outside) a guarded body, or they would count as internal errors."""

    @functools.wraps(fn)
    def run(st: State, /, *args: P.args, **kwargs: P.kwargs) -> None:
        st.guard(lambda: fn(st, *args, **kwargs))

    return run


def note(text: str) -> None:
    """A human command's remark on stderr, e.g. where it wrote a file."""
    click.echo(f"gatekey: {text}", err=True)


def no_argument_profile(cfg: config.Config, family: str | None) -> tuple[str | None, str]:
    """The profile a no-argument run (what Claude runs) selects, and why; (None, the reason)
    when it selects none. GATEKEY_PROFILE is this shell's: the app has its own environment."""
    try:
        runner.require_family(family)
        name = config.select_profile(cfg, None, family)
        if name not in cfg.profile_names:
            cfg.profile(name)  # GATEKEY_PROFILE naming no profile: the error says so
    except ConfigError as e:
        return None, e.describe(where=False)
    except HelperError as e:
        return None, e.message
    if os.environ.get("GATEKEY_PROFILE", "").strip():
        return name, "GATEKEY_PROFILE is set in this shell (Claude sees its own environment)"
    default, origin = cfg.default_profile
    if default == name:
        return name, f"default_profile in {origin}"
    only = "profile" if family is None else f"{family} profile"
    return name, f"the only {only}"
