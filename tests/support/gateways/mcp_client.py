"""An MCP client as a managed Claude runs one for a ``managedMcpServers`` entry with a
``headersHelper``: the Python ``mcp`` SDK's streamable HTTP client, with the helper's headers.

``use_server`` does what the app documents (../shared/reference/contract.md): run the helper
(sibling_helpers.run_helper: no arguments, no CLAUDE_HELPER_CONTEXT, stdin closed, 30 s), read
its stdout as a flat JSON header map, connect to the server's URL with those headers on every
request, initialize, list the tools and call one. When the server (here: the gateway in front of
it) answers 401 or 403, it runs the helper once more and retries once, as the app does from
1.46388.1. ``Outcome`` says what happened, with each HTTP status the client saw.

Nothing here prints a header value: they hold credentials.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateways.sibling_helpers import MCP_LIMIT_S, HelperRun, header_map, read_output, run_helper

# One whole session (initialize, list, call, end) through a gateway to a local server takes well
# under a second; the margin is for a busy machine.
SESSION_S = 60.0
REFUSED = (401, 403)


class McpRefused(Exception):
    """The server answered 401/403: the credential was refused."""

    def __init__(self, statuses: list[tuple[str, int]]) -> None:
        super().__init__(f"refused: {statuses}")
        self.statuses = statuses


@dataclass
class Attempt:
    statuses: list[tuple[str, int]] = field(default_factory=list)  # (method, HTTP status)
    server_name: str = ""
    tools: list[str] = field(default_factory=list)
    answer: dict[str, Any] | None = None  # the tool's JSON text, parsed
    error: str = ""

    @property
    def refused(self) -> bool:
        return any(status in REFUSED for _, status in self.statuses)


@dataclass
class Outcome:
    runs: list[HelperRun] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    helper_error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].answer is not None

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]


def session(
    url: str,
    headers: Mapping[str, str],
    *,
    ca: str | None = None,
    tool: str = "whoami",
    timeout: float = SESSION_S,
) -> Attempt:
    """One MCP session at ``url`` with ``headers`` on every request: initialize, list the tools,
    call ``tool`` (no arguments). Never raises for a refusal or a protocol error: see ``error``."""
    import anyio

    attempt = Attempt()

    async def run() -> None:
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async def seen(response: httpx2.Response) -> None:
            attempt.statuses.append((response.request.method, response.status_code))

        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        client = httpx2.AsyncClient(
            headers=dict(headers),
            verify=verify,
            timeout=httpx2.Timeout(timeout),
            event_hooks={"response": [seen]},
        )
        async with (
            client,
            streamable_http_client(url, http_client=client) as (read, write),
            ClientSession(read, write) as mcp,
        ):
            init = await mcp.initialize()
            attempt.server_name = init.server_info.name
            listed = await mcp.list_tools()
            attempt.tools = [t.name for t in listed.tools]
            result = await mcp.call_tool(tool, {})
            if result.is_error:
                attempt.error = "the tool call failed"
                return
            text = "".join(getattr(c, "text", "") for c in result.content)
            attempt.answer = json.loads(text)

    async def bounded() -> None:
        with anyio.fail_after(timeout):
            await run()

    try:
        anyio.run(bounded)
    except Exception as e:  # a refusal surfaces as an MCP error, or a group of them
        attempt.error = _describe(e)
    return attempt


def _describe(e: BaseException) -> str:
    """The exception's type and message, unwrapping exception groups (no header is in them)."""
    inner = getattr(e, "exceptions", None)
    if inner:
        return "; ".join(_describe(x) for x in inner)
    return f"{type(e).__name__}: {e}"


def use_server(
    helper: str,
    url: str,
    env: Mapping[str, str],
    *,
    ca: str | None = None,
    tool: str = "whoami",
    limit: float = MCP_LIMIT_S,
) -> Outcome:
    """The app's use of one managed MCP server: see the module docstring."""
    outcome = Outcome()
    for _ in range(2):  # the first try, and the one retry after a 401/403
        run = run_helper(helper, env, limit=limit)
        outcome.runs.append(run)
        headers, outcome.helper_error = read_output(run, header_map)
        if headers is None:
            return outcome
        attempt = session(url, headers, ca=ca, tool=tool)
        outcome.attempts.append(attempt)
        if not attempt.refused:
            break
    return outcome
