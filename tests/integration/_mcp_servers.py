"""A small MCP server for the ``agents`` MCP tests, written with the ``mcp`` SDK's server API.

Run as a script, it serves over stdio or streamable HTTP::

    python _mcp_servers.py stdio
    python _mcp_servers.py http        # prints "PORT <n>" once it accepts connections

Its tools: ``add``, ``echo``, ``fail`` (raises), ``sleep`` and ``crash`` (the process dies
at once with ``os._exit(1)``, the server dying mid-run). Over HTTP it binds an ephemeral
loopback port itself and reports it on stdout, so there is no window in which another
process could take a port the test picked. Tests start it with :func:`start_http_server`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())

__all__ = ["SCRIPT", "build_server", "start_http_server", "stdio_args"]


def build_server() -> object:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("test-tools", log_level="WARNING")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Always fails.")
    def fail() -> str:
        raise ToolError("the fail tool failed on purpose")

    @server.tool(description="Sleep for a while, then say so.")
    async def sleep(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool(description="Kill the server process at once.")
    def crash() -> str:
        sys.stdout.flush()
        os._exit(1)

    return server


def stdio_args() -> tuple[str, ...]:
    """The arguments for ``MCPServer.stdio(name, sys.executable, args=stdio_args())``."""
    return ("-u", SCRIPT, "stdio")


def start_http_server(
    timeout: float = 60.0, token: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server over streamable HTTP in a subprocess; return it and its MCP URL
    once it accepts connections (a bound against a hang, not a measure of speed). With
    ``token``, a request without ``Authorization: Bearer TOKEN`` is a 401."""
    env = {**os.environ, "MCP_TOKEN": token} if token else None
    process = subprocess.Popen(
        [sys.executable, "-u", SCRIPT, "http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdout is not None
    line = b""
    try:
        # readline blocks; the server prints its port or exits (EOF) promptly.
        line = process.stdout.readline()
    finally:
        process.stdout.close()
    if not line.startswith(b"PORT "):
        process.kill()
        process.wait(timeout)
        raise RuntimeError(f"the MCP test server did not start: {line!r}")
    port = int(line.split()[1])
    return process, f"http://127.0.0.1:{port}/mcp"


def _bearer(app: Any, token: str) -> Any:
    """``app`` behind a bearer token (as a company's MCP servers are)."""
    wanted = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != wanted:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return guarded


async def _serve_http() -> None:
    import uvicorn

    server = build_server()
    app = server.streamable_http_app()  # type: ignore[attr-defined]
    token = os.environ.get("MCP_TOKEN")
    if token:
        app = _bearer(app, token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve(sockets=[sock]))
    while not web.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    print(f"PORT {port}", flush=True)
    await task


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        build_server().run("stdio")  # type: ignore[attr-defined]
    elif mode == "http":
        asyncio.run(_serve_http())
    else:
        raise SystemExit(f"unknown mode {mode!r}; use stdio or http")


if __name__ == "__main__":
    main()
