"""The command line (click): parsing, rendering, the one place that turns errors into exit codes.

main.py holds the group and cli_main; common.py the State every command gets, the shared options
and @guarded; one module per family of commands. Helper runs go through runner.helper_run.
"""

from gatekey.cli.common import State
from gatekey.cli.main import cli_main

__all__ = ["State", "cli_main"]
