"""The hooks in force for the code running now, and the helpers the engine's call paths use.

The worker sets the task's hooks (the engine's, the job's) for the time its task runs; an agent
with hooks of its own adds them for the time it runs. Both live in a context variable, so the
one model-call path and the one tool-call path find them without being handed them, parallel
tool calls see the same set, and code outside any task sees none at all (one lookup, no hook
work).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from planweave.errors import HookVeto, PolicyVeto, PolicyViolation
from planweave.hooks._contexts import (
    AfterModelCall,
    AfterStep,
    AfterToolCall,
    BeforeModelCall,
    BeforeStep,
    BeforeToolCall,
    HookPoint,
)
from planweave.hooks._hook import Hook, HookSet

if TYPE_CHECKING:
    from collections.abc import Mapping

    from planweave.llm._record import Emit
    from planweave.llm.base import LlmRequest, LlmResponse, Model
    from planweave.tools._context import ToolContext
    from planweave.tools._runtime import ToolResult

__all__ = [
    "HookedModel",
    "active_hooks",
    "after_tool_call",
    "before_model_call",
    "before_tool_call",
    "run_step_hooks",
    "using_hooks",
    "with_agent_hooks",
]

_ACTIVE: ContextVar[HookSet | None] = ContextVar("planweave_hooks", default=None)

active_hooks = _ACTIVE.get
"""The hooks in force here (``None``: none)."""


@contextmanager
def using_hooks(hooks: HookSet | Iterable[Hook] | None) -> Iterator[HookSet | None]:
    """Put ``hooks`` (added to those already in force) in force inside the block."""
    current = _ACTIVE.get()
    if hooks is None:
        yield current
        return
    if not isinstance(hooks, HookSet):
        hooks = HookSet(hooks) if current is None else current.extended(hooks)
    elif current is not None and current is not hooks:
        hooks = current.extended(hooks.hooks)
    token = _ACTIVE.set(hooks)
    try:
        yield hooks
    finally:
        _ACTIVE.reset(token)


class _HasHooks(Protocol):
    @property
    def hooks(self) -> tuple[Hook, ...]: ...


S = TypeVar("S", bound=_HasHooks)
P = ParamSpec("P")
R = TypeVar("R")


def with_agent_hooks(
    run: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Decorate an agent's ``run`` so its own ``hooks`` are in force while it runs."""

    @functools.wraps(run)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not self.hooks:
            return await run(self, *args, **kwargs)
        with using_hooks(self.hooks):
            return await run(self, *args, **kwargs)

    return wrapper


# --- model calls ----------------------------------------------------------------------------


class HookedModel:
    """A model whose replies pass the ``after_model_call`` hooks before anyone sees them."""

    def __init__(self, inner: Model, hooks: HookSet, before: BeforeModelCall) -> None:
        self.inner = inner
        self.name = inner.name
        self._hooks = hooks
        self._before = before

    async def complete(self, request: LlmRequest) -> LlmResponse:
        b = self._before
        started = time.perf_counter()
        try:
            response = await self.inner.complete(request)
        except Exception as exc:
            failed = AfterModelCall(
                job_id=b.job_id,
                task_id=b.task_id,
                agent=b.agent,
                model=b.model,
                request=request,
                response=None,
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
            await self._hooks.run("after_model_call", failed)
            raise
        ctx = AfterModelCall(
            job_id=b.job_id,
            task_id=b.task_id,
            agent=b.agent,
            model=b.model,
            request=request,
            response=response,
            error=None,
            latency_ms=response.latency_ms or (time.perf_counter() - started) * 1000,
        )
        ctx = await self._hooks.run("after_model_call", ctx)
        return ctx.response if ctx.response is not None else response


async def before_model_call(
    hooks: HookSet,
    model: Model,
    request: LlmRequest,
    *,
    emit: Emit,
    job_id: str,
    task_id: str | None,
) -> tuple[Model, LlmRequest]:
    """Run the ``before_model_call`` hooks: the request to send, and the model to send it to
    (whose reply runs the ``after_model_call`` hooks).

    Raises:
        HookVeto: a hook refused the call (reported first as an ``LlmCalled`` event with the
            veto as its error).
    """
    ctx = BeforeModelCall(
        job_id=job_id, task_id=task_id, agent=request.agent, model=model.name, request=request
    )
    try:
        ctx = await hooks.run("before_model_call", ctx)
    except HookVeto as veto:
        from planweave.events import LlmCalled

        # The after hooks see the refused call as a failed one (metrics count it, spans end).
        refused = AfterModelCall(
            job_id=job_id,
            task_id=task_id,
            agent=request.agent,
            model=model.name,
            request=request,
            response=None,
            error=f"HookVeto: {veto}",
            latency_ms=0.0,
        )
        with contextlib.suppress(HookVeto):
            await hooks.run("after_model_call", refused)
        await emit(
            LlmCalled(
                job_id=job_id,
                task_id=task_id,
                model=model.name,
                role=request.role,
                agent=request.agent,
                error=f"HookVeto: {veto}",
            )
        )
        raise
    return cast("Model", HookedModel(model, hooks, ctx)), ctx.request


# --- tool calls -----------------------------------------------------------------------------


async def before_tool_call(
    hooks: HookSet, name: str, args: Mapping[str, Any], ctx: ToolContext
) -> dict[str, Any]:
    """Run the ``before_tool_call`` hooks: the arguments to call the tool with.

    Raises:
        PolicyViolation: a hook vetoed the call (the caller reads it as a ``policy`` error).
    """
    if not hooks.serves("before_tool_call"):
        return args if isinstance(args, dict) else dict(args)
    before = BeforeToolCall(
        job_id=ctx.job_id, task_id=ctx.task_id or None, agent=ctx.agent, name=name, args=dict(args)
    )
    try:
        before = await hooks.run("before_tool_call", before)
    except HookVeto as veto:
        if isinstance(veto, PolicyVeto):
            raise PolicyViolation(str(veto), rule=veto.rule, call_args=veto.call_args) from veto
        raise PolicyViolation(str(veto)) from veto
    return before.args


async def after_tool_call(
    hooks: HookSet, name: str, args: Mapping[str, Any], ctx: ToolContext, result: ToolResult
) -> ToolResult:
    """Run the ``after_tool_call`` hooks: the result the caller and the event log see (a veto
    turns it into a ``policy`` error)."""
    if not hooks.serves("after_tool_call"):
        return result
    after = AfterToolCall(
        job_id=ctx.job_id,
        task_id=ctx.task_id or None,
        agent=ctx.agent,
        name=name,
        args=dict(args),
        result=result,
    )
    try:
        after = await hooks.run("after_tool_call", after)
    except HookVeto as veto:
        return replace(result, ok=False, value=None, error=str(veto), error_type="policy")
    return after.result


# --- workflow steps -------------------------------------------------------------------------


StepContext = TypeVar("StepContext", BeforeStep, AfterStep)


async def run_step_hooks(ctx: StepContext) -> StepContext:
    """Run the hooks of a workflow step: ``before_step`` for a :class:`BeforeStep`,
    ``after_step`` for an :class:`AfterStep`. Returns the (possibly changed) context; costs
    one lookup when no hook is in force.

    Raises:
        HookVeto: a hook refused the step (the workflow's task fails with the reason).
    """
    hooks = _ACTIVE.get()
    if hooks is None:
        return ctx
    point: HookPoint = "before_step" if isinstance(ctx, BeforeStep) else "after_step"
    if not hooks.serves(point):
        return ctx
    return await hooks.run(point, ctx)
