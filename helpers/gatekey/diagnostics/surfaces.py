"""The places a managed Claude runs a credential helper ("surfaces"), and each one's contract.

The one home of what ``gatekey check --surface S`` knows about a surface: how the app runs the
helper (with or without CLAUDE_HELPER_CONTEXT, how many times, its time limit), which parser reads
its stdout, whether it may prompt, where Claude's managed settings name it, and when the app
runs it again. check.py runs a surface from this table; nothing else switches on a surface's
name. Sources: reference/contract.md ("Other helpers a managed Claude Desktop runs", "The
sibling consumer"); where the app's documentation is silent, the row says what check assumes.

Standard library only, and nothing imported at module level beyond it: the command line reads
``NAMES`` when it registers ``check``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

INFERENCE = "inference"
MCP = "mcp"
OTLP = "otlp"
MARKETPLACE = "marketplace"
API_KEY_HELPER = "api-key-helper"

# The MCP server entry's refresh keys and their documented defaults.
MCP_TTL_KEY = "headersHelperTtlSec"
MCP_BUFFER_KEY = "headersHelperRefreshBufferSec"
MCP_DEFAULT_TTL = 300
MCP_DEFAULT_BUFFER = 60
API_KEY_TTL_ENV = "CLAUDE_CODE_API_KEY_HELPER_TTL_MS"
API_KEY_DEFAULT_TTL = 300  # seconds: Claude Code re-runs apiKeyHelper after 5 min


@dataclass(frozen=True)
class Surface:
    """One helper a managed Claude runs, as check runs and judges it."""

    name: str
    what: str  # the app's setting, as the report names it
    shape: str  # the parser (check_judge.PARSERS): payload | headers | git-credential | key
    expects: str  # what stdout must hold, for the report
    runs: tuple[str, ...] = ("first",)  # each run's label; a second one is the app's re-run
    limit: float | None = None  # seconds; None: the inference helper's limits (check.py)
    limit_note: str | None = None  # said when the limit is check's choice, not the app's
    context_note: str | None = None  # how CLAUDE_HELPER_CONTEXT is set for it
    no_prompt: bool = False  # nobody may be asked: a prompt or a browser is a breach
    slow_after: float | None = None  # the app warns when a run takes longer
    slow_warning: str = ""
    settings_key: str | None = None  # the managed key naming it in Claude Desktop's settings
    entry_field: str | None = None  # set: the key holds a JSON array of entries; this names it
    settings_note: str | None = None  # why check cannot read it from there (when it cannot)
    rerun_note: str | None = None  # when the app runs it again
    default_ttl: float | None = None  # seconds the app uses an answer before it runs it again
    ttl_env: str | None = None  # the environment variable (milliseconds) that changes it

    @property
    def contexts(self) -> bool:
        """Whether the app sets CLAUDE_HELPER_CONTEXT (one run per context, as for inference)."""
        return self.limit is None


NO_LIMIT_DOCUMENTED = (
    "the app's documentation gives this helper no time limit: checked against 30 s, the MCP "
    "headers helper's"
)
NO_CONTEXT = "run without CLAUDE_HELPER_CONTEXT, as the app runs it: a helper must be silent"
NO_CONTEXT_ASSUMED = (
    "the documentation does not say whether the app sets CLAUDE_HELPER_CONTEXT here: run "
    "without it, the case a helper must answer silently"
)

SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface(
            INFERENCE,
            "inferenceCredentialHelper",
            "payload",
            'one bare token line, or one {"token", "headers"} JSON object',
            settings_key="inferenceCredentialHelper",
        ),
        Surface(
            MCP,
            "managedMcpServers[].headersHelper",
            "headers",
            "one flat JSON object of header names to string values",
            runs=("first", "re-run"),
            limit=30.0,
            context_note=NO_CONTEXT,
            no_prompt=True,
            settings_key="managedMcpServers",
            entry_field="headersHelper",
            default_ttl=MCP_DEFAULT_TTL,
            rerun_note=(
                f"the app runs it again every {MCP_TTL_KEY} less {MCP_BUFFER_KEY} "
                f"({MCP_DEFAULT_TTL} - {MCP_DEFAULT_BUFFER} s by default) and once on a 401/403: "
                "the re-run should be a cache hit, and what it prints must outlive "
                f"{MCP_TTL_KEY}"
            ),
        ),
        Surface(
            OTLP,
            "otlpHeadersHelper",
            "headers",
            "one flat JSON object of header names to string values (the OTLP exporter's)",
            runs=("first", "re-run"),
            limit=30.0,
            limit_note=NO_LIMIT_DOCUMENTED,
            context_note=NO_CONTEXT_ASSUMED,
            no_prompt=True,
            settings_key="otlpHeadersHelper",
            rerun_note=(
                "the exporter asks again while the app runs (how often is not documented for "
                "Claude Desktop): the re-run should be a cache hit"
            ),
        ),
        Surface(
            MARKETPLACE,
            "plugin marketplace credentialHelper",
            "git-credential",
            "a bare token, or git-credential lines (key=value, with password=); no JSON",
            limit=30.0,
            limit_note=NO_LIMIT_DOCUMENTED,
            context_note=NO_CONTEXT_ASSUMED,
            no_prompt=True,
            settings_key="allowedPluginMarketplaces",
            entry_field="credentialHelper",
        ),
        Surface(
            API_KEY_HELPER,
            "Claude Code apiKeyHelper",
            "key",
            "one bare key line (sent as Authorization: Bearer and X-Api-Key)",
            runs=("first", "re-run"),
            limit=30.0,
            limit_note=(
                "Claude Code documents no time limit, only a warning over 10 s: checked "
                "against 30 s"
            ),
            context_note="run without CLAUDE_HELPER_CONTEXT: Claude Code sets none",
            slow_after=10.0,
            slow_warning="Claude Code warns when its apiKeyHelper takes over 10 s",
            settings_note=(
                "Claude Code's settings are not Claude Desktop's: give its apiKeyHelper with "
                "--helper PATH (or -p for this gatekey)"
            ),
            rerun_note=(
                f"Claude Code runs it again after 5 min ({API_KEY_TTL_ENV}, default "
                f"{API_KEY_DEFAULT_TTL * 1000}) and on a 401: the re-run should be a cache "
                f"hit, and a key that lives shorter needs {API_KEY_TTL_ENV} below its lifetime"
            ),
            default_ttl=API_KEY_DEFAULT_TTL,
            ttl_env=API_KEY_TTL_ENV,
        ),
    )
}
NAMES = tuple(SURFACES)


@dataclass
class Named:
    """The helper Claude's managed settings name for a surface."""

    path: str
    where: str  # the key (and entry) that names it
    ttl: float | None = None  # how long the app keeps what it prints, when that is set
    others: tuple[str, ...] = ()  # more entries naming a helper, not checked this time


def named_helper(surface: Surface, raw: str | None) -> Named | None:
    """The helper the managed value ``raw`` of ``surface.settings_key`` names, if any.

    With an ``entry_field`` (managedMcpServers: a JSON array of server objects, a string in the
    OS store) the first entry naming a helper is checked and the others are listed (check them
    with --helper)."""
    if raw is None or not raw.strip():
        return None
    key, field = surface.settings_key or "", surface.entry_field
    if field is None:
        return Named(raw, key)
    try:
        entries: Any = json.loads(raw)
    except ValueError:
        return None
    found = [
        (i, e)
        for i, e in enumerate(entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and isinstance(e.get(field), str) and e[field].strip()
    ]
    if not found:
        return None
    index, first = found[0]
    label = f"{key}[{_entry_name(first, index)}].{field}"
    others = tuple(
        f"{_entry_name(e, i)}: {e[field]}" for i, e in found[1:] if e[field] != first[field]
    )
    return Named(first[field], label, _entry_ttl(first, surface.default_ttl), others)


def _entry_name(entry: dict[str, Any], index: int) -> str:
    """An entry's name: an MCP server's ``name``, a marketplace's ``expectedName``."""
    return str(entry.get("name") or entry.get("expectedName") or index)


def _entry_ttl(entry: dict[str, Any], default: float | None) -> float | None:
    value: Any = entry.get(MCP_TTL_KEY, default)
    try:
        seconds = float(value)  # strings too: the app stores strings
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def app_ttl(surface: Surface, named: Named | None, environ: dict[str, str]) -> float | None:
    """How long the app uses what the helper printed before it runs it again (None: unknown)."""
    if named is not None and named.ttl is not None:
        return named.ttl
    if surface.ttl_env is not None:
        try:
            ms = float(environ.get(surface.ttl_env, ""))
        except ValueError:
            ms = 0.0
        if ms > 0:
            return ms / 1000
    return surface.default_ttl
