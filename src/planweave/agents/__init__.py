"""Agents: the parts of the engine that think.

An :class:`Agent` runs one task with an :class:`AgentContext` (model, tools, event sink);
:class:`ReactAgent` is the LLM agent that uses tools in a loop. :func:`plan` breaks a goal into a
task DAG and :func:`compose` writes the final Markdown answer from the tasks' results. Every
model call goes through :func:`call_model`, which reports it as an ``LlmCalled`` event.
"""

from __future__ import annotations

from planweave.agents._agent import Agent, AgentRegistry, AgentResult, AgentTask
from planweave.agents._context import AgentContext, call_model
from planweave.agents.composer import compose
from planweave.agents.planner import plan
from planweave.agents.react import ReactAgent

__all__ = [
    "Agent",
    "AgentContext",
    "AgentRegistry",
    "AgentResult",
    "AgentTask",
    "ReactAgent",
    "call_model",
    "compose",
    "plan",
]
