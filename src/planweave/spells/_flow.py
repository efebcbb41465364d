"""A spell's callbacks into the engine: ``hooks.on(point, fn)`` turns a function of the script
into an engine hook, in force for the rest of the spell's run; ``events.on(name, fn)`` calls
``fn(data)`` for the events the run reports; ``llm.stream(messages, opts, on_chunk)`` hands the
reply to ``on_chunk`` as the model writes it.

The script's function sees the point's context as plain values (``ctx.name``, ``ctx.args``,
``ctx.request``, ...) and returns nothing (it only looked), a table/object naming the fields to
replace (``{ args = {...} }``: the engine goes on with the changed context), or
``{ veto = "why" }``, which refuses the call (:class:`~planweave.errors.HookVeto`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Literal, cast

from pydantic import BaseModel

from planweave.agents._context import call_model
from planweave.errors import HookVeto
from planweave.events import SpellEvent
from planweave.hooks._active import _ACTIVE, active_hooks
from planweave.hooks._contexts import HookPoint
from planweave.hooks._hook import POINTS, FunctionHook, HookSet
from planweave.llm._stream import LiveReplies, ReplySink
from planweave.llm.base import LlmRequest
from planweave.spells._errors import SpellError
from planweave.spells._host import SpellHost, _arg, _messages, host_op
from planweave.spells._lua import ScriptFunction

__all__ = ["SCRIPT_POINTS", "ScriptHooks", "script_hook", "script_point"]

SCRIPT_POINTS: dict[str, HookPoint] = {
    "before_model": "before_model_call",
    "after_model": "after_model_call",
    "before_tool": "before_tool_call",
    "after_tool": "after_tool_call",
    **{point: point for point in POINTS},
}
"""The points a spell may hook, by the names it uses (``before_tool``, or the engine's own
``before_tool_call``)."""


def script_point(name: Any) -> HookPoint:
    """The engine's hook point for a spell's point name; a clear error for an unknown one."""
    point = SCRIPT_POINTS.get(str(name))
    if point is None:
        known = ", ".join(sorted(k for k in SCRIPT_POINTS if not k.endswith("_call")))
        raise SpellError(f"hooks.on: unknown hook point {name!r}; the points are {known}")
    return point


def _plain(value: Any) -> Any:
    """A context field as the plain values a script sees."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _changed(old: Any, new: Any) -> Any:
    """A field's new value from the script's, in the field's own type where it has one."""
    if isinstance(old, BaseModel):
        merged = {**old.model_dump(), **new} if isinstance(new, dict) else new
        return type(old).model_validate(merged)
    if dataclasses.is_dataclass(old) and not isinstance(old, type) and isinstance(new, dict):
        names = {f.name for f in dataclasses.fields(old)}
        unknown = sorted(set(new) - names)
        if unknown:
            raise SpellError(f"no field {unknown[0]!r}; the fields are {', '.join(sorted(names))}")
        return dataclasses.replace(old, **new)
    return new


def script_hook(point_name: Any, fn: ScriptFunction, *, spell: str = "spell") -> FunctionHook:
    """An engine hook of ``point_name`` that runs the spell's function ``fn``."""
    point = script_point(point_name)
    if not isinstance(fn, ScriptFunction):
        raise SpellError("hooks.on: the second argument is a function of the spell")

    async def run(ctx: Any) -> Any:
        plain = _plain(ctx)
        answer = await fn(plain)
        if answer is None:
            return None
        if not isinstance(answer, dict):
            raise SpellError(
                f"hooks.on({point_name}): the function returns nothing, a table of fields to "
                f"replace or {{veto = reason}}, not {type(answer).__name__}"
            )
        if "veto" in answer:
            raise HookVeto(str(answer["veto"]), hook=f"{spell}:{point_name}")
        fields = {f.name for f in dataclasses.fields(ctx)}
        unknown = sorted(set(answer) - fields)
        if unknown:
            raise SpellError(
                f"hooks.on({point_name}): the context has no field {unknown[0]!r}; "
                f"its fields are {', '.join(sorted(fields))}"
            )
        changes = {k: _changed(getattr(ctx, k), v) for k, v in answer.items()}
        return dataclasses.replace(ctx, **changes)

    return FunctionHook(point, run, name=f"{spell}:{point_name}")


class ScriptHooks:
    """The hooks a spell registered during its run, to put in force around its host calls
    (``with using_hooks(spell_hooks.in_force()): ...``)."""

    def __init__(self, spell: str = "spell") -> None:
        self.spell = spell
        self._hooks: list[FunctionHook] = []
        self._set: HookSet | None = None

    def on(self, point: Any, fn: Any) -> None:
        """Register ``fn`` at ``point`` (the script's ``hooks.on``)."""
        self._hooks.append(script_hook(point, cast(ScriptFunction, fn), spell=self.spell))
        self._set = None

    def in_force(self) -> HookSet | None:
        """The registered hooks as a set (``None`` while there are none)."""
        if not self._hooks:
            return None
        if self._set is None:
            self._set = HookSet(self._hooks)
        return self._set


# --- host ops -------------------------------------------------------------------------------


@host_op("hooks.on")
async def _hooks_on(host: SpellHost, args: list[Any]) -> Any:
    """``hooks.on(point, fn)``: ``fn`` becomes a hook of the rest of this spell's run, for its
    model and tool calls and the agents it runs."""
    if len(args) < 2:
        raise SpellError("hooks.on needs a point and a function")
    made = script_hook(args[0], cast(ScriptFunction, args[1]), spell=host.name)
    current = active_hooks()
    # Host calls run in the run's own context: the hook stays in force until the run ends.
    _ACTIVE.set(HookSet([made]) if current is None else current.extended([made]))
    return None


def _event_names(event: Any) -> set[str]:
    names = {str(getattr(event, "type", type(event).__name__)), "*"}
    if isinstance(event, SpellEvent):
        names.update({event.name, "spell.event"})
    return names


@host_op("events.on")
async def _events_on(host: SpellHost, args: list[Any]) -> Any:
    """``events.on(name, fn)``: ``fn(data)`` for each event of the job this spell's run
    reports (``LlmCalled``, ``ToolCalled``, a ``spell.event`` by its own name, ``*`` for all)."""
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], ScriptFunction):
        raise SpellError("events.on needs an event name and a function")
    subscribers: list[tuple[str, ScriptFunction]] = host.extra.setdefault("events.on", [])
    subscribers.append((args[0], args[1]))
    if len(subscribers) > 1:
        return None
    inner = host.ctx.emit
    busy = False

    async def tee(event: Any) -> None:
        nonlocal busy
        await inner(event)
        if busy:  # an event a subscriber's own calls reported reaches no subscriber again
            return
        names = _event_names(event)
        busy = True
        try:
            for name, fn in list(subscribers):
                if name in names:
                    await fn(_plain(event))
        finally:
            busy = False

    host.ctx = dataclasses.replace(host.ctx, emit=cast(Any, tee))
    return None


class _ChunkSink:
    def __init__(self, inner: ReplySink | None, queue: asyncio.Queue[str | None]) -> None:
        self._inner = inner
        self._queue = queue

    def __call__(self, text: str) -> None:
        if self._inner is not None:
            self._inner(text)
        if text:
            self._queue.put_nowait(text)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


class _ChunkLive:
    """Streams a call's reply to the spell's callback, and to the task's watchers as before."""

    def __init__(self, inner: LiveReplies | None, queue: asyncio.Queue[str | None]) -> None:
        self._inner = inner
        self._queue = queue

    def open(
        self, request: LlmRequest, *, model: str, format: Literal["text", "json"]
    ) -> ReplySink:
        sink = (
            None if self._inner is None else self._inner.open(request, model=model, format=format)
        )
        return _ChunkSink(sink, self._queue)


@host_op("llm.stream")
async def _llm_stream(host: SpellHost, args: list[Any]) -> Any:
    """``llm.stream(messages, opts, on_chunk)`` -> the whole reply; ``on_chunk(text)`` runs for
    each piece as the model writes it (a replayed call gives its reply as one piece)."""
    messages = _messages(_arg(args, 0))
    opts = _arg(args, 1, {})
    on_chunk = _arg(args, 2)
    if not isinstance(opts, dict):
        raise SpellError("llm.stream: the options must be a table {model, temperature, ...}")
    unknown = sorted(set(opts) - {"model", "temperature", "max_tokens"})
    if unknown:
        raise SpellError(f"llm.stream: unknown options {unknown}")
    if not isinstance(on_chunk, ScriptFunction):
        raise SpellError("llm.stream: the third argument is a function of the spell (on_chunk)")
    ctx = host.ctx
    if opts.get("model"):
        if ctx.load_model is None:
            raise SpellError(f"llm.stream: model {opts['model']!r} cannot be loaded here")
        ctx = dataclasses.replace(ctx, model=await ctx.load_model(str(opts["model"])))
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    delivered = 0

    async def deliver() -> None:
        nonlocal delivered
        while (text := await queue.get()) is not None:
            delivered += 1
            await on_chunk(text)

    consumer = asyncio.create_task(deliver())
    request = LlmRequest(
        messages=messages,
        role="executor",
        agent=host.name,
        max_tokens=opts.get("max_tokens"),
        temperature=opts.get("temperature"),
    )
    try:
        response = await call_model(
            dataclasses.replace(ctx, live=_ChunkLive(ctx.live, queue)), request
        )
    finally:
        queue.put_nowait(None)
        await asyncio.shield(consumer)
    if delivered == 0 and response.content:
        await on_chunk(response.content)
    return response.content
