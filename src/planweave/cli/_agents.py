"""``agents list`` and ``agents show``: the named agents jobs can run with, and ``run --agent``.

The agents are the default ``executor`` and the declarative agents of the agents folder
(``--agents-dir``, else the ``agents_dir`` setting, else ``./agents`` when it exists). The
folder is checked in full before anything is shown, so a broken file is reported here (exit 2)
as it would be by ``run``. Only ``typer`` is imported at module level: ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planweave.cli._common import (
    ConfigOpt,
    JsonOpt,
    ToolsOpt,
    out_console,
    print_json,
    settings_from,
)
from planweave.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from planweave.agents._declared import AgentDefinition
    from planweave.config import Settings
    from planweave.engine import Engine

__all__ = ["AgentOpt", "AgentsDirOpt", "agents_app", "submit_agent"]

AgentsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--agents-dir",
        help="Folder of declarative agents (*.yaml)",
        show_default="./agents if present",
    ),
]
AgentOpt = Annotated[
    str | None,
    typer.Option(
        "--agent",
        help="Run the GOAL as input of this named agent (see 'planweave agents list')",
        show_default=False,
    ),
]

agents_app = typer.Typer(
    name="agents", help="List and show the named agents jobs can run with.", no_args_is_help=True
)

_DEFAULT_AGENT = "executor"


@agents_app.command("list")
def list_agents(
    agents_dir: AgentsDirOpt = None,
    config: ConfigOpt = None,
    tools: ToolsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the agents: name, kind, description and tools."""
    rows = [_summary(each) for each in _definitions(_settings(config, agents_dir, tools))]
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "kind", "description", "tools", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], row["kind"], row["description"], ", ".join(row["tools"]))
    out_console().print(table)


@agents_app.command("show")
def show_agent(
    name: Annotated[str, typer.Argument(help="The agent's name")],
    agents_dir: AgentsDirOpt = None,
    config: ConfigOpt = None,
    tools: ToolsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show an agent's full definition."""
    definitions = _definitions(_settings(config, agents_dir, tools))
    found = next((each for each in definitions if each.name == name), None)
    if found is None:
        known = ", ".join(each.name for each in definitions)
        raise UsageError(f"unknown agent {name!r}; agents: {known}")
    data = {"file": str(found.file), **found.fields}
    if json_out:
        print_json(data)
        return
    import yaml

    out_console().print(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(), markup=False
    )


async def submit_agent(engine: Engine, name: str, text: str, fields: dict[str, Any]) -> str:
    """Submit a job that runs the agent ``name`` on ``text``; its id.

    An LLM agent runs as a one-task plan (``execute`` with ``agent: NAME``); a workflow agent
    through ``Engine.submit(agent=..., input=...)``.

    Raises:
        ConfigError: no agent has that name.
    """
    from planweave.agents import ReactAgent
    from planweave.plan import Plan, TaskSpec

    agent = engine.agents.get(name)
    if isinstance(agent, ReactAgent):
        task = TaskSpec(id="t1", goal=text, kind="execute", agent=name)
        return await engine.submit(text, plan=Plan(goal=text, tasks=(task,)), **fields)
    submit: Callable[..., Awaitable[str]] = engine.submit
    return await submit(agent=name, input=text, **fields)


def _settings(config: Path | None, agents_dir: Path | None, tools: str | None) -> Settings:
    return settings_from(config, agents_dir=agents_dir, tools=tools)


def _definitions(settings: Settings) -> list[AgentDefinition]:
    """The default agent's definition and the folder's, checked together."""
    from planweave._plugins import load_tools
    from planweave.agents._declared import AgentDefinition, check_definitions, load_definitions
    from planweave.agents.react import DEFAULT_AGENT_DESCRIPTION
    from planweave.tools import builtin_tools

    default = AgentDefinition(
        name=_DEFAULT_AGENT,
        kind="react",
        description=DEFAULT_AGENT_DESCRIPTION,
        file=Path("(built in)"),
        fields={"name": _DEFAULT_AGENT, "kind": "react", "description": DEFAULT_AGENT_DESCRIPTION},
    )
    folder = settings.agents_folder()
    definitions = load_definitions(folder) if folder is not None else []
    tool_names = {each.name for each in [*builtin_tools(), *load_tools(settings.tools)]}
    check_definitions(definitions, known_agents={_DEFAULT_AGENT}, known_tools=tool_names)
    return [default, *definitions]


def _summary(each: AgentDefinition) -> dict[str, Any]:
    tools = (each.tools or ["(all)"]) if each.kind == "react" else []
    return {"name": each.name, "kind": each.kind, "description": each.description, "tools": tools}
