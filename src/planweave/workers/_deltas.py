"""A running task's model replies, published as they are written, coalesced.

Deltas go to the job's live topic (``pw:events:JOB``, where the control plane publishes the
job's events), so whoever follows the job with deltas on sees them, in whichever process the
worker runs; they never reach the control plane or the store. A fast model writes a token every
few milliseconds: pieces are held back for up to ``coalesce_s`` (or until ``max_chars`` pile
up) and sent as one delta, so the bus carries a few messages a second per call, not one per
token. Publishing is best effort: a bus that fails drops the delta (the recorded ``LlmCalled``
still holds the complete reply) and never fails the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, Literal

from planweave.bus.base import Bus
from planweave.constants import EVENT_TOPIC_ALL
from planweave.events import LlmDelta, validated
from planweave.llm.base import LlmRequest
from planweave.messages import WorkItem

__all__ = ["CLOSE_WAIT_S", "COALESCE_S", "MAX_DELTA_CHARS", "DeltaPublisher"]

log = logging.getLogger("planweave.worker")

COALESCE_S: Final = 0.05
"""Longest a piece of reply waits to be sent with the pieces after it."""
MAX_DELTA_CHARS: Final = 2_000
"""Held-back text that is sent at once, without waiting for ``COALESCE_S``."""
CLOSE_WAIT_S: Final = 5.0
"""Longest the end of a call waits for its last delta to be published (a bus that is down
must not hold up the task)."""


class DeltaPublisher:
    """The ``LiveReplies`` of one work item: each model call it makes gets a sink."""

    __slots__ = ("_bus", "_calls", "_item", "coalesce_s", "max_chars")

    def __init__(
        self,
        bus: Bus,
        item: WorkItem,
        *,
        coalesce_s: float = COALESCE_S,
        max_chars: int = MAX_DELTA_CHARS,
    ) -> None:
        self._bus = bus
        self._item = item
        self._calls = 0
        self.coalesce_s = coalesce_s
        self.max_chars = max_chars

    def open(
        self, request: LlmRequest, *, model: str, format: Literal["text", "json"]
    ) -> _CallSink:
        self._calls += 1
        item = self._item
        base = {
            "job_id": item.job_id,
            "task_id": item.task_id,
            "attempt": item.attempt,
            "model": model,
            "role": request.role,
            "agent": request.agent,
            "call": self._calls,
            "format": format,
        }
        return _CallSink(self, f"{EVENT_TOPIC_ALL}:{item.job_id}", base)

    async def _publish(self, topic: str, delta: LlmDelta) -> None:
        try:
            await self._bus.publish(topic, delta)
        except Exception as exc:  # best effort: a live view misses a piece, the log has it
            log.debug("a reply delta of job %s was not published: %s", delta.job_id, exc)


class _CallSink:
    """One call's deltas: pieces gather in a buffer that a sender task empties."""

    __slots__ = (
        "_base",
        "_buffer",
        "_closed",
        "_index",
        "_owner",
        "_sender",
        "_size",
        "_topic",
        "_wake",
    )

    def __init__(self, owner: DeltaPublisher, topic: str, base: dict[str, object]) -> None:
        self._owner = owner
        self._topic = topic
        self._base = base
        self._buffer: list[str] = []
        self._size = 0
        self._index = 0
        self._closed = False
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    def __call__(self, text: str) -> None:
        if not text or self._closed:
            return
        self._buffer.append(text)
        self._size += len(text)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        self._wake.set()

    async def _send(self) -> None:
        owner = self._owner
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._closed and self._size < owner.max_chars:
                # Let the pieces written meanwhile join this one; a full buffer or the end of
                # the call sends at once.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(owner.coalesce_s):
                        while not self._closed:
                            await self._wake.wait()
                            self._wake.clear()
                            if self._size >= owner.max_chars:
                                break
            if self._buffer:
                text = "".join(self._buffer)
                self._buffer.clear()
                self._size = 0
                delta = validated(LlmDelta, {**self._base, "index": self._index, "text": text})
                self._index += 1
                await owner._publish(self._topic, delta)
            if self._closed and not self._buffer:
                return

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        sender = self._sender
        if sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(sender), CLOSE_WAIT_S)
            except TimeoutError:
                sender.cancel()  # the bus is stuck: the rest of this reply is not streamed
            except asyncio.CancelledError:
                sender.cancel()
                raise
