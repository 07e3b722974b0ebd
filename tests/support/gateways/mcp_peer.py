"""A real MCP server over streamable HTTP (the Python ``mcp`` SDK's MCPServer on uvicorn), for a
managed Claude's ``managedMcpServers`` entry to reach through the JWT gateway.

Run as ``python -m gateways.mcp_peer CONFIG.json`` with tests/support on PYTHONPATH
(``McpServer`` below starts it in its own process group and reads its ready line). It listens
on 127.0.0.1 only, plain HTTP (the gateway in front of it terminates TLS), and serves the SDK's
streamable HTTP endpoint at ``path`` (default ``/mcp``): POST for messages (answered as
server-sent events), GET for the server's stream, DELETE to end a session. The config says:

- ``name``: the server's name (its ``initialize`` answer, and the tool's answer);
- ``path``: the endpoint's path.

It serves only what comes through the gateway: every request must carry the gateway's own
``x-api-key`` (environment ``MCP_PEER_GATEWAY_KEY``, what jwt_gateway.py sends upstream in place
of the caller's credential), else 401 with no MCP processing at all. So a tool call that works
proves the gateway accepted the caller's token.

One tool, ``whoami``: its text is JSON ``{"server": name, "subject": <x-gateway-subject>,
"user": <x-user>}``: whose token the gateway validated (the ``sub`` claim it forwards) and the
per-user header the helper added; neither is a credential. The log (stderr) has one line per
HTTP request: method, path, status; never a header value.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from gateways.serving import PeerProcess

GATEWAY_KEY_ENV = "MCP_PEER_GATEWAY_KEY"
TOOL = "whoami"
# Measured: ~1.5 s from start to the ready line (the SDK, pydantic, starlette and uvicorn
# imports). The margin is for a busy machine (6 sessions on 2 cores), never a slow server.
READY_S = 30.0


# --- the server process ---------------------------------------------------------------------------
def app(config: dict[str, Any], gateway_key: str) -> Any:
    """The ASGI app: the SDK's streamable HTTP app behind a check of the gateway's key."""
    # The SDK reads the tool's annotations (``from __future__`` makes them strings) in this
    # module's globals: Context must be one.
    global Context
    from mcp.server.mcpserver import Context, MCPServer

    name = str(config.get("name", "mcp-peer"))
    server = MCPServer(name, log_level="WARNING")

    @server.tool(name=TOOL, description="Who the gateway says is calling, and this server's name")
    def whoami(ctx: Context) -> str:
        headers = ctx.headers or {}
        return json.dumps(
            {
                "server": name,
                "subject": headers.get("x-gateway-subject", ""),
                "user": headers.get("x-user", ""),
            }
        )

    inner = server.streamable_http_app(streamable_http_path=str(config.get("path", "/mcp")))

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            offered = dict(scope["headers"]).get(b"x-api-key", b"")
            if not gateway_key or not hmac.compare_digest(offered, gateway_key.encode()):
                body = b'{"error": "not through the gateway"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                _log(scope, 401)
                return
            await inner(scope, receive, _logging(scope, send))
            return
        await inner(scope, receive, send)  # lifespan: the SDK's session manager starts here

    return guarded


def _logging(scope: dict[str, Any], send: Any) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            _log(scope, int(message["status"]))
        await send(message)

    return wrapped


def _log(scope: dict[str, Any], status: int) -> None:
    sys.stderr.write(f"{scope['method']} {scope['path']} {status}\n")
    sys.stderr.flush()


def serve(config: dict[str, Any]) -> None:
    """Bind 127.0.0.1, print the ready line ``{"port": N}`` on stdout, serve until killed."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(config.get("port", 0))))
    asgi = app(config, os.environ.get(GATEWAY_KEY_ENV, ""))
    server = uvicorn.Server(
        uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="on")
    )
    port = sock.getsockname()[1]

    async def run() -> None:
        sys.stdout.write(json.dumps({"port": port}) + "\n")
        sys.stdout.flush()
        await server.serve(sockets=[sock])

    import anyio

    anyio.run(run)


# --- the test side: start it, know where it is, stop it -------------------------------------------
class McpServer(PeerProcess):
    """The MCP server in its own process group. ``url`` is its endpoint on 127.0.0.1 (the
    gateway route's ``upstream``); ``gateway_key`` is the key the gateway sends upstream."""

    def __init__(self, config: dict[str, Any], workdir: Path, *, gateway_key: str) -> None:
        self.path = str(config.get("path", "/mcp"))
        env = {GATEWAY_KEY_ENV: gateway_key}
        super().__init__("mcp_peer", "the MCP server", config, workdir, env=env, ready_s=READY_S)

    @property
    def url(self) -> str:
        """The server's origin (a gateway route's upstream); the endpoint is ``url + path``."""
        return f"http://127.0.0.1:{self.port}"


def missing() -> str | None:
    """Why the server cannot start here (the mcp SDK missing), else None."""
    try:
        import mcp.server.mcpserver  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        return e.name or "mcp"
    return None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m gateways.mcp_peer CONFIG.json")
    serve(json.loads(Path(sys.argv[1]).read_text()))
