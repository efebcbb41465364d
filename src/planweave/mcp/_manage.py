"""What ``planweave mcp approve`` and ``planweave mcp list`` do: connect, list, pin, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planweave.errors import ConfigError, McpServerUnavailable
from planweave.mcp._config import McpServerConfig, McpSettings, check_commands
from planweave.mcp._connection import McpConnection
from planweave.mcp._pins import (
    PinnedServer,
    definition_hash,
    read_pins,
    server_target,
    write_pin,
)
from planweave.mcp._tools import check_definition, wire_name

__all__ = ["approve_server", "describe_servers", "list_server_tools"]


async def list_server_tools(
    name: str, config: McpServerConfig, data_dir: Path
) -> list[dict[str, Any]]:
    """Start (or reach) the server, list its tool definitions, and stop it again.

    Raises:
        ConfigError: the server cannot be started or reached.
    """
    check_commands(McpSettings(servers={name: config}))
    connection = McpConnection(name, config, log_file=data_dir / "mcp-logs" / f"{name}.log")
    try:
        return await connection.list_tools()
    except McpServerUnavailable as exc:
        raise ConfigError(str(exc)) from None
    finally:
        await connection.aclose()


async def approve_server(
    name: str, settings: McpSettings, data_dir: Path
) -> tuple[PinnedServer, list[str]]:
    """Pin the current definition of each of the server's tools; return the approval and a
    line for each tool left out (its definition is not usable).

    Raises:
        ConfigError: no such server, or it cannot be started or reached.
    """
    config = settings.servers.get(name)
    if config is None:
        known = ", ".join(sorted(settings.servers)) or "none"
        raise ConfigError(f"no MCP server named {name!r} in the settings (configured: {known})")
    definitions = await list_server_tools(name, config, data_dir)
    problems: list[str] = []
    usable: list[dict[str, Any]] = []
    for definition in definitions:
        problem = check_definition(name, definition)
        if problem is None:
            usable.append(definition)
        else:
            problems.append(f"{problem}: not approved")
    return write_pin(data_dir, name, config, usable), problems


async def describe_servers(
    settings: McpSettings, data_dir: Path, *, live: bool
) -> list[dict[str, Any]]:
    """Each configured server: transport, approval, and its tools with their state.

    With ``live`` the server is reached and each tool is ``approved``, ``changed`` (its
    definition differs from the pinned one), ``new`` (not approved) or ``gone``; without it,
    the pinned tools are listed as ``approved``.
    """
    pins = read_pins(data_dir)
    rows: list[dict[str, Any]] = []
    for name, config in settings.servers.items():
        pin = pins.get(name)
        approved = pin is not None and pin.target == server_target(config)
        row: dict[str, Any] = {
            "name": name,
            "transport": config.transport,
            "target": config.url or " ".join([config.command or "", *config.args]),
            "approved": approved,
            "approved_at": pin.approved_at if approved and pin is not None else None,
            "status": "approved" if approved else ("changed" if pin else "not approved"),
            "tools": [],
        }
        pinned = pin.tools if approved and pin is not None else {}
        states: dict[str, str] = dict.fromkeys(pinned, "approved")
        if live:
            try:
                definitions = await list_server_tools(name, config, data_dir)
            except ConfigError as exc:
                row["status"] = f"unreachable: {exc}"
            else:
                live_names = set()
                for definition in definitions:
                    tool = str(definition.get("name"))
                    live_names.add(tool)
                    if tool not in pinned:
                        states[tool] = "new"
                    elif definition_hash(definition) != pinned[tool].sha256:
                        states[tool] = "changed"
                for tool in pinned:
                    if tool not in live_names:
                        states[tool] = "gone"
        row["tools"] = [
            {"name": f"{name}.{tool}", "model_name": wire_name(name, tool), "state": state}
            for tool, state in sorted(states.items())
        ]
        rows.append(row)
    return rows
