"""Dispatch: which ready task goes to a worker next, and how much work is out per worker kind.

The control plane pushes every task the decider made ready, and pops them at each flush, within
each worker kind's in-flight limit. The tenants take turns (round-robin, one task each per
turn), so a tenant that floods the plane with jobs, or gives them a huge ``priority``, cannot
hold back the others; within one tenant, higher job priority goes first, then the order the
tasks became ready. A slot is taken when a task is handed out and given back when the decider
says the task's attempt ended (or its job is forgotten).

With a limit on the jobs a tenant runs at once (``max_running_jobs_per_tenant``), a job counts
as running from its first task handed out until it is forgotten (it ended, or is no longer
driven here). A ready task of a job that is not running while its tenant is at the limit is
held back (the job is *queued*); when one of the tenant's running jobs ends, its held-back
tasks go back into the queues in their old order, so the waiting job with the highest priority,
then the oldest, starts next. Other tenants are not held back by it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator

from planweave.control.decider import worker_of
from planweave.state import JobState

__all__ = ["Dispatcher"]

_DEFAULT_LIMIT = 8

_Entry = tuple[int, int, str, str]
"""(-priority, arrival, job id, task id): a heap orders one tenant's ready tasks."""


class _Queue:
    """The ready tasks of one worker kind: a heap per tenant, and the tenants' turn order."""

    __slots__ = ("heaps", "turns")

    def __init__(self) -> None:
        self.heaps: dict[str, list[_Entry]] = {}
        self.turns: deque[str] = deque()  # tenants with ready tasks, next turn first

    def push(self, tenant: str, entry: _Entry) -> None:
        heap = self.heaps.get(tenant)
        if heap is None:
            heap = self.heaps[tenant] = []
            self.turns.append(tenant)
        heapq.heappush(heap, entry)

    def pop(self) -> _Entry | None:
        """The next tenant's best task; that tenant's next turn comes after the others'."""
        if not self.turns:
            return None
        tenant = self.turns.popleft()
        heap = self.heaps[tenant]
        entry = heapq.heappop(heap)
        if heap:
            self.turns.append(tenant)
        else:
            del self.heaps[tenant]
        return entry


class Dispatcher:
    """Ready tasks per worker kind, the tasks out with each kind, and the jobs each tenant runs."""

    __slots__ = (
        "_arrivals",
        "_held",
        "_inflight",
        "_limits",
        "_max_jobs",
        "_ready",
        "_running",
        "_tenant_jobs",
    )

    def __init__(
        self, max_inflight: dict[str, int], *, max_running_jobs_per_tenant: int | None = None
    ) -> None:
        self._limits = max_inflight
        self._ready: dict[str, _Queue] = {}
        self._arrivals = itertools.count()
        self._inflight: dict[str, int] = {}
        self._running: dict[tuple[str, str], str] = {}
        self._max_jobs = max_running_jobs_per_tenant
        self._tenant_jobs: dict[str, set[str]] = {}  # tenant -> its running jobs
        self._held: dict[str, list[tuple[str, _Entry]]] = {}  # tenant -> (worker, task) held back

    def push(self, state: JobState, task_id: str) -> None:
        """Queue a ready task for its kind of worker."""
        worker = worker_of(state.tasks[task_id])
        queue = self._ready.get(worker)
        if queue is None:
            queue = self._ready[worker] = _Queue()
        entry = (-state.options.priority, next(self._arrivals), state.id, task_id)
        queue.push(state.tenant, entry)

    def take(self, jobs: dict[str, JobState]) -> Iterator[tuple[JobState, str, str]]:
        """Yield ``(job, task id, worker kind)`` for each ready task that may go out now, and
        count it as out. Tasks of jobs no longer in ``jobs``, or no longer ready, are dropped."""
        limits = self._limits
        inflight = self._inflight
        running = self._running
        max_jobs = self._max_jobs
        for worker, queue in list(self._ready.items()):
            limit = limits.get(worker, _DEFAULT_LIMIT)
            while inflight.get(worker, 0) < limit:
                entry = queue.pop()
                if entry is None:
                    break
                _, _, job_id, task_id = entry
                state = jobs.get(job_id)
                if state is None or state.terminal or state.tasks[task_id].status != "ready":
                    continue
                if max_jobs is not None and not self._admit(state, max_jobs):
                    self._held.setdefault(state.tenant, []).append((worker, entry))
                    continue
                inflight[worker] = inflight.get(worker, 0) + 1
                running[(job_id, task_id)] = worker
                yield state, task_id, worker

    def ended(self, job_id: str, task_ids: list[str]) -> None:
        """These tasks' attempts are over: their workers' slots are free."""
        running = self._running
        for task_id in task_ids:
            worker = running.pop((job_id, task_id), None)
            if worker is not None:
                self._inflight[worker] -= 1

    def forget(self, state: JobState) -> bool:
        """The job is no longer driven here: free the slots of its tasks that were out, and its
        tenant's running-job slot. Returns whether tasks held back for that slot are ready to
        go out again (the caller dispatches them)."""
        self.ended(state.id, list(state.tasks))
        jobs = self._tenant_jobs.get(state.tenant)
        if jobs is None or state.id not in jobs:
            return False
        jobs.discard(state.id)
        if not jobs:
            del self._tenant_jobs[state.tenant]
        held = self._held.pop(state.tenant, None)
        if not held:
            return False
        for worker, entry in held:
            self._ready[worker].push(state.tenant, entry)
        return True

    def queued(self, state: JobState) -> bool:
        """Whether the job waits for one of its tenant's running jobs to end before any of its
        tasks may go out."""
        max_jobs = self._max_jobs
        if max_jobs is None or state.terminal:
            return False
        jobs = self._tenant_jobs.get(state.tenant)
        return jobs is not None and state.id not in jobs and len(jobs) >= max_jobs

    def _admit(self, state: JobState, max_jobs: int) -> bool:
        """Count the job as running for its tenant, if it is already or a slot is free."""
        jobs = self._tenant_jobs.get(state.tenant)
        if jobs is None:
            jobs = self._tenant_jobs[state.tenant] = set()
        elif state.id in jobs:
            return True
        if len(jobs) >= max_jobs:
            return False
        jobs.add(state.id)
        return True
