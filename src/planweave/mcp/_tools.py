"""MCP tools as planweave tools: the approved tools of the configured servers.

People name an MCP tool ``SERVER.tool``; models call it ``SERVER__tool``, since model APIs
accept only letters, digits, ``_`` and ``-`` in a tool name (other characters of the MCP name
become ``_``). The registry is built from the approvals (``_pins``), so listing the tools a job
may use starts no server. A server starts on its first call; it then lists its tools once per
start, and any tool whose definition no longer matches its pinned hash is disabled: calling it
fails with an observation that says so, until a person approves the server again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planweave.errors import ConfigError, ToolDisabled, ToolError
from planweave.mcp._config import McpServerConfig, McpSettings, check_commands
from planweave.mcp._connection import McpConnection
from planweave.mcp._pins import PinnedServer, definition_hash, read_pins, server_target
from planweave.tools._context import ToolContext

__all__ = ["McpServer", "McpTool", "check_definition", "mcp_tools", "wire_name"]

log = logging.getLogger("planweave.mcp")

_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")
SEPARATOR = "__"


def wire_name(server: str, tool: str) -> str:
    """The name a model calls the server's tool by: ``SERVER__tool`` (at most 64 characters)."""
    return (server + SEPARATOR + _BAD_CHARS.sub("_", tool))[:64]


def check_definition(server: str, definition: Mapping[str, Any]) -> str | None:
    """Why a tool definition cannot be used (``None``: it can): no name, or an input schema
    that is not a valid JSON Schema of an object."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    name = definition.get("name")
    if not isinstance(name, str) or not name:
        return f"MCP server {server!r}: a tool has no name"
    schema = definition.get("inputSchema")
    if not isinstance(schema, dict):
        return f"MCP server {server!r}: tool {name!r}: inputSchema is not a JSON object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"MCP server {server!r}: tool {name!r}: inputSchema is not valid JSON Schema: {exc.message}"
    if schema.get("type", "object") != "object":
        return f"MCP server {server!r}: tool {name!r}: inputSchema must describe an object"
    return None


class McpServer:
    """One approved server: its connection and the check of its live tool definitions."""

    def __init__(self, name: str, config: McpServerConfig, pin: PinnedServer, log_dir: Path):
        self.name = name
        self.config = config
        self.pin = pin
        self.connection = McpConnection(name, config, log_file=log_dir / f"{name}.log")
        self.disabled: dict[str, str] = {}
        """Tools (MCP names) switched off, and why."""
        self._checked_start = 0

    async def check(self) -> None:
        """After each start of the server, compare its tools with the pinned definitions."""
        if self._checked_start == self.connection.starts and self._checked_start:
            return
        definitions = {d.get("name"): d for d in await self.connection.list_tools()}
        self._checked_start = self.connection.starts
        self.disabled = {}
        for tool, pinned in self.pin.tools.items():
            live = definitions.get(tool)
            if live is None:
                why = "the server no longer offers it"
            elif definition_hash(live) != pinned.sha256:
                why = "its definition changed since it was approved"
            else:
                continue
            self.disabled[tool] = why
            log.warning(
                "MCP tool %s.%s is disabled: %s (run 'planweave mcp approve %s')",
                self.name,
                tool,
                why,
                self.name,
            )

    async def aclose(self) -> None:
        """Stop the server's connection."""
        await self.connection.aclose()


class McpTool:
    """One approved tool of an MCP server, callable like any planweave tool.

    Attributes:
        name: The name models call it by (``SERVER__tool``).
        display_name: The name people use (``SERVER.tool``).
        mcp_name: The tool's name on its server.
        source: Where it comes from, ``mcp:SERVER``.
    """

    def __init__(self, server: McpServer, mcp_name: str, definition: Mapping[str, Any]) -> None:
        self.server = server
        self.mcp_name = mcp_name
        self.name = wire_name(server.name, mcp_name)
        self.display_name = f"{server.name}.{mcp_name}"
        self.source = f"mcp:{server.name}"
        self.description = str(definition.get("description") or f"{mcp_name} (MCP tool)")
        self.parameters: dict[str, Any] = dict(definition["inputSchema"])
        self.parameters.setdefault("type", "object")
        self.parameters.setdefault("properties", {})
        self.timeout_s = server.config.timeout_s
        annotations = definition.get("annotations") or {}
        destructive = isinstance(annotations, dict) and annotations.get("destructiveHint") is True
        self.high_impact = server.config.is_high_impact(mcp_name, destructive=destructive)
        where = server.config.url or f"the command {server.config.command!r}"
        self.sandbox = (
            f"Runs in MCP server {server.name!r} ({where}), outside planweave's sandbox; the "
            f"server gets only its configured env, never planweave's tokens or keys."
        )

    def __repr__(self) -> str:
        return f"McpTool({self.display_name!r})"

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Call the tool on its server; a tool error the server reports is a ``ToolError``.

        Raises:
            ToolDisabled: its definition changed since approval.
            McpServerUnavailable: the server is down (retryable).
        """
        await self.server.check()
        why = self.server.disabled.get(self.mcp_name)
        if why is not None:
            raise ToolDisabled(
                f"MCP tool {self.display_name!r} is disabled: {why}; a person must approve "
                f"it again ('planweave mcp approve {self.server.name}')"
            )
        remaining = ctx.remaining_s()
        timeout_s = (
            self.timeout_s if remaining is None else max(0.1, min(remaining, self.timeout_s))
        )
        result = await self.server.connection.call_tool(self.mcp_name, dict(args), timeout_s)
        text = _content_text(result.content)
        if result.is_error:
            raise ToolError(f"MCP tool {self.display_name!r} failed: {text or 'no detail'}")
        if result.structured_content is not None:
            return result.structured_content
        return text

    async def aclose(self) -> None:
        """Stop the tool's server (the engine calls this when it stops)."""
        await self.server.aclose()


def _content_text(blocks: list[Any]) -> str:
    parts: list[str] = []
    for block in blocks:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            kind = getattr(block, "mime_type", None) or getattr(block, "type", "content")
            parts.append(f"[{kind} content]")
    return "\n".join(parts)


def mcp_tools(settings: McpSettings, data_dir: Path) -> list[McpTool]:
    """The tools of the approved servers of ``settings``, ready to register.

    Servers that are not approved, or were approved with a different command or URL, offer no
    tool (a warning says so).

    Raises:
        ConfigError: a server's command cannot be found, or the approvals file is unreadable.
    """
    if not settings.servers:
        return []
    check_commands(settings)
    pins = read_pins(data_dir)
    tools: list[McpTool] = []
    seen: dict[str, str] = {}
    for name, config in settings.servers.items():
        pin = pins.get(name)
        if pin is None or pin.target != server_target(config):
            state = "is not approved" if pin is None else "changed since it was approved"
            log.warning(
                "MCP server %r %s: its tools are not offered (run 'planweave mcp approve %s')",
                name,
                state,
                name,
            )
            continue
        server = McpServer(name, config, pin, data_dir / "mcp-logs")
        for mcp_name, pinned in pin.tools.items():
            problem = check_definition(name, pinned.definition)
            if problem is not None:
                log.warning("%s: not loaded", problem)
                continue
            tool = McpTool(server, mcp_name, pinned.definition)
            if tool.name in seen:
                raise ConfigError(
                    f"MCP tools {seen[tool.name]!r} and {tool.display_name!r} have the same "
                    f"name for models, {tool.name!r}: rename one server"
                )
            seen[tool.name] = tool.display_name
            tools.append(tool)
    return tools
