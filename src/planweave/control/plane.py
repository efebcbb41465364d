"""The control plane: the only writer of job state.

It owns the active jobs' state in memory, feeds every input (a submission, a worker's report, a
due retry, a cancel) through the decider, and writes the resulting events and changed rows in one
store transaction. Work items go out while that transaction is being written (the write and the
work overlap); everything anyone else can observe waits for it to be durable: events are
published, reports acknowledged and waiters woken only after the commit. A crash before the write
lands loses nothing that matters: the store still shows the task as not done, ``resume`` runs it
again, and the attempt number fences any late outcome of the lost attempt.

Inputs are decided synchronously into a buffer and flushed together (group commit): when 500
outcomes arrive at once they cost one transaction, not 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planweave.bus.base import Bus, Delivery
from planweave.constants import CONTROL_TOPIC, EVENT_TOPIC_ALL, OUTCOME_QUEUE_PREFIX, QUEUE_PREFIX
from planweave.control import decider
from planweave.errors import JobBusy, JobNotFound, UsageError
from planweave.events import (
    ArtifactCreated,
    Event,
    JobOptions,
    SubtasksPlanned,
    new_id,
    validated,
)
from planweave.messages import CallReport, Outcome, StartedReport, WorkItem
from planweave.plan import TaskSpec
from planweave.state import JobState
from planweave.store.base import ArtifactRow, Batch, Store

__all__ = ["ControlPlane", "PlaneSettings"]

log = logging.getLogger("planweave.control")

_LEAVES_RUNNING = frozenset(
    {"TaskCompleted", "TaskFailed", "TaskRetrying", "TaskCancelled", "TaskReady"}
)


@dataclass(slots=True, kw_only=True)
class PlaneSettings:
    """Tuning of a control plane.

    Attributes:
        max_inflight: Most work items out at once per worker kind.
        lease_s: How long a claim on a job lasts without renewal (another process may take
            over a job whose owner stopped renewing).
        poll_s: How often to look for commands left by other processes (cancel).
        workspace_root: Folder under which each job gets its own workspace.
        default_model: Model URL put on work items whose job names none.
        known_tools: Names of registered tools (told to planners).
    """

    max_inflight: dict[str, int] = field(
        default_factory=lambda: {"planner": 4, "executor": 8, "composer": 4, "tool": 1024}
    )
    lease_s: float = 30.0
    poll_s: float = 0.25
    workspace_root: Path = Path(".planweave/workspaces")
    default_model: str | None = None
    known_tools: tuple[str, ...] = ()


class _Pending:
    """What the next flush writes and, once written, does."""

    __slots__ = ("acks", "artifacts", "dirty_jobs", "dirty_tasks", "events", "items")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dirty_jobs: set[str] = set()
        self.dirty_tasks: set[tuple[str, str]] = set()
        self.items: list[WorkItem] = []
        self.acks: list[Delivery] = []
        self.artifacts: list[ArtifactRow] = []


class ControlPlane:
    """Runs jobs: decides, records, dispatches. One per process that owns jobs."""

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        settings: PlaneSettings | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings or PlaneSettings()
        self.owner = owner or f"plane-{new_id()[:12]}"
        # Reports of this plane's work items come back here only (``WorkItem.reply_to``).
        self.reply_queue = OUTCOME_QUEUE_PREFIX + self.owner
        self._clock = clock
        self._jobs: dict[str, JobState] = {}
        self._workspaces: dict[str, Path] = {}
        self._keys: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._workspace_strs: dict[str, str] = {}
        self._pending = _Pending()
        # Ready tasks per worker kind: a heap of (-priority, arrival, job id, task id).
        self._ready: dict[str, list[tuple[int, int, str, str]]] = {}
        self._arrivals = itertools.count()
        self._inflight: dict[str, int] = {}
        self._running: dict[tuple[str, str], str] = {}
        self._waiters: dict[str, list[asyncio.Future[JobState]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._timer_wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._after: deque[tuple[asyncio.Future[None], _Pending]] = deque()
        self._after_wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.rejected_reports = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._report_loop(), name="planweave-reports"),
            asyncio.create_task(self._timer_loop(), name="planweave-timers"),
            asyncio.create_task(self._command_loop(), name="planweave-commands"),
            asyncio.create_task(self._after_loop(), name="planweave-after-commit"),
        ]

    async def stop(self) -> None:
        """Stop deciding; flush what was decided; release claims so another process may resume."""
        self._closed = True
        loops, after_loop = self._tasks[:-1], self._tasks[-1:]
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._flush(durable=True)
        for task in after_loop:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)
        for job_id in list(self._jobs):
            with contextlib.suppress(Exception):
                await self.store.release_job(job_id, self.owner)
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.cancel()
        self._waiters.clear()

    # --- inputs ---------------------------------------------------------------------------

    async def submit(
        self,
        *,
        goal: str,
        plan: tuple[TaskSpec, ...] | None,
        options: JobOptions,
        job_id: str | None = None,
        tenant: str = "default",
        idempotency_key: str | None = None,
    ) -> str:
        """Record a new job and start it. Returns its id once the submission is durable.

        A second submission with the same tenant and ``idempotency_key`` returns the first
        job's id and starts nothing.
        """
        job_id = job_id or new_id()
        if idempotency_key is not None:
            key = (tenant, idempotency_key)
            claimed = self._keys.get(key)
            if claimed is not None:
                return await asyncio.shield(claimed)
            # Reserve the key before the first await, so a concurrent twin waits for this one.
            claimed = self._keys[key] = asyncio.get_running_loop().create_future()
            existing = await self.store.find_job(tenant, idempotency_key)
            if existing is not None:
                claimed.set_result(existing)
                del self._keys[key]
                return existing
            claimed.set_result(job_id)
        state, events = decider.submit(
            job_id,
            goal=goal,
            plan=plan,
            options=options,
            now=self._clock(),
            tenant=tenant,
            idempotency_key=idempotency_key,
        )
        self._jobs[job_id] = state
        self._take(state, events)
        await self._flush(durable=True)
        await self.store.claim_job(
            job_id, self.owner, lease_s=self.settings.lease_s, now=self._clock()
        )
        return job_id

    async def adopt(self, job_id: str, *, force: bool = False) -> JobState:
        """Take over a job from the store (after a crash or in another process) and carry on.

        Raises:
            JobNotFound: no such job.
            JobBusy: another live process owns the job (unless ``force``).
        """
        if job_id in self._jobs:
            return self._jobs[job_id]
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        if state.terminal:
            return state
        now = self._clock()
        claimed = await self.store.claim_job(
            job_id, self.owner, lease_s=self.settings.lease_s, now=now, force=force
        )
        if not claimed:
            raise JobBusy(
                f"job {job_id} is being run by another process; stop that process first, wait "
                f"{self.settings.lease_s:.0f} s for its claim to expire, or resume with --force"
            )
        self._jobs[job_id] = state
        events = decider.resume(state, now=now)
        self._take(state, events)
        for task in state.tasks.values():
            if task.status == "ready":
                self._push_ready(state, task.id)
        self._timer_wake.set()
        await self._flush()
        return state

    async def reopen(
        self, job_id: str, *, task_ids: list[str] | None = None, replan: bool = False
    ) -> JobState:
        """Run a failed or cancelled job again (retry failed tasks, or replan around them).

        Raises:
            JobNotFound: no such job.
            UsageError: the job is not failed or cancelled, or the tasks named are not failed.
            JobBusy: another process holds the job.
        """
        if job_id in self._jobs:
            raise UsageError(f"job {job_id} is still running; cancel it first")
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        events = decider.reopen(state, task_ids=task_ids, replan=replan, now=self._clock())
        now = self._clock()
        if not await self.store.claim_job(
            job_id, self.owner, lease_s=self.settings.lease_s, now=now
        ):
            raise JobBusy(f"job {job_id} is held by another process")
        self._jobs[job_id] = state
        self._take(state, events)
        self._timer_wake.set()
        await self._flush(durable=True)
        return state

    async def cancel(self, job_id: str, *, reason: str = "cancelled by the user") -> bool:
        """Cancel a job this plane owns. Returns ``False`` when it is not active here."""
        state = self._jobs.get(job_id)
        if state is None or state.terminal:
            return False
        self._take(state, decider.cancel(state, reason=reason, now=self._clock()))
        await self._flush()
        return True

    async def wait(self, job_id: str) -> JobState:
        """Wait until a job this plane runs reaches a terminal state; return that state."""
        state = self._jobs.get(job_id)
        if state is None:
            loaded = await self.store.load_job(job_id)
            if loaded is None:
                raise JobNotFound(job_id)
            if loaded.terminal:
                return loaded
            raise JobBusy(f"job {job_id} is not running in this process; resume it first")
        if state.terminal:
            await self._drain()
            return state
        future: asyncio.Future[JobState] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        return await future

    def job(self, job_id: str) -> JobState | None:
        """The in-memory state of a job this plane runs."""
        return self._jobs.get(job_id)

    async def delete(self, job_id: str) -> None:
        """Delete a finished job with its tasks, events, artifacts and default workspace.

        The plane takes the job's claim before it deletes, so a job that this or another live
        process runs (or has just reopened) is refused, never deleted under its owner. A
        workspace the job was given (``JobOptions.workspace``) belongs to the user and is kept.

        Raises:
            JobNotFound: no such job.
            JobBusy: the job has not ended, or a process runs it.
        """
        running = f"job {job_id} is still running; cancel it first"
        if job_id in self._jobs:
            raise JobBusy(running)
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        if not state.terminal:
            raise JobBusy(running)
        claimed = await self.store.claim_job(
            job_id, self.owner, lease_s=self.settings.lease_s, now=self._clock()
        )
        if job_id in self._jobs:  # reopened here while the claim was being taken
            raise JobBusy(running)
        if not claimed:
            raise JobBusy(f"job {job_id} is held by another process; stop that process first")
        try:
            deleted = await self.store.delete_job(job_id)
        finally:
            if job_id not in self._jobs:
                await self._release(job_id)
        if not deleted:
            raise JobBusy(running)
        if not state.options.workspace:
            await asyncio.to_thread(shutil.rmtree, self.settings.workspace_root / job_id, True)

    # --- deciding -------------------------------------------------------------------------

    def _take(self, state: JobState, events: list[Event]) -> None:
        """Buffer a decision's events and note what changed."""
        if not events:
            return
        pending = self._pending
        pending.events.extend(events)
        job_id = state.id
        pending.dirty_jobs.add(job_id)
        dirty = pending.dirty_tasks
        running = self._running
        for event in events:
            task_id = event.task_id
            if task_id is None:
                if event.type == "JobSubmitted":
                    dirty.update((job_id, t) for t in state.tasks)
                continue
            dirty.add((job_id, task_id))
            kind = event.type
            if kind == "TaskReady":
                self._push_ready(state, task_id)
            elif kind == "SubtasksPlanned":
                assert isinstance(event, SubtasksPlanned)
                for spec in event.tasks:
                    dirty.add((job_id, spec.id))
            elif kind == "ArtifactCreated":
                assert isinstance(event, ArtifactCreated)
                pending.artifacts.append(
                    ArtifactRow(
                        job_id=job_id,
                        task_id=task_id,
                        name=event.name,
                        path=str(self._workspace(state) / event.name),
                        size=event.size,
                        content_type=event.content_type,
                        created_at=event.at,
                    )
                )
            elif kind == "ReplanRequested" or kind == "JobReopened":
                for task in state.tasks.values():
                    dirty.add((job_id, task.id))
            if kind in _LEAVES_RUNNING or kind == "SubtasksPlanned":
                worker = running.pop((job_id, task_id), None)
                if worker is not None:
                    self._inflight[worker] -= 1

    def _handle(self, message: Any) -> None:
        state = self._jobs.get(message.job_id)
        if state is None:
            self.rejected_reports += 1
            return
        now = self._clock()
        if isinstance(message, Outcome):
            events = decider.on_outcome(state, message, now=now)
        elif isinstance(message, StartedReport):
            events = decider.on_started(state, message, now=now)
        elif isinstance(message, CallReport):
            events = decider.on_call(state, message, now=now)
        else:
            events = []
        if not events and isinstance(message, Outcome):
            self.rejected_reports += 1
        self._take(state, events)
        if (
            isinstance(message, Outcome)
            and message.status == "failed"
            and any(e.type == "TaskRetrying" for e in events)
        ):
            self._timer_wake.set()

    def _push_ready(self, state: JobState, task_id: str) -> None:
        worker = decider.worker_for(state.tasks[task_id].spec)
        heap = self._ready.get(worker)
        if heap is None:
            heap = self._ready[worker] = []
        entry = (-state.options.priority, next(self._arrivals), state.id, task_id)
        heapq.heappush(heap, entry)

    def _dispatch(self) -> None:
        """Assign ready tasks to workers: higher priority first, then in arrival order, within
        each worker kind's in-flight limit."""
        limits = self.settings.max_inflight
        inflight = self._inflight
        now = self._clock()
        jobs = self._jobs
        for worker, heap in self._ready.items():
            limit = limits.get(worker, 8)
            while heap and inflight.get(worker, 0) < limit:
                _, _, job_id, task_id = heapq.heappop(heap)
                state = jobs.get(job_id)
                if state is None or state.terminal or state.tasks[task_id].status != "ready":
                    continue
                events = decider.assign(state, task_id, worker=worker, now=now)
                self._take(state, events)
                inflight[worker] = inflight.get(worker, 0) + 1
                self._running[(job_id, task_id)] = worker
                self._pending.items.append(self._work_item(state, task_id, worker))

    def _work_item(self, state: JobState, task_id: str, worker: str) -> WorkItem:
        tasks = state.tasks
        task = tasks[task_id]
        inputs: dict[str, Any] = {}
        goals: dict[str, str] = {}
        node = task
        while True:
            for dep in node.spec.depends_on:
                dep_task = tasks[dep]
                inputs[dep] = dep_task.result
                goals[dep] = dep_task.spec.goal
            if node.parent is None:
                break
            node = tasks[node.parent]
        options = state.options
        return validated(
            WorkItem,
            {
                "id": f"{state.id}:{task_id}:{task.attempt}",
                "job_id": state.id,
                "task_id": task_id,
                "attempt": task.attempt,
                "worker": worker,
                "reply_to": self.reply_queue,
                "spec": task.spec,
                "job_goal": state.goal,
                "inputs": inputs,
                "input_goals": goals,
                "depth": task.depth,
                "model": options.model or self.settings.default_model,
                "workspace": self._workspace_str(state),
                "max_agent_steps": options.max_agent_steps,
                "max_plan_tasks": options.max_plan_tasks,
                "allow_subplans": task.depth + 1 < options.max_plan_depth,
                "known_tools": self.settings.known_tools,
            },
        )

    def _workspace_str(self, state: JobState) -> str:
        text = self._workspace_strs.get(state.id)
        if text is None:
            text = self._workspace_strs[state.id] = str(self._workspace(state))
        return text

    def _workspace(self, state: JobState) -> Path:
        path = self._workspaces.get(state.id)
        if path is None:
            if state.options.workspace:
                path = Path(state.options.workspace)
            else:
                path = self.settings.workspace_root / state.id
            self._workspaces[state.id] = path
        return path

    # --- writing --------------------------------------------------------------------------

    async def _flush(self, *, durable: bool = False) -> None:
        """Write what was decided, dispatch work, then (once durable) publish and wake waiters.

        Flushes run one at a time and queue their batch behind earlier ones; inputs decided
        while a write is in flight go into the next batch together (group commit). With
        ``durable`` it returns only once everything flushed so far is durable.
        """
        async with self._flush_lock:
            written = await self._flush_locked()
        if durable:
            if written is not None:
                await asyncio.shield(written)
            await self._drain()

    async def _flush_locked(self) -> asyncio.Future[None] | None:
        self._dispatch()
        pending = self._pending
        if not pending.events and not pending.acks:
            return None
        self._pending = _Pending()
        jobs = self._jobs
        batch = Batch(
            jobs=[jobs[j].to_row() for j in pending.dirty_jobs if j in jobs],
            tasks=[
                jobs[j].tasks[t].to_row(j)
                for j, t in pending.dirty_tasks
                if j in jobs and t in jobs[j].tasks
            ],
            events=pending.events,
            artifacts=pending.artifacts,
        )
        durable = self.store.commit_soon(batch) if batch else None
        # Work goes out before its batch is durable: the write and the work overlap. A crash
        # before the write lands loses nothing that matters: the store still shows the task as
        # not done, so resume runs it again, and the attempt number fences any late outcome.
        # Events, acknowledgements and job results wait for durability (``_after_commit``).
        bus = self.bus
        for item in pending.items:
            await bus.enqueue(QUEUE_PREFIX + item.worker, item)
        if durable is None or (durable.done() and not self._after):
            await self._after_commit(durable, pending)
        else:
            self._after.append((durable, pending))
            self._after_wake.set()
        return durable

    async def _after_commit(self, durable: asyncio.Future[None] | None, pending: _Pending) -> None:
        """Once a batch is durable: acknowledge reports, publish events, finish jobs."""
        error = None if durable is None else durable.exception()
        jobs = self._jobs
        if error is not None:
            log.error("control plane: writing to the store failed: %s", error)
            for job_id in pending.dirty_jobs:
                state = jobs.pop(job_id, None)
                for future in self._waiters.pop(job_id, []):
                    if not future.done():
                        future.set_exception(error)
                if state is not None:
                    self._forget(state)
            return
        bus = self.bus
        if pending.acks:
            await bus.ack_many(pending.acks)
        events = pending.events
        if events:
            await bus.publish_many(EVENT_TOPIC_ALL, events)
            by_job: dict[str, list[Event]] = {}
            for event in events:
                by_job.setdefault(event.job_id, []).append(event)
            for job_id, job_events in by_job.items():
                await bus.publish_many(f"{EVENT_TOPIC_ALL}:{job_id}", job_events)
                last = job_events[-1]
                if last.type in ("JobCancelled", "JobFailed"):
                    await bus.publish(CONTROL_TOPIC, last)
        for job_id in pending.dirty_jobs:
            state = jobs.get(job_id)
            if state is not None and state.terminal:
                self._finished(state)

    async def _after_loop(self) -> None:
        """Run post-commit work in commit order as batches become durable."""
        after = self._after
        while True:
            if not after:
                self._after_wake.clear()
                await self._after_wake.wait()
                continue
            durable, pending = after[0]
            with contextlib.suppress(Exception):
                await asyncio.shield(durable)
            try:
                await self._after_commit(durable, pending)
            except Exception:
                log.exception("control plane: post-commit work failed")
            finally:
                after.popleft()
                if not after:
                    self._drained.set()

    async def _drain(self) -> None:
        """Wait until every batch flushed so far is durable and its post-commit work done."""
        while self._after:
            self._drained.clear()
            await self._drained.wait()

    def _finished(self, state: JobState) -> None:
        self._jobs.pop(state.id, None)
        for future in self._waiters.pop(state.id, []):
            if not future.done():
                future.set_result(state)
        self._forget(state)
        task = asyncio.get_running_loop().create_task(self._release(state.id))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _forget(self, state: JobState) -> None:
        if state.idempotency_key is not None:
            self._keys.pop((state.tenant, state.idempotency_key), None)
        self._workspaces.pop(state.id, None)
        self._workspace_strs.pop(state.id, None)
        for task in state.tasks.values():
            worker = self._running.pop((state.id, task.id), None)
            if worker is not None:
                self._inflight[worker] -= 1

    async def _release(self, job_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.release_job(job_id, self.owner)

    # --- loops ----------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        bus = self.bus
        while not self._closed:
            try:
                deliveries = await bus.receive(
                    self.reply_queue, self.owner, max_items=1024, lease_s=60.0
                )
                if not deliveries:
                    continue
                for delivery in deliveries:
                    self._handle(delivery.message)
                self._pending.acks.extend(deliveries)
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control plane: handling reports failed; retrying")
                await asyncio.sleep(0.5)

    async def _timer_loop(self) -> None:
        while not self._closed:
            now = self._clock()
            due: float | None = None
            for state in list(self._jobs.values()):
                when = decider.next_timer(state)
                if when is None:
                    continue
                if when <= now:
                    self._take(state, decider.on_tick(state, now=now))
                else:
                    due = when if due is None else min(due, when)
            if self._pending.events:
                await self._flush()
            self._timer_wake.clear()
            timeout = None if due is None else max(0.0, due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), timeout)

    async def _command_loop(self) -> None:
        """Commands left in the store by other processes, and renewal of job claims."""
        last_renew = 0.0
        while not self._closed:
            await asyncio.sleep(self.settings.poll_s)
            job_ids = list(self._jobs)
            if not job_ids:
                continue
            try:
                for command in await self.store.take_commands(job_ids):
                    if command.name == "cancel":
                        await self.cancel(
                            command.job_id, reason=str(command.args.get("reason", "cancelled"))
                        )
                now = self._clock()
                if now - last_renew > self.settings.lease_s / 3:
                    last_renew = now
                    for job_id in job_ids:
                        await self.store.claim_job(
                            job_id, self.owner, lease_s=self.settings.lease_s, now=now
                        )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control plane: polling commands failed")
