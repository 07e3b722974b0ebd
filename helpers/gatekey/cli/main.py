"""The `gatekey` command group and cli_main, the entry every executable takes past the cache hit."""

from __future__ import annotations

import re
import sys
from typing import Any, cast

import click

from gatekey import __version__, config, logs, output, runner
from gatekey.cli.common import State
from gatekey.cli.config_cmds import config_group
from gatekey.cli.credentials import erase, get, login, logout, store
from gatekey.cli.diagnose import COMMANDS as DIAGNOSE_COMMANDS
from gatekey.cli.fleet_cmds import mdm, wrap
from gatekey.cli.profile_cmds import profile_group
from gatekey.cli.status import status
from gatekey.errors import HelperError
from gatekey.kinds import FAMILIES

# The group's command list, one line each at 80 columns (click would cut a docstring's first
# sentence short with "..."); a command's own --help says the rest.
SUMMARIES = {
    "get": "Print a profile's credential (as Claude gets it, or as a header)",
    "login": "Sign in to the identity provider, so later runs are silent",
    "logout": "Forget a profile's sign-in and cached tokens",
    "store": "Store a secret in the keychain (from stdin or a hidden prompt)",
    "erase": "Remove a profile's stored secret and cached tokens",
    "status": "Each profile: is its credential there, which one Claude uses",
    "config": "Show, locate and validate the configuration",
    "profile": "Add a profile to your config (commented and validated)",
    "inspect": "Decode and judge a credential (a profile's, or one on stdin)",
    "doctor": "Check the setup end to end, with a fix for each problem",
    "check": "Run the helper exactly as Claude does, in every context",
    "mdm": "Generate Claude's managed configuration (or gatekey's own)",
    "wrap": "Write a no-argument wrapper pinned to one profile",
    "version": "Print gatekey's version",
}
EPILOG = """Run "gatekey COMMAND --help" for a command's options. No command and no
arguments: what Claude runs (stdout carries only the credential).

\b
Shell completion (bash; zsh_source or fish_source for those shells):
  eval "$(_GATEKEY_COMPLETE=bash_source gatekey)"
"""


class Gatekey(click.Group):
    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name[:1] != "-" and self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            # What was typed may be a secret (`gatekey sk-...`): shown only when it is clearly
            # a misspelt command.
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            if close:
                raise click.UsageError(
                    f'no such command "{name}"; did you mean "{close[0]}"?', ctx=ctx
                )
            raise click.UsageError(
                "no such command (not shown, in case it is a secret); the commands are: "
                + ", ".join(self.list_commands(ctx)),
                ctx=ctx,
            )
        return super().resolve_command(ctx, args)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        output.write_text(_version_text())
        ctx.exit(0)


def _version_text() -> str:
    return f"gatekey {__version__} (Python {sys.version.split()[0]})"


@click.group(
    "gatekey",
    cls=Gatekey,
    invoke_without_command=True,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr (never a secret).")
@click.option("--debug", is_flag=True, help="Debug logs and tracebacks on stderr (never a secret).")
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_print_version,
    help="Print gatekey's version and exit.",
)
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


@click.command("version")
def version() -> None:
    """Print gatekey's version."""
    output.write_text(_version_text())


def cli_main(family: str | None = None) -> None:
    prog = "gatekey" if family is None else f"gatekey-{family}"
    if family is not None and family not in FAMILIES:
        raise AssertionError(family)
    runner.ensure_std_streams()
    try:
        code = gatekey.main(prog_name=prog, obj=State(family, 0, False), standalone_mode=False)
    except click.UsageError as e:
        if e.message.startswith("Got unexpected extra argument"):
            e = click.UsageError(_extra_arguments(e), ctx=e.ctx)
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        runner.fail("aborted", 1)
    except HelperError as e:  # raised outside a guarded command (e.g. stdout full in `version`)
        runner.fail(str(e), e.exit_code)
    except SystemExit:
        from click.utils import PacifyFlushWrapper

        if isinstance(sys.stdout, cast("type", PacifyFlushWrapper)):
            # click met a reader that went away (`gatekey --help | head -1`): the end of the
            # output, as for every other command (runner.guard), not a failure.
            output.discard_stdout()
            sys.exit(0)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _extra_arguments(e: click.UsageError) -> str:
    """click would echo the arguments, and the usual mistake is `gatekey store <secret>`: say
    what to do instead, naming an argument only when it is one of the config's profile names
    (`gatekey get dev` for `gatekey get -p dev`)."""
    message = (
        "unexpected extra argument(s), not shown in case one is a secret; gatekey never takes a "
        "secret as an argument: pipe it to `gatekey store` instead"
    )
    command: Any = e.ctx.command if e.ctx is not None else None
    takes_profile = command is not None and any(p.name == "profile" for p in command.params)
    if not takes_profile or e.ctx is None:
        return message
    match = re.fullmatch(r"Got unexpected extra arguments? \((.*)\)", e.message, re.S)
    extra = match.group(1).split(" ") if match else []
    try:
        names = config.load().profile_names
    except Exception:
        names = []
    path = e.ctx.command_path
    if len(extra) == 1 and extra[0] in names:
        return f'unexpected argument "{extra[0]}": choose a profile with -p: {path} -p {extra[0]}'
    import difflib

    close = difflib.get_close_matches(extra[0], names, n=1) if len(extra) == 1 else []
    if close:
        return (
            "unexpected extra argument, not shown in case it is a secret; to choose a profile, "
            f"use -p (did you mean: {path} -p {close[0]}?)"
        )
    return f"{message}; to choose a profile, use -p NAME"


for _command in (
    get,
    store,
    erase,
    login,
    logout,
    status,
    config_group,
    profile_group,
    version,
    mdm,
    wrap,
):
    gatekey.add_command(_command)
for _command in DIAGNOSE_COMMANDS:  # they import the diagnostics when they run
    gatekey.add_command(_command)
for _name, _command in gatekey.commands.items():
    if _command.short_help is None and _name in SUMMARIES:
        _command.short_help = SUMMARIES[_name]
