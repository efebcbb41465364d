"""The store contract, run against every store; then what only a SQLite file must do."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import planweave.store
from planweave.constants import STORE_SCHEMA_VERSION, TABLE_META
from planweave.errors import ClaimLost, ConfigError, LogConflict, StoreUnavailable, UnknownBackend
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
from planweave.store import ArtifactRow, Batch, MemoryStore, Store, open_store
from planweave.store.base import Claim
from planweave.store.sqlite import SqliteStore

# --- helpers ------------------------------------------------------------------------------------


class Clock:
    """The store's clock, moved by hand: leases run out without sleeping."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clock_of(store: Store) -> Clock:
    assert isinstance(store, MemoryStore | SqliteStore)
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


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/data/pw.db"
    opened = open_store(url, clock=Clock())
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/pw.db"


# --- the contract -----------------------------------------------------------------------------


async def test_commit_then_load_gives_back_the_same_state(store: Store) -> None:
    state = await add_job(store, "job1")

    loaded = await store.load_job("job1")

    assert_same_state(loaded, state)
    assert loaded is not None
    assert loaded.options == JobOptions(max_attempts=2, max_cost_usd=1.5, workspace="/tmp/ws")
    assert loaded.tasks["add"].spec == PLAN[1]
    assert loaded.tasks["fetch"].result == {"rows": [1, 2.5, None, "x"], "ok": True}
    assert loaded.tasks["fetch"].started is True
    assert loaded.tasks["add"].waiting == 0 and loaded.tasks["write"].waiting == 1
    assert (loaded.tokens_in, loaded.cost_usd, loaded.llm_calls) == (12, 0.25, 1)


async def test_load_of_an_unknown_job_is_none(store: Store) -> None:
    assert await store.load_job("nope") is None
    assert await store.read_events("nope") == []
    assert await store.artifacts("nope") == []


async def test_events_come_back_in_seq_order_from_after_seq_with_limit(store: Store) -> None:
    events: list[Event] = [submitted("job1"), *progress("job1")]
    state = replay(events)
    # Two batches, the later events first: the log is ordered by seq, not by arrival.
    await store.commit(Batch(events=events[4:]))
    await store.commit(Batch(jobs=[state.to_row()], events=events[:4]))

    assert await store.read_events("job1") == events
    assert await store.read_events("job1", after_seq=3) == events[3:]
    assert await store.read_events("job1", after_seq=3, limit=2) == events[3:5]
    assert await store.read_events("job1", after_seq=7) == []
    assert await store.read_events("job1", limit=0) == []
    assert [type(e).__name__ for e in await store.read_events("job1", limit=3)] == [
        "JobSubmitted", "TaskReady", "TaskAssigned",
    ]  # fmt: skip


async def test_an_event_stored_again_is_a_log_conflict_and_nothing_is_written(
    store: Store,
) -> None:
    state = await add_job(store, "job1")
    events = await store.read_events("job1")
    more = TaskAssigned(job_id="job1", task_id="add", seq=8, at=1010, attempt=1, worker="w2")
    later = replay([*events, more])
    artifact = ArtifactRow("job1", "a.md", "/a.md", 1, "text/markdown", 1.0)

    # A second writer's events: seq 7 is taken (by the first writer's TaskReady).
    twin = TaskReady(job_id="job1", task_id="write", seq=7, at=1010)
    with pytest.raises(LogConflict) as caught:
        await store.commit(Batch(jobs=[later.to_row()], events=[more, twin],
                                 artifacts=[artifact]))  # fmt: skip
    assert (caught.value.job_id, caught.value.seq, caught.value.job_ids) == ("job1", 7, ("job1",))
    assert isinstance(caught.value, ClaimLost)
    # Twice in one batch is a conflict too.
    with pytest.raises(LogConflict, match="event 8 of job job1"):
        await store.commit(Batch(jobs=[later.to_row()], events=[more, more]))

    assert await store.read_events("job1") == events
    assert_same_state(await store.load_job("job1"), state)
    assert await store.artifacts("job1") == []
    # The store is still fine: the next batch is written.
    await store.commit(Batch(jobs=[later.to_row()], events=[more]))
    assert await store.read_events("job1") == [*events, more]


async def test_rows_are_upserted(store: Store) -> None:
    state = await add_job(store, "job1")
    more: list[Event] = [
        TaskAssigned(job_id="job1", task_id="add", seq=8, at=1010, attempt=1, worker="w2"),
        TaskCompleted(job_id="job1", task_id="add", seq=9, at=1011, attempt=1, result=3),
        JobFailed(job_id="job1", seq=10, at=1012, reason="gave up"),
    ]
    for event in more:
        apply(state, event)

    await store.commit(Batch(jobs=[state.to_row()], tasks=[state.tasks["add"].to_row("job1")],
                             events=more))  # fmt: skip

    loaded = await store.load_job("job1")
    assert_same_state(loaded, state)
    assert loaded is not None
    assert (loaded.status, loaded.error, loaded.seq) == ("failed", "gave up", 10)
    assert loaded.tasks["add"].result == 3
    assert loaded.tasks["write"].waiting == 0
    assert len(await store.read_events("job1")) == 10


async def test_list_jobs_newest_first_with_filter_paging_and_progress(store: Store) -> None:
    await add_job(store, "old", at=100.0, finish="succeeded")
    await add_job(store, "mid", at=200.0)
    await add_job(store, "new", at=300.0, finish="failed")

    jobs = await store.list_jobs()
    assert [j.job_id for j in jobs] == ["new", "mid", "old"]
    mid = jobs[1]
    assert (mid.goal, mid.status, mid.created_at, mid.updated_at) == ("a goal", "running", 200, 206)
    assert (mid.tasks_total, mid.tasks_done, mid.tokens_in, mid.tokens_out) == (3, 1, 12, 7)
    assert mid.cost_usd == pytest.approx(0.25)
    assert (mid.finished_at, mid.error, mid.result) == (None, None, None)
    assert (jobs[0].status, jobs[0].error, jobs[0].finished_at) == ("failed", "boom", 307)
    assert (jobs[2].status, jobs[2].result) == ("succeeded", "done")

    assert [j.job_id for j in await store.list_jobs(limit=2)] == ["new", "mid"]
    assert [j.job_id for j in await store.list_jobs(limit=2, offset=2)] == ["old"]
    assert [j.job_id for j in await store.list_jobs(status="running")] == ["mid"]
    assert [j.job_id for j in await store.list_jobs(status="succeeded")] == ["old"]
    assert await store.list_jobs(status="cancelled") == []


async def test_active_job_ids_are_the_unfinished_jobs(store: Store) -> None:
    await add_job(store, "b", at=2.0)
    await add_job(store, "done", at=1.0, finish="succeeded")
    await add_job(store, "a", at=3.0)

    assert await store.active_job_ids() == ["b", "a"]


async def test_claims_exclude_other_owners_until_the_lease_runs_out(store: Store) -> None:
    await add_job(store, "job1")
    clock = clock_of(store)

    assert await store.claim_job("job1", "cp1", lease_s=10) is True
    clock.now = 105
    assert await store.claim_job("job1", "cp2", lease_s=10) is False
    clock.now = 108
    assert await store.claim_job("job1", "cp1", lease_s=10) is True  # renewal, until 118
    clock.now = 117
    assert await store.claim_job("job1", "cp2", lease_s=10) is False
    clock.now = 119
    assert await store.claim_job("job1", "cp2", lease_s=10) is True  # expired
    clock.now = 120
    assert await store.claim_job("job1", "cp1", lease_s=10) is False


async def test_a_released_claim_is_free_and_only_the_owner_releases(store: Store) -> None:
    await add_job(store, "job1")
    assert await store.claim_job("job1", "cp1", lease_s=10)

    await store.release_job("job1", "cp2")  # not the owner: no effect
    assert await store.claim_job("job1", "cp2", lease_s=10) is False
    await store.release_job("job1", "cp1")
    assert await store.read_claim("job1") is None
    assert await store.claim_job("job1", "cp2", lease_s=10) is True


async def test_a_claim_survives_later_commits_and_unknown_jobs_cannot_be_claimed(
    store: Store,
) -> None:
    state = await add_job(store, "job1")
    assert await store.claim_job("job1", "cp1", lease_s=10)

    await store.commit(batch_for(state, []))  # rewriting the job row keeps the claim

    assert await store.claim_job("job1", "cp2", lease_s=10) is False
    assert await store.claim_job("ghost", "cp1", lease_s=10) is False
    assert await store.read_claim("ghost") is None


async def test_commands_stay_pending_until_a_batch_marks_them_done(store: Store) -> None:
    clock = clock_of(store)
    clock.now = 1.0
    await store.add_command("j1", "cancel", {"reason": "user"})
    clock.now = 2.0
    await store.add_command("j2", "cancel", {})
    clock.now = 3.0
    await store.add_command("j1", "retry", {"task": "t", "n": [1, 2]})

    assert await store.read_commands([]) == []
    pending = await store.read_commands(["j1", "other"])
    assert [(c.job_id, c.name, c.args, c.created_at) for c in pending] == [
        ("j1", "cancel", {"reason": "user"}, 1.0),
        ("j1", "retry", {"task": "t", "n": [1, 2]}, 3.0),
    ]
    assert pending[0].id < pending[1].id
    assert await store.read_commands(["j1"]) == pending  # reading removes nothing

    await store.commit(Batch(commands_done=[pending[0].id]))
    assert await store.read_commands(["j1"]) == pending[1:]

    clock.now = 4.0
    await store.add_command("j1", "cancel", {})
    rest = await store.read_commands(["j1", "j2"])
    assert [(c.job_id, c.created_at) for c in rest] == [("j2", 2.0), ("j1", 3.0), ("j1", 4.0)]
    await store.commit(Batch(commands_done=[c.id for c in rest]))
    assert await store.read_commands(["j1", "j2"]) == []


# --- owner fence -------------------------------------------------------------------------------


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


async def test_a_new_jobs_claim_exists_right_after_its_creating_batch(store: Store) -> None:
    clock_of(store).now = 200.0
    _, batch = created("job1", "cp1", lease_s=30)

    await store.commit(batch)

    claim = await store.read_claim("job1")
    assert claim == Claim("job1", "cp1", socket.gethostname(), os.getpid(), 230.0, 200.0)
    assert not claim.expired
    assert await store.claim_job("job1", "cp2", lease_s=30) is False
    [summary] = await store.list_jobs()
    assert (summary.owner, summary.claim_expires_at) == ("cp1", 230.0)
    # Queued without waiting, the same: the claim is part of the batch's transaction.
    await asyncio.gather(store.commit_soon(created("job2", "cp1")[1]))
    claim = await store.read_claim("job2")
    assert claim is not None and claim.owner == "cp1"


async def test_a_batch_from_a_non_owner_is_rejected_whole(store: Store) -> None:
    state, batch = created("job1", "cp1")
    await store.commit(batch)
    before = await store.load_job("job1")
    assert before is not None
    await store.add_command("job1", "cancel", {})
    [command] = await store.read_commands(["job1"])

    intruder = step(replay([submitted("job1")]), "cp2", ready("job1", 2))
    intruder.artifacts = [ArtifactRow("job1", "a.md", "/a.md", 1, "text/markdown", 1.0)]
    intruder.commands_done = [command.id]
    with pytest.raises(ClaimLost) as caught:
        await store.commit(intruder)
    assert caught.value.job_ids == ("job1",)
    assert not isinstance(caught.value, LogConflict)
    # A batch that touches an owned job and one of another owner is rejected whole too.
    await store.commit(created("job2", "cp2")[1])
    both = step(replay([submitted("job2")]), "cp2", ready("job2", 2), ready("job1", 2))
    with pytest.raises(ClaimLost) as caught:
        await store.commit(both)
    assert caught.value.job_ids == ("job1",)
    # Creating a job another owner claims is refused as well.
    with pytest.raises(ClaimLost):
        await store.commit(created("job1", "cp2")[1])

    assert [e.seq for e in await store.read_events("job1")] == [1]
    assert [e.seq for e in await store.read_events("job2")] == [1]
    assert_same_state(await store.load_job("job1"), before)
    assert await store.artifacts("job1") == []
    assert await store.read_commands(["job1"]) == [command]
    claim = await store.read_claim("job1")
    assert claim is not None and claim.owner == "cp1"
    # The owner's own batch goes through.
    await store.commit(step(state, "cp1", ready("job1", 2)))
    assert [e.seq for e in await store.read_events("job1")] == [1, 2]


async def test_a_released_or_unclaimed_job_rejects_owned_batches(store: Store) -> None:
    state, batch = created("job1", "cp1")
    await store.commit(batch)
    await store.release_job("job1", "cp1")

    with pytest.raises(ClaimLost):
        await store.commit(step(state, "cp1", ready("job1", 2)))
    await add_job(store, "legacy")  # written without an owner: nobody claims it
    with pytest.raises(ClaimLost):
        await store.commit(Batch(events=[ready("legacy", 8, "add")], owner="cp1"))
    assert [e.seq for e in await store.read_events("job1")] == [1]


async def test_a_forced_claim_makes_the_first_owners_next_batch_fail(store: Store) -> None:
    state, batch = created("job1", "cp1")
    await store.commit(batch)
    await store.commit(step(state, "cp1", ready("job1", 2)))

    assert await store.claim_job("job1", "cp2", lease_s=30, force=True)

    with pytest.raises(ClaimLost) as caught:
        await store.commit(step(replay(await store.read_events("job1")), "cp1", ready("job1", 3)))
    assert caught.value.job_ids == ("job1",)
    taken = replay(await store.read_events("job1"))
    await store.commit(step(taken, "cp2", ready("job1", 3, "add")))
    events = await store.read_events("job1")
    assert [(e.seq, e.task_id) for e in events] == [(1, None), (2, "fetch"), (3, "add")]
    assert_same_state(await store.load_job("job1"), replay(events))


async def test_an_expired_claim_nobody_took_still_lets_its_owner_write(store: Store) -> None:
    clock = clock_of(store)
    state, batch = created("job1", "cp1", lease_s=10)
    await store.commit(batch)

    clock.now = 500.0
    claim = await store.read_claim("job1")
    assert claim is not None and claim.expired and claim.now == 500.0
    await store.commit(step(state, "cp1", ready("job1", 2)))  # nobody took it: still cp1's

    assert await store.claim_job("job1", "cp2", lease_s=10)  # expired: no force needed
    with pytest.raises(ClaimLost):
        await store.commit(step(state, "cp1", ready("job1", 3)))
    assert [e.seq for e in await store.read_events("job1")] == [1, 2]


async def test_read_claim_reports_the_claiming_host_pid_and_the_store_clock(
    store: Store,
) -> None:
    clock = clock_of(store)
    await add_job(store, "job1")
    assert await store.read_claim("job1") is None

    clock.now = 1000.0
    assert await store.claim_job("job1", "cp1", lease_s=5)
    clock.now = 1004.0
    claim = await store.read_claim("job1")
    assert claim == Claim("job1", "cp1", socket.gethostname(), os.getpid(), 1005.0, 1004.0)
    assert not claim.expired
    clock.now = 1006.0
    claim = await store.read_claim("job1")
    assert claim is not None and claim.expired


async def test_a_rejected_batch_queued_with_others_fails_alone(store: Store) -> None:
    state1, batch1 = created("job1", "cp1")
    state2, batch2 = created("job2", "cp2")
    await store.commit(batch1)
    await store.commit(batch2)

    futures = [
        store.commit_soon(step(state1, "cp1", ready("job1", 2))),
        store.commit_soon(step(replay([submitted("job2")]), "cp1", ready("job2", 2))),
        store.commit_soon(step(state2, "cp2", ready("job2", 2, "add"))),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ClaimLost) and results[1].job_ids == ("job2",)
    assert [e.task_id for e in await store.read_events("job2")] == [None, "add"]
    assert [e.seq for e in await store.read_events("job1")] == [1, 2]


async def test_artifacts_are_listed_oldest_first_and_upserted_by_name(store: Store) -> None:
    await add_job(store, "job1")
    first = ArtifactRow("job1", "result.md", "/ws/result.md", 10, "text/markdown", 5.0, "write")
    second = ArtifactRow("job1", "data.csv", "/ws/data.csv", 99, "text/csv", 7.0)
    await store.commit(Batch(artifacts=[second, first]))

    assert await store.artifacts("job1") == [first, second]

    bigger = ArtifactRow("job1", "result.md", "/ws/result.md", 20, "text/markdown", 5.0, "write")
    await store.commit(Batch(artifacts=[bigger]))
    assert await store.artifacts("job1") == [bigger, second]
    assert await store.artifacts("other") == []


async def test_only_finished_jobs_are_deleted_with_everything_they_own(store: Store) -> None:
    await add_job(store, "running", at=1.0)
    await add_job(store, "done", at=2.0, finish="succeeded")
    await add_job(store, "kept", at=3.0, finish="failed")
    artifact = ArtifactRow("done", "result.md", "/ws/result.md", 1, "text/markdown", 1.0)
    await store.commit(Batch(artifacts=[artifact]))
    await store.add_command("done", "cancel", {})
    assert await store.claim_job("done", "cp1", lease_s=10)

    assert await store.delete_job("running") is False
    assert await store.delete_job("ghost") is False
    assert await store.delete_job("done") is True

    assert await store.load_job("done") is None
    assert await store.read_events("done") == []
    assert await store.artifacts("done") == []
    assert await store.read_commands(["done"]) == []
    assert await store.read_claim("done") is None
    assert [j.job_id for j in await store.list_jobs()] == ["kept", "running"]
    assert await store.load_job("running") is not None
    assert await store.delete_job("done") is False


async def test_commit_soon_batches_are_durable_once_a_later_commit_returns(store: Store) -> None:
    events: list[Event] = [submitted("job1"), *progress("job1")]
    state: JobState | None = None
    for event in events[:-1]:
        state = apply(state, event)
        store.commit_soon(batch_for(state, [event]))
    assert state is not None
    state = apply(state, events[-1])

    await store.commit(batch_for(state, events[-1:]))

    other = await reopened(store)
    try:
        assert await other.read_events("job1") == events
        assert_same_state(await other.load_job("job1"), state)
    finally:
        await other.close()


async def test_reads_see_batches_queued_with_commit_soon(store: Store) -> None:
    events: list[Event] = [submitted("job1"), *progress("job1")]
    state = replay(events)

    store.commit_soon(batch_for(state, events))

    assert_same_state(await store.load_job("job1"), state)
    assert await store.read_events("job1") == events


async def test_close_then_open_keeps_everything(store: Store) -> None:
    state = await add_job(store, "job1", finish="succeeded")
    await add_job(store, "job2", at=2000.0)
    await store.commit(
        Batch(artifacts=[ArtifactRow("job1", "a.md", "/a.md", 3, "text/markdown", 9.0)])
    )
    await store.add_command("job2", "cancel", {"why": "test"})
    assert await store.claim_job("job2", "cp1", lease_s=60)

    again = await reopened(store)
    try:
        assert_same_state(await again.load_job("job1"), state)
        assert len(await again.read_events("job1")) == 8
        assert [j.job_id for j in await again.list_jobs()] == ["job2", "job1"]
        assert [a.name for a in await again.artifacts("job1")] == ["a.md"]
        assert [c.args for c in await again.read_commands(["job2"])] == [{"why": "test"}]
        assert await again.claim_job("job2", "cp2", lease_s=60) is False
        claim = await again.read_claim("job2")
        assert claim is not None and (claim.owner, claim.expires_at) == ("cp1", 160.0)
    finally:
        await again.close()


async def test_a_closed_store_refuses_writes(store: Store) -> None:
    await store.close()

    with pytest.raises(StoreUnavailable):
        await store.commit(Batch(events=[submitted("job1")]))
    with pytest.raises(StoreUnavailable):
        store.commit_soon(Batch(events=[submitted("job1")]))


# --- open_store -------------------------------------------------------------------------------


def test_open_store_chooses_the_backend_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SqliteStore)
    with pytest.raises(UnknownBackend, match="memory://, sqlite://, postgresql://"):
        open_store("mysql://localhost/db")
    with pytest.raises(ConfigError, match="memory://"):
        open_store("sqlite:///:memory:")
    with pytest.raises(ConfigError, match="synchronous"):
        open_store(f"sqlite:///{tmp_path}/x.db", synchronous="SOMETIMES")
    with pytest.raises(ConfigError, match="bad option"):
        open_store("memory://", synchronous="FULL")


def test_the_package_exports_what_it_lists() -> None:
    assert sorted(planweave.store.__all__) == [
        "ArtifactRow", "Batch", "Command", "JobSummary", "MemoryStore", "Store", "open_store",
    ]  # fmt: skip
    for name in planweave.store.__all__:
        assert getattr(planweave.store, name) is not None


# --- SQLite only ------------------------------------------------------------------------------


async def test_sqlite_creates_folders_and_a_versioned_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "pw.db"
    store = open_store(f"sqlite:///{path}", synchronous="FULL")
    await store.open()
    await store.open()  # idempotent
    await add_job(store, "job1")
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute(f"SELECT value FROM {TABLE_META}").fetchall() == [
                (str(STORE_SCHEMA_VERSION),)
            ]
        conn.close()
    finally:
        await store.close()


async def test_sqlite_data_is_visible_to_another_store_on_the_same_file(sqlite_url: str) -> None:
    writer, reader = open_store(sqlite_url), open_store(sqlite_url)
    await writer.open()
    await reader.open()
    try:
        events: list[Event] = [submitted("job1"), *progress("job1")]
        state = replay(events[:3])
        await writer.commit(batch_for(state, events[:3]))
        assert [e.seq for e in await reader.read_events("job1")] == [1, 2, 3]

        # Following the log from another process: poll from the last seq seen.
        state = replay(events)
        await writer.commit(batch_for(state, events[3:]))
        assert [e.seq for e in await reader.read_events("job1", after_seq=3)] == [4, 5, 6, 7]
        assert_same_state(await reader.load_job("job1"), state)

        # Claims and commands are shared through the file too.
        assert await writer.claim_job("job1", "cp1", lease_s=30)
        assert await reader.claim_job("job1", "cp2", lease_s=30) is False
        await reader.add_command("job1", "cancel", {})
        commands = await writer.read_commands(["job1"])
        assert [c.name for c in commands] == ["cancel"]
        await writer.commit(Batch(commands_done=[commands[0].id]))
        assert await reader.read_commands(["job1"]) == []
    finally:
        await writer.close()
        await reader.close()


_CHILD = r"""
import asyncio, sys
from planweave.events import JobSubmitted, LlmCalled, TaskReady
from planweave.plan import TaskSpec
from planweave.state import apply
from planweave.store import Batch, open_store

async def main():
    store = open_store(sys.argv[1])
    await store.open()
    first = JobSubmitted(job_id="job1", seq=1, goal="g", plan=(TaskSpec(id="a", goal="a"),))
    state = apply(None, first)
    await store.commit(Batch(jobs=[state.to_row()], tasks=[state.tasks["a"].to_row("job1")],
                             events=[first]))
    seq = 1
    while True:
        events = [LlmCalled(job_id="job1", task_id="a", seq=seq + 1, model="m", role="r",
                            tokens_in=1, reply="x" * 500),
                  TaskReady(job_id="job1", task_id="a", seq=seq + 2)]
        seq += 2
        for event in events:
            apply(state, event)
        batch = Batch(jobs=[state.to_row()], tasks=[state.tasks["a"].to_row("job1")],
                      events=events)
        if seq % 4 == 1:
            store.commit_soon(batch)
        else:
            await store.commit(batch)
            print(seq, flush=True)

asyncio.run(main())
"""


def _write_until_killed(url: str, commits: int) -> int:
    """Run the child until it reports ``commits`` awaited commits, ``kill -9`` it, and return
    the last seq it saw durable."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    durable = 0
    try:
        for _ in range(commits):
            line = child.stdout.readline()
            assert line, "the child process stopped writing"
            durable = int(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return durable


async def test_sqlite_a_killed_process_leaves_every_awaited_commit_readable(
    sqlite_url: str,
) -> None:
    durable = await asyncio.to_thread(_write_until_killed, sqlite_url, 300)

    store = open_store(sqlite_url)
    await store.open()
    try:
        state = await store.load_job("job1")
        events = await store.read_events("job1")
    finally:
        await store.close()
    assert state is not None
    assert state.seq >= durable
    # The rows and the log were written in the same transactions: they agree.
    assert [e.seq for e in events] == list(range(1, state.seq + 1))
    assert state.tokens_in == state.llm_calls == (state.seq - 1) // 2
    assert_same_state(state, replay(events))


async def test_sqlite_migrates_an_empty_or_foreign_file_and_keeps_its_tables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pw.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE mine (x INTEGER)")
        conn.execute("INSERT INTO mine VALUES (42)")
    conn.close()

    for i in range(2):  # the second open finds the schema current and changes nothing
        store = open_store(f"sqlite:///{path}")
        await store.open()
        await add_job(store, f"job{i}")
        await store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM mine").fetchall() == [(42,)]
        assert conn.execute(f"SELECT key, value FROM {TABLE_META}").fetchall() == [
            ("schema_version", str(STORE_SCHEMA_VERSION))
        ]
    conn.close()


async def test_sqlite_refuses_a_file_from_a_newer_planweave(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = open_store(sqlite_url)
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "pw.db") as conn:
        conn.execute(f"UPDATE {TABLE_META} SET value = '99' WHERE key = 'schema_version'")
    conn.close()

    newer = open_store(sqlite_url)
    with pytest.raises(ConfigError, match=r"schema version 99.*upgrade planweave"):
        await newer.open()
    with pytest.raises(StoreUnavailable):
        await newer.commit(Batch(events=[submitted("job1")]))


async def test_sqlite_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database" * 100)

    store = open_store(f"sqlite:///{path}")
    with pytest.raises(StoreUnavailable, match="not a database"):
        await store.open()


async def test_sqlite_many_concurrent_commits_are_all_durable(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    await store.open()
    states: list[JobState] = []
    batches: list[Batch] = []
    for i in range(300):
        events: list[Event] = [submitted(f"job{i:03}", at=float(i)), *progress(f"job{i:03}", at=i)]
        states.append(replay(events))
        batches.append(batch_for(states[-1], events))

    await asyncio.gather(*(store.commit(batch) for batch in batches))
    await store.close()

    again = open_store(sqlite_url)
    await again.open()
    try:
        assert len(await again.list_jobs(limit=1000)) == 300
        for state in (states[0], states[150], states[-1]):
            assert_same_state(await again.load_job(state.id), state)
            assert len(await again.read_events(state.id)) == 7
    finally:
        await again.close()


async def test_sqlite_one_bad_batch_fails_alone(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    await store.open()
    try:
        good = replay([submitted("good")])
        bad_row = {**replay([submitted("bad")]).to_row(), "goal": None}  # violates NOT NULL
        results = await asyncio.gather(
            store.commit(Batch(jobs=[bad_row])),
            store.commit(batch_for(good, [submitted("good")])),
            return_exceptions=True,
        )
        assert isinstance(results[0], StoreUnavailable)
        assert results[1] is None
        assert await store.load_job("good") is not None
        assert await store.load_job("bad") is None
    finally:
        await store.close()


async def test_sqlite_a_failed_queued_batch_fails_its_own_future_only(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    await store.open()
    bad_row = {**replay([submitted("bad")]).to_row(), "goal": None}  # violates NOT NULL
    good = replay([submitted("good")])
    try:
        failed = store.commit_soon(Batch(jobs=[bad_row]))
        await store.commit(batch_for(good, [submitted("good")]))
        with pytest.raises(StoreUnavailable):
            await failed
        assert await store.load_job("good") is not None
        assert await store.load_job("bad") is None
    finally:
        await store.close()


async def test_a_forced_claim_takes_over_a_live_claim(store: Store) -> None:
    await add_job(store, "job1")
    assert await store.claim_job("job1", "cp1", lease_s=60)
    assert await store.claim_job("job1", "cp2", lease_s=60) is False
    assert await store.claim_job("job1", "cp2", lease_s=60, force=True)
    assert await store.claim_job("job1", "cp1", lease_s=60) is False


async def test_commit_soon_futures_resolve_in_order_once_durable(store: Store) -> None:
    events: list[Event] = [submitted("job1"), *progress("job1")]
    futures = [store.commit_soon(batch_for(replay(events), events))]
    for i in range(5):
        first: list[Event] = [submitted(f"job-{i}")]
        futures.append(store.commit_soon(batch_for(replay(first), first)))
    await asyncio.gather(*futures)
    assert all(f.done() and f.exception() is None for f in futures)
    assert [e.seq for e in await store.read_events("job1")] == [e.seq for e in events]


async def _hold_the_writer(store: SqliteStore) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Keep the writer thread busy until the returned event is set, so that everything queued
    meanwhile is written in the writer's next transaction (one group commit). No read may be
    awaited meanwhile: reads wait for the writes queued before them."""
    gate, busy = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        busy.set()
        gate.wait(30)

    held = asyncio.ensure_future(store._submit(None, hold))
    await asyncio.to_thread(busy.wait, 30)
    return gate, held


async def test_sqlite_group_commit_writes_the_accepted_batches_of_a_group_only(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url, clock=Clock())
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        state1, batch1 = created("job1", "cp1")
        state2, batch2 = created("job2", "cp2")
        await store.commit(batch1)
        await store.commit(batch2)
        gate, held = await _hold_the_writer(store)
        before = store._transactions

        futures = [
            store.commit_soon(step(state1, "cp1", ready("job1", 2))),
            store.commit_soon(step(replay([submitted("job2")]), "cp1", ready("job2", 2))),
            store.commit_soon(step(state2, "cp2", ready("job2", 2, "add"))),
            store.commit_soon(created("job3", "cp1")[1]),
        ]
        gate.set()
        await held
        results = await asyncio.gather(*futures, return_exceptions=True)

        assert store._transactions == before + 2  # the hold, then the four in one
        assert [results[0], results[2], results[3]] == [None, None, None]
        assert isinstance(results[1], ClaimLost) and results[1].job_ids == ("job2",)
        assert [e.task_id for e in await store.read_events("job2")] == [None, "add"]
        assert [e.seq for e in await store.read_events("job1")] == [1, 2]
        claim = await store.read_claim("job3")
        assert claim is not None and claim.owner == "cp1"

        # A seq conflict in a group fails its own batch only, with nothing of it written.
        conflicting = step(replay(await store.read_events("job1")), "cp1", ready("job1", 2))
        gate, held = await _hold_the_writer(store)
        futures = [
            store.commit_soon(step(state2, "cp2", ready("job2", 3))),
            store.commit_soon(conflicting),
            store.commit_soon(step(state1, "cp1", ready("job1", 3))),
        ]
        gate.set()
        await held
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], LogConflict) and (results[1].seq == 2)
        assert [e.seq for e in await store.read_events("job1")] == [1, 2, 3]
        assert [e.seq for e in await store.read_events("job2")] == [1, 2, 3]
        assert_same_state(await store.load_job("job1"), replay(await store.read_events("job1")))
    finally:
        await store.close()


async def test_sqlite_a_full_disk_fails_the_batch_and_the_store_keeps_working(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        state = await add_job(store, "job1")

        # The database may not grow by a single page: SQLite reports SQLITE_FULL, as it does
        # when the disk is full.
        def fill(conn: sqlite3.Connection) -> None:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count={pages}")

        await store._submit(None, fill)
        big = [submitted(f"big{i}", goal="x" * 20_000) for i in range(20)]
        with pytest.raises(StoreUnavailable, match="cannot write: database or disk is full"):
            await store.commit(Batch(jobs=[replay([e]).to_row() for e in big], events=big))

        assert_same_state(await store.load_job("job1"), state)
        assert [j.job_id for j in await store.list_jobs()] == ["job1"]
        assert await store.load_job("big0") is None
        await store._submit(None, lambda conn: conn.execute("PRAGMA max_page_count=1073741823"))
        await store.commit(Batch(jobs=[replay(big[:1]).to_row()], events=big[:1]))
        assert await store.load_job("big0") is not None
    finally:
        await store.close()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


async def test_sqlite_a_version_1_file_keeps_its_claims(tmp_path: Path) -> None:
    from planweave.store import _rows, _schema
    from planweave.store._sqlite_sql import compile_sql

    path = tmp_path / "v1.db"
    row = (*_rows.encode_job(replay([submitted("job1")]).to_row()), "cp1", 150.0)
    with sqlite3.connect(path) as conn:
        _schema.MIGRATIONS[0](lambda stmt: conn.execute(compile_sql(stmt).text))
        conn.execute(f"INSERT INTO {TABLE_META} VALUES ('schema_version', '1')")
        conn.execute(f"INSERT INTO pw_jobs VALUES ({', '.join('?' * len(row))})", row)
    conn.close()

    store = open_store(f"sqlite:///{path}", clock=Clock(100.0))
    await store.open()
    try:
        assert await store.read_claim("job1") == Claim("job1", "cp1", "", 0, 150.0, 100.0)
        assert await store.claim_job("job1", "cp2", lease_s=10) is False
        loaded = await store.load_job("job1")
        assert loaded is not None and loaded.goal == "a goal"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(pw_jobs)")]
        version = conn.execute(f"SELECT value FROM {TABLE_META}").fetchone()
    conn.close()
    assert "owner" not in columns and "lease_until" not in columns
    assert version == (str(STORE_SCHEMA_VERSION),)


async def test_sqlite_the_wal_stays_bounded_under_a_steady_stream_of_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pw.db"
    wal = tmp_path / "pw.db-wal"
    store = open_store(f"sqlite:///{path}", wal_max_pages=256)
    await store.open()
    first: list[Event] = [submitted("job1")]
    state = replay(first)
    await store.commit(batch_for(state, first))
    page_size = 4096
    peak = 0
    try:
        # Every commit waits for the one before: the writer never pauses, and a reader polls
        # the log as a follower in another process would.
        for seq in range(2, 1500):
            event = LlmCalled(job_id="job1", task_id="fetch", seq=seq, model="m", role="r",
                              tokens_in=1, reply="x" * 3000)  # fmt: skip
            apply(state, event)
            await store.commit(Batch(jobs=[state.to_row()], events=[event]))
            if seq % 10 == 0:
                await store.read_events("job1", after_seq=seq - 5)
            peak = max(peak, wal.stat().st_size // page_size)
    finally:
        await store.close()
    # Without checkpoints that complete, the WAL would hold every page the run wrote (~4,500).
    assert peak < 4 * 256, f"the WAL grew to {peak} pages"
