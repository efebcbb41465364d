"""What an engine does among other processes: tell who drives a job, take over the jobs
whose owner stopped, and show and redrive the bus's queues and dead letters.

A part of ``Engine`` (it inherits these), kept in a module of its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from planweave._results import QueueInfo
from planweave.constants import (
    DEFAULT_CONCURRENCY,
    JOURNAL_QUEUE_PREFIX,
    OUTCOME_QUEUE_PREFIX,
    QUEUE_PREFIX,
)
from planweave.control.claims import holder_gone
from planweave.errors import BusUnavailable, JobBusy, PlanweaveError, StoreUnavailable, UsageError

if TYPE_CHECKING:
    from planweave.bus import Bus
    from planweave.bus.base import DeadLetter
    from planweave.control.plane import ControlPlane
    from planweave.state import JobState
    from planweave.store import Store
    from planweave.store.base import Claim

__all__ = ["ClusterOps"]

log = logging.getLogger("planweave.engine")


class ClusterOps:
    """Adoption of orphaned jobs, and the queues' inspection (mixed into ``Engine``)."""

    __slots__ = ()

    store: Store
    bus: Bus
    plane: ControlPlane
    concurrency: dict[str, int]
    claim_lease_s: float
    _unadoptable: set[str]

    if TYPE_CHECKING:  # provided by ``Engine``

        async def start(self) -> None: ...

        def _parts(self) -> None: ...

        def _need_plane(self, what: str) -> None: ...

        def runs_here(self, job_id: str) -> bool: ...

        async def get(self, job_id: str) -> JobState: ...

    async def claim(self, job_id: str) -> Claim | None:
        """Who drives a job: its claim (owner, host, pid, expiry by the store's clock), or
        ``None`` when nobody holds it.

        A job that is not finished and whose claim is ``None``, expired, or held by a dead
        process on this host is stalled: nothing runs it until someone resumes it.
        """
        await self.start()
        return await self.store.read_claim(job_id)

    async def stalled(self, job_id: str) -> bool:
        """Whether a job is unfinished and nobody drives it (resume it to carry on)."""
        state = await self.get(job_id)
        if state.terminal or self.plane.job(job_id) is not None:
            return False
        return holder_gone(await self.store.read_claim(job_id))

    async def _unclaimed(self, job_id: str) -> bool:
        return holder_gone(await self.store.read_claim(job_id))

    async def active_jobs(self) -> list[str]:
        """Ids of the stored jobs that have not ended, whichever process runs them."""
        await self.start()
        return await self.store.active_job_ids()

    async def adopt_active(self) -> list[str]:
        """Carry on every stored job that has not ended and that no live process runs.

        A job another process still runs (its claim is live) is left alone; one that cannot be
        resumed is logged and skipped, so one bad job never stops the others. Returns the ids of
        the jobs this process now runs.
        """
        self._parts()
        adopted: list[str] = []
        for job_id in await self.active_jobs():
            try:
                state = await self.plane.adopt(job_id)
            except JobBusy:
                continue
            except PlanweaveError as exc:
                log.warning("cannot resume job %s: %s", job_id, exc)
                continue
            if not state.terminal:
                adopted.append(job_id)
        return adopted

    async def adopt_orphans(self) -> list[str]:
        """Carry on the active jobs whose owner is gone: its claim expired, or its process on
        this host died. Jobs this process runs, and jobs whose owner's claim is live, cost one
        claim read each and are left alone.

        A control plane that serves beside others (``planweave serve``) calls this on a timer,
        so a replica that was killed has its jobs finished by the others. Returns the ids of
        the jobs this process took over.
        """
        self._need_plane("adopt jobs")
        await self.start()
        adopted: list[str] = []
        driving = {self.plane.owner}
        for job_id in await self.active_jobs():
            if self.runs_here(job_id) or job_id in self._unadoptable:
                continue
            claim = await self.store.read_claim(job_id)
            if not holder_gone(claim):
                assert claim is not None
                driving.add(claim.owner)
                continue
            self._parts()
            try:
                state = await self.plane.adopt(job_id)
            except (JobBusy, StoreUnavailable, BusUnavailable):
                continue  # another owner, or an outage: looked at again on the next round
            except PlanweaveError as exc:
                self._unadoptable.add(job_id)
                log.warning("cannot resume job %s: %s", job_id, exc)
                continue
            if not state.terminal:
                log.info("took over job %s, whose owner stopped", job_id)
                adopted.append(job_id)
        await self._remove_gone_reply_queues(driving)
        return adopted

    async def _remove_gone_reply_queues(self, driving: set[str]) -> None:
        """Delete the reply queues of processes that are gone: a control plane's outcome queue
        (no live claim of that plane's) or a worker's journal answers, holding messages that
        waited unread for two claim leases while no consumer read anything. A process that
        stops cleanly deletes its own; this removes those of processes that were killed with
        replies on their way (an empty queue is left: nothing tells a reader that waits from
        one that is gone)."""
        quiet_s = 2 * self.claim_lease_s
        for queue in await self.bus.queues():
            if queue.startswith(OUTCOME_QUEUE_PREFIX):
                if queue.removeprefix(OUTCOME_QUEUE_PREFIX) in driving:
                    continue
            elif not queue.startswith(JOURNAL_QUEUE_PREFIX):
                continue
            stats = await self.bus.stats(queue)
            if stats.oldest_age_s is None or stats.oldest_age_s < quiet_s:
                continue  # empty, or its replies are recent
            if any(c.idle_s is None or c.idle_s < quiet_s for c in stats.consumers):
                continue  # read lately: its process lives
            await self.bus.remove_queue(queue)
            log.info("removed the reply queue %s: the process that read it is gone", queue)

    def queue_names(self) -> list[str]:
        """Every queue this engine uses: one per worker kind, and its plane's outcome queue."""
        kinds = dict.fromkeys((*DEFAULT_CONCURRENCY, *self.concurrency))
        return [QUEUE_PREFIX + kind for kind in kinds] + [self.plane.reply_queue]

    async def queues(self) -> list[QueueInfo]:
        """Each queue with the messages waiting on it and its dead letters (for /metrics)."""
        await self.start()
        return [
            QueueInfo(
                name=queue,
                depth=await self.bus.depth(queue),
                dead_letters=len(await self.bus.dead_letters(queue)),
            )
            for queue in self.queue_names()
        ]

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        """Work that kept failing to be handled: one queue's, or every queue's, oldest first
        per queue.

        Raises:
            UsageError: ``queue`` is not one of ``queue_names()``.
        """
        await self.start()
        names = self.queue_names() if queue is None else [self._known_queue(queue)]
        return [letter for name in names for letter in await self.bus.dead_letters(name)]

    async def redrive(self, queue: str, letter_id: str) -> bool:
        """Put a dead letter back on its queue; ``False`` when there is no such letter.

        Raises:
            UsageError: ``queue`` is not one of ``queue_names()``.
        """
        await self.start()
        return await self.bus.redrive(self._known_queue(queue), letter_id)

    def _known_queue(self, queue: str) -> str:
        names = self.queue_names()
        if queue not in names:
            raise UsageError(f"no queue {queue!r}: the queues are {', '.join(names)}")
        return queue
