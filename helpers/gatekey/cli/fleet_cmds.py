"""`gatekey mdm` and `gatekey wrap`: their options; the work is done in gatekey.fleet."""

from __future__ import annotations

import sys
from functools import partial

import click

from gatekey.cli.common import State, guarded, note, pass_state
from gatekey.errors import SetError
from gatekey.fleet import claude_keys, managed, siblings
from gatekey.fleet import mdm as generate
from gatekey.fleet.wrap import write_wrapper
from gatekey.output import SHAPES


def _trusted_helper(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """mdm --helper: refuse a path that users other than you and root could replace (exit 78),
    as gatekey refuses to run from such an installation; --force (eager, so known here) warns
    and goes on. A Windows path names nothing on this machine and is left to the endpoints."""
    if value is not None:
        from gatekey.diagnostics.helper_path import refuse_replaceable

        refuse_replaceable(value, "--helper", force=bool(ctx.params.get("force")), note=note)
    return value


@click.command("mdm", epilog="Keys for --set: " + claude_keys.describe() + ".")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(managed.FORMATS),
    help="mobileconfig (macOS profile), plist (bare macOS preference domain), reg (Windows), "
    "linux-json (/etc/claude-desktop/managed-settings.json).",
)
@click.option(
    "--gatekey-config",
    "gatekey_config",
    is_flag=True,
    help="Instead: gatekey's own system config (TOML) with the selected profile.",
)
@click.option(
    "--all-profiles", is_flag=True, help="With --gatekey-config: every profile, not just one."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="The fleet's gatekey config to generate for, alone (default: this machine's config; "
    "stderr says which files and profile the values came from).",
)
@click.option("-p", "--profile", metavar="NAME", help="The profile the defaults come from.")
@click.option("--gateway-url", metavar="URL", help="The gateway's https:// base URL (required).")
@click.option(
    "--helper",
    metavar="PATH",
    callback=_trusted_helper,
    help="Absolute path of the helper on the endpoints (default: this gatekey executable). "
    "No arguments: for another profile, give a wrapper from `gatekey wrap`. Refused if users "
    "other than you and root could replace it here.",
)
@click.option(
    "--force",
    is_flag=True,
    is_eager=True,  # known when --helper's check runs
    help="Use a helper path (--helper, --mcp-helper, --otlp-helper, --marketplace-helper) "
    "that others could replace (warns what it risks).",
)
@click.option("--ttl", type=int, metavar="SEC", help="inferenceCredentialHelperTtlSec.")
@click.option("--timeout", type=int, metavar="SEC", help="inferenceCredentialHelperTimeoutSec.")
@click.option(
    "--auth-scheme",
    type=click.Choice(("bearer", "x-api-key")),
    help="inferenceGatewayAuthScheme (default: the profile's auth_scheme).",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="NAME=VALUE",
    help="A static, non-secret header (inferenceCustomHeaders); repeatable. Credential "
    "headers (Authorization, *-api-key, *-token, *-secret, *auth*...) are refused.",
)
@click.option(
    "--allow-static-credential-header",
    "allow_credential_headers",
    multiple=True,
    metavar="NAME",
    help="Let --header NAME carry a credential anyway; repeatable. Risk: "
    + managed.STATIC_CREDENTIAL_RISK
    + ".",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Another documented Claude key (listed below), checked against its type; repeatable.",
)
@click.option(
    "--mcp-server",
    "mcp_servers",
    multiple=True,
    metavar="NAME=URL",
    help="A managedMcpServers entry (Streamable HTTP) whose headers come from --mcp-helper "
    "NAME=PATH; repeatable.",
)
@click.option(
    "--mcp-helper",
    "mcp_helpers",
    multiple=True,
    metavar="NAME=PATH",
    help="Its headersHelper: absolute path of a `gatekey wrap --format headers` wrapper.",
)
@click.option(
    "--mcp-ttl",
    "mcp_ttls",
    multiple=True,
    metavar="NAME=SEC",
    help="Its headersHelperTtlSec (default: min_ttl - 5 min of the helper's profile).",
)
@click.option(
    "--mcp-refresh-buffer",
    "mcp_buffers",
    multiple=True,
    metavar="NAME=SEC",
    help=f"Its headersHelperRefreshBufferSec (default {siblings.DEFAULT_BUFFER}).",
)
@click.option("--otlp-endpoint", metavar="URL", help="otlpEndpoint: the OpenTelemetry collector.")
@click.option(
    "--otlp-helper",
    metavar="PATH",
    help="otlpHeadersHelper: a `gatekey wrap --format headers` wrapper.",
)
@click.option(
    "--marketplace",
    metavar="NAME=URL",
    help="An allowedPluginMarketplaces entry: NAME as its marketplace.json names itself, URL a "
    "hosted marketplace.json (ending .json) or an https Git remote.",
)
@click.option(
    "--marketplace-helper",
    metavar="PATH",
    help="Its credentialHelper (default on the gateway's origin: the inference credential).",
)
@click.option(
    "--identifier",
    default=managed.DEFAULT_IDENTIFIER,
    show_default=True,
    metavar="REVERSE-DNS",
    help="mobileconfig PayloadIdentifier (keep it stable so a new profile replaces the old).",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    help="Write to FILE (mode 644); needed for reg on a terminal.",
)
@pass_state
def mdm(
    st: State,
    fmt: str | None,
    gatekey_config: bool,
    all_profiles: bool,
    config_file: str | None,
    profile: str | None,
    gateway_url: str | None,
    helper: str | None,
    force: bool,
    ttl: int | None,
    timeout: int | None,
    auth_scheme: str | None,
    headers: tuple[str, ...],
    allow_credential_headers: tuple[str, ...],
    sets: tuple[str, ...],
    mcp_servers: tuple[str, ...],
    mcp_helpers: tuple[str, ...],
    mcp_ttls: tuple[str, ...],
    mcp_buffers: tuple[str, ...],
    otlp_endpoint: str | None,
    otlp_helper: str | None,
    marketplace: str | None,
    marketplace_helper: str | None,
    identifier: str,
    out: str | None,
) -> None:
    """Generate Claude's managed configuration (every value a string) for a gateway with gatekey
    as inferenceCredentialHelper; or, with --gatekey-config, gatekey's own system config."""
    if gatekey_config == bool(fmt):
        raise click.UsageError("give --format FORMAT or --gatekey-config (one of them)")
    sibling = siblings.Request(
        mcp_servers=mcp_servers,
        mcp_helpers=mcp_helpers,
        mcp_ttls=mcp_ttls,
        mcp_buffers=mcp_buffers,
        otlp_endpoint=otlp_endpoint,
        otlp_helper=otlp_helper,
        marketplace=marketplace,
        marketplace_helper=marketplace_helper,
    )
    if gatekey_config and (sets or sibling != siblings.Request()):
        raise click.UsageError(
            "--set and the --mcp-*, --otlp-* and --marketplace* options add Claude keys, so "
            "they go with --format, not --gatekey-config"
        )
    try:
        extra = claude_keys.parse(sets, windows=fmt in managed.WINDOWS_FORMATS)
    except SetError as e:
        raise click.BadParameter(str(e), param_hint="'--set'") from None
    if fmt in managed.BINARY_FORMATS and out is None and sys.stdout.isatty():
        # As gzip and curl do: bytes a terminal cannot show are not written to one.
        raise click.UsageError(
            f"--format {fmt} is UTF-16 (as regedit writes it), which a terminal shows as "
            f"garbage; nothing was written. Give -o FILE (e.g. -o claude.{fmt}), or redirect "
            f"stdout to a file: > claude.{fmt}"
        )
    # Guarded here rather than by @guarded: the usage error above must reach click (exit 2),
    # not runner.guard (which would call it an internal error). No --format: --gatekey-config.
    if fmt is None:
        st.guard(
            partial(
                generate.gatekey_config,
                st.family,
                profile,
                all_profiles=all_profiles,
                config_file=config_file,
                out=out,
                note=note,
            )
        )
    else:
        st.guard(
            partial(
                generate.claude_config,
                st.family,
                profile,
                fmt=fmt,
                gateway_url=gateway_url,
                helper=helper,
                ttl=ttl,
                timeout=timeout,
                auth_scheme=auth_scheme,
                headers=headers,
                allow_credential_headers=allow_credential_headers,
                identifier=identifier,
                config_file=config_file,
                extra=extra,
                out=out,
                note=note,
                sibling=sibling,
                force=force,
            )
        )


@click.command("wrap")
@click.option("-p", "--profile", required=True, metavar="NAME", help="The profile to pin.")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the wrapper (then give its absolute path as the helper).",
)
@click.option(
    "--gatekey",
    "gatekey_path",
    metavar="PATH",
    help="Absolute path of gatekey on the endpoints (default: this executable).",
)
@click.option(
    "--shell",
    type=click.Choice(("sh", "cmd")),
    help="sh (POSIX) or cmd (Windows); default: cmd for a .cmd/.bat name or on Windows.",
)
@click.option(
    "--format",
    "shape",
    type=click.Choice(SHAPES),
    help="Pin the output too (GATEKEY_OUTPUT): headers for an MCP server's headersHelper or "
    "otlpHeadersHelper, git-credential for a marketplace; default: the profile's output.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing file with different content; write it (or run a --gatekey) where "
    "users other than you and root could replace it, with a warning.",
)
@pass_state
@guarded
def wrap(
    st: State,
    profile: str,
    out: str,
    gatekey_path: str | None,
    shell: str | None,
    shape: str | None,
    force: bool,
) -> None:
    """Write a no-argument wrapper that runs gatekey pinned to one profile (GATEKEY_PROFILE)
    and, with --format, one output shape (GATEKEY_OUTPUT)."""
    write_wrapper(
        st.family,
        profile,
        out,
        gatekey=gatekey_path,
        shell=shell,
        force=force,
        note=note,
        shape=shape,
    )
