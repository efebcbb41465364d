"""Handoff: an agent passes the task, with its context, to another named agent.

An agent hands off by returning an ``AgentResult`` whose ``handoff`` is a :class:`Handoff` (a
``ReactAgent`` with ``handoffs=[...]`` does so when its model calls a ``handoff_to_<name>``
tool). :func:`run_agent`, which the executor and every workflow use to run an agent, then runs
the named agent on the same task, its inputs and the note left for it included. Handoffs are
bounded per task (``max_handoffs``), so two agents cannot pass a task back and forth forever:
going over the bound fails the task for good with :class:`HandoffLimitExceeded`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from planweave.errors import ConfigError, HandoffLimitExceeded
from planweave.tools import Tool, ToolContext, ToolRegistry

if TYPE_CHECKING:
    from planweave.agents._agent import Agent, AgentResult, AgentTask
    from planweave.agents._context import AgentContext

__all__ = ["HANDOFF_TOOL_PREFIX", "Handoff", "HandoffTool", "run_agent", "with_tools"]

HANDOFF_TOOL_PREFIX = "handoff_to_"


@dataclass(frozen=True, kw_only=True)
class Handoff:
    """A request to pass the task on.

    Attributes:
        to: The name of the registered agent that takes the task over.
        note: What the next agent should know (it arrives among the task's inputs).
    """

    to: str
    note: str = ""


async def run_agent(
    agent: Agent,
    task: AgentTask,
    ctx: AgentContext,
    *,
    max_handoffs: int | None = None,
) -> AgentResult:
    """Run ``agent`` on ``task``, following its handoffs to other agents of ``ctx.agents``.

    Args:
        agent: The first agent.
        task: The task; each agent handed to gets it with the notes so far added to its
            inputs.
        ctx: The context (its ``agents`` registry resolves handoff targets).
        max_handoffs: Handoffs allowed (``None``: ``ctx.max_handoffs``).

    Raises:
        HandoffLimitExceeded: the agents handed off more than ``max_handoffs`` times (not
            retryable: the same agents would do it again).
        ConfigError: a handoff names an agent that is not registered.
    """
    limit = ctx.max_handoffs if max_handoffs is None else max_handoffs
    result = await agent.run(task, ctx)
    chain = [agent.name]
    while result.handoff is not None:
        handoff = result.handoff
        if len(chain) > limit:
            raise HandoffLimitExceeded(
                f"the task was handed off more than {limit} times "
                f"({' -> '.join([*chain, handoff.to])}); raise max_handoffs or change the "
                "agents' instructions"
            )
        if ctx.agents is None or handoff.to not in ctx.agents:
            known = ", ".join(ctx.agents.names()) if ctx.agents is not None else "none"
            raise ConfigError(
                f"agent {chain[-1]!r} handed off to unknown agent {handoff.to!r}; "
                f"registered agents: {known}"
            )
        label = f"handoff from {chain[-1]} (#{len(chain)})"
        task = replace(
            task,
            inputs={**task.inputs, label: handoff.note or result.output},
            input_goals={**task.input_goals, label: f"note from {chain[-1]}"},
        )
        agent = ctx.agents.get(handoff.to)
        chain.append(agent.name)
        result = await agent.run(task, ctx)
    return result


@dataclass
class HandoffTool:
    """The ``handoff_to_<name>`` tool a ``ReactAgent`` offers for each agent it may hand off to:
    calling it notes the request in ``requested``, which the agent then returns."""

    target: str
    requested: list[Handoff] = field(default_factory=list)
    timeout_s: float = 5.0

    @property
    def name(self) -> str:
        return HANDOFF_TOOL_PREFIX + self.target

    @property
    def description(self) -> str:
        return (
            f"Hand the task over to the agent {self.target!r} when it should handle it; "
            "write a note with what it needs to know."
        )

    @property
    def parameters(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"note": {"type": "string", "description": "What the agent must know"}},
            "additionalProperties": False,
        }

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        note = args.get("note")
        self.requested.append(Handoff(to=self.target, note=note if isinstance(note, str) else ""))
        return f"The task is handed over to {self.target}."


def with_tools(registry: ToolRegistry, extra: Iterable[Tool]) -> ToolRegistry:
    """A new registry with ``registry``'s tools and ``extra`` ones (an agent's own tools).

    Raises:
        ConfigError: one of ``extra`` has the name of another tool.
    """
    return ToolRegistry([*registry, *extra])
