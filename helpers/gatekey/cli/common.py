"""What every command shares: the State click passes down, the shared options, and @guarded."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

import click

from gatekey import runner
from gatekey.durations import parse_duration

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
        runner.guard(fn, debug=self.debug)


pass_state = click.make_pass_decorator(State)
profile_option = click.option(
    "-p",
    "--profile",
    metavar="NAME",
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
