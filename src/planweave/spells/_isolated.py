"""Spells run in a child process of their own, for scripts you do not trust.

The child (``python -m planweave.spells._child``) runs the spell in the same sandbox as an
in-process run, and is itself held by resource limits: address space, CPU seconds, open files,
no file writes and no core dumps. Its host calls come to this process over a pipe, as JSON
lines, and are carried out here, by your host function, on the event loop. The child is
killed at the wall-clock limit (or when the run is cancelled), and whatever it does, a crash,
running out of memory, being killed, this process only sees the run fail with a typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from planweave.spells._errors import SpellError, SpellLimitExceeded, SpellSyntaxError
from planweave.spells._js import JsLimits, _as_lua
from planweave.spells._lua import HostCall, LuaLimits

__all__ = ["Isolation", "Language", "run_isolated", "run_script"]

Language = Literal["lua", "js"]
Isolation = Literal["inprocess", "subprocess"]

STARTUP_S = 2.0
"""Seconds a child gets, beyond the spell's wall-clock limit, to start its interpreter."""

_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE")


def _child_env() -> dict[str, str]:
    """The child's environment: none of this process's variables (so no secrets), besides
    the locale and the path to planweave itself."""
    import planweave

    env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
    paths = [str(Path(planweave.__file__).resolve().parent.parent)]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


async def run_isolated(
    language: Language,
    source: str,
    *,
    host: HostCall,
    ops: Sequence[str],
    globals_: Mapping[str, Any] | None = None,
    chunk: str | None = None,
    limits: LuaLimits | JsLimits | None = None,
    seed: int = 0,
) -> Any:
    """Run a spell in a child process and return what it returned.

    Args, result and errors as for :func:`~planweave.spells.run_lua` and
    :func:`~planweave.spells.run_js`; besides, a child that crashes or is killed ends the run
    with :class:`SpellError`, and one past its CPU seconds with
    :class:`SpellLimitExceeded` (``limit == "cpu_time"``).
    """
    if language not in ("lua", "js"):
        raise SpellError(f"unknown spell language {language!r}; choose lua or js")
    if limits is None:
        limits = LuaLimits() if language == "lua" else JsLimits()
    described = limits if isinstance(limits, LuaLimits) else _as_lua(limits)
    request = {
        "language": language,
        "source": source,
        "ops": list(ops),
        "globals": dict(globals_ or {}),
        "chunk": chunk or f"main.{language}",
        "limits": dataclasses.asdict(limits),
        "seed": seed,
    }
    deadline = time.monotonic() + limits.wall_s + STARTUP_S
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "planweave.spells._child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
        limit=max(1 << 20, 2 * limits.memory_bytes),
        start_new_session=True,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    stdin, stdout = child.stdin, child.stdout
    tail = bytearray()

    async def drain_stderr() -> None:
        assert child.stderr is not None
        while chunk_ := await child.stderr.read(4096):
            tail.extend(chunk_)
            del tail[:-4096]

    draining = asyncio.create_task(drain_stderr())
    pending: set[asyncio.Task[None]] = set()
    calls = 0

    async def answer(ident: int, op: str, args: list[Any]) -> None:
        try:
            value = await host(op, args)
            reply = {"reply": ident, "ok": True, "value": value}
        except SpellLimitExceeded:
            raise
        except Exception as exc:  # the call fails inside the script, at its line
            reply = {"reply": ident, "ok": False, "error": str(exc) or type(exc).__name__}
        with contextlib.suppress(ConnectionError):
            stdin.write((json.dumps(reply, default=str) + "\n").encode())
            await stdin.drain()

    async def converse() -> dict[str, Any]:
        nonlocal calls
        stdin.write((json.dumps(request, default=str) + "\n").encode())
        await stdin.drain()
        while True:
            line = await stdout.readline()
            if not line:
                return {}
            message = json.loads(line)
            if "end" in message:
                return dict(message)
            calls += 1
            if calls > limits.host_calls:
                raise SpellLimitExceeded("host_calls", described)
            args = message.get("args")
            task = asyncio.create_task(
                answer(int(message["call"]), str(message["op"]), list(args or []))
            )
            pending.add(task)
            task.add_done_callback(_finished(pending))

    talking = asyncio.create_task(converse())
    try:
        waits: set[asyncio.Future[Any]] = {talking}
        while True:
            done, _ = await asyncio.wait(
                waits | pending,
                timeout=max(deadline - time.monotonic(), 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                raise SpellLimitExceeded("wall_time", described)
            for task in done - {talking}:
                task.result()  # a host call that raised the run's own limit
            if talking in done:
                break
        try:
            message = talking.result()
        except (ValueError, KeyError, TypeError) as exc:
            raise SpellError(f"the spell's process sent a malformed message: {exc}") from None
        if not message:
            await _reap(child)
            raise _died(child.returncode, bytes(tail), described)
        return _ending(message, described)
    finally:
        talking.cancel()
        for task in pending:
            task.cancel()
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        await _reap(child)
        draining.cancel()


def _finished(pending: set[asyncio.Task[None]]) -> Any:
    def discard(task: asyncio.Task[None]) -> None:
        pending.discard(task)

    return discard


async def _reap(child: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        if child.returncode is None:
            await asyncio.wait_for(child.wait(), 5)


def _ending(message: dict[str, Any], limits: LuaLimits) -> Any:
    end = message.get("end")
    if end == "ok":
        return message.get("value")
    text = str(message.get("message") or "")
    if end == "limit":
        raise SpellLimitExceeded(str(message.get("limit")), limits)
    if end == "syntax":
        raise SpellSyntaxError(text)
    raise SpellError(text)


def _died(code: int | None, stderr: bytes, limits: LuaLimits) -> SpellError:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGXCPU":
            return SpellLimitExceeded("cpu_time", limits)
        if b"out of memory" in stderr.lower():  # V8 ends its process on some allocations
            return SpellLimitExceeded("memory", limits)
        return SpellError(f"the spell's process ended with {name}")
    if b"MemoryError" in stderr:
        return SpellLimitExceeded("memory", limits)
    last = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return SpellError(f"the spell's process exited with status {code}: {last[0]}".rstrip(": "))


async def run_script(
    language: Language,
    source: str,
    *,
    host: HostCall,
    ops: Sequence[str],
    isolation: Isolation = "inprocess",
    globals_: Mapping[str, Any] | None = None,
    chunk: str | None = None,
    limits: LuaLimits | JsLimits | None = None,
    seed: int = 0,
) -> Any:
    """Run a spell in either language, in this process or in a child process of its own
    (``isolation``), and return what it returned."""
    if isolation == "subprocess":
        return await run_isolated(
            language,
            source,
            host=host,
            ops=ops,
            globals_=globals_,
            chunk=chunk,
            limits=limits,
            seed=seed,
        )
    if isolation != "inprocess":
        raise SpellError(f"unknown spell isolation {isolation!r}; choose inprocess or subprocess")
    from planweave.spells._js import run_js
    from planweave.spells._lua import run_lua

    name = chunk or f"main.{language}"
    if language == "lua":
        if limits is not None and not isinstance(limits, LuaLimits):
            raise SpellError("a Lua spell takes LuaLimits")
        return await run_lua(
            source, host=host, ops=ops, globals_=globals_, chunk=name, limits=limits, seed=seed
        )
    if language == "js":
        if limits is not None and not isinstance(limits, JsLimits):
            raise SpellError("a JavaScript spell takes JsLimits")
        return await run_js(
            source, host=host, ops=ops, globals_=globals_, chunk=name, limits=limits, seed=seed
        )
    raise SpellError(f"unknown spell language {language!r}; choose lua or js")
