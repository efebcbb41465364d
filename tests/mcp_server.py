"""An MCP server for the tests, written with the ``mcp`` package's ``MCPServer``.

``python tests/mcp_server.py [--changed-if FILE] [--http PORT]``: over stdio by default, or
streamable HTTP on ``127.0.0.1:PORT/mcp``. When FILE exists as the server starts, it serves
``add`` with a different schema, as a server updated after it was approved would.
``--broken-tool`` adds a tool whose input schema is not valid JSON Schema.
"""

from __future__ import annotations

import argparse
import os

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations


def build(changed: bool) -> MCPServer:
    server = MCPServer("testserver")

    if changed:

        @server.tool()
        def add(a: int, b: int, c: int = 0) -> int:
            """Add two or three integers."""
            return a + b + c

    else:

        @server.tool()
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

    @server.tool()
    def environment() -> dict[str, str]:
        """The server's environment variables."""
        return dict(os.environ)

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    def wipe(what: str) -> str:
        """Pretend to delete something."""
        return f"wiped {what}"

    @server.tool()
    def crash() -> str:
        """Kill the server process mid-call."""
        os._exit(3)

    @server.tool()
    def fail(reason: str) -> str:
        """Fail with the reason."""
        raise ValueError(reason)

    return server


def add_broken_tool(server: MCPServer) -> None:
    """A tool whose input schema is not valid JSON Schema (a server with a bug)."""

    @server.tool()
    def broken(x: int) -> int:
        """A tool with a broken schema."""
        return x

    tool = server._tool_manager.get_tool("broken")
    assert tool is not None
    tool.parameters = {"type": "object", "properties": {"x": {"type": "integr"}}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changed-if", default=None)
    parser.add_argument("--http", type=int, default=None)
    parser.add_argument("--broken-tool", action="store_true")
    options = parser.parse_args()
    changed = options.changed_if is not None and os.path.exists(options.changed_if)
    server = build(changed)
    if options.broken_tool:
        add_broken_tool(server)
    if options.http is None:
        server.run()
    else:
        server.run("streamable-http", port=options.http, host="127.0.0.1")


if __name__ == "__main__":
    main()
