"""The diagnostic commands (inspect, doctor, check): their options, the report on stdout, the exit.

The work is done by click-free functions in gatekey.diagnostics, which return results;
diagnostics.report turns them into text or JSON. They are imported when a command runs, so
registering these commands costs the CLI nothing.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from gatekey import output
from gatekey.diagnostics.surfaces import NAMES as SURFACES
from gatekey.errors import CheckFailed, ChecksFailed, HelperError

if TYPE_CHECKING:
    from gatekey.cli.common import State

MAX_STDIN = 64 * 1024  # inspect --stdin: far more than any token


# --- gatekey inspect ----------------------------------------------------------------------------
@click.command("inspect")
@click.option("-p", "--profile", metavar="NAME", help="Profile whose credential to inspect.")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Inspect a token read from stdin (or gatekey's own JSON, env or header output).",
)
@click.option("--verify", is_flag=True, help="Check the signature against the issuer's JWKS.")
@click.option("--show-token", is_flag=True, help="Also print the token itself.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def inspect_command(
    st: State,
    profile: str | None,
    from_stdin: bool,
    verify: bool,
    show_token: bool,
    as_json: bool,
) -> None:
    """Decode and check a profile's credential (or a token on stdin); never shows the token.

    Checks what a gateway checks (expiry, audience, issuer, signature with --verify), whether
    the token is whole, and whether it outlives Claude's TTL (its managed settings, else 3600 s):
    the app uses a token that long without reading its expiry. Exits 1 if a check fails.
    """

    def do() -> None:
        from gatekey.diagnostics import pasted, report
        from gatekey.diagnostics.inspect import inspect

        given = pasted.read(_read_token()) if from_stdin else None
        found = inspect(st.family, profile, given, verify=verify)
        text = report.inspect_json(found, show_token) if as_json else report.inspect_text(found)
        output.write_text(text)
        if show_token and not as_json:
            output.write_text(f"\nToken (--show-token)\n{found.value}")
        if found.failed:
            raise ChecksFailed(
                f"the credential fails {len(found.failed)} check(s): {', '.join(found.failed)}"
            )

    st.guard(do)


def _read_token() -> str:
    """What inspect --stdin was given: piped, or typed at a hidden prompt on a terminal."""
    if sys.stdin is None or sys.stdin.closed:
        raise HelperError("--stdin: stdin is closed; pipe the token in")
    if sys.stdin.isatty():
        raw: str = click.prompt("Token", hide_input=True, err=True)
        return raw
    from gatekey.process import read_stdin

    data = read_stdin(MAX_STDIN)
    if data is None:
        raise HelperError(f"--stdin: more than {MAX_STDIN // 1024} KiB, not a token")
    return data.decode("utf-8", "replace")


# --- gatekey doctor -----------------------------------------------------------------------------
@click.command("doctor")
@click.option(
    "-p",
    "--profile",
    metavar="NAME",
    help="Profile to check (default: the one Claude's helper pins, GATEKEY_PROFILE, "
    "default_profile, or the only one).",
)
@click.option(
    "--gateway-url",
    metavar="URL",
    help="The gateway's base URL (default: inferenceGatewayBaseUrl from Claude's managed "
    "configuration); doctor calls GET <URL>/v1/models with the profile's token.",
)
@click.option(
    "--probe-messages",
    is_flag=True,
    help="Also send one streaming POST <URL>/v1/messages (max_tokens 1): a BILLABLE request "
    "that shows whether the gateway serves inference, not only its model list.",
)
@click.option(
    "--model",
    metavar="NAME",
    help="The model --probe-messages asks (default: the first GET /v1/models lists).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def doctor_command(
    st: State,
    profile: str | None,
    gateway_url: str | None,
    probe_messages: bool,
    model: str | None,
    as_json: bool,
) -> None:
    """Check the setup end to end: config, what Claude runs, source, sign-in, clock, token,
    gateway, Claude's TTL.

    One line per check (OK / WARN / FAIL / SKIP) and a fix for each problem. Exits 0 unless a
    check fails (warnings do not), 1 if one does. Never prints a token or secret, and changes
    nothing a silent `gatekey get` would not.

    Claude's settings are read from its managed configuration (Linux
    /etc/claude-desktop/managed-settings.json, the macOS managed preferences, the Windows policy
    registry key); GATEKEY_MANAGED_ROOT=DIR reads the Linux/macOS files under DIR instead of /.
    The inferenceCredentialHelper they name is checked as Claude will run it; when it is a
    `gatekey wrap` wrapper, the profile it pins is the one checked (unless -p).

    --probe-messages adds a "messages" check: one minimal streaming inference through the
    gateway, as Claude sends it (a few input tokens and one output token are billed). It passes
    when the stream runs from message_start to message_stop within 30 s.
    """
    if model is not None and not probe_messages:
        raise click.UsageError("--model is for --probe-messages")

    def do() -> None:
        from gatekey.checks import FAIL
        from gatekey.diagnostics import report
        from gatekey.diagnostics.doctor import Doctor

        found = Doctor(profile, st.family, gateway_url, probe_messages=probe_messages, model=model)
        checks = found.run()
        if as_json:
            output.write_text(report.doctor_json(found.name, found.prof, checks))
        else:
            for line in report.doctor_text(found.prof, checks):
                output.write_text(line)
        failed = [c.name for c in checks if c.verdict == FAIL]
        if failed:
            raise HelperError(
                f"doctor: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)}); "
                "see the fixes above"
            )

    st.guard(do)


# --- gatekey check ------------------------------------------------------------------------------
@click.command("check")
@click.option(
    "-p", "--profile", metavar="NAME", help="Check this profile (run with GATEKEY_PROFILE=NAME)."
)
@click.option(
    "--helper",
    metavar="PATH",
    help="Check this executable (any credential helper). Default: the inferenceCredentialHelper "
    "in Claude's managed settings, else this gatekey.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Run the helper even if users other than you and root could replace it (warns).",
)
@click.option(
    "--timeout",
    "app_timeout",
    type=click.FloatRange(1, 600),
    metavar="SECONDS",
    help="The app's inferenceCredentialHelperTimeoutSec to check against (default: gatekey's "
    "[timeouts] for gatekey; 60 with --helper; Claude's setting for another program it names). "
    "mid-session-refresh stays at most 20 s.",
)
@click.option(
    "--interactive", is_flag=True, help="Also run the interactive context (may open a browser)."
)
@click.option(
    "--surface",
    type=click.Choice(SURFACES),
    default=SURFACES[0],
    show_default=True,
    help="Which helper Claude runs it as: the inference helper, an MCP server's headersHelper, "
    "otlpHeadersHelper, a plugin marketplace's credentialHelper, or Claude Code's apiKeyHelper.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def check_command(
    st: State,
    profile: str | None,
    helper: str | None,
    app_timeout: float | None,
    interactive: bool,
    surface: str,
    force: bool,
    as_json: bool,
) -> None:
    """Run the helper as Claude does, once per CLAUDE_HELPER_CONTEXT, and judge its output.

    The helper: --helper, else what Claude's managed settings name (without -p), else this
    gatekey. Each run: the executable with no arguments, stdin closed, a minimal environment
    (PATH, HOME, USER, LOGNAME, LANG, TMPDIR, XDG_*, DBUS_SESSION_BUS_ADDRESS, GATEKEY_*, proxy
    variables, and the desktop's DISPLAY, WAYLAND_DISPLAY, XAUTHORITY, BROWSER...), killed at
    the context's time limit (mid-session-refresh: 20 s). It passes with exit 0 and
    exactly one bare token line or one {"token", "headers"} JSON object on stdout, and no trace
    of the token on stderr. Runs are real: they may refresh cached tokens. Exit 0 only if every
    context passes; the token is never shown.

    --surface checks another helper Claude runs, as it runs that one: mcp and otlp (a flat
    JSON object of headers), marketplace (a bare token or git-credential lines, no JSON),
    api-key-helper (one bare key). Without CLAUDE_HELPER_CONTEXT, with the surface's limit
    (MCP: 30 s), run twice where the app re-runs it (the re-run should be a cache hit); for
    mcp and otlp a prompt on stderr or a browser is a breach. Its default helper is the one
    Claude's managed settings name for that surface (managedMcpServers' first headersHelper,
    otlpHeadersHelper), else this gatekey.
    """
    if profile is not None and helper is not None:
        raise click.UsageError("give -p/--profile or --helper, not both")
    if surface != SURFACES[0] and (app_timeout is not None or interactive):
        raise click.UsageError(
            f"--timeout and --interactive are for the inference helper; --surface {surface} "
            "runs it without a context, within that surface's own limit"
        )

    def do() -> None:
        from gatekey.cli.common import note
        from gatekey.diagnostics import report
        from gatekey.diagnostics.check import check

        found = check(
            st.family, profile, helper, app_timeout, interactive, surface=surface, force=force,
            note=note,
        )  # fmt: skip
        if as_json:
            output.write_text(json.dumps(found, indent=2))
        else:
            for line in report.check_text(found):
                output.write_text(line)
        failed = [r.get("run", r["context"]) for r in found["runs"] if r["verdict"] == "fail"]
        if failed:
            runs = "context(s)" if surface == SURFACES[0] else f"{surface} run(s)"
            raise CheckFailed(f"check failed in {len(failed)} {runs}: {', '.join(failed)}")

    st.guard(do)


COMMANDS = (inspect_command, doctor_command, check_command)
