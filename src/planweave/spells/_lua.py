"""Lua spells: a script run in a sandbox of PUC Lua 5.4 (``lupa.lua54``), driving the host
through yielded requests.

Each run gets a runtime of its own (a fraction of a millisecond), held to a memory cap, with
Python's side closed (``register_eval=False``, ``register_builtins=False``, no ``python`` in
the spell's environment) and the spell compiled as text into a whitelisted environment (see
``_prelude``). An instruction-count hook on every coroutine stops a spell that computes past
its budget, runs past its wall-clock limit or is cancelled; ``pcall`` cannot swallow that
stop. The script runs in a thread, so a busy spell never blocks the event loop; each host call
(``tools.call``, ``llm.chat``, ...) suspends it while the host awaits the call on the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from planweave.spells._errors import SpellError, SpellLimitExceeded, SpellSyntaxError
from planweave.spells._prelude import PRELUDE

__all__ = ["HostCall", "LuaLimits", "run_lua"]

HostCall = Callable[[str, list[Any]], Awaitable[Any]]
"""Carries out one host call of a spell: ``(op, args) -> result`` (plain JSON-like values).
Raise :class:`SpellError` (or any ``PlanweaveError``) to fail the call inside the script, as
a Lua error at the line that made it."""

MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class LuaLimits:
    """What one run of a Lua spell may use.

    Attributes:
        instructions: Lua VM instructions (counted in steps of 10,000).
        memory_bytes: Memory the runtime may allocate, the spell's values included.
        wall_s: Wall-clock seconds from start to end, host calls included.
        host_calls: Host calls (tools, models, agents, logs) the spell may make.
    """

    instructions: int = 200_000_000
    memory_bytes: int = 64 * 1024 * 1024
    wall_s: float = 60.0
    host_calls: int = 1_000


def _to_python(value: Any, lua_type: Callable[[Any], str | None], depth: int = 0) -> Any:
    """A Lua value as plain Python: a table with keys 1..n becomes a list, any other table a
    dict with string keys."""
    if depth > MAX_DEPTH:
        raise SpellError("a value passed to the host is nested too deeply")
    kind = lua_type(value)
    if kind is None:
        return value  # nil, boolean, number, string
    if kind != "table":
        raise SpellError(f"a {kind} cannot be passed to the host")
    items = list(value.items())
    keys = [k for k, _ in items]
    if (
        keys
        and all(isinstance(k, int) and not isinstance(k, bool) for k in keys)
        and sorted(keys) == list(range(1, len(keys) + 1))
    ):
        ordered = sorted(items, key=lambda kv: int(kv[0]))
        return [_to_python(v, lua_type, depth + 1) for _, v in ordered]
    out: dict[str, Any] = {}
    for key, item in items:
        if not isinstance(key, str | int | float) or isinstance(key, bool):
            raise SpellError("a table passed to the host may only have string or number keys")
        out[str(key)] = _to_python(item, lua_type, depth + 1)
    return out


async def run_lua(
    source: str,
    *,
    host: HostCall,
    ops: Sequence[str],
    globals_: Mapping[str, Any] | None = None,
    chunk: str = "main.lua",
    limits: LuaLimits | None = None,
    seed: int = 0,
    library: str | None = None,
) -> Any:
    """Run a Lua spell to its end and return what it returned (plain Python values; several
    return values come back as a list).

    Args:
        source: The script's text.
        host: Carries out its host calls.
        ops: The host calls it may make, as dotted names (``"tools.call"`` becomes the Lua
            function ``tools.call``).
        globals_: Plain values the script sees as globals (``params``).
        chunk: The script's name in error messages (``main.lua:12: ...``).
        limits: What it may use (defaults: :class:`LuaLimits`).
        seed: Seed of ``math.random`` (a spell replayed with the same seed draws the same).
        library: Trusted Lua code run in the script's environment just before it (library
            functions over the host calls, such as ``agent.new``).

    Raises:
        SpellSyntaxError: the script does not compile (the message names the line).
        SpellError: the script raised an error, or passed the host something it cannot take.
        SpellLimitExceeded: it went past one of its limits; the host is unharmed.
    """
    from lupa import lua54

    limits = limits or LuaLimits()
    lua = lua54.LuaRuntime(
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=True,
        max_memory=limits.memory_bytes,
    )
    deadline = time.monotonic() + limits.wall_s
    stop = threading.Event()

    def checker() -> str | None:
        if stop.is_set():
            return "cancelled"
        if time.monotonic() > deadline:
            return "wall_time"
        return None

    try:
        lua.execute(PRELUDE)
    except lua54.LuaMemoryError as exc:  # pragma: no cover - the prelude is small
        raise SpellLimitExceeded("memory", limits) from exc
    g = lua.globals()
    lua_type = lua54.lua_type
    env = lua.table()
    for op in ops:
        *path, leaf = op.split(".")
        node = env
        for part in path:
            if node[part] is None:
                node[part] = lua.table()
            node = node[part]
        node[leaf] = g.__host_function(op)
    for name, value in (globals_ or {}).items():
        env[name] = _to_lua(lua, value)
    status, error = g.__sandbox(source, chunk, env, limits.instructions, checker, seed, library)
    if status != "ok":
        raise SpellSyntaxError(str(error))

    calls = 0
    answer: tuple[Any, ...] = ()
    try:
        while True:
            step = await asyncio.to_thread(_resume, g, answer)
            kind = step[0]
            if kind == "done":
                values = [_to_python(v, lua_type) for v in _values(step[1])]
                return values[0] if len(values) == 1 else (values or None)
            if kind == "limit":
                raise SpellLimitExceeded(str(step[1]), limits)
            if kind == "error":
                raise SpellError(_message(step[1], lua_type))
            op, args = step[1], step[2]
            calls += 1
            if calls > limits.host_calls:
                raise SpellLimitExceeded("host_calls", limits)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SpellLimitExceeded("wall_time", limits)
            try:
                arguments = [_to_python(v, lua_type) for v in _values(args)]
                result = await asyncio.wait_for(host(str(op), arguments), remaining)
            except TimeoutError:
                raise SpellLimitExceeded("wall_time", limits) from None
            except SpellLimitExceeded:
                raise
            except Exception as exc:  # the call fails inside the script, at its line
                answer = (False, str(exc) or type(exc).__name__)
                continue
            try:
                answer = (True, _to_lua(lua, result))
            except lua54.LuaMemoryError:
                raise SpellLimitExceeded("memory", limits) from None
    except lua54.LuaMemoryError:
        raise SpellLimitExceeded("memory", limits) from None
    finally:
        stop.set()  # a script still running in its thread stops at its next check


def _resume(g: Any, answer: tuple[Any, ...]) -> tuple[Any, ...]:
    result = g.__step(*answer)
    return result if isinstance(result, tuple) else (result,)


def _values(packed: Any) -> list[Any]:
    """The values of a ``table.pack`` result, in order (``nil`` ones as ``None``)."""
    count = int(packed["n"] or 0)
    return [packed[i] for i in range(1, count + 1)]


def _message(error: Any, lua_type: Callable[[Any], str | None]) -> str:
    if isinstance(error, str):
        return error
    if lua_type(error) == "table":
        return "the spell raised a table as its error: " + repr(_to_python(error, lua_type))
    return f"the spell raised {error!r}"


def _to_lua(lua: Any, value: Any, depth: int = 0) -> Any:
    """A plain Python value (JSON-like) as a Lua value."""
    if depth > MAX_DEPTH:
        raise SpellError("a value passed to the spell is nested too deeply")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        table = lua.table()
        for key, item in value.items():
            table[str(key)] = _to_lua(lua, item, depth + 1)
        return table
    if isinstance(value, list | tuple):
        table = lua.table()
        for index, item in enumerate(value, start=1):
            table[index] = _to_lua(lua, item, depth + 1)
        return table
    return str(value)
