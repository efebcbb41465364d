"""Dispatch: which ready task goes to a worker next, and how much work is out per worker kind.

The control plane pushes every task the decider made ready, and pops them at each flush, within
each worker kind's in-flight limit. The tenants take turns (round-robin, one task each per
turn), so a tenant that floods the plane with jobs, or gives them a huge ``priority``, cannot
hold back the others; within one tenant, higher job priority goes first, then the order the
tasks became ready. A slot is taken when a task is handed out and given back when the decider
says the task's attempt ended (or its job is forgotten).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator

from planweave.control.decider import worker_for
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
    """Ready tasks per worker kind, and the tasks out with each kind."""

    __slots__ = ("_arrivals", "_inflight", "_limits", "_ready", "_running")

    def __init__(self, max_inflight: dict[str, int]) -> None:
        self._limits = max_inflight
        self._ready: dict[str, _Queue] = {}
        self._arrivals = itertools.count()
        self._inflight: dict[str, int] = {}
        self._running: dict[tuple[str, str], str] = {}

    def push(self, state: JobState, task_id: str) -> None:
        """Queue a ready task for its kind of worker."""
        worker = worker_for(state.tasks[task_id].spec)
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
        for worker, queue in self._ready.items():
            limit = limits.get(worker, _DEFAULT_LIMIT)
            while inflight.get(worker, 0) < limit:
                entry = queue.pop()
                if entry is None:
                    break
                _, _, job_id, task_id = entry
                state = jobs.get(job_id)
                if state is None or state.terminal or state.tasks[task_id].status != "ready":
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

    def forget(self, state: JobState) -> None:
        """The job is no longer driven here: free the slots of its tasks that were out."""
        self.ended(state.id, list(state.tasks))
