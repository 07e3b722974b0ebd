"""`gatekey wrap` (issue 6). Placeholder until it lands: says so and exits 1."""

from __future__ import annotations

import click

from gatekey.errors import HelperError


@click.command("wrap")
@click.pass_obj
def command(st: object) -> None:
    """Not available yet."""
    st.guard(_missing)  # type: ignore[attr-defined]


def _missing() -> None:
    raise HelperError("gatekey wrap is not available in this version yet")
