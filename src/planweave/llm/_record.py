"""The one way the engine calls a model: timed, and reported as an ``LlmCalled`` event.

Agents (through :func:`planweave.agents.call_model`) and tools (through
:meth:`planweave.tools.ToolContext.complete`) both come here, so every model call, whoever makes
it, is recorded with its tokens, cost, a truncated prompt and reply, and the agent that asked,
whether it succeeds or fails.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from planweave import _budget, _journal
from planweave._json import dumps_bounded
from planweave._text import tail, truncate
from planweave.events import LlmCalled, PolicyDenied, ToolCalled
from planweave.hooks._active import active_hooks, before_model_call
from planweave.llm._stream import LiveReplies, streamed_call
from planweave.llm.base import ChatMessage, LlmRequest, LlmResponse, Model
from planweave.llm.pricing import override_price_usd

__all__ = ["Emit", "recorded_call", "render_messages", "render_reply"]

Emit = Callable[[LlmCalled | ToolCalled | PolicyDenied], Awaitable[None]]
"""Where model and tool calls are reported (the worker forwards them to the control plane)."""

PROMPT_EVENT_CHARS = 4_000
REPLY_EVENT_CHARS = 4_000


def render_messages(messages: Sequence[ChatMessage]) -> str:
    """Messages as readable text, one block per message."""
    blocks = []
    for message in messages:
        text = f"[{message.role}] {message.content}".rstrip()
        for call in message.tool_calls:
            args = dumps_bounded(call.arguments)
            text += f"\n-> {call.name}({args})"
        blocks.append(text)
    return "\n\n".join(blocks)


def render_reply(response: LlmResponse) -> str:
    """A reply as readable text: its content, its tool calls, or its structured data."""
    parts = [response.content] if response.content else []
    if not response.content and response.data is not None:
        parts.append(dumps_bounded(response.data))
    for call in response.tool_calls:
        args = dumps_bounded(call.arguments)
        parts.append(f"-> {call.name}({call.raw_arguments if call.raw_arguments else args})")
    return "\n".join(parts)


async def recorded_call(
    model: Model,
    request: LlmRequest,
    *,
    emit: Emit,
    job_id: str,
    task_id: str | None,
    max_tokens: int | None = None,
    live: LiveReplies | None = None,
) -> LlmResponse:
    """Run one model call and report it through ``emit`` as an ``LlmCalled`` event.

    Args:
        model: The model to call.
        request: The call; its ``agent`` is copied into the event.
        emit: Receives the event.
        job_id: The job the call belongs to.
        task_id: The task the call belongs to.
        max_tokens: Fills in a request that sets no reply limit.
        live: Where the reply streams while it is written (``None``: not streamed); only
            the event, with the complete reply, is recorded.

    Inside a journaled task (``planweave._journal``) a call recorded by an earlier run of the
    task returns the recorded reply without calling the model or reporting an event again, and
    a live call's reply is recorded before it is returned.

    Inside a task granted a share of its job's budgets (``planweave._budget``), a live call is
    made only when the share covers the most it may use; its cost is taken from the settings'
    ``prices`` table where an entry fits the model.

    Raises:
        ModelError: whatever the model raised (reported first, with ``error`` set).
        HookVeto: a hook refused the call (reported first, with the veto as ``error``).
        BudgetNeeded: the task's share of the budget cannot cover the call (not made).
    """
    if request.max_tokens is None and max_tokens is not None:
        request = request.model_copy(update={"max_tokens": max_tokens})
    hooks = active_hooks()
    if hooks is not None and hooks.model_calls:  # hooks may rewrite, veto or redact the call
        model, request = await before_model_call(
            hooks, model, request, emit=emit, job_id=job_id, task_id=task_id
        )
    step = _journal.begin(
        "model", lambda: _journal.fingerprint(model.name, request.model_dump_json())
    )
    if step is not None and step.recorded is not None:
        return LlmResponse.model_validate(step.recorded.result)
    reserved = _budget.before_model_call(model.name, request.messages, request.max_tokens)
    prompt = tail(render_messages(request.messages), PROMPT_EVENT_CHARS)
    started = time.perf_counter()
    try:
        if live is None:
            response = await model.complete(request)
        else:
            response = await streamed_call(model, request, live)
    except Exception as exc:
        _budget.settle_model_call(reserved, 0, 0.0)
        await emit(
            LlmCalled(
                job_id=job_id,
                task_id=task_id,
                model=model.name,
                role=request.role,
                agent=request.agent,
                latency_ms=(time.perf_counter() - started) * 1000,
                prompt=prompt,
                error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            )
        )
        raise
    measured_ms = (time.perf_counter() - started) * 1000
    priced = override_price_usd(model.name, response.tokens_in, response.tokens_out)
    if priced is not None and priced != response.cost_usd:
        response = response.model_copy(update={"cost_usd": priced})
    _budget.settle_model_call(reserved, response.tokens_in + response.tokens_out, response.cost_usd)
    await emit(
        LlmCalled(
            job_id=job_id,
            task_id=task_id,
            model=model.name,
            role=request.role,
            agent=request.agent,
            tokens_in=response.tokens_in,
            tokens_out=response.tokens_out,
            latency_ms=response.latency_ms or measured_ms,
            cost_usd=response.cost_usd,
            prompt=prompt,
            reply=truncate(render_reply(response), REPLY_EVENT_CHARS),
        )
    )
    if step is not None:
        await step.done(response.model_dump(mode="json"))
    return response
