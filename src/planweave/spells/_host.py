"""The engine side of a spell's host calls: each op a script may call, carried out through the
task's :class:`~planweave.agents.AgentContext`.

A spell's model calls go through :func:`~planweave.agents._context.call_model` and its tool calls
through :func:`~planweave.tools.run_tool_call`, exactly as an agent's do: each is an event in the
job's log, checked by the job's policy and hooks, counted against its budgets, and journaled, so
a task resumed after a crash replays them instead of calling again.

Ops live in the registry :data:`OPS`; another module adds one with :func:`host_op`::

    @host_op("clock.now")
    async def _now(host: SpellHost, args: list[Any]) -> Any:
        return time.time()
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, cast

from planweave.agents._context import AgentContext, call_model
from planweave.errors import Signal
from planweave.events import SpellEvent
from planweave.llm.base import ChatMessage, LlmRequest
from planweave.spells._errors import SpellError, SpellLimitExceeded
from planweave.tools import run_tool_call

__all__ = ["OPS", "OpFn", "SpellHost", "host_op"]

log = logging.getLogger("planweave.spells")

OpFn = Callable[["SpellHost", list[Any]], Awaitable[Any]]
"""Carries out one op: ``(host, args) -> result`` (plain JSON-like values)."""

OPS: dict[str, OpFn] = {}
"""Every op a spell may call, by its dotted name (``"tools.call"``)."""

_ROLES = ("system", "user", "assistant")


def host_op(name: str) -> Callable[[OpFn], OpFn]:
    """Register the decorated function as the op ``name`` (``"a.b"`` is ``a.b(...)`` in the
    script)."""

    def register(fn: OpFn) -> OpFn:
        OPS[name] = fn
        return fn

    return register


class _Stopped(SpellLimitExceeded):
    """Ends a spell whose host call raised an engine signal (retry, budget, approval)."""

    def __init__(self) -> None:
        super().__init__("cancelled")


class SpellHost:
    """Carries out one spell run's host calls with the task's context.

    Args:
        ctx: The running task's agent context (model, tools, event sink, ids).
        name: The spell's name: its model and tool calls are recorded under it.
        params: The spell's validated parameters (the script's ``params``).
        tools: The tools the spell may call (``None``: every registered tool).

    Attributes:
        signal: An engine signal a host call raised (``RetryTask``, ``BudgetNeeded``,
            ``ApprovalRequired``); the spell is stopped and the signal re-raised by its runner.
        extra: Per-run state other ops keep (a conversation's history, registered hooks).
    """

    def __init__(
        self,
        ctx: AgentContext,
        *,
        name: str,
        params: Mapping[str, Any] | None = None,
        tools: list[str] | None = None,
    ) -> None:
        self.ctx = replace(ctx, tool_context=replace(ctx.tool_context, agent=name))
        self.name = name
        self.params = dict(params or {})
        self.tools = tools
        self.signal: Signal | None = None
        self.extra: dict[str, Any] = {}
        # A JavaScript spell's host calls arrive on tasks of their own: they run in the
        # context of the run (its journal, budget grant and hooks).
        self._context = contextvars.copy_context()

    def ops(self) -> list[str]:
        """The ops a spell run may call."""
        return sorted(OPS)

    def globals(self) -> dict[str, Any]:
        """The script's globals: ``params``."""
        return {"params": self.params}

    async def __call__(self, op: str, args: list[Any]) -> Any:
        fn = OPS.get(op)
        if fn is None:
            raise SpellError(f"{op} is not available to spells")

        async def carry_out() -> Any:
            return await fn(self, args)

        task = asyncio.get_running_loop().create_task(carry_out(), context=self._context)
        try:
            return await task
        except Signal as exc:
            self.signal = exc
            raise _Stopped() from exc

    def allowed_tools(self) -> list[str]:
        names = self.ctx.tools.names()
        if self.tools is None:
            return names
        return [name for name in names if name in self.tools]


def _arg(args: list[Any], index: int, default: Any = None) -> Any:
    return args[index] if len(args) > index and args[index] is not None else default


def _messages(value: Any) -> tuple[ChatMessage, ...]:
    if isinstance(value, str):
        return (ChatMessage(role="user", content=value),)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise SpellError("llm.chat needs a string or a list of {role, content} messages")
    out = []
    for index, item in enumerate(value, start=1):
        if isinstance(item, str):
            out.append(ChatMessage(role="user", content=item))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("content", ""), str):
            raise SpellError(f"llm.chat: message {index} must be a {{role, content}} table")
        role = item.get("role", "user")
        if role not in _ROLES:
            raise SpellError(
                f"llm.chat: message {index} has role {role!r}; use system, user or assistant"
            )
        out.append(ChatMessage(role=role, content=item.get("content", "")))
    return tuple(out)


@host_op("llm.chat")
async def _llm_chat(host: SpellHost, args: list[Any]) -> Any:
    """``llm.chat(messages, {model, temperature, max_tokens, schema})`` -> text, or the
    structured value when ``schema`` is given."""
    messages = _messages(_arg(args, 0))
    opts = _arg(args, 1, {})
    if not isinstance(opts, dict):
        raise SpellError("llm.chat: the options must be a table {model, temperature, ...}")
    unknown = sorted(set(opts) - {"model", "temperature", "max_tokens", "schema"})
    if unknown:
        raise SpellError(f"llm.chat: unknown options {unknown}")
    ctx = host.ctx
    model_url = opts.get("model")
    if model_url:
        if ctx.load_model is None:
            raise SpellError(f"llm.chat: model {model_url!r} cannot be loaded here")
        ctx = replace(ctx, model=await ctx.load_model(str(model_url)))
    schema = opts.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise SpellError("llm.chat: schema must be a JSON schema table")
    request = LlmRequest(
        messages=messages,
        role="executor",
        agent=host.name,
        response_schema=schema,
        max_tokens=opts.get("max_tokens"),
        temperature=opts.get("temperature"),
    )
    response = await call_model(ctx, request)
    if schema is not None:
        if response.data is not None:
            return response.data
        try:
            return json.loads(response.content)
        except ValueError:
            raise SpellError("llm.chat: the model's answer is not JSON of the schema") from None
    return response.content


@host_op("tools.list")
async def _tools_list(host: SpellHost, args: list[Any]) -> Any:
    """``tools.list()`` -> ``{name, description}`` of each tool the spell may call."""
    specs = host.ctx.tools.specs(host.allowed_tools())
    return [{"name": spec.name, "description": spec.description} for spec in specs]


@host_op("tools.call")
async def _tools_call(host: SpellHost, args: list[Any]) -> Any:
    """``tools.call(name, args)`` -> the tool's result; a failed call is a script error."""
    name = _arg(args, 0)
    if not isinstance(name, str):
        raise SpellError("tools.call needs a tool name")
    arguments = _arg(args, 1, {})
    if isinstance(arguments, list) and not arguments:
        arguments = {}
    if not isinstance(arguments, dict):
        raise SpellError(f"tools.call({name!r}): the arguments must be a table of names")
    result = await run_tool_call(
        host.ctx.tools,
        name,
        arguments,
        host.ctx.tool_context,
        record=host.ctx.emit,
        allowed=host.allowed_tools(),
    )
    if not result.ok:
        raise SpellError(f"tool {name}: {result.error}")
    return result.value


def _log_op(level: int) -> OpFn:
    async def write(host: SpellHost, args: list[Any]) -> Any:
        text = " ".join(a if isinstance(a, str) else json.dumps(a, default=str) for a in args)
        log.log(level, "spell %s: %s", host.name, text)
        return None

    return write


for _name, _level in (
    ("debug", logging.DEBUG),
    ("info", logging.INFO),
    ("warn", logging.WARNING),
    ("error", logging.ERROR),
):
    host_op(f"log.{_name}")(_log_op(_level))


@host_op("json.encode")
async def _json_encode(host: SpellHost, args: list[Any]) -> Any:
    """``json.encode(value)`` -> JSON text."""
    return json.dumps(_arg(args, 0), ensure_ascii=False)


@host_op("json.decode")
async def _json_decode(host: SpellHost, args: list[Any]) -> Any:
    """``json.decode(text)`` -> the value."""
    text = _arg(args, 0)
    if not isinstance(text, str):
        raise SpellError("json.decode needs a string")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SpellError(f"json.decode: not JSON ({exc})") from None


@host_op("events.emit")
async def _events_emit(host: SpellHost, args: list[Any]) -> Any:
    """``events.emit(name, data)``: a ``spell.event`` in the job's log."""
    name = _arg(args, 0)
    if not isinstance(name, str) or not name.strip():
        raise SpellError("events.emit needs an event name")
    ctx = host.ctx
    event = SpellEvent(
        job_id=ctx.job_id, task_id=ctx.task_id or None, spell=host.name, name=name,
        data=_arg(args, 1),
    )  # fmt: skip
    emit: Callable[[SpellEvent], Awaitable[None]] = cast(Any, ctx.emit)
    await emit(event)
    return None
