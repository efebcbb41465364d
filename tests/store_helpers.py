"""Jobs, batches and checks shared by the store tests (the contract and the SQLite ones)."""

from __future__ import annotations

from typing import Any

from planweave.events import (
    Event,
    JobCompleted,
    JobFailed,
    JobOptions,
    JobSubmitted,
    LlmCalled,
    TaskAssigned,
    TaskCompleted,
    TaskReady,
    TaskStarted,
)
from planweave.plan import TaskSpec
from planweave.state import JobState, apply, replay
from planweave.store import Batch, MemoryStore, Store, open_store
from planweave.store.postgres import PostgresStore
from planweave.store.sqlite import SqliteStore


class Clock:
    """The store's clock, moved by hand: leases run out without sleeping."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clock_of(store: Store) -> Clock:
    assert isinstance(store, MemoryStore | SqliteStore | PostgresStore)
    assert isinstance(store.clock, Clock)
    return store.clock


PLAN = (
    TaskSpec(id="fetch", goal="fetch the data"),
    TaskSpec(id="add", kind="tool", tool="add", args={"a": 1, "b": 2}, depends_on=("fetch",)),
    TaskSpec(id="write", goal="write it up", depends_on=("fetch", "add"), max_attempts=2),
)


def submitted(job_id: str, *, at: float = 1000.0, goal: str = "a goal") -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        seq=1,
        at=at,
        goal=goal,
        plan=PLAN,
        options=JobOptions(max_attempts=2, max_cost_usd=1.5, workspace="/tmp/ws"),
    )


def progress(job_id: str, *, at: float = 1000.0) -> list[Event]:
    """Events after submission: ``fetch`` ran and succeeded, ``add`` is ready."""
    return [
        TaskReady(job_id=job_id, task_id="fetch", seq=2, at=at + 1),
        TaskAssigned(job_id=job_id, task_id="fetch", seq=3, at=at + 2, attempt=1, worker="w1"),
        TaskStarted(job_id=job_id, task_id="fetch", seq=4, at=at + 3, attempt=1),
        LlmCalled(
            job_id=job_id,
            task_id="fetch",
            seq=5,
            at=at + 4,
            model="scripted:x",
            role="executor",
            tokens_in=12,
            tokens_out=7,
            cost_usd=0.25,
            prompt="p",
            reply="r",
        ),
        TaskCompleted(
            job_id=job_id,
            task_id="fetch",
            seq=6,
            at=at + 5,
            attempt=1,
            result={"rows": [1, 2.5, None, "x"], "ok": True},
        ),
        TaskReady(job_id=job_id, task_id="add", seq=7, at=at + 6),
    ]


def batch_for(state: JobState, events: list[Event]) -> Batch:
    return Batch(
        jobs=[state.to_row()],
        tasks=[task.to_row(state.id) for task in state.tasks.values()],
        events=list(events),
    )


async def add_job(
    store: Store, job_id: str, *, at: float = 1000.0, finish: str | None = None
) -> JobState:
    """Commit a job with some progress; ``finish`` ends it (``succeeded`` or ``failed``)."""
    events: list[Event] = [submitted(job_id, at=at), *progress(job_id, at=at)]
    if finish == "succeeded":
        events.append(JobCompleted(job_id=job_id, seq=8, at=at + 7, result="done"))
    elif finish == "failed":
        events.append(JobFailed(job_id=job_id, seq=8, at=at + 7, reason="boom"))
    state = replay(events)
    await store.commit(batch_for(state, events))
    return state


def task_view(state: JobState) -> dict[str, Any]:
    """Every field of every task, the derived indices included."""
    return {
        task_id: (task.to_row(state.id), task.waiting, task.open_children,
                  sorted(task.dependents), sorted(task.children))
        for task_id, task in state.tasks.items()
    }  # fmt: skip


def assert_same_state(loaded: JobState | None, expected: JobState) -> None:
    assert loaded is not None
    assert loaded.to_row() == expected.to_row()
    assert list(loaded.tasks) == list(expected.tasks)
    assert task_view(loaded) == task_view(expected)
    assert loaded.open_tasks == expected.open_tasks


async def reopened(store: Store) -> Store:
    """Close ``store`` and open it again (a new object for a file, as a new process would)."""
    await store.close()
    if isinstance(store, MemoryStore):
        await store.open()
        return store
    again = open_store(store.url, clock=clock_of(store))
    await again.open()
    return again


def created(job_id: str, owner: str, *, lease_s: float = 30.0) -> tuple[JobState, Batch]:
    """A job's submission as its owner commits it: the claim is taken with the job."""
    first: list[Event] = [submitted(job_id)]
    state = replay(first)
    batch = batch_for(state, first)
    batch.owner, batch.new_jobs, batch.claim_lease_s = owner, [job_id], lease_s
    return state, batch


def step(state: JobState, owner: str, *events: Event) -> Batch:
    """The next batch of ``owner`` for ``state`` after ``events`` (applied to it)."""
    for event in events:
        apply(state, event)
    batch = batch_for(state, list(events))
    batch.owner = owner
    return batch


def ready(job_id: str, seq: int, task_id: str = "fetch") -> TaskReady:
    return TaskReady(job_id=job_id, task_id=task_id, seq=seq, at=1000.0 + seq)
