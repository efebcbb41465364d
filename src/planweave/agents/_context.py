"""What an agent runs with, and the one way agents call a model.

Every model call an agent makes goes through :func:`call_model` (and from there through the
one recorded call path in ``planweave.llm._record``), so each one is timed and reported as an
``LlmCalled`` event (tokens, cost, a truncated prompt and reply, the agent) whether it succeeds
or fails. The worker that runs the agent decides where those events go: ``emit``
forwards them to the control plane, which numbers them (``seq``) in the job's log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planweave.constants import (
    DEFAULT_MAX_AGENT_STEPS,
    DEFAULT_MAX_HANDOFFS,
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MAX_TOOL_CALLS_PER_STEP,
)
from planweave.llm._record import Emit, recorded_call, render_messages, render_reply
from planweave.llm.base import LlmRequest, LlmResponse, Model
from planweave.tools import ToolContext, ToolRegistry

if TYPE_CHECKING:
    from planweave.agents._agent import AgentRegistry
    from planweave.llm._stream import LiveReplies

__all__ = ["AgentContext", "Emit", "call_model", "render_messages", "render_reply"]


@dataclass(frozen=True, kw_only=True)
class AgentContext:
    """Everything an agent needs to run one task.

    Attributes:
        model: The model the agent calls.
        tools: The registered tools (an agent may offer only a subset to its model).
        tool_context: Workspace, ids and network policy the tools run with.
        emit: Receives one ``LlmCalled`` per model call and one ``ToolCalled`` per tool call.
        job_id: The job the task belongs to (copied into events).
        task_id: The task being run (copied into events).
        max_steps: Model calls a ReAct agent may make before it must answer.
        max_tokens: Default reply limit for calls that set none.
        max_tool_calls: Tool calls a ReAct agent may make in all for this task.
        max_tool_calls_per_step: Tool calls of one model reply that run (the rest are refused).
        load_model: Loads a model by URL for an agent that names its own (``ReactAgent(model=
            "openai:gpt-4o")``), so it is loaded once per process with the engine's options;
            ``None``: the agent loads it itself, with default options.
        agents: The registered agents, which handoffs name (``None``: no handoffs).
        max_handoffs: Times a task may be handed from agent to agent.
        live: Where model replies stream while they are written (``None``: not streamed).
    """

    model: Model
    tools: ToolRegistry
    tool_context: ToolContext
    emit: Emit
    job_id: str
    task_id: str
    max_steps: int = DEFAULT_MAX_AGENT_STEPS
    max_tokens: int | None = None
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_tool_calls_per_step: int = DEFAULT_MAX_TOOL_CALLS_PER_STEP
    load_model: Callable[[str], Awaitable[Model]] | None = None
    agents: AgentRegistry | None = None
    max_handoffs: int = DEFAULT_MAX_HANDOFFS
    live: LiveReplies | None = None


async def call_model(ctx: AgentContext, request: LlmRequest) -> LlmResponse:
    """Run one model call and report it as an ``LlmCalled`` event.

    ``ctx.max_tokens`` fills in a request that sets no limit. A failed call is reported with
    ``error`` set and its exception re-raised.

    Raises:
        ModelError: whatever the model raised.
    """
    return await recorded_call(
        ctx.model,
        request,
        emit=ctx.emit,
        job_id=ctx.job_id,
        task_id=ctx.task_id,
        max_tokens=ctx.max_tokens,
        live=ctx.live,
    )
