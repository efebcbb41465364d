"""Hooks written in a spell: ``hooks.on(point, fn)`` turns a function of the script into an
engine hook, in force for the rest of the spell's run.

The script's function sees the point's context as plain values (``ctx.name``, ``ctx.args``,
``ctx.request``, ...) and returns nothing (it only looked), a table/object naming the fields to
replace (``{ args = {...} }``: the engine goes on with the changed context), or
``{ veto = "why" }``, which refuses the call (:class:`~planweave.errors.HookVeto`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from pydantic import BaseModel

from planweave.errors import HookVeto
from planweave.hooks._contexts import HookPoint
from planweave.hooks._hook import POINTS, FunctionHook, HookSet
from planweave.spells._errors import SpellError
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
