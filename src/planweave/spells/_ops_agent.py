"""The agent ops of spells: ``agent.run`` (an agent described by a table, or a registered one,
runs a task) and ``agent.lookup`` (a registered agent exists). Scripts use them through the
library objects ``agent.new``, ``agent.get``, ``a:run`` and ``a:as_tool``."""

from __future__ import annotations

from typing import Any

from planweave.agents._agent import Agent, AgentTask
from planweave.agents._as_tool import as_tool
from planweave.agents._handoff import run_agent
from planweave.agents.react import ReactAgent
from planweave.errors import ConfigError
from planweave.spells._errors import SpellError
from planweave.spells._host import SpellHost, host_op
from planweave.tools import Tool

__all__: list[str] = []

_FIELDS = {"name", "instructions", "tools", "model", "description"}


def _registered(host: SpellHost, name: Any) -> Agent:
    if not isinstance(name, str):
        raise SpellError("agent.get needs an agent's name")
    if host.ctx.agents is None or name not in host.ctx.agents:
        known = ", ".join(host.ctx.agents.names()) if host.ctx.agents is not None else ""
        raise SpellError(f"unknown agent {name!r}; registered agents: {known or 'none'}")
    return host.ctx.agents.get(name)


def _built(host: SpellHost, spec: Any, depth: int = 0) -> Agent:
    """The agent a script's table describes."""
    if not isinstance(spec, dict):
        raise SpellError("an agent is described by a table {name, instructions, tools, model}")
    if "ref" in spec:
        return _registered(host, spec["ref"])
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise SpellError(f"agent.new: unknown fields {unknown}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SpellError("agent.new needs a name")
    tools: list[str | Tool] | None = None
    listed = spec.get("tools")
    if listed is not None:
        if not isinstance(listed, list):
            raise SpellError(f"agent {name!r}: tools must be a list of tool names")
        tools = []
        for item in listed:
            if isinstance(item, str):
                if host.tools is not None and item not in host.tools:
                    raise SpellError(f"agent {name!r}: the spell may not use the tool {item!r}")
                tools.append(item)
            elif isinstance(item, dict) and isinstance(item.get("agent"), dict) and depth < 8:
                inner = item["agent"]
                tools.append(
                    as_tool(
                        _built(host, inner, depth + 1),
                        description=str(
                            inner.get("description") or inner.get("instructions") or ""
                        ),
                    )
                )
            else:
                raise SpellError(f"agent {name!r}: tools must be tool names")
    elif host.tools is not None:
        tools = list(host.allowed_tools())
    model = spec.get("model")
    try:
        return ReactAgent(
            name,
            instructions=spec.get("instructions"),
            tools=tools,
            model=model if isinstance(model, str) and model else None,
            description=spec.get("description"),
        )
    except ConfigError as exc:
        raise SpellError(str(exc)) from None


@host_op("agent.run")
async def _agent_run(host: SpellHost, args: list[Any]) -> Any:
    """``agent.run(spec, input)`` -> the agent's answer, as text."""
    agent = _built(host, args[0] if args else None)
    goal = args[1] if len(args) > 1 else ""
    if not isinstance(goal, str):
        goal = str(goal)
    try:
        result = await run_agent(agent, AgentTask(goal=goal), host.ctx)
    except ConfigError as exc:
        raise SpellError(str(exc)) from None
    return result.output


@host_op("agent.lookup")
async def _agent_lookup(host: SpellHost, args: list[Any]) -> Any:
    """``agent.lookup(name)`` -> the name, when such an agent is registered."""
    return _registered(host, args[0] if args else None).name
