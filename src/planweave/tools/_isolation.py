"""Run tool calls in worker processes that are killed at the deadline.

A synchronous tool runs in a thread, and a thread cannot be stopped: while it computes (say,
``10**9999999``) it may hold the GIL, so the timeout that should end it never gets to run and the
event loop, and every job on it, stalls. An *isolated* tool (``@tool(isolated=True)``; the
built-in ``calculator`` is one) runs instead in a small pool of worker processes
(:class:`ToolProcesses`): the event loop only waits on a pipe, and when the call's deadline
passes the worker is killed (SIGKILL) and replaced, so no tool can hold the loop.

The pool is started lazily (a worker boots on the first call that needs it), keeps at most
``size`` workers, and is usable from any event loop: it waits on pipes with ``add_reader``
rather than owning asyncio transports. An :class:`~planweave.Engine` owns one and shuts it down
in ``close``; calls made outside an engine share one pool per process, shut down at exit.

Each worker also holds an address-space limit (``RLIMIT_AS``, ``max_memory_bytes``, 1 GiB by
default): a tool that allocates without bound gets a ``MemoryError`` in its own process, the call
fails with a ``ToolError`` that says so, and the worker is replaced; the engine's process never
sees the allocation.

Isolation bounds time and memory, not trust: a worker runs the same code with the same rights as
the parent, it is not a sandbox.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import json
import math
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from planweave._deadline import deadline
from planweave.constants import (
    DEFAULT_TOOL_MEMORY_BYTES,
    DEFAULT_TOOL_PROCESSES,
    MAX_TOOL_REPLY_BYTES,
    MIN_TOOL_MEMORY_BYTES,
)
from planweave.errors import (
    ApprovalRequired,
    ConfigError,
    PolicyViolation,
    RetryTask,
    ToolArgumentsInvalid,
    ToolError,
    ToolNotFound,
    ToolTimeout,
)
from planweave.tools._context import ToolContext
from planweave.tools._tool import Tool

__all__ = [
    "INIT_ENV",
    "ToolProcesses",
    "WorkerDied",
    "call_isolated_tool",
    "check_isolated_class",
    "context_data",
    "main_file_of",
    "shared_tool_processes",
]

INIT_ENV = "PLANWEAVE_TOOL_WORKER_INIT"
"""Environment variable with a worker's start-up settings (JSON: ``sys_path``, ``preload``,
``max_memory_bytes``)."""
READY = b'{"ready": true}\n'
"""What a worker writes once it has started and imported its preloaded modules."""
WORKER_START_TIMEOUT_S = 60.0
"""Longest a worker may take to start (a busy machine imports slowly); not part of any call's
own time limit."""
_PRELOAD = ("planweave.tools.builtins",)

_ERRORS: dict[str, type[ToolError]] = {
    "ToolError": ToolError,
    "ToolArgumentsInvalid": ToolArgumentsInvalid,
    "PolicyViolation": PolicyViolation,
    "ToolTimeout": ToolTimeout,
    "ToolNotFound": ToolNotFound,
}
_NOT_SENT = frozenset(
    {"model", "emit", "processes", "tools", "agents", "live", "web_search", "approval"}
)
"""Context fields that cannot cross to a worker (a model, an event sink, the pool itself, the
registries, the live reply stream, the approval gate, whose decisions the tool runtime applies
before the call) or that hold a secret (the web search key)."""
_READ_CHUNK = 1 << 16


def context_data(ctx: ToolContext) -> dict[str, Any]:
    """What of ``ctx`` an isolated tool gets: paths, ids, limits and the deadline."""
    data = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name not in _NOT_SENT}
    data["workspace"] = str(data["workspace"])
    return data


class WorkerDied(ToolError):
    """The worker process ended in the middle of a call (killed, crashed, out of memory)."""


class _Worker:
    """One worker process and the unread part of its replies."""

    def __init__(self, preload: tuple[str, ...], max_memory_bytes: int | None) -> None:
        init = {
            "sys_path": sys.path,
            "preload": list(preload),
            "max_memory_bytes": max_memory_bytes,
        }
        env = {**os.environ, INIT_ENV: json.dumps(init)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "planweave.tools._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C at the terminal is the parent's to handle
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin_fd = self.proc.stdin.fileno()
        self.stdout_fd = self.proc.stdout.fileno()
        os.set_blocking(self.stdin_fd, False)
        os.set_blocking(self.stdout_fd, False)
        self._buffer = bytearray()
        self.ready = False

    async def wait_ready(self) -> None:
        """Wait until the worker has started (at most ``WORKER_START_TIMEOUT_S``)."""
        if self.ready:
            return
        loop = asyncio.get_running_loop()
        try:
            with deadline(WORKER_START_TIMEOUT_S):
                line = await self._read_line(loop, len(READY))
        except TimeoutError:
            raise WorkerDied(
                f"the tool's worker process did not start within {WORKER_START_TIMEOUT_S:g} s"
            ) from None
        if line + b"\n" != READY:
            raise WorkerDied("the tool's worker process did not start properly")
        self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def request(self, line: bytes, max_reply_bytes: int) -> bytes:
        loop = asyncio.get_running_loop()
        await _write_all(loop, self.stdin_fd, line)
        return await self._read_line(loop, max_reply_bytes)

    async def _read_line(self, loop: asyncio.AbstractEventLoop, limit: int) -> bytes:
        buffer = self._buffer
        searched = 0
        while True:
            end = buffer.find(b"\n", searched)
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                return line
            searched = len(buffer)
            if len(buffer) > limit:
                raise ToolError(f"the tool's result is larger than {limit} bytes")
            try:
                chunk = os.read(self.stdout_fd, _READ_CHUNK)
            except BlockingIOError:
                await _readable(loop, self.stdout_fd)
                continue
            if not chunk:
                raise WorkerDied(await self._death())
            buffer += chunk

    async def _death(self) -> str:
        code = self.proc.poll()
        for _ in range(50):  # its pipe closes a moment before it can be reaped
            if code is not None:
                break
            await asyncio.sleep(0.01)
            code = self.proc.poll()
        if code is None:
            return "the tool's worker process closed its pipe"
        how = f"exit code {code}" if code >= 0 else f"signal {-code}"
        return f"the tool's worker process died ({how})"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self) -> None:
        """Ask the worker to exit (stdin closes); kill it if it does not within a second."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _resolve, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _write_all(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_writer(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
            continue
        except (BrokenPipeError, ConnectionResetError):
            raise WorkerDied("the tool's worker process died before the call") from None
        view = view[written:]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ToolProcesses:
    """A pool of worker processes for isolated tools; a call past its deadline kills its worker.

    Args:
        size: Most worker processes at once (each runs one call at a time); calls beyond it
            wait for a free worker, and the wait counts towards their deadline.
        max_reply_bytes: Largest result (as JSON) a call may send back.
        max_memory_bytes: Address space each worker may use (``RLIMIT_AS``; at least
            ``MIN_TOOL_MEMORY_BYTES``); ``None`` sets no limit. A call that allocates past it
            fails with an out-of-memory ``ToolError`` and its worker is replaced.

    Raises:
        ConfigError: ``size`` below 1, or ``max_memory_bytes`` below the minimum.
    """

    def __init__(
        self,
        size: int = DEFAULT_TOOL_PROCESSES,
        *,
        max_reply_bytes: int = MAX_TOOL_REPLY_BYTES,
        max_memory_bytes: int | None = DEFAULT_TOOL_MEMORY_BYTES,
    ) -> None:
        if size < 1:
            raise ConfigError(f"tool_processes must be at least 1, got {size}")
        if max_memory_bytes is not None and max_memory_bytes < MIN_TOOL_MEMORY_BYTES:
            raise ConfigError(
                f"tool_memory_bytes must be at least {MIN_TOOL_MEMORY_BYTES} (a worker needs "
                f"that much to start), got {max_memory_bytes}"
            )
        self.size = size
        self.max_reply_bytes = max_reply_bytes
        self.max_memory_bytes = max_memory_bytes
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._count = 0  # workers alive: idle, busy or starting
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._lock = threading.Lock()
        self._closed = False

    async def call(
        self,
        module: str,
        qualname: str,
        args: Mapping[str, Any],
        ctx: ToolContext | None,
        *,
        main_file: str | None = None,
        timeout_s: float | None = None,
        name: str | None = None,
        instance: bool = False,
    ) -> Any:
        """Run the tool function ``module:qualname`` on ``args`` in a worker and return its value.

        Waiting for a free worker, and for a new one to start, is not part of ``timeout_s``
        (the calling task's own deadline still bounds it). Cancel the call (a deadline does)
        and its worker is killed and replaced.

        Args:
            module: The function's module (``__main__``: the script ``main_file``).
            qualname: The function's qualified name in it.
            args: Its arguments, as JSON values (they are checked again in the worker).
            ctx: The call's context (``None``: the tool takes none).
            main_file: The script that defines a ``__main__`` function.
            timeout_s: Longest the call itself may take.
            name: The tool's name, for messages.
            instance: ``module:qualname`` is a :class:`Tool` class: the worker calls an
                instance of it (made once per worker) instead of a function.

        Raises:
            ToolTimeout: The call took longer than ``timeout_s``; its worker was killed. Not
                retryable: the same call would do the same work again.
            ToolError: what the tool raised (its class kept for the ``ToolError`` family), or
                :class:`WorkerDied` when the worker ended mid-call; neither is retryable unless
                the tool said so.
            Signal: ``RetryTask`` or ``ApprovalRequired`` raised by the tool.
        """
        request = {
            "module": module,
            "qualname": qualname,
            "main": main_file,
            "args": dict(args),
            "ctx": None if ctx is None else context_data(ctx),
            "instance": instance,
        }
        try:
            line = json.dumps(request).encode("ascii") + b"\n"
        except (TypeError, ValueError) as exc:
            raise ToolArgumentsInvalid(
                f"arguments of an isolated tool must be JSON: {exc}"
            ) from None
        worker = await self._acquire(module)
        reply: dict[str, Any] | None = None
        try:
            await worker.wait_ready()
            try:
                with deadline(timeout_s if timeout_s is not None else math.inf):
                    raw = await worker.request(line, self.max_reply_bytes)
            except TimeoutError:
                raise ToolTimeout(
                    f"tool {name or qualname!r} did not finish within {timeout_s:g} s; "
                    "its worker process was stopped",
                    retryable=False,
                ) from None
            reply = json.loads(raw)
        finally:
            if reply is None or reply.get("exit"):
                self._discard(worker)
            else:
                self._release(worker)
        return _outcome(reply)

    async def _acquire(self, module: str) -> _Worker:
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[None] | None = None
            start = False
            with self._lock:
                if self._closed:
                    raise ToolError("the tool processes are shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy.add(worker)
                        return worker
                    self._count -= 1
                    worker.kill()
                if self._count < self.size:
                    self._count += 1
                    start = True
                else:
                    waiter = loop.create_future()
                    self._waiters.append((loop, waiter))
            if start:
                try:
                    fresh = _Worker(self._preload(module), self.max_memory_bytes)
                except BaseException:
                    with self._lock:
                        self._count -= 1
                    self._wake_one()
                    raise
                with self._lock:
                    self._busy.add(fresh)
                return fresh
            assert waiter is not None
            try:
                await waiter
            except asyncio.CancelledError:
                with self._lock, contextlib.suppress(ValueError):
                    self._waiters.remove((loop, waiter))
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the turn on
                raise

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if self._closed:
                self._count -= 1
                closing = True
            else:
                self._idle.append(worker)
                closing = False
        if closing:
            worker.kill()
            return
        self._wake_one()

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker whose call did not finish (deadline, cancellation, death)."""
        worker.kill()
        _reap_later(worker)
        with self._lock:
            self._busy.discard(worker)
            self._count -= 1
            replace = not self._closed and self._count < self.size
            if replace:
                self._count += 1
        if replace:
            # Booting takes a while: start the replacement now, not on the next call.
            try:
                fresh = _Worker(self._preload(None), self.max_memory_bytes)
            except OSError:
                with self._lock:
                    self._count -= 1
            else:
                self._release(fresh)
                return
        self._wake_one()

    def _preload(self, module: str | None) -> tuple[str, ...]:
        extra = () if module is None or module in _PRELOAD or module == "__main__" else (module,)
        return _PRELOAD + extra

    def _wake_one(self) -> None:
        while True:
            with self._lock:
                if not self._waiters:
                    return
                loop, waiter = self._waiters.popleft()
            if loop.is_closed():
                continue
            loop.call_soon_threadsafe(self._wake, waiter)
            return

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():
            self._wake_one()  # cancelled meanwhile: the next waiter's turn
        else:
            waiter.set_result(None)

    async def close(self) -> None:
        """Stop every worker (idle ones exit, busy ones are killed); later calls fail."""
        await asyncio.to_thread(self.close_now)

    def close_now(self) -> None:
        """:meth:`close`, blocking: for ``atexit`` and other synchronous edges."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            waiters = list(self._waiters)
            self._waiters.clear()
            busy = list(self._busy)
        for worker in busy:
            worker.kill()  # its call fails at once; the worker is discarded there
        for worker in idle:
            worker.stop()
        for loop, waiter in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)

    @property
    def workers(self) -> int:
        """Worker processes alive now (idle or busy)."""
        return self._count


def main_file_of(module: str) -> str | None:
    """The script that defines ``module`` when it is ``__main__`` (the worker runs it again)."""
    main = sys.modules.get("__main__") if module == "__main__" else None
    path = getattr(main, "__file__", None)
    return path if isinstance(path, str) else None


def check_isolated_class(tool: Tool) -> None:
    """Refuse an ``isolated = True`` class tool that a worker process could not make again.

    Raises:
        ConfigError: The class is not at the top level of a module, or needs arguments.
    """
    cls = type(tool)
    if "<" in cls.__qualname__:
        raise ConfigError(
            f"tool {tool.name!r}: an isolated tool class must be defined at the top level of a "
            f"module (its worker process imports it by name), not {cls.__qualname__!r}"
        )
    try:
        inspect.signature(cls).bind()
    except TypeError:
        raise ConfigError(
            f"tool {tool.name!r}: an isolated tool class must be constructible with no "
            "arguments (its worker process makes its own instance)"
        ) from None
    except ValueError:
        pass  # no signature to read (a builtin base): the worker will say if it cannot


async def call_isolated_tool(tool: Tool, args: Mapping[str, Any], ctx: ToolContext) -> Any:
    """Run a call of an ``isolated = True`` class tool in a worker process (see
    :meth:`ToolProcesses.call`; ``tool.timeout_s`` is the call's limit)."""
    cls = type(tool)
    processes = ctx.processes if ctx.processes is not None else shared_tool_processes()
    return await processes.call(
        cls.__module__,
        cls.__qualname__,
        args,
        ctx,
        main_file=main_file_of(cls.__module__),
        timeout_s=tool.timeout_s,
        name=tool.name,
        instance=True,
    )


def _outcome(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("value")
    if "retry" in reply:
        retry = reply["retry"]
        raise RetryTask(retry["reason"], delay_s=retry["delay_s"])
    if "approval" in reply:
        raise ApprovalRequired(reply["approval"])
    error = reply["error"]
    raise _ERRORS.get(error["kind"], ToolError)(error["message"], retryable=error["retryable"])


_dying: list[_Worker] = []
_dying_lock = threading.Lock()


def _reap_later(worker: _Worker) -> None:
    """Collect killed workers' exit statuses without blocking the event loop."""
    with _dying_lock:
        _dying.append(worker)
        still = [w for w in _dying if w.proc.poll() is None]
        _dying[:] = still


_shared: ToolProcesses | None = None
_shared_lock = threading.Lock()


def shared_tool_processes() -> ToolProcesses:
    """The pool for isolated calls made outside an engine (one per process, closed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared._closed:
            _shared = ToolProcesses()
            atexit.register(_shared.close_now)
        return _shared


@atexit.register
def _reap_all() -> None:
    with _dying_lock:
        for worker in _dying:
            with contextlib.suppress(Exception):
                worker.proc.wait(timeout=1.0)
        _dying.clear()
