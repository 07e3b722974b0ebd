"""The `gatekey` command group and cli_main, the entry every executable takes past the cache hit."""

from __future__ import annotations

import sys

import click

from gatekey import __version__, logs, output, runner
from gatekey.cli.common import State
from gatekey.cli.config_cmds import config_group
from gatekey.cli.credentials import erase, get, login, logout, store
from gatekey.cli.diagnose import COMMANDS as DIAGNOSE_COMMANDS
from gatekey.cli.fleet_cmds import mdm, wrap
from gatekey.cli.status import status
from gatekey.errors import HelperError
from gatekey.kinds import FAMILIES


@click.group(
    "gatekey", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
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


@click.command("version")
def version() -> None:
    """Print gatekey's version."""
    output.write_text(f"gatekey {__version__} (Python {sys.version.split()[0]})")


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


for _command in (get, store, erase, login, logout, status, config_group, version, mdm, wrap):
    gatekey.add_command(_command)
for _command in DIAGNOSE_COMMANDS:  # they import the diagnostics when they run
    gatekey.add_command(_command)
