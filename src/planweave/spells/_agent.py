"""A spell as an engine agent: its run executes the script, with the task's context as its host.

So a spell runs wherever an agent runs (a plan's task, a tool for another agent, a job's
``kind: spell`` task), and its model and tool calls are the task's: events, policy, budgets and
the journal apply to them as to any agent's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from planweave.agents._agent import AgentResult, AgentTask
from planweave.agents._context import AgentContext
from planweave.errors import ConfigError
from planweave.spells import _flow, _ops_agent  # noqa: F401  (registers their ops)
from planweave.spells._errors import SpellLimitExceeded
from planweave.spells._host import SpellHost
from planweave.spells._js import JsLimits, run_js
from planweave.spells._lib_js import JS_LIB
from planweave.spells._lib_lua import LUA_LIB
from planweave.spells._lua import LuaLimits, run_lua
from planweave.spells._ops_state import SpellState

__all__ = ["SpellAgent", "run_spell"]

Language = Literal["lua", "js"]


@dataclass(kw_only=True)
class SpellAgent:
    """An agent that runs a spell.

    Attributes:
        name: The agent's (and the spell's) name; its calls are recorded under it.
        language: ``"lua"`` or ``"js"``.
        source: The script.
        filename: The script's name in error messages (``main.lua``).
        params: The spell's parameters (``params`` in the script); a task's goal is
            ``params.input`` unless the parameters set one.
        limits: What one run may use (instructions, memory, wall time, host calls).
        tools: The tools the spell may call (``None``: every registered tool).
        description: One line on what the spell does (shown to planners and calling models).
        state_dir: Where its ``state`` is kept across runs (``None``: in memory).
    """

    name: str
    language: Language
    source: str
    filename: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    limits: LuaLimits = field(default_factory=LuaLimits)
    tools: list[str] | None = None
    description: str = ""
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.language not in ("lua", "js"):
            raise ConfigError(
                f"spell {self.name!r}: language must be 'lua' or 'js', not {self.language!r}"
            )

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Run the spell on ``task`` (its goal is ``params.input``) and return what it returned
        (text as the output; a table also as ``data``).

        Raises:
            SpellError: the script failed, with its own file and line.
            SpellLimitExceeded: it went past one of its limits.
        """
        params = dict(self.params)
        if task.goal and "input" not in params:
            params["input"] = task.goal
        value = await run_spell(
            ctx,
            name=self.name,
            language=self.language,
            source=self.source,
            filename=self.filename,
            params=params,
            limits=self.limits,
            tools=self.tools,
            state_dir=self.state_dir,
        )
        if isinstance(value, str):
            output = value
        elif value is None:
            output = "(the spell returned nothing)"
        else:
            output = json.dumps(value, ensure_ascii=False, default=str)
        return AgentResult(output=output or "(empty)", data=value, steps=0)


async def run_spell(
    ctx: AgentContext,
    *,
    name: str,
    language: Language,
    source: str,
    filename: str = "",
    params: Mapping[str, Any] | None = None,
    limits: LuaLimits | None = None,
    tools: list[str] | None = None,
    state_dir: Path | None = None,
) -> Any:
    """Run one spell with ``ctx`` as its host and return what the script returned.

    Raises:
        SpellError: the script failed (its file and line in the message).
        SpellLimitExceeded: it went past one of its limits.
        Signal: a host call raised an engine signal (retry, budget, approval); re-raised.
    """
    limits = limits or LuaLimits()
    host = SpellHost(ctx, name=name, params=params, tools=tools)
    host.extra["state"] = SpellState(state_dir)
    try:
        if language == "lua":
            return await run_lua(
                source,
                host=host,
                ops=host.ops(),
                globals_=host.globals(),
                chunk=filename or "main.lua",
                limits=limits,
                library=LUA_LIB,
            )
        return await run_js(
            source,
            host=host,
            ops=host.ops(),
            globals_=host.globals(),
            chunk=filename or "main.js",
            limits=JsLimits(
                memory_bytes=limits.memory_bytes, wall_s=limits.wall_s, host_calls=limits.host_calls
            ),
            library=JS_LIB,
        )
    except SpellLimitExceeded:
        if host.signal is not None:
            raise host.signal from None
        raise
