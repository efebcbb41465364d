"""A worker pool's side of the step journal (``planweave._journal``).

Each completed model or tool call of a running task goes to the control plane that owns the job
as a ``StepReport`` (on the work item's reply queue); the plane writes it and answers with a
``StepAck`` on this pool's own journal queue once it is durable, and the call returns only
then, so the next call starts only when the last one is on record. A worker that takes over an
item another worker started (a redelivery) asks the plane for the task's journal first: the
item carries only what was recorded when it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from planweave._journal import Journal, JournalStep
from planweave.bus.base import Bus
from planweave.constants import JOURNAL_QUEUE_PREFIX
from planweave.errors import RetryTask
from planweave.messages import StepAck, StepReport, WorkItem

__all__ = ["StepChannel"]

log = logging.getLogger("planweave.worker")

_Key = tuple[str, str, int, str | None]


class StepChannel:
    """Sends a pool's journal steps and waits for the control plane's answers.

    A step the plane has not answered within ``ack_timeout_s`` (the pool gives two of its work
    leases) ends the attempt with a retry: the task runs again from its recorded steps.
    """

    def __init__(self, bus: Bus, worker_id: str, *, ack_timeout_s: float = 60.0) -> None:
        self.bus = bus
        self.queue = JOURNAL_QUEUE_PREFIX + worker_id
        self.worker_id = worker_id
        self.ack_timeout_s = ack_timeout_s
        self._waiting: dict[_Key, asyncio.Future[StepAck]] = {}
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        # On first use: a pool that runs no journaled task (``tool``) never listens.
        self._task = asyncio.create_task(self._receive(), name="planweave-journal")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=1.0)
            with contextlib.suppress(Exception):  # nobody waits for answers here any more
                await self.bus.remove_queue(self.queue)
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()

    async def journal(self, item: WorkItem, *, redelivered: bool) -> Journal:
        """The journal an item runs with: the steps it carries or, for an item delivered again,
        those the plane holds now."""
        steps = item.steps
        if redelivered:
            answer = await self._ask(item, None)
            if answer is not None and answer.accepted:
                steps = answer.steps

        async def record(step: JournalStep) -> None:
            answer = await self._ask(item, step)
            if answer is None:
                raise RetryTask(
                    f"step {step.step} of the task could not be recorded: the control plane "
                    f"did not answer within {self.ack_timeout_s:g} s"
                )
            if not answer.accepted:
                raise RetryTask(
                    f"attempt {item.attempt} of the task is no longer current: its step "
                    f"{step.step} was refused"
                )

        return Journal(steps, record)

    async def _ask(self, item: WorkItem, step: JournalStep | None) -> StepAck | None:
        key: _Key = (item.job_id, item.task_id, item.attempt, step.step if step else None)
        if self._task is None:
            self._start()
        future = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            report = StepReport(
                job_id=item.job_id,
                task_id=item.task_id,
                attempt=item.attempt,
                ack_to=self.queue,
                step=step,
            )
            await self.bus.enqueue(item.reply_to, report)
            try:
                return await asyncio.wait_for(asyncio.shield(future), self.ack_timeout_s)
            except TimeoutError:
                return None
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]

    async def _receive(self) -> None:
        bus = self.bus
        while True:
            try:
                deliveries = await bus.receive(
                    self.queue, self.worker_id, max_items=256, lease_s=30.0
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %s: receiving journal answers failed", self.worker_id)
                await asyncio.sleep(0.5)
                continue
            for delivery in deliveries:
                answer = delivery.message
                if isinstance(answer, StepAck):
                    key = (answer.job_id, answer.task_id, answer.attempt, answer.step)
                    future = self._waiting.get(key)
                    if future is not None and not future.done():
                        future.set_result(answer)
            if deliveries:
                await bus.ack_many(deliveries)
