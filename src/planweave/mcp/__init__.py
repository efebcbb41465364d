"""MCP: the tools of Model Context Protocol servers, for planweave's agents, and planweave's job
API as an MCP server for other agents.

Servers are configured in ``planweave.toml`` (``[mcp.servers.NAME]``), approved by a person
(``planweave mcp approve NAME``, which pins each tool's definition by hash) and then offered to
jobs as ``NAME.tool`` (``NAME__tool`` for models). See ``docs/mcp.md``.
"""

from __future__ import annotations

from planweave.mcp._config import McpServerConfig, McpSettings, check_commands
from planweave.mcp._connection import McpConnection
from planweave.mcp._manage import approve_server, describe_servers, list_server_tools
from planweave.mcp._pins import APPROVALS_FILE, definition_hash, read_pins
from planweave.mcp._tools import McpServer, McpTool, check_definition, mcp_tools, wire_name

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
    "list_server_tools",
    "mcp_tools",
    "read_pins",
    "wire_name",
]
