"""Any agent as a tool for another agent.

:func:`as_tool` wraps an agent in the :class:`~planweave.tools.Tool` protocol: the calling
agent's model calls it with a ``task`` in words, and the wrapped agent runs that task with the
calling task's model, tools and event sink (all in the tool's context). Its model and tool calls
are therefore recorded in the calling task's log, under the wrapped agent's own name, and the
tool call itself under the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from planweave.agents._agent import Agent, AgentTask
from planweave.agents._context import AgentContext
from planweave.agents._handoff import run_agent
from planweave.errors import ConfigError, ToolError
from planweave.events import LlmCalled, PolicyDenied, ToolCalled
from planweave.tools import ToolContext, ToolRegistry

__all__ = ["AgentTool", "as_tool"]

DEFAULT_AGENT_TOOL_TIMEOUT_S = 300.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def _nowhere(event: LlmCalled | ToolCalled | PolicyDenied) -> None:
    """An event sink for calls made outside a task: nothing records them."""


class AgentTool:
    """An agent offered as a tool (made by :func:`as_tool`)."""

    def __init__(
        self,
        agent: Agent,
        *,
        description: str,
        name: str | None = None,
        timeout_s: float = DEFAULT_AGENT_TOOL_TIMEOUT_S,
    ) -> None:
        if not isinstance(agent, Agent):
            raise ConfigError(f"as_tool needs an agent, not {agent!r}")
        tool_name = name if name is not None else re.sub(r"[^A-Za-z0-9_-]", "_", agent.name)[:64]
        if not _NAME_RE.fullmatch(tool_name):
            raise ConfigError(
                f"as_tool: {tool_name!r} is not a valid tool name (1 to 64 letters, digits, "
                "'_' or '-'); pass name=..."
            )
        if not timeout_s > 0:
            raise ConfigError(f"as_tool {tool_name!r}: timeout_s must be positive")
        self.agent = agent
        self._name = tool_name
        self._description = description.strip() or (
            str(getattr(agent, "description", "") or "") or f"Ask the agent {agent.name!r}."
        )
        self._timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return f"AgentTool(name={self._name!r}, agent={self.agent.name!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def parameters(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "task": {"type": "string", "description": "What the agent should do, in words"}
            },
            "required": ["task"],
            "additionalProperties": False,
        }

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Run the wrapped agent on ``args["task"]`` and return its output.

        Raises:
            ToolError: the call runs outside a task (no model to run the agent with).
        """
        if ctx.model is None:
            raise ToolError(
                f"the agent tool {self._name!r} runs only inside a task (it needs the task's "
                "model)",
                retryable=False,
            )
        emit = ctx.emit if ctx.emit is not None else _nowhere
        agent_ctx = AgentContext(
            model=ctx.model,
            tools=ctx.tools if ctx.tools is not None else ToolRegistry(),
            tool_context=replace(ctx, agent=self.agent.name),
            emit=emit,
            job_id=ctx.job_id,
            task_id=ctx.task_id,
            agents=ctx.agents,
        )
        result = await run_agent(self.agent, AgentTask(goal=str(args["task"])), agent_ctx)
        return result.output


def as_tool(
    agent: Agent,
    *,
    description: str = "",
    name: str | None = None,
    timeout_s: float = DEFAULT_AGENT_TOOL_TIMEOUT_S,
) -> AgentTool:
    """Wrap ``agent`` as a tool another agent's model can call.

    Args:
        agent: Any agent (an LLM agent or a workflow).
        description: What the tool does, for the calling model (default: the agent's
            ``description``).
        name: The tool's name (default: the agent's name, made a valid tool name).
        timeout_s: Longest one call may take.

    Returns:
        A :class:`~planweave.tools.Tool`; register it with ``Engine(tools=[...])`` or give it
        to ``ReactAgent(tools=[...])``.
    """
    return AgentTool(agent, description=description, name=name, timeout_s=timeout_s)
