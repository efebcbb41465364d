"""Deadlines on the current task, expired by one watchdog per event loop.

``asyncio.timeout`` arms and disarms a loop timer for every call (a TimerHandle, a heap push, a
cancelled handle left in the heap), which costs more than a quick tool itself. Deadlines of the
same length expire in the order they start, so a watchdog keeps one FIFO lane per length and
one loop timer for the earliest pending deadline; starting and ending a deadline is a deque
append and a flag. Expiry behaves as ``asyncio.timeout``: the task is cancelled and the
``CancelledError`` becomes ``TimeoutError`` at the ``with`` that set the deadline.
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections import deque
from types import TracebackType
from typing import Any

__all__ = ["deadline"]


class _Deadline:
    """A timeout on the current task; a ``with`` block that raises ``TimeoutError`` past it."""

    __slots__ = ("at", "cancelling", "done", "expired", "task")

    def __init__(self, at: float, task: asyncio.Task[Any]) -> None:
        self.at = at
        self.task: asyncio.Task[Any] | None = task  # dropped on exit: a lane may outlive it
        self.cancelling = task.cancelling()
        self.expired = False
        self.done = False

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done = True
        task, self.task = self.task, None
        if self.expired and task is not None:
            # Withdraw our cancellation request; only when no other one is left is this a timeout.
            ours_only = task.uncancel() <= self.cancelling
            if ours_only and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc


class _Lane:
    """Deadlines of one length, in start order (so in expiry order)."""

    __slots__ = ("items", "limit")

    def __init__(self) -> None:
        self.items: deque[_Deadline] = deque()
        self.limit = _LANE_COMPACT_AT


_LANE_COMPACT_AT = 1024
"""Ended deadlines are dropped from the front of a lane; behind a long-running call they pile
up, so past this many entries a lane is filtered (and the threshold doubles with what stays)."""


class _Watchdog:
    """Expires the deadlines of one event loop with a single loop timer."""

    __slots__ = ("__weakref__", "_handle", "_handle_at", "_lanes")

    def __init__(self) -> None:
        self._lanes: dict[float, _Lane] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = math.inf

    def start(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> _Deadline:
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline must be set inside a task")
        at = loop.time() + timeout_s
        entry = _Deadline(at, task)
        lane = self._lanes.get(timeout_s)
        if lane is None:
            lane = self._lanes[timeout_s] = _Lane()
        items = lane.items
        while items and items[0].done:
            items.popleft()
        if len(items) >= lane.limit:
            items = lane.items = deque(d for d in items if not d.done)
            lane.limit = max(_LANE_COMPACT_AT, 2 * len(items))
        items.append(entry)
        if at < self._handle_at:
            self._schedule(loop, at)
        return entry

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(at, self._fire, loop)
        self._handle_at = at

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # The loop runs a timer slightly early (within its clock resolution): count it as due.
        now = max(loop.time(), self._handle_at)
        self._handle = None
        self._handle_at = math.inf
        next_at = math.inf
        for key, lane in list(self._lanes.items()):
            items = lane.items
            while items:
                entry = items[0]
                if not entry.done and entry.task is not None:
                    if entry.at > now:
                        break
                    entry.expired = True
                    entry.task.cancel()
                items.popleft()
            if items:
                next_at = min(next_at, items[0].at)
            else:
                del self._lanes[key]
        if next_at < math.inf:
            self._schedule(loop, next_at)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)
_last = threading.local()  # (loop, watchdog) last used by this thread


def deadline(timeout_s: float) -> _Deadline:
    """A timeout of ``timeout_s`` on the current task, to use as ``with deadline(t):``.

    Like ``async with asyncio.timeout(t)``: when it passes, the task is cancelled and the block
    raises ``TimeoutError``; a cancellation from elsewhere stays a ``CancelledError``.
    """
    loop = asyncio.get_running_loop()
    pair: tuple[asyncio.AbstractEventLoop, _Watchdog] | None = getattr(_last, "pair", None)
    if pair is not None and pair[0] is loop:
        return pair[1].start(loop, timeout_s)
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog()
    _last.pair = (loop, watchdog)
    return watchdog.start(loop, timeout_s)
