"""Hooks, the ordered set of hooks in force, and how one point runs them.

A hook is an object with async methods named after the points it serves
(``before_model_call``, ``after_tool_call``, ``job_end``, ...) or one async function attached to
one point (:func:`hook`). :class:`HookSet` sorts hooks once (priority, then registration order)
and keeps, per point, only the hooks that serve it, so a point nobody hooks costs a dict lookup
and nothing else.

Each hook gets the point's context and returns ``None`` (it only looked) or a new context (it
changed something). ``HookVeto`` refuses; any other exception is logged and the call goes on as
if the hook were absent, so a broken hook never takes a worker down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, get_args

from planweave.errors import HookVeto, Signal
from planweave.hooks._contexts import HookContext, HookPoint

__all__ = ["POINTS", "FunctionHook", "Hook", "HookFunction", "HookSet", "hook"]

log = logging.getLogger("planweave.hooks")

POINTS: tuple[HookPoint, ...] = get_args(HookPoint)
"""Every hook point, in the order a job meets them."""

C = TypeVar("C", bound=HookContext)

HookFunction = Callable[[Any], Awaitable[Any]]
"""An async function of a point's context that returns ``None`` or a new context."""


class Hook:
    """Base class of hooks: define the async methods of the points to hook, nothing else.

    Attributes:
        name: How events, logs and job options (``JobOptions.hooks``) name the hook.
        priority: Lower runs first; hooks of equal priority run in registration order.
    """

    name: str = "hook"
    priority: int = 0

    def handlers(self) -> dict[HookPoint, HookFunction]:
        """The points this hook serves, each with the function that serves it."""
        found: dict[HookPoint, HookFunction] = {}
        for point in POINTS:
            method = getattr(type(self), point, None)
            if method is not None and method is not getattr(Hook, point, None):
                found[point] = getattr(self, point)
        return found

    def close(self) -> None:
        """Release what the hook holds (an open file, an exporter); ``Engine.close`` calls it.
        A hook used again afterwards must still work."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, priority={self.priority})"


class FunctionHook(Hook):
    """One async function hooked to one point (made by :func:`hook`)."""

    def __init__(
        self, point: HookPoint, fn: HookFunction, *, name: str | None = None, priority: int = 0
    ) -> None:
        if point not in POINTS:
            raise ValueError(f"unknown hook point {point!r}; the points are {', '.join(POINTS)}")
        self.point: HookPoint = point
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "hook"))
        self.priority = priority

    def handlers(self) -> dict[HookPoint, HookFunction]:
        return {self.point: self.fn}

    async def __call__(self, ctx: Any) -> Any:
        return await self.fn(ctx)


def hook(
    point: HookPoint, *, name: str | None = None, priority: int = 0
) -> Callable[[HookFunction], FunctionHook]:
    """Make an async function a hook of ``point``::

    @hook("before_tool_call")
    async def no_deletes(ctx: BeforeToolCall) -> None:
        if ctx.name == "delete_file":
            raise HookVeto("files are never deleted here")
    """

    def wrap(fn: HookFunction) -> FunctionHook:
        return FunctionHook(point, fn, name=name, priority=priority)

    return wrap


class HookSet:
    """Hooks in force, ordered, indexed by point. Immutable; :meth:`extended` makes another.

    Attributes:
        hooks: The hooks, in the order they run.
        model_calls: Whether any hook serves a model-call point.
        tool_calls: Whether any hook serves a tool-call point.
        tasks: Whether any hook serves a task point.
    """

    __slots__ = ("_by_point", "_extended", "hooks", "model_calls", "tasks", "tool_calls")

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        listed = list(dict.fromkeys(hooks))  # the same hook registered twice runs once
        ordered = sorted(enumerate(listed), key=lambda pair: (pair[1].priority, pair[0]))
        self.hooks: tuple[Hook, ...] = tuple(h for _, h in ordered)
        by_point: dict[str, list[tuple[str, HookFunction]]] = {}
        for one in self.hooks:
            for point, fn in one.handlers().items():
                by_point.setdefault(point, []).append((one.name, fn))
        self._by_point = {point: tuple(fns) for point, fns in by_point.items()}
        self._extended: dict[tuple[int, ...], HookSet] = {}
        self.model_calls = "before_model_call" in by_point or "after_model_call" in by_point
        self.tool_calls = "before_tool_call" in by_point or "after_tool_call" in by_point
        self.tasks = "before_task" in by_point or "after_task" in by_point

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def __repr__(self) -> str:
        return f"HookSet({[h.name for h in self.hooks]!r})"

    def serves(self, point: HookPoint) -> bool:
        """Whether any hook here runs at ``point``."""
        return point in self._by_point

    def extended(self, more: Iterable[Hook]) -> HookSet:
        """These hooks and ``more``, ordered together (kept, so a task's agent that adds the
        same hooks on every call builds the set once)."""
        more = tuple(more)
        if not more:
            return self
        key = tuple(id(h) for h in more)
        found = self._extended.get(key)
        if found is None:
            found = self._extended[key] = HookSet((*self.hooks, *more))
        return found

    async def run(self, point: HookPoint, ctx: C) -> C:
        """Run the hooks of ``point`` in order, each on what the one before returned.

        Raises:
            HookVeto: a hook refused (its ``hook`` names which).
            Signal: a hook raised a control-flow signal (``RetryTask``) on purpose.
        """
        for name, fn in self._by_point.get(point, ()):
            try:
                changed = await fn(ctx)
            except HookVeto as veto:
                if veto.hook is None:
                    veto.hook = name
                raise
            except Signal:
                raise
            except Exception:
                # Reported, and the call goes on as if this hook were absent.
                log.exception("hook %r failed at %s; carrying on without it", name, point)
                continue
            if changed is not None:
                if type(changed) is not type(ctx):
                    log.error(
                        "hook %r returned a %s at %s, not a %s: ignored",
                        name,
                        type(changed).__name__,
                        point,
                        type(ctx).__name__,
                    )
                    continue
                ctx = changed
        return ctx
