"""`gatekey config`: where the config files are, every effective value, and a validation."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from gatekey import config, output, runner
from gatekey.cli.common import State, guarded, no_argument_profile, pass_state, profile_option
from gatekey.errors import ConfigError


@click.group("config")
def config_group() -> None:
    """Show, locate and validate the configuration."""


@config_group.command("path", short_help="Where gatekey looks for config files, first one wins")
def config_path() -> None:
    """Print where gatekey looks for its config files, highest precedence first."""
    for (path, _required), label in zip(config.locate(), ("managed", "user"), strict=True):
        present = "present" if os.path.exists(path) else "absent"
        output.write_text(f"{label}: {path} ({present})")


@config_group.command("show", short_help="Every effective value and the file it came from")
@profile_option
@pass_state
@guarded
def config_show(st: State, profile: str | None) -> None:
    """Print every effective value and where it came from (config holds no secrets)."""
    cfg = config.load()
    lines = [f"# files: {cfg.describe_files()}"]
    for key, (value, origin) in cfg.top_level().items():
        if value is not None:
            lines.append(f"{key} = {_toml_value(value, key)}  # {origin}")
    for name in [profile] if profile else cfg.profile_names:
        prof = cfg.profile(name)  # a mistake fails the command before anything is printed
        lines.append(f"\n[profiles.{_toml_key(name)}]")
        for key in sorted(prof.values, key=lambda k: (k != "source", k)):
            value = prof.values[key]
            if value is not None:
                lines.append(f"{key} = {_toml_value(value, key)}  # {prof.origins[key]}")
    output.write_text("\n".join(lines))


@config_group.command(
    "validate", short_help="Check every file and profile; say which profile Claude uses"
)
@pass_state
@guarded
def config_validate(st: State) -> None:
    """Check every config file and profile, and say which profile a no-argument run (what
    Claude runs) selects, and why."""
    cfg = config.load()
    problems: list[ConfigError] = []
    from gatekey.refresh import Links, make_source

    for name in cfg.profile_names:
        try:
            make_source(cfg.profile(name), Links(cfg))  # sources check what the schema cannot
        except ConfigError as e:
            problems.append(e)
    try:
        runner.require_family(st.family)
        selected = config.select_profile(cfg, None, st.family)
        if selected not in cfg.profile_names:  # e.g. GATEKEY_PROFILE names no profile
            cfg.profile(selected)
    except ConfigError as e:
        problems.append(e)
    for problem in problems[1:]:
        click.echo(f"gatekey: {problem}", err=True)
    if problems:
        raise problems[0]
    chosen, why = no_argument_profile(cfg, st.family)
    prog = click.get_current_context().find_root().info_name or "gatekey"
    click.echo(
        f"gatekey: configuration is valid ({len(cfg.profile_names)} profile(s); "
        f"files: {cfg.describe_files()}); {prog} with no arguments (as Claude runs it) uses "
        f'profile "{chosen}" ({why})',
        err=True,
    )


def _toml_key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else json.dumps(name)


def _toml_value(value: Any, key: str) -> str:
    if key in ("min_ttl",) or key.startswith("timeouts."):
        return json.dumps(f"{value:g}s")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(value)
