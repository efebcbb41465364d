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
from planweave.spells._flow_lua import FLOW_LUA
from planweave.spells._prelude import PRELUDE

__all__ = ["HostCall", "LuaLimits", "ScriptFunction", "run_lua"]

LIBRARIES: list[tuple[str, str]] = [("workflow.lua", FLOW_LUA)]
"""Library code loaded into every spell's environment, as (chunk name, source)."""

HostCall = Callable[[str, list[Any]], Awaitable[Any]]
"""Carries out one host call of a spell: ``(op, args) -> result`` (plain JSON-like values).
Raise :class:`SpellError` (or any ``PlanweaveError``) to fail the call inside the script, as
a Lua error at the line that made it."""

MAX_DEPTH = 64


class ScriptFunction:
    """A function of the spell passed to the host in a host call's arguments (a hook, a
    workflow step, a stream's ``on_chunk``): ``await fn(*args)`` runs it in the spell's own
    runtime, while the spell waits, and returns what it returned as plain values. Its host
    calls work like the spell's and count against the same limits; once the spell has ended,
    calling it raises :class:`SpellError`."""

    __slots__ = ("_call",)

    def __init__(self, call: Callable[..., Awaitable[Any]]) -> None:
        self._call = call

    async def __call__(self, *args: Any) -> Any:
        return await self._call(*args)

    def __repr__(self) -> str:
        return "<spell function>"


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


def _to_python(
    value: Any,
    lua_type: Callable[[Any], str | None],
    depth: int = 0,
    *,
    wrap: Callable[[Any], ScriptFunction] | None = None,
) -> Any:
    """A Lua value as plain Python: a table with keys 1..n becomes a list, any other table a
    dict with string keys, a function a :class:`ScriptFunction` (when ``wrap`` makes them)."""
    if depth > MAX_DEPTH:
        raise SpellError("a value passed to the host is nested too deeply")
    kind = lua_type(value)
    if kind is None:
        return value  # nil, boolean, number, string
    if kind == "function" and wrap is not None:
        return wrap(value)
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
        return [_to_python(v, lua_type, depth + 1, wrap=wrap) for _, v in ordered]
    out: dict[str, Any] = {}
    for key, item in items:
        if not isinstance(key, str | int | float) or isinstance(key, bool):
            raise SpellError("a table passed to the host may only have string or number keys")
        out[str(key)] = _to_python(item, lua_type, depth + 1, wrap=wrap)
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
    for name, text in LIBRARIES:
        g.__library(text, name)

    run = _Run(lua, g, host, limits, deadline)
    try:
        values = await run.drive(0)
        return values[0] if len(values) == 1 else (values or None)
    except lua54.LuaMemoryError:
        raise SpellLimitExceeded("memory", limits) from None
    finally:
        run.ended = True
        stop.set()  # a script still running in its thread stops at its next check
        run.close()


class _Run:
    """One run's host side: carries out its host requests and calls its functions."""

    def __init__(self, lua: Any, g: Any, host: HostCall, limits: LuaLimits, deadline: float):
        from lupa import lua54

        self.lua, self.g, self.host, self.limits, self.deadline = lua, g, host, limits, deadline
        self.memory_error: type[BaseException] = lua54.LuaMemoryError
        self.lua_type = lua54.lua_type
        self.calls = 0
        self.ended = False
        self.turn = asyncio.Lock()  # one thread at a time in the runtime

    def close(self) -> None:
        """Lets go of the runtime, so that it is freed as soon as the run is over."""
        self.lua = self.g = None

    def to_python(self, value: Any) -> Any:
        return _to_python(value, self.lua_type, wrap=self.wrap)

    def wrap(self, fn: Any) -> ScriptFunction:
        async def call(*args: Any) -> Any:
            if self.ended:
                raise SpellError("the spell has ended; its functions can no longer be called")
            async with self.turn:
                packed = self.lua.table_from([_to_lua(self.lua, a) for a in args])
                packed["n"] = len(args)
                co = self.g["__callback"](fn, packed)  # (no name mangling)
            values = await self.drive(co)
            return values[0] if len(values) == 1 else (values or None)

        return ScriptFunction(call)

    async def serve(self, op: Any, args: Any) -> tuple[Any, ...]:
        """Carries out one host request: the values the script resumes with."""
        limits = self.limits
        self.calls += 1
        if self.calls > limits.host_calls:
            raise SpellLimitExceeded("host_calls", limits)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise SpellLimitExceeded("wall_time", limits)
        async with self.turn:
            arguments = [self.to_python(v) for v in _values(args)]
        try:
            result = await asyncio.wait_for(self.host(str(op), arguments), remaining)
        except TimeoutError:
            raise SpellLimitExceeded("wall_time", limits) from None
        except SpellLimitExceeded:
            raise
        except Exception as exc:  # the call fails inside the script, at its line
            return (False, str(exc) or type(exc).__name__)
        try:
            async with self.turn:
                return (True, _to_lua(self.lua, result))
        except self.memory_error:
            raise SpellLimitExceeded("memory", limits) from None

    async def serve_batch(self, requests: Any) -> Any:
        """Carries out a ``parallel`` batch together: a table of packed answers, in order."""
        async with self.turn:
            items = _values_list(requests)
        answers = await asyncio.gather(*(self.serve_item(item) for item in items))
        async with self.turn:
            table = self.lua.table()
            for index, answer in enumerate(answers, start=1):
                packed = self.lua.table_from(list(answer))
                packed["n"] = len(answer)
                table[index] = packed
        return table

    async def serve_item(self, item: Any) -> tuple[Any, ...]:
        async with self.turn:
            batch, op, args = item["batch"], item["op"], item["args"]
        if batch is not None:
            return (await self.serve_batch(batch),)
        return await self.serve(op, args)

    async def drive(self, co: Any) -> list[Any]:
        """Runs coroutine ``co`` of the spell (0: its main one) to its end."""
        answer: tuple[Any, ...] = ()
        while True:
            async with self.turn:
                step = await asyncio.to_thread(_resume, self.g, co, answer)
            kind = step[0]
            if kind == "done":
                async with self.turn:
                    return [self.to_python(v) for v in _values(step[1])]
            if kind == "limit":
                raise SpellLimitExceeded(str(step[1]), self.limits)
            if kind == "error":
                raise SpellError(_message(step[1], self.lua_type))
            if kind == "batch":
                answer = (await self.serve_batch(step[1]),)
            else:
                answer = await self.serve(step[1], step[2])


def _values_list(table: Any) -> list[Any]:
    """The items 1..n of a Lua list."""
    out = []
    index = 1
    while table[index] is not None:
        out.append(table[index])
        index += 1
    return out


def _resume(g: Any, co: Any, answer: tuple[Any, ...]) -> tuple[Any, ...]:
    result = g.__step(co, *answer)
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
