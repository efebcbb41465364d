"""``planweave mcp ...`` (configure, approve, list and serve MCP) and ``planweave tools list``.

``mcp add`` writes a server to the settings file; ``mcp approve`` reaches the server and pins
each of its tools' definitions; ``mcp list`` shows each server, whether it is approved and how
its tools stand; ``mcp serve`` exposes the job API as an MCP server on stdin/stdout. ``tools
list`` shows every tool a job may be given, wherever it comes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planweave.cli._common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    StoreOpt,
    ToolsOpt,
    out_console,
    print_json,
    run_async,
    settings_from,
)
from planweave.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from planweave.config import Settings
    from planweave.tools import Tool

__all__ = ["mcp_app", "tools_app"]

mcp_app = typer.Typer(
    name="mcp",
    help="Configure, approve and list MCP servers, or serve the job API over MCP.",
    no_args_is_help=True,
)
tools_app = typer.Typer(name="tools", help="List the tools jobs may use.", no_args_is_help=True)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=" if what == "--env" else ":")
        if not sep or not key.strip():
            form = "KEY=VALUE" if what == "--env" else "Name: value"
            raise UsageError(f"{what} {item!r}: expected {form}")
        out[key.strip()] = value.strip() if what == "--header" else value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(type(value).__name__)


@mcp_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The server's name (letters, digits, '-')")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="After --: the command that starts the server, and its arguments"),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="A streamable-HTTP server's URL instead")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="KEY=VALUE passed to the server (repeatable)"),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="'Name: value' sent to a URL server (repeatable)"),
    ] = None,
    high_impact: Annotated[
        list[str] | None,
        typer.Option("--high-impact", help="A tool whose calls need approval, or '*'"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Add an MCP server to the settings file: planweave mcp add NAME -- COMMAND ARGS..."""
    from planweave.config import CONFIG_FILE
    from planweave.mcp import McpSettings

    path = (config or Path(CONFIG_FILE)).expanduser()
    table: dict[str, Any] = {}
    if url is not None:
        if command:
            raise UsageError("give either --url or a command after --, not both")
        table["url"] = url
        if header:
            table["headers"] = _pairs(header, "--header")
    elif command:
        table["command"], table["args"] = command[0], list(command[1:])
        if env:
            table["env"] = _pairs(env, "--env")
    else:
        raise UsageError("give the server's command after -- (or --url URL)")
    if high_impact:
        table["high_impact"] = "*" if "*" in high_impact else list(high_impact)
    from planweave.mcp import check_commands

    # A bad table or a command that is not there: one line, and the file is left as it was.
    check_commands(McpSettings.model_validate({"servers": {name: table}}))
    existing = settings_from(path if path.is_file() else None).mcp.servers
    if name in existing:
        raise UsageError(f"{path}: MCP server {name!r} is configured already")
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = [f"\n[mcp.servers.{name}]"] + [f"{key} = {_toml_value(v)}" for key, v in table.items()]
    path.write_text(before.rstrip("\n") + ("\n" if before else "") + "\n".join(lines) + "\n")
    try:
        settings_from(path)
    except ConfigError:
        path.write_text(before)
        raise
    out_console().print(
        f"added MCP server {name!r} to {path}; approve its tools with 'planweave mcp approve {name}'",
        markup=False,
        soft_wrap=True,
    )


@mcp_app.command("approve")
def approve(
    name: Annotated[str, typer.Argument(help="The server to approve")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reach the server, list its tools and pin each definition: jobs may then call them."""
    from planweave.mcp import approve_server

    settings = settings_from(config, data_dir=data_dir)
    pin, problems = run_async(approve_server(name, settings.mcp, settings.data_dir.expanduser()))
    if json_out:
        hashes = {tool: p.sha256 for tool, p in pin.tools.items()}
        print_json({"server": name, "tools": hashes, "skipped": problems})
        return
    console = out_console()
    for problem in problems:
        console.print(problem, style="yellow", markup=False, soft_wrap=True)
    names = ", ".join(f"{name}.{tool}" for tool in sorted(pin.tools)) or "none"
    console.print(
        f"approved MCP server {name!r}: {len(pin.tools)} tools pinned ({names})",
        markup=False,
        soft_wrap=True,
    )


@mcp_app.command("list")
def list_servers(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    live: Annotated[
        bool,
        typer.Option("--live/--offline", help="Reach each server to compare its tools"),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """List the MCP servers: transport, approval, status and each tool's state."""
    from planweave.mcp import describe_servers

    settings = settings_from(config, data_dir=data_dir)
    rows = run_async(describe_servers(settings.mcp, settings.data_dir.expanduser(), live=live))
    if json_out:
        print_json(rows)
        return
    console = out_console()
    if not rows:
        console.print("no MCP servers configured (add one with 'planweave mcp add')")
    for row in rows:
        line = f"{row['name']}  {row['transport']}  {row['target']}  {row['status']}"
        console.print(line, markup=False, soft_wrap=True)
        for tool in row["tools"]:
            line = f"  {tool['name']}  ({tool['model_name']})  {tool['state']}"
            console.print(line, markup=False, soft_wrap=True)


@mcp_app.command("serve")
def serve(
    model: ModelOpt = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    tools: ToolsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the job API as MCP tools on stdin/stdout (submit_goal, job_status, job_result)."""
    from planweave.engine import Engine
    from planweave.mcp._serve import job_api_server

    settings = settings_from(config, model=model, store=store, data_dir=data_dir, tools=tools)
    engine = Engine(**settings.engine_kwargs())
    job_api_server(engine).run()


def _source(tool: Tool) -> str:
    from planweave.tools import FunctionTool

    source = getattr(tool, "source", None)
    if isinstance(source, str):
        return source
    if type(getattr(tool, "agent", None)).__name__ == "SpellAgent":
        return "spell"
    module = tool.fn.__module__ if isinstance(tool, FunctionTool) else type(tool).__module__
    if module.startswith("planweave."):
        return "built-in"
    if isinstance(tool, FunctionTool):
        import inspect

        try:
            return f"python:{inspect.getsourcefile(tool.fn) or module}"
        except TypeError:
            pass
    return f"python:{module}"


def tool_rows(settings: Settings) -> list[dict[str, Any]]:
    """What ``tools list`` shows of each tool a job of these settings may use."""
    from planweave._plugins import load_tools
    from planweave.tools import ToolRegistry, builtin_tools
    from planweave.tools._tool import sandbox_of

    spells, _ = settings.exposed_spells()
    registry = ToolRegistry(
        [*builtin_tools(), *load_tools(settings.tools), *settings.mcp_tools(), *spells]
    )
    rows = []
    for each in registry:
        flag = getattr(each, "high_impact", False)
        rows.append(
            {
                "name": getattr(each, "display_name", each.name),
                "model_name": each.name,
                "description": each.description,
                "source": _source(each),
                "high_impact": "depends on the arguments" if callable(flag) else flag is True,
                "sandbox": sandbox_of(each),
                "parameters": each.parameters,
            }
        )
    return rows


@tools_app.command("list")
def list_tools(
    tools: ToolsOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List every tool: name, source (built-in, Python, MCP server, spell), high impact,
    sandbox."""
    settings = settings_from(config, tools=tools, data_dir=data_dir)
    rows = tool_rows(settings)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "source", "high impact", "sandbox", "description", box=None)
    for row in rows:
        impact = row["high_impact"]
        table.add_row(
            row["name"],
            row["source"],
            impact if isinstance(impact, str) else ("yes" if impact else "no"),
            row["sandbox"] or "-",
            row["description"],
        )
    out_console().print(table)
