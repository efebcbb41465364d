"""MCP: the tools of Model Context Protocol servers, for planweave's agents, and planweave's job
API as an MCP server for other agents.

Servers are configured in ``planweave.toml`` (``[mcp.servers.NAME]``), approved by a person
(``planweave mcp approve NAME``, which pins each tool's definition by hash) and then offered to
jobs as ``NAME.tool`` (``NAME__tool`` for models). See ``docs/mcp.md``.

Only the settings models are imported with the package (the settings need them); the client,
its tools and the ``mcp`` library load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planweave._lazy import lazy_exports as _lazy_exports
from planweave.mcp._config import McpServerConfig, McpSettings, check_commands

if TYPE_CHECKING:
    from planweave.mcp._connection import McpConnection
    from planweave.mcp._manage import approve_server, describe_servers, list_server_tools
    from planweave.mcp._pins import APPROVALS_FILE, definition_hash, read_pins
    from planweave.mcp._serve import job_api_server
    from planweave.mcp._tools import McpServer, McpTool, check_definition, mcp_tools, wire_name

_LAZY: dict[str, str] = {
    "APPROVALS_FILE": "planweave.mcp._pins",
    "McpConnection": "planweave.mcp._connection",
    "McpServer": "planweave.mcp._tools",
    "McpTool": "planweave.mcp._tools",
    "approve_server": "planweave.mcp._manage",
    "check_definition": "planweave.mcp._tools",
    "definition_hash": "planweave.mcp._pins",
    "describe_servers": "planweave.mcp._manage",
    "job_api_server": "planweave.mcp._serve",
    "list_server_tools": "planweave.mcp._manage",
    "mcp_tools": "planweave.mcp._tools",
    "read_pins": "planweave.mcp._pins",
    "wire_name": "planweave.mcp._tools",
}

__getattr__, __dir__ = _lazy_exports("planweave.mcp", _LAZY, globals())

__all__ = [
    "APPROVALS_FILE",
    "McpConnection",
    "McpServer",
    "McpServerConfig",
    "McpSettings",
    "McpTool",
    "approve_server",
    "check_commands",
    "check_definition",
    "definition_hash",
    "describe_servers",
    "job_api_server",
    "list_server_tools",
    "mcp_tools",
    "read_pins",
    "wire_name",
]
