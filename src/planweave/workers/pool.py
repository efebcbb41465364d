"""Worker pools: take work items of one kind off the bus, run them, report outcomes.

A pool runs up to ``concurrency`` items at once, keeps their leases alive while they run (so a
long LLM call is not taken for a dead worker), and acknowledges an item only after its outcome is
on the item's reply queue (``WorkItem.reply_to``: the queue of the plane that dispatched it): a
worker killed mid-task leaves the item leased, and the bus delivers it again when the lease runs
out. On shutdown it stops taking work, lets running items finish for a grace period, and gives
the rest back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from planweave import _journal
from planweave.bus.base import Bus, Delivery, Subscription
from planweave.constants import (
    ABANDON_EVENT_TYPES,
    CONTROL_TOPIC,
    QUEUE_PREFIX,
    WORKER_LOST,
    WORKER_TOOL,
)
from planweave.events import LlmCalled, PolicyDenied, SpellEvent, ToolCalled, new_id, validated
from planweave.messages import CallReport, Outcome, StartedReport, WorkItem
from planweave.workers._deltas import DeltaPublisher
from planweave.workers._steps import StepChannel

__all__ = ["Handler", "Reporter", "WorkerPool"]

log = logging.getLogger("planweave.worker")

_SPARE_STOP_S = 1.0
"""How long a stopping pool waits for its runners that hold no item to end."""


class Reporter:
    """Sends a running task's LLM and tool calls to the control plane as they happen, and
    (``live``) its model replies to live followers while they are written."""

    __slots__ = ("_bus", "_item", "_live")

    def __init__(self, bus: Bus, item: WorkItem) -> None:
        self._bus = bus
        self._item = item
        self._live: DeltaPublisher | None = None

    @property
    def live(self) -> DeltaPublisher:
        """Where the task's model calls stream their replies (the job's live topic)."""
        if self._live is None:
            self._live = DeltaPublisher(self._bus, self._item)
        return self._live

    async def __call__(self, event: LlmCalled | ToolCalled | PolicyDenied | SpellEvent) -> None:
        item = self._item
        await self._bus.enqueue(
            item.reply_to,
            CallReport(job_id=item.job_id, task_id=item.task_id, attempt=item.attempt, event=event),
        )


Handler = Callable[[WorkItem, Reporter], Awaitable[Outcome]]


class WorkerPool:
    """Runs work items of one worker kind."""

    def __init__(
        self,
        *,
        bus: Bus,
        kind: str,
        handler: Handler,
        concurrency: int = 8,
        lease_s: float = 30.0,
        worker_id: str | None = None,
        report_started_after_s: float = 0.0,
    ) -> None:
        self.bus = bus
        self.kind = kind
        self.queue = QUEUE_PREFIX + kind
        self.handler = handler
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.worker_id = worker_id or f"{kind}-{new_id()[:8]}"
        # Runner tasks holding an item (handed over or running), with the item.
        self._active: dict[asyncio.Task[None], Delivery] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._idle: list[tuple[asyncio.Task[None], asyncio.Future[Delivery | None]]] = []
        self._receiver: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._control: Subscription | None = None
        self._exits = contextlib.AsyncExitStack()
        self._control_task: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.report_started_after_s = report_started_after_s
        # Running items not yet reported as started: (loop time, wall time, item) by delivery id.
        self._unreported: dict[str, tuple[float, float, WorkItem]] = {}
        self._loop_time: Callable[[], float] = time.monotonic
        # Journal steps of running tasks go to their planes; the answers come back here. A
        # plane that has not answered in two work leases has let the item go, or is gone.
        self._steps = StepChannel(bus, self.worker_id, ack_timeout_s=2 * lease_s)

    async def start(self) -> None:
        self._loop_time = asyncio.get_running_loop().time
        # Subscribed before any item is taken, so no job's end is missed while its item runs.
        self._control = await self._exits.enter_async_context(self.bus.subscribe(CONTROL_TOPIC))
        self._spawn(None, receiving=True)
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="planweave-heartbeat")
        self._control_task = asyncio.create_task(self._watch_control(), name="planweave-control")

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop taking work; wait up to ``grace_s`` for running items, give the rest back."""
        self._stopping = True
        await self._exits.aclose()
        # Runners holding no item (the receiver, the idle ones) just end.
        spare = [task for task in self._runners if task not in self._active]
        ending = [t for t in (self._heartbeat_task, self._control_task, *spare) if t is not None]
        for task in ending:
            task.cancel()
        if ending:
            # They hold no work item: one stuck in a bus call that ignores its cancellation (a
            # network read) must not hold up the stop.
            await asyncio.wait(ending, timeout=_SPARE_STOP_S)
        if self._active:
            # A runner ends once its item is done (it sees ``_stopping``).
            _, still = await asyncio.wait(list(self._active), timeout=grace_s)
            for task in still:
                delivery = self._active.get(task)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                if delivery is not None:
                    with contextlib.suppress(Exception):
                        await self.bus.nack(delivery, reason="worker stopped")
        await self._steps.stop()

    # --- runners ------------------------------------------------------------------------------
    # Items run on long-lived runner tasks (at most ``concurrency`` holding an item, spawned as
    # needed and parked when idle), not on a task per item. One runner at a time receives; it
    # runs the first item it gets itself, hands the rest to parked runners, and only if that item
    # suspends does another runner take over receiving (checked with one ``call_soon``). So a
    # quick item costs no task, no done-callback and no extra trip through the loop.

    def _spawn(self, delivery: Delivery | None, *, receiving: bool = False) -> None:
        task = asyncio.create_task(self._runner(delivery), name=f"planweave-{self.kind}")
        self._runners.add(task)
        task.add_done_callback(self._runners.discard)
        if delivery is not None:
            self._active[task] = delivery
        if receiving:
            self._receiver = task

    def _assign(self, delivery: Delivery) -> None:
        """Give an item to a parked runner, or to a new one."""
        if self._idle:
            task, parked = self._idle.pop()
            self._active[task] = delivery
            parked.set_result(delivery)
        else:
            self._spawn(delivery)

    def _ensure_receiver(self) -> None:
        """Make sure some runner receives while there is room for more items."""
        if self._receiver is not None or self._stopping:
            return
        if len(self._active) >= self.concurrency:
            return  # the first runner to finish its item receives again
        if self._idle:
            task, parked = self._idle.pop()
            self._receiver = task
            parked.set_result(None)
        else:
            self._spawn(None, receiving=True)

    async def _next(self, task: asyncio.Task[None]) -> Delivery | None:
        """This runner's next item: received (when no other runner receives) or handed over;
        ``None`` once the pool stops."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            receiver = self._receiver
            if receiver is None or receiver is task:
                free = self.concurrency - len(self._active)
                if free > 0:
                    self._receiver = task
                    try:
                        deliveries = await self.bus.receive(
                            self.queue, self.worker_id, max_items=free, lease_s=self.lease_s
                        )
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("worker %s: receiving failed; retrying", self.worker_id)
                        await asyncio.sleep(0.5)
                        continue
                    finally:
                        if self._receiver is task:
                            self._receiver = None
                    if not deliveries:
                        continue
                    first = deliveries[0]
                    self._active[task] = first
                    for delivery in deliveries[1:]:
                        self._assign(delivery)
                    loop.call_soon(self._ensure_receiver)
                    return first
                self._receiver = None  # full: the first runner to finish receives
            parked: asyncio.Future[Delivery | None] = loop.create_future()
            self._idle.append((task, parked))
            try:
                handed = await parked
            finally:
                if not parked.done():
                    self._idle.remove((task, parked))
            if handed is not None:
                return handed
        return None

    async def _runner(self, delivery: Delivery | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            try:
                if delivery is None:
                    delivery = await self._next(task)
                    if delivery is None:
                        return
                await self._execute(delivery)
            except asyncio.CancelledError:
                held = self._active.get(task)
                if task in self._abandoned:
                    # The job ended (cancelled or failed) while this item ran: nobody wants its
                    # outcome.
                    self._abandoned.discard(task)
                    task.uncancel()
                    if held is not None:
                        self._unreported.pop(held.id, None)
                        with contextlib.suppress(Exception):
                            await self.bus.ack(held)
                elif self._stopping:
                    raise
                else:
                    # Cancelled from elsewhere: a held item stays leased and is delivered again.
                    task.uncancel()
            except Exception:
                log.exception("worker %s: running a work item failed", self.worker_id)
            self._active.pop(task, None)
            if task in self._abandoned:  # the handler swallowed the cancellation and finished
                self._abandoned.discard(task)
                task.uncancel()
            delivery = None

    def _started(self, item: WorkItem, at: float, delivery: int = 1) -> StartedReport:
        return validated(
            StartedReport,
            {
                "id": f"{item.id}:started" + (f":{delivery}" if delivery > 1 else ""),
                "job_id": item.job_id,
                "task_id": item.task_id,
                "attempt": item.attempt,
                "worker_id": self.worker_id,
                "at": at,
                "delivery": delivery,
            },
        )

    async def _execute(self, delivery: Delivery) -> None:
        item = delivery.message
        bus = self.bus
        if not isinstance(item, WorkItem):
            await bus.ack(delivery)
            return
        redelivered = delivery.deliveries > 1
        if item.tries and delivery.deliveries > item.tries:
            # Every try the task had ended with its worker lost (a task that kills its worker
            # would go on doing so): the attempt fails without running again, reported for the
            # last of those tries (so the failures counted are the tries, no more).
            lost = Outcome(
                job_id=item.job_id,
                task_id=item.task_id,
                attempt=item.attempt,
                status="failed",
                error=WORKER_LOST,
                error_type="crash",
                retryable=False,
                delivery=delivery.deliveries - 1,
            )
            await bus.enqueue(item.reply_to, lost)
            await bus.ack(delivery)
            return
        if self.report_started_after_s <= 0 or redelivered:
            # A redelivered item reports at once: the plane then ignores whatever the earlier
            # holder (dead, or stalled past its lease) may still report.
            started = self._started(item, time.time(), delivery.deliveries)
            await bus.enqueue(item.reply_to, started)
        else:
            # Quick items need no separate "started" report (the outcome implies it); the
            # heartbeat builds and sends one for an item still running after a moment, so live
            # views show it.
            self._unreported[delivery.id] = (self._loop_time(), time.time(), item)
        try:
            if item.worker == WORKER_TOOL:  # one call, which is its outcome: no journal
                outcome = await self.handler(item, Reporter(bus, item))
            else:
                journal = await self._steps.journal(item, redelivered=redelivered)
                with _journal.activated(journal):
                    outcome = await self.handler(item, Reporter(bus, item))
        except Exception as exc:
            # One line where people look; the traceback for whoever turns on debug logging.
            log.warning(
                "worker %s: task %s crashed: %s: %s",
                self.worker_id,
                item.task_id,
                type(exc).__name__,
                exc,
            )
            log.debug("traceback of the crash of task %s", item.task_id, exc_info=True)
            outcome = Outcome(
                job_id=item.job_id,
                task_id=item.task_id,
                attempt=item.attempt,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                error_type="crash",
            )
        finally:
            self._unreported.pop(delivery.id, None)
        if redelivered:
            outcome = outcome.model_copy(update={"delivery": delivery.deliveries})
        await bus.enqueue(item.reply_to, outcome)
        await bus.ack(delivery)

    async def _watch_control(self) -> None:
        """Stop running items of jobs that ended."""
        assert self._control is not None
        async for event in self._control:
            if event.type not in ABANDON_EVENT_TYPES:
                continue
            for task, delivery in list(self._active.items()):
                message = delivery.message
                if task in self._abandoned:
                    continue
                if isinstance(message, WorkItem) and message.job_id == event.job_id:
                    self._abandoned.add(task)
                    task.cancel()

    async def _heartbeat(self) -> None:
        """Keep leases of running items alive; report items that have been running a while."""
        loop = asyncio.get_running_loop()
        extend_every = max(0.05, self.lease_s / 3)
        tick = min(extend_every, max(0.02, self.report_started_after_s or extend_every))
        last_extend = loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            if self._unreported:
                due = [
                    k
                    for k, (t, _, _) in self._unreported.items()
                    if now - t >= self.report_started_after_s
                ]
                for key in due:
                    _, at, item = self._unreported.pop(key)
                    with contextlib.suppress(Exception):
                        await self.bus.enqueue(item.reply_to, self._started(item, at))
            if now - last_extend >= extend_every:
                last_extend = now
                for delivery in list(self._active.values()):
                    with contextlib.suppress(Exception):
                        await self.bus.extend(delivery, lease_s=self.lease_s)
