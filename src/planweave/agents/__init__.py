"""Agents: the parts of the engine that think.

An :class:`Agent` runs one task with an :class:`AgentContext` (model, tools, event sink);
:class:`ReactAgent` is the LLM agent that uses tools in a loop. :func:`plan` breaks a goal into a
task DAG and :func:`compose` writes the final Markdown answer from the tasks' results. Every
model call goes through :func:`call_model`, which reports it as an ``LlmCalled`` event.

Agents compose: :class:`Sequential`, :class:`Parallel`, :class:`Conditional` and :class:`Loop`
are agents made of agents, :func:`as_tool` offers any agent as a tool to another, and an agent
may pass its task on to another by name (:class:`Handoff`).
"""

from __future__ import annotations

from planweave.agents._agent import Agent, AgentRegistry, AgentResult, AgentTask
from planweave.agents._as_tool import AgentTool, as_tool
from planweave.agents._context import AgentContext, call_model
from planweave.agents._handoff import Handoff, run_agent
from planweave.agents._workflows import Conditional, Loop, Parallel, Sequential
from planweave.agents.composer import compose
from planweave.agents.planner import plan
from planweave.agents.react import ReactAgent

__all__ = [
    "Agent",
    "AgentContext",
    "AgentRegistry",
    "AgentResult",
    "AgentTask",
    "AgentTool",
    "Conditional",
    "Handoff",
    "Loop",
    "Parallel",
    "ReactAgent",
    "Sequential",
    "as_tool",
    "call_model",
    "compose",
    "plan",
    "run_agent",
]
