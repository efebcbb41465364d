"""Group commit: a control plane's decisions written batch by batch, in order.

Inputs are decided synchronously into a buffer (``Pending``) and flushed together: when 500
outcomes arrive at once they cost one transaction, not 500. Flushes run one at a time; inputs
decided while a write is in flight go into the next batch. A batch's work items go out while it
is being written (the write and the work overlap); its post-commit work (acknowledging reports,
publishing events, finishing jobs, or dropping them when the write failed) runs once the batch
is durable, in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from planweave.control import _failpoint
from planweave.control._pending import Pending
from planweave.store.base import Batch, Store

__all__ = ["GroupCommit"]

log = logging.getLogger("planweave.control")

Durable = asyncio.Future[None] | None
"""A batch's write: done once it is durable, failed when it was not written (``None``: the
batch had nothing to write)."""


class GroupCommit:
    """Writes batches one at a time and runs each one's post-commit work in commit order.

    Args:
        store: Where batches go (``Store.commit_soon``).
        prepare: Takes what was decided since the last flush (``None``: nothing to write).
        batch: The store batch of a ``Pending``.
        send: Hands out a batch's work items while it is being written.
        settle: The post-commit work of a batch, given its write (done or failed).
    """

    def __init__(
        self,
        store: Store,
        *,
        prepare: Callable[[], Pending | None],
        batch: Callable[[Pending], Batch],
        send: Callable[[Pending], Awaitable[None]],
        settle: Callable[[Durable, Pending], Awaitable[None]],
    ) -> None:
        self._store = store
        self._prepare = prepare
        self._batch = batch
        self._send = send
        self._settle = settle
        self._lock = asyncio.Lock()
        self._after: deque[tuple[asyncio.Future[None], Pending]] = deque()
        self._after_wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._queued = 0  # batches put in ``_after`` so far
        self._settled = 0  # of those, the ones whose post-commit work is done
        self._progress = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._after_loop(), name="planweave-after-commit")

    async def close(self) -> None:
        """Stop running post-commit work (flush and drain first to finish it)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    async def flush(self, *, durable: bool = False) -> None:
        """Write what was decided and hand out its work; with ``durable``, return only once
        everything flushed so far is durable and its post-commit work done."""
        async with self._lock:
            written = await self._flush_locked()
        if durable:
            if written is not None:
                await asyncio.shield(written)
            await self.drain()

    async def _flush_locked(self) -> Durable:
        pending = self._prepare()
        if pending is None:
            return None
        batch = self._batch(pending)
        written = self._store.commit_soon(batch) if batch else None
        if _failpoint.armed is not None:  # fault tests only: may kill the process here
            await _failpoint.reached(written, pending)
        # Work goes out before its batch is durable: a crash before the write lands loses
        # nothing that matters (the store still shows the task as not done, so resume runs it
        # again, and the attempt number fences any late outcome).
        await self._send(pending)
        if written is None or (written.done() and not self._after):
            await self._settle(written, pending)
        else:
            self._after.append((written, pending))
            self._queued += 1
            self._after_wake.set()
        return written

    async def drain(self) -> None:
        """Wait until every batch flushed so far is durable and its post-commit work done."""
        while self._after:
            self._drained.clear()
            await self._drained.wait()

    async def settle_earlier(self) -> None:
        """Wait until every batch flushed before this call (and one being flushed now) is
        settled: written or failed, its post-commit work done. Unlike ``drain`` it does not
        wait for batches flushed meanwhile, so it returns under a steady load too."""
        async with self._lock:
            target = self._queued
        while self._settled < target:
            self._progress.clear()
            await self._progress.wait()

    async def _after_loop(self) -> None:
        after = self._after
        while True:
            if not after:
                self._after_wake.clear()
                await self._after_wake.wait()
                continue
            written, pending = after[0]
            with contextlib.suppress(Exception):
                await asyncio.shield(written)
            try:
                await self._settle(written, pending)
            except Exception:
                log.exception("control plane: post-commit work failed")
            finally:
                after.popleft()
                self._settled += 1
                self._progress.set()
                if not after:
                    self._drained.set()
