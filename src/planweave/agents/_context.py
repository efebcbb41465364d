"""What an agent runs with, and the one way agents call a model.

Every model call an agent makes goes through :func:`call_model`, so each one is timed and
reported as an ``LlmCalled`` event (tokens, cost, a truncated prompt and reply) whether it
succeeds or fails. The worker that runs the agent decides where those events go: ``emit``
forwards them to the control plane, which numbers them (``seq``) in the job's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from planweave.agents._text import tail, truncate
from planweave.constants import DEFAULT_MAX_AGENT_STEPS
from planweave.events import LlmCalled, ToolCalled
from planweave.llm.base import ChatMessage, LlmRequest, LlmResponse, Model
from planweave.tools import ToolContext, ToolRegistry

__all__ = ["AgentContext", "Emit", "call_model", "render_messages", "render_reply"]

Emit = Callable[[LlmCalled | ToolCalled], Awaitable[None]]
"""Where an agent reports its model and tool calls."""

PROMPT_EVENT_CHARS = 4_000
REPLY_EVENT_CHARS = 4_000


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
    """

    model: Model
    tools: ToolRegistry
    tool_context: ToolContext
    emit: Emit
    job_id: str
    task_id: str
    max_steps: int = DEFAULT_MAX_AGENT_STEPS
    max_tokens: int | None = None


def render_messages(messages: Sequence[ChatMessage]) -> str:
    """Messages as readable text, one block per message."""
    blocks = []
    for message in messages:
        text = f"[{message.role}] {message.content}".rstrip()
        for call in message.tool_calls:
            args = json.dumps(call.arguments, ensure_ascii=False, default=str)
            text += f"\n-> {call.name}({args})"
        blocks.append(text)
    return "\n\n".join(blocks)


def render_reply(response: LlmResponse) -> str:
    """A reply as readable text: its content, its tool calls, or its structured data."""
    parts = [response.content] if response.content else []
    if not response.content and response.data is not None:
        parts.append(json.dumps(response.data, ensure_ascii=False, default=str))
    for call in response.tool_calls:
        args = json.dumps(call.arguments, ensure_ascii=False, default=str)
        parts.append(f"-> {call.name}({call.raw_arguments if call.raw_arguments else args})")
    return "\n".join(parts)


async def call_model(ctx: AgentContext, request: LlmRequest) -> LlmResponse:
    """Run one model call and report it as an ``LlmCalled`` event.

    ``ctx.max_tokens`` fills in a request that sets no limit. A failed call is reported with
    ``error`` set and its exception re-raised.

    Raises:
        ModelError: whatever the model raised.
    """
    if request.max_tokens is None and ctx.max_tokens is not None:
        request = request.model_copy(update={"max_tokens": ctx.max_tokens})
    prompt = tail(render_messages(request.messages), PROMPT_EVENT_CHARS)
    started = time.perf_counter()
    try:
        response = await ctx.model.complete(request)
    except Exception as exc:
        await ctx.emit(
            LlmCalled(
                job_id=ctx.job_id,
                task_id=ctx.task_id,
                model=ctx.model.name,
                role=request.role,
                latency_ms=(time.perf_counter() - started) * 1000,
                prompt=prompt,
                error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            )
        )
        raise
    measured_ms = (time.perf_counter() - started) * 1000
    await ctx.emit(
        LlmCalled(
            job_id=ctx.job_id,
            task_id=ctx.task_id,
            model=ctx.model.name,
            role=request.role,
            tokens_in=response.tokens_in,
            tokens_out=response.tokens_out,
            latency_ms=response.latency_ms or measured_ms,
            cost_usd=response.cost_usd,
            prompt=prompt,
            reply=truncate(render_reply(response), REPLY_EVENT_CHARS),
        )
    )
    return response
