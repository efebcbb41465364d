"""A job's ``kind: spell`` task: the spell it names, found in the spell folders, as an agent."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from planweave.agents._as_tool import AgentTool, as_tool
from planweave.errors import ConfigError
from planweave.plan import TaskSpec
from planweave.spells._agent import SpellAgent
from planweave.spells._lua import LuaLimits

__all__ = ["agent_of_package", "exposed", "spell_agent_for", "spell_folders"]


def spell_folders(workspace: Path, paths: Sequence[str | Path] = ()) -> list[Path]:
    """Where spells are looked for: ``spells/`` in the workspace, then the configured
    folders."""
    return [workspace / "spells", *(Path(p) for p in paths)]


def agent_of_package(package: Any, params: dict[str, Any] | None = None) -> SpellAgent:
    """The agent that runs a spell package (``planweave.spells._package.SpellPackage``) with
    ``params`` (checked against the package's parameters first)."""
    checked = package.check_params(dict(params or {}))
    spec = package.limits
    defaults = LuaLimits()
    limits = LuaLimits(
        instructions=getattr(spec, "instructions", None) or defaults.instructions,
        memory_bytes=getattr(spec, "memory_bytes", None) or defaults.memory_bytes,
        wall_s=getattr(spec, "wall_s", None) or defaults.wall_s,
        host_calls=getattr(spec, "host_calls", None) or defaults.host_calls,
    )
    return SpellAgent(
        name=package.name,
        language=package.language,
        source=package.source(),
        filename=Path(package.entry).name,
        params=checked,
        limits=limits,
        tools=list(package.tools) or None,
        description=package.description,
    )


def spell_agent_for(spec: TaskSpec, folders: Sequence[Path]) -> SpellAgent:
    """The agent of a ``spell`` task: the named spell with ``args`` as its parameters, or a
    script carried in the task itself (``args``: ``language``, ``source``, ``params``).

    Raises:
        ConfigError: the spell is not found, or the inline script is malformed.
        UsageError: the parameters do not fit the spell's.
    """
    if spec.spell:
        try:
            package_module = importlib.import_module("planweave.spells._package")
        except ModuleNotFoundError:
            raise ConfigError(
                f"task {spec.id!r}: spell packages are not available in this installation"
            ) from None
        package = package_module.find_spell(spec.spell, list(folders))
        return agent_of_package(package, spec.args)
    language = spec.args.get("language", "lua")
    source = spec.args.get("source")
    params = spec.args.get("params", {})
    if language not in ("lua", "js") or not isinstance(source, str):
        raise ConfigError(
            f"task {spec.id!r}: a spell task names a spell, or carries args.source and "
            "args.language ('lua' or 'js')"
        )
    if not isinstance(params, dict):
        raise ConfigError(f"task {spec.id!r}: args.params must be a table of parameters")
    return SpellAgent(
        name=f"spell:{spec.id}",
        language=language,
        source=source,
        filename="main.lua" if language == "lua" else "main.js",
        params=params,
    )


def exposed(packages: Mapping[str, Any]) -> tuple[list[AgentTool], list[SpellAgent]]:
    """The tools and agents that spell packages offer the engine: each package with
    ``expose = "tool"`` as a tool of its name (its ``task`` is the spell's ``params.input``), each
    with ``expose = "agent"`` as an agent of its name; register them with
    ``Engine(tools=..., agents=...)``."""
    tools: list[AgentTool] = []
    agents: list[SpellAgent] = []
    for package in packages.values():
        mode = getattr(package, "expose", "none")
        if mode == "tool":
            tools.append(as_tool(agent_of_package(package), description=package.description))
        elif mode == "agent":
            agents.append(agent_of_package(package))
    return tools, agents
