"""The control plane: the only writer of job state.

It owns the active jobs' state in memory, feeds every input (a submission, a worker's report, a
due retry, a cancel) through the decider, and writes the resulting events and changed rows in one
store transaction. Work items go out while that transaction is being written (the write and the
work overlap); everything anyone else can observe waits for it to be durable: events are
published, reports acknowledged and waiters woken only after the commit. A crash before the write
lands loses nothing that matters: the store still shows the task as not done, ``resume`` runs it
again, and the attempt number fences any late outcome of the lost attempt. Two exceptions keep
that promise honest: no work item of a new job goes out before its submission is durable (the job
must exist before anything it asks for happens), and the work items of a resumed job go out only
once their ``TaskAssigned`` is durable (so an attempt that kills its process is on record and
counts toward ``max_attempts``).

A plane drives a job only while it holds the job's claim: taken in the transaction that creates
the job, renewed every third of ``claim_lease_s``, released on any stop. Every batch names the
plane as its owner, so the store rejects writes from a plane that lost its claim (``ClaimLost``).
A plane that loses a claim, or whose write fails, drops the job at once: nothing more is decided
or dispatched for it, this process's workers abandon its running items, its waiters get the
error.

The plane's parts live beside it: the decider (what follows from each input, as events and
commands), dispatch (``_dispatch``: which ready task goes out next), group commit (``_commit``:
batches written in order, with their post-commit work) and claims (``claims``: ownership and
the commands other processes leave).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from planweave.bus.base import Bus
from planweave.constants import CONTROL_TOPIC, EVENT_TOPIC_ALL, OUTCOME_QUEUE_PREFIX, QUEUE_PREFIX
from planweave.control import _commands, _loops, decider
from planweave.control._commit import Durable, GroupCommit
from planweave.control._dispatch import Dispatcher
from planweave.control._journal import PlaneJournal
from planweave.control._pending import Pending, PlaneSettings, work_item
from planweave.control._reconcile import Reconciler
from planweave.control.claims import Claims
from planweave.control.decider import Decision
from planweave.errors import ClaimLost, JobBusy, JobDataInvalid, JobNotFound, UsageError
from planweave.events import Event, JobCancelled, JobOptions, new_id
from planweave.hooks import HookRegistry
from planweave.messages import CallReport, Outcome, StartedReport, StepReport, WorkItem
from planweave.plan import TaskSpec
from planweave.state import JobState
from planweave.store.base import ArtifactRow, Batch, Command, Store

__all__ = ["ControlPlane", "PlaneSettings"]

log = logging.getLogger("planweave.control")


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
        self._pending = Pending()
        self._dispatcher = Dispatcher(
            self.settings.max_inflight,
            max_running_jobs_per_tenant=self.settings.max_running_jobs_per_tenant,
        )
        # Tasks held back for their tenant's running-job limit went back into the queues: the
        # timer loop flushes, so they go out without waiting for another input.
        self._redispatch = False
        # Work items out, checked against a bus that may lose them (``None``: it cannot).
        self._reconciler = Reconciler() if bus.loses_messages else None
        self._claims = Claims(store, self.owner, lease_s=self.settings.claim_lease_s, clock=clock)
        self._commit = GroupCommit(
            store,
            prepare=self._prepare,
            batch=self._batch,
            send=self._send,
            settle=self._after_commit,
        )
        self._waiters: dict[str, list[asyncio.Future[JobState]]] = {}
        # New jobs whose submission is not yet durable, with the tasks held back until it is.
        self._unborn: dict[str, list[str]] = {}
        self._unborn_errors: dict[str, BaseException] = {}
        # Tasks whose next work item goes out only once its assignment is durable.
        self._durable_first: set[tuple[str, str]] = set()
        # Jobs dropped (claim lost, write failed) until driven here again.
        self._dropped: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._timer_wake = asyncio.Event()
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.rejected_reports = 0
        # Hooks of job start and end, and the trace context work items carry (the engine's).
        self.hooks: HookRegistry | None = None
        self._journal = PlaneJournal()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the plane's loops (idempotent)."""
        if self._tasks:
            return
        self._commit.start()
        self._tasks = [
            asyncio.create_task(_loops.report_loop(self), name="planweave-reports"),
            asyncio.create_task(_loops.timer_loop(self), name="planweave-timers"),
            asyncio.create_task(_loops.command_loop(self), name="planweave-commands"),
        ]
        if self._reconciler is not None:
            self._tasks.append(
                asyncio.create_task(_loops.reconcile_loop(self), name="planweave-reconcile")
            )

    async def stop(self) -> None:
        """Stop deciding; flush what was decided; release claims so another process may resume."""
        self._closed = True
        loops, self._tasks = self._tasks, []
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._flush(durable=True)
        await self._commit.close()
        if self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)
        for job_id in list(self._jobs):
            await self._claims.release(job_id)
        with contextlib.suppress(Exception):
            # Nobody reads it any more; a report sent to it now is for a job that another
            # plane resumes, whose work it dispatches again.
            await self.bus.remove_queue(self.reply_queue)
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
        state, decision = decider.submit(
            job_id,
            goal=goal,
            plan=plan,
            options=options,
            now=self._clock(),
            tenant=tenant,
            idempotency_key=idempotency_key,
        )
        self._jobs[job_id] = state
        # Its ready tasks are held back until the job exists in the store (``_push_ready``).
        held = self._unborn[job_id] = []
        self._take(state, decision)
        self._pending.new_jobs.append(job_id)
        try:
            await self._flush(durable=True)
        finally:
            del self._unborn[job_id]
            error = self._unborn_errors.pop(job_id, None)
        if error is not None:
            raise error
        if self.hooks is not None:
            await self.hooks.job_start(state)
        if self._jobs.get(job_id) is state and held:
            for task_id in held:
                if state.tasks[task_id].status == "ready":
                    self._push_ready(state, task_id)
            await self._flush()
        return job_id

    def queued(self, job_id: str) -> bool:
        """Whether a job driven here waits for one of its tenant's running jobs to end (the
        plane's ``max_running_jobs_per_tenant``) before any of its tasks goes out."""
        state = self._jobs.get(job_id)
        return state is not None and self._dispatcher.queued(state)

    async def adopt(self, job_id: str, *, force: bool = False) -> JobState:
        """Take over a job from the store (after a crash or in another process) and carry on.

        Raises:
            JobNotFound: no such job.
            JobBusy: another live process owns the job (unless ``force``).
        """
        if job_id in self._jobs:
            return self._jobs[job_id]
        # Batches written for an earlier run of the job here (one that a failed write dropped)
        # are settled first: none of their failures may drop the run that starts now.
        await self._commit.settle_earlier()
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        if state.terminal:
            return state
        if not await self._claims.take(job_id, force=force):
            lease_s = self.settings.claim_lease_s
            raise JobBusy(
                f"job {job_id} is being run by another process; stop that process first, wait "
                f"{lease_s:.0f} s for its claim to expire, or resume with --force"
            )
        # Reload: the state read before the claim may predate the last owner's final writes.
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        if state.terminal:
            await self._claims.release(job_id)
            return state
        if self.hooks is not None:
            await self.hooks.job_start(state, resumed=True)
        commands = await self.store.read_commands([job_id])
        await self._journal.load(self.store, job_id)
        if job_id in self._jobs:  # adopted meanwhile by another call
            return self._jobs[job_id]
        # Nothing awaits from here until the decisions below are buffered: were the job dropped
        # in between, they would be written without its rows.
        self._jobs[job_id] = state
        self._dropped.discard(job_id)
        # Commands left for the job (a cancel) take effect before any of its work goes out.
        self._apply_commands(commands)
        if not state.terminal:
            self._take(state, decider.resume(state, now=self._clock()))
        # Any of these tasks may have been running unrecorded when the last owner died (ready
        # again now, or waiting for its retry delay): their next attempts go out only once
        # recorded, so each one that kills its process counts.
        for task in state.tasks.values():
            if not task.terminal:
                self._durable_first.add((job_id, task.id))
            if task.status == "ready":
                self._push_ready(state, task.id)
        self._timer_wake.set()
        await self._flush(durable=state.terminal)
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
        running = self._jobs.get(job_id)
        if running is not None and running.terminal:
            # It ended here and its end is being written: reopen it once that is done.
            await self._commit.settle_earlier()
        if job_id in self._jobs:
            raise UsageError(f"job {job_id} is still running; cancel it first")
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        decision = decider.reopen(state, task_ids=task_ids, replan=replan, now=self._clock())
        if not await self._claims.take(job_id):
            raise JobBusy(f"job {job_id} is held by another process")
        self._jobs[job_id] = state
        self._dropped.discard(job_id)
        self._take(state, decision)
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

    async def decide_approval(self, job_id: str, task_id: str, **decided: Any) -> bool:
        """Approve or reject the call a task waits on (``decider.decide_approval``, which
        raises ``UsageError``); ``False`` when the job is not run here."""
        state = self._jobs.get(job_id)
        if state is None or state.terminal:
            return False
        self._take(state, decider.decide_approval(state, task_id, now=self._clock(), **decided))
        await self._flush()
        return True

    async def cancel_unowned(self, job_id: str, *, reason: str) -> JobState | None:
        """Cancel a job nobody drives (no claim, an expired one, or a dead holder on this host).

        Takes the claim, records the cancellation (with any commands left for the job) and
        releases the claim. Returns the cancelled job's state, or ``None`` when another live
        process holds the job (leave it a command instead).

        Raises:
            JobNotFound: no such job.
        """
        if job_id in self._jobs:
            await self.cancel(job_id, reason=reason)
            return self._jobs.get(job_id) or await self.store.load_job(job_id)
        if not await self._claims.take_if_free(job_id):
            return None
        state = await self.store.load_job(job_id)
        if state is None:
            await self._claims.release(job_id)
            raise JobNotFound(job_id)
        if state.terminal:
            await self._claims.release(job_id)
            return state
        self._jobs[job_id] = state
        self._dropped.discard(job_id)
        for command in await self.store.read_commands([job_id]):
            if self._claims.take_command(command.id):
                self._pending.commands_done.append((job_id, command.id))
        self._take(state, decider.cancel(state, reason=reason, now=self._clock()))
        await self._flush(durable=True)
        await self._claims.release(job_id)
        return state

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
            await self._commit.drain()
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
            job_id, self.owner, lease_s=self.settings.claim_lease_s
        )
        if job_id in self._jobs:  # reopened here while the claim was being taken
            raise JobBusy(running)
        if not claimed:
            raise JobBusy(f"job {job_id} is held by another process; stop that process first")
        try:
            if not state.options.workspace:
                # The files before the row: a job whose files cannot be removed stays listed.
                from planweave.tools._remove import remove_tree  # loads the tools package

                await asyncio.to_thread(remove_tree, self.settings.workspace_root / job_id)
            deleted = await self.store.delete_job(job_id)
        finally:
            if job_id not in self._jobs:
                await self._claims.release(job_id)
        if not deleted:
            raise JobBusy(running)

    # --- deciding -------------------------------------------------------------------------

    def _take(self, state: JobState, decision: Decision) -> None:
        """Buffer a decision's events and carry out its commands."""
        events = decision.events
        if not events:
            return
        pending = self._pending
        pending.events.extend(events)
        job_id = state.id
        pending.dirty_jobs.add(job_id)
        dirty = pending.dirty_tasks.get(job_id)
        if dirty is None:
            dirty = pending.dirty_tasks[job_id] = set()
        dirty.update(state.tasks if decision.all_changed else decision.changed)
        if decision.ended:
            self._dispatcher.ended(job_id, decision.ended)
            if self._reconciler is not None:
                self._reconciler.ended(job_id, decision.ended)
        for task_id in decision.dispatch:
            self._push_ready(state, task_id)
        for artifact in decision.artifacts:
            pending.artifacts.append(
                ArtifactRow(
                    job_id=job_id,
                    task_id=artifact.task_id,
                    name=artifact.name,
                    path=str(self._workspace(state) / artifact.name),
                    size=artifact.size,
                    content_type=artifact.content_type,
                    created_at=artifact.at,
                )
            )
        if decision.retry_due:
            self._timer_wake.set()
        ending = decision.finished
        if ending is not None:
            self._journal.on_job_end(job_id, pending)
            pending.finished.append(job_id)
            if decision.abandon:
                pending.abandoned.append(ending)

    def _handle(self, message: Any) -> None:
        state = self._jobs.get(message.job_id)
        if state is None:
            self.rejected_reports += 1
            if isinstance(message, StepReport):  # its worker must not wait for an answer
                self._journal.refuse(message, self._pending)
            return
        now = self._clock()
        if isinstance(message, Outcome):
            decision = decider.on_outcome(state, message, now=now)
            if not decision:
                self.rejected_reports += 1
                task = state.tasks.get(message.task_id)
                log.info(
                    "ignored the outcome of attempt %d of task %s of job %s: that attempt is "
                    "no longer current (the task is %s, attempt %s)",
                    message.attempt,
                    message.task_id,
                    message.job_id,
                    task.status if task is not None else "unknown",
                    task.attempt if task is not None else "-",
                )
            else:
                self._journal.on_outcome(message, self._pending)
        elif isinstance(message, StepReport):
            if not self._journal.on_report(state, message, self._pending):
                self.rejected_reports += 1
            return
        elif isinstance(message, StartedReport):
            decision = decider.on_started(state, message, now=now)
        elif isinstance(message, CallReport):
            decision = decider.on_call(state, message, now=now)
        else:
            return
        self._take(state, decision)

    def _push_ready(self, state: JobState, task_id: str) -> None:
        held = self._unborn.get(state.id)
        if held is not None:  # the job is not yet durable: nothing of it may run
            held.append(task_id)
            return
        self._dispatcher.push(state, task_id)

    def _dispatch(self) -> None:
        """Assign the ready tasks that may go out now to workers (``Dispatcher.take``)."""
        now = self._clock()
        durable_first = self._durable_first
        pending = self._pending
        # A plane that has not renewed its claims for a whole lease (it was frozen, or the
        # store was unreachable) may have lost them: its work goes out only once the store
        # has accepted the batch that assigns it, which it rejects if another process took over.
        unsure = self._claims.unsure(now)
        for state, task_id, worker in self._dispatcher.take(self._jobs):
            self._take(state, decider.assign(state, task_id, worker=worker, now=now))
            item = work_item(
                state,
                task_id,
                worker,
                reply_to=self.reply_queue,
                workspace=self._workspace_str(state),
                settings=self.settings,
            )
            if self.hooks is not None:  # the job's trace context, for the worker to continue
                item = self.hooks.stamp(item)
            steps = self._journal.steps_of(state.id, task_id)
            if steps:  # an earlier run's calls, replayed instead of made again
                item = item.model_copy(update={"steps": steps})
            key = (state.id, task_id)
            if unsure or (durable_first and key in durable_first):
                durable_first.discard(key)
                pending.late_items.append(item)
            else:
                pending.items.append(item)

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

    # --- writing (``GroupCommit`` runs these in order) -------------------------------------

    async def _flush(self, *, durable: bool = False) -> None:
        """Write what was decided, dispatch work, then (once durable) publish and wake waiters.
        With ``durable`` it returns only once everything flushed so far is durable."""
        await self._commit.flush(durable=durable)

    def _prepare(self) -> Pending | None:
        """Dispatch what may go out, and take what the next batch writes."""
        self._dispatch()
        pending = self._pending
        if (
            not pending.events
            and not pending.acks
            and not pending.commands_done
            and not pending.steps
            and not pending.step_acks
        ):
            return None
        self._pending = Pending()
        return pending

    def _batch(self, pending: Pending) -> Batch:
        jobs = self._jobs
        return Batch(
            jobs=[jobs[j].to_row() for j in pending.dirty_jobs if j in jobs],
            tasks=[
                tasks[t].to_row(j)
                for j, changed in pending.dirty_tasks.items()
                if j in jobs
                for tasks in (jobs[j].tasks,)
                for t in changed
                if t in tasks
            ],
            events=pending.events,
            artifacts=pending.artifacts,
            owner=self.owner,
            new_jobs=pending.new_jobs,
            claim_lease_s=self.settings.claim_lease_s,
            commands_done=[c for _, c in pending.commands_done],
            steps=pending.steps,
            steps_cleared=pending.steps_cleared,
        )

    async def _send(self, pending: Pending) -> None:
        """Hand out the work items that need not wait for their batch to be durable."""
        if self._reconciler is not None:
            for item in pending.items:
                await self._send_checked(item)
            return
        bus = self.bus
        for item in pending.items:
            await bus.enqueue(QUEUE_PREFIX + item.worker, item)

    async def _send_checked(self, item: WorkItem) -> None:
        """Send a work item on a bus that may lose it, and keep it for the reconciler: one that
        cannot be sent now (the bus is down) is sent again by the next reconciling pass."""
        assert self._reconciler is not None
        try:
            message_id: str | None = await self.bus.enqueue(QUEUE_PREFIX + item.worker, item)
        except Exception as exc:
            log.warning(
                "sending task %s of job %s failed (sent again later): %s",
                item.task_id,
                item.job_id,
                exc,
            )
            message_id = None
        self._reconciler.sent(item, message_id)

    async def _after_commit(self, durable: Durable, pending: Pending) -> None:
        """Once a batch is durable: send held-back work, acknowledge reports, publish events,
        finish jobs. When it failed: drop the jobs it concerned."""
        error = None if durable is None else durable.exception()
        if error is not None:
            await self._failed_commit(error, pending)
            return
        jobs = self._jobs
        bus = self.bus
        for item in pending.late_items:
            if item.job_id in jobs:
                if self._reconciler is not None:
                    await self._send_checked(item)
                else:
                    await bus.enqueue(QUEUE_PREFIX + item.worker, item)
        if pending.acks:
            await bus.ack_many(pending.acks)
        for queue, answer in pending.step_acks:  # the steps are durable: their workers go on
            await bus.enqueue(queue, answer)
        if pending.commands_done:
            self._claims.settled(c for _, c in pending.commands_done)
        events = pending.events
        if events:
            await bus.publish_many(EVENT_TOPIC_ALL, events)
            by_job: dict[str, list[Event]] = {}
            for event in events:
                by_job.setdefault(event.job_id, []).append(event)
            for job_id, job_events in by_job.items():
                await bus.publish_many(f"{EVENT_TOPIC_ALL}:{job_id}", job_events)
        for ending in pending.abandoned:  # workers drop what they still run of these jobs
            await bus.publish(CONTROL_TOPIC, ending)
        for job_id in pending.finished:
            state = jobs.get(job_id)
            if state is not None and state.terminal:
                self._finished(state)

    async def _failed_commit(self, error: BaseException, pending: Pending) -> None:
        """Drop the jobs a failed batch concerned; write again what it held for other jobs.

        ``ClaimLost`` names the jobs another process took: only those are dropped (their claims
        are not ours to release), and the rest of the batch is written again on its own.
        ``JobDataInvalid`` names jobs whose own data cannot be stored: those fail (from their
        last stored state), and the rest of the batch is written again likewise. Any
        other failure (the store is unavailable, the disk full) drops every job of the batch:
        its claims are released so another process may carry on once the store is back.
        """
        self._claims.settled(c for _, c in pending.commands_done)
        if isinstance(error, ClaimLost | JobDataInvalid):
            lost = set(error.job_ids) & pending.dirty_jobs or set(pending.dirty_jobs)
            log.error("control plane: %s", error)
            for job_id in lost:
                if isinstance(error, JobDataInvalid):
                    await self._fail_unstorable(job_id, error)
                else:
                    await self._drop(job_id, error, release=False)
            # Jobs that finished in memory meanwhile still need these events written (their
            # rows, already ahead, are not written again); dropped jobs do not.
            rest = pending.without(lost | (self._dropped & pending.dirty_jobs))
            if rest.events or rest.dirty_jobs:
                durable = self.store.commit_soon(self._batch(rest))
                with contextlib.suppress(Exception):
                    await asyncio.shield(durable)
                await self._after_commit(durable, rest)
                return
        else:
            log.error("control plane: writing to the store failed: %s", error)
            for job_id in pending.dirty_jobs:
                await self._drop(job_id, error, release=True)
        if pending.acks:  # the reports concern jobs this plane no longer drives
            with contextlib.suppress(Exception):
                await self.bus.ack_many(pending.acks)

    async def _fail_unstorable(self, job_id: str, error: JobDataInvalid) -> None:
        """Fail a job whose own data the store refused, from its last stored state.

        What was decided for it since is dropped (its events were never written); the job is
        then loaded again as stored, and fails with the code ``data_invalid`` and the store's
        reason, so it ends (its waiters hear of it) instead of staying ``running`` for good.
        """
        waiters = self._waiters.pop(job_id, [])
        await self._drop(job_id, error, release=False)
        self._dropped.discard(job_id)
        state = None
        with contextlib.suppress(Exception):
            state = await self.store.load_job(job_id)
        if state is None or state.terminal or self._closed or job_id in self._jobs:
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
            if state is not None:
                await self._claims.release(job_id)
            return
        if waiters:
            self._waiters[job_id] = waiters
        self._jobs[job_id] = state
        why = error.reasons.get(job_id, str(error))
        reason = f"the job's data cannot be stored: {why}"
        self._take(
            state, decider.fail(state, reason=reason, code="data_invalid", now=self._clock())
        )
        self._timer_wake.set()  # the timer loop flushes it

    async def _drop(self, job_id: str, error: BaseException, *, release: bool) -> None:
        """Stop driving a job at once: decide nothing more, dispatch nothing more of it.

        This process's workers abandon its running items (told the way they are told of a job
        that ended, before anyone waiting on the job hears of it, so none of them runs on while
        the process shuts down), its waiters get ``error``, and its claim is released when it
        is still ours.
        """
        if job_id in self._unborn:
            self._unborn_errors[job_id] = error
        self._dropped.add(job_id)
        state = self._jobs.pop(job_id, None)
        waiters = self._waiters.pop(job_id, [])  # now: not those of a run adopted meanwhile
        if state is not None:
            self._forget(state)
            self._durable_first.difference_update((job_id, t) for t in state.tasks)
            pending = self._pending
            if job_id in pending.dirty_jobs:
                self._pending = pending.without({job_id})
                self._pending.items = [i for i in pending.items if i.job_id != job_id]
            announce = JobCancelled(job_id=job_id, seq=state.seq, reason=str(error))
            with contextlib.suppress(Exception):
                await self.bus.publish(CONTROL_TOPIC, announce)
                await asyncio.sleep(0)  # let the workers act on it first
        for future in waiters:
            if not future.done():
                future.set_exception(error)
        if state is not None and release and job_id not in self._jobs:  # not adopted again
            await self._claims.release(job_id)

    def _side_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _finished(self, state: JobState) -> None:
        self._jobs.pop(state.id, None)
        for future in self._waiters.pop(state.id, []):
            if not future.done():
                future.set_result(state)
        self._forget(state)
        self._side_task(self._release_ended(state.id))
        if self.hooks is not None:
            self._side_task(self.hooks.job_end(state))

    async def _release_ended(self, job_id: str) -> None:
        if job_id not in self._jobs:  # not reopened meanwhile: that run holds the claim
            await self._claims.release(job_id)

    def _forget(self, state: JobState) -> None:
        if state.idempotency_key is not None:
            self._keys.pop((state.tenant, state.idempotency_key), None)
        self._workspaces.pop(state.id, None)
        self._workspace_strs.pop(state.id, None)
        self._journal.forget(state.id)
        if self._durable_first:
            self._durable_first.difference_update((state.id, t) for t in state.tasks)
        if self._dispatcher.forget(state):
            self._redispatch = True
            self._timer_wake.set()
        if self._reconciler is not None:
            self._reconciler.forget_job(state.id)

    def _apply_commands(self, commands: list[Command]) -> None:
        """Carry out commands left for jobs driven here (``_commands.apply_commands``)."""
        _commands.apply_commands(self, commands)
