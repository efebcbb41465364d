"""The store contract, run against every store."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import planweave.store
from planweave.errors import (
    ClaimLost,
    ConfigError,
    JobDataInvalid,
    LogConflict,
    StoreUnavailable,
    UnknownBackend,
)
from planweave.events import (
    Event,
    JobCompleted,
    JobFailed,
    JobOptions,
    LlmCalled,
    TaskAssigned,
    TaskCompleted,
    TaskReady,
    ToolCalled,
)
from planweave.state import JobState, apply, replay
from planweave.store import ArtifactRow, Batch, MemoryStore, Store, open_store
from planweave.store.base import Claim, StepRow, TenantUsage
from planweave.store.sqlite import SqliteStore
from store_helpers import (
    PLAN,
    Clock,
    add_job,
    assert_same_state,
    batch_for,
    clock_of,
    created,
    progress,
    ready,
    reopened,
    step,
    submitted,
)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/data/pw.db"
    else:
        url = "memory://"
    opened = open_store(url, clock=Clock())
    await opened.open()
    yield opened
    await opened.close()


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


async def test_waiting_for_commands_says_to_read_one_left(store: Store) -> None:
    await add_job(store, "j1")
    first = await store.wait_commands(0.05)  # where the store listens, listening starts
    assert first is True  # nothing heard before: read
    if store.announces_commands:
        assert await store.wait_commands(0.05) is False  # nothing left since
    waiting = asyncio.create_task(store.wait_commands(30 if store.announces_commands else 0.05))
    await store.add_command("j1", "cancel", {})
    assert await asyncio.wait_for(waiting, 10) is True
    assert [c.name for c in await store.read_commands(["j1"])] == ["cancel"]


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


async def test_a_job_whose_data_cannot_be_encoded_is_named_and_its_later_batches_refused(
    store: Store,
) -> None:
    state1, batch1 = created("job1", "cp1")
    state2, batch2 = created("job2", "cp1")
    await store.commit(batch1)
    await store.commit(batch2)
    half = ToolCalled(
        job_id="job1", task_id="fetch", seq=2, name="t", outcome="ok", result="\ud83d"
    )
    shared = step(state1, "cp1", half)
    shared.events.append(ready("job2", 2))
    shared.jobs.append(state2.to_row())
    with pytest.raises(JobDataInvalid) as caught:
        await store.commit(shared)
    assert caught.value.job_ids == ("job1",)
    assert "ToolCalled" in caught.value.reasons["job1"]
    assert [e.seq for e in await store.read_events("job2")] == [1], "nothing was written"

    # A later batch of job1 would leave a gap in its log: refused too, while job2 writes.
    with pytest.raises(JobDataInvalid):
        await store.commit(step(state1, "cp1", ready("job1", 3)))
    await store.commit(step(state2, "cp1", ready("job2", 2)))
    # Carried on from its last stored event, job1 is accepted again.
    again = replay([submitted("job1")])
    await store.commit(step(again, "cp1", JobFailed(job_id="job1", seq=2, reason="bad data")))
    assert [e.seq for e in await store.read_events("job1")] == [1, 2]
    assert [e.seq for e in await store.read_events("job2")] == [1, 2]


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


async def _tenant_job(
    store: Store, job_id: str, tenant: str, *, at: float, finish: bool = False
) -> JobState:
    """A job of ``tenant`` with some progress ($0.25 spent); ``finish`` ends it."""
    first = submitted(job_id, at=at).model_copy(update={"tenant": tenant})
    events: list[Event] = [first, *progress(job_id, at=at)]
    if finish:
        events.append(JobCompleted(job_id=job_id, seq=8, at=at + 7, result="done"))
    state = replay(events)
    await store.commit(batch_for(state, events))
    return state


async def test_tenant_usage_counts_active_jobs_stored_bytes_and_recent_spend(
    store: Store,
) -> None:
    old = await _tenant_job(store, "a0", "acme", at=0.0, finish=True)
    a1 = await _tenant_job(store, "a1", "acme", at=1000.0)
    # a1 runs on: a model call at 1800 costs another dollar.
    late = LlmCalled(job_id="a1", task_id="add", seq=8, at=1800.0, model="m", role="executor",
                     cost_usd=1.0, reply="more")  # fmt: skip
    apply(a1, late)
    await store.commit(batch_for(a1, [late]))
    a2 = await _tenant_job(store, "a2", "acme", at=2000.0, finish=True)
    b1 = await _tenant_job(store, "b1", "beta", at=1000.0)
    files = [
        ArtifactRow("a2", "result.md", "/ws/result.md", 500, "text/markdown", 2007.0),
        ArtifactRow("a2", "data.csv", "/ws/data.csv", 70, "text/csv", 2007.0),
    ]
    await store.commit(Batch(artifacts=files))
    assert a2.data_bytes > b1.data_bytes > 0  # a2's JobCompleted counts too

    # a0 ended at 7, before a window from 1500; a1 (created before it) ran on inside it.
    assert await store.tenant_usage("acme", since=1500.0) == TenantUsage(
        active_jobs=1,
        stored_bytes=old.data_bytes + a1.data_bytes + a2.data_bytes + 570,
        spent_usd=pytest.approx(1.5),
    )
    assert (await store.tenant_usage("acme", since=0.0)).spent_usd == pytest.approx(1.75)
    beta = await store.tenant_usage("beta", since=0.0)
    assert (beta.active_jobs, beta.stored_bytes) == (1, b1.data_bytes)
    assert await store.tenant_usage("nobody", since=0.0) == TenantUsage()

    assert await store.delete_job("a2") is True
    assert await store.delete_job("a0") is True
    assert await store.tenant_usage("acme", since=0.0) == TenantUsage(
        active_jobs=1, stored_bytes=a1.data_bytes, spent_usd=1.25
    )


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
    with pytest.raises(UnknownBackend, match=r"memory://, postgresql://, sqlite://$"):
        open_store("mysql://localhost/db")
    with pytest.raises(ConfigError, match="memory://"):
        open_store("sqlite:///:memory:")
    with pytest.raises(ConfigError, match="synchronous"):
        open_store(f"sqlite:///{tmp_path}/x.db", synchronous="SOMETIMES")
    with pytest.raises(ConfigError, match="bad option"):
        open_store("memory://", synchronous="FULL")


def test_the_package_exports_what_it_lists() -> None:
    assert sorted(planweave.store.__all__) == [
        "ArtifactRow", "Batch", "Command", "JobSummary", "MemoryStore", "Store", "TenantUsage",
        "open_store",
    ]  # fmt: skip
    for name in planweave.store.__all__:
        assert getattr(planweave.store, name) is not None


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


# --- the step journal -------------------------------------------------------------------------


def _step(task_id: str, step: str, result: object, *, attempt: int = 1) -> StepRow:
    return StepRow("job1", task_id, step, attempt, "tool", f"fp-{step}", result, 10.0)


async def test_journal_steps_are_upserted_read_by_task_and_cleared_per_task(store: Store) -> None:
    await add_job(store, "job1")
    await add_job(store, "job2")
    first = _step("a", "0", {"text": "héllo", "n": [1, 2]})
    nested = _step("a", "0.0", None)
    other = _step("b", "0", "x")
    elsewhere = StepRow("job2", "a", "0", 1, "model", "fp", {"content": "hi"}, 11.0)
    await store.commit(Batch(steps=[nested, other, first, elsewhere]))

    assert await store.read_steps("job1") == [first, nested, other]
    assert await store.read_steps("job2") == [elsewhere]
    assert await store.read_steps("ghost") == []

    again = _step("a", "0", "replaced", attempt=2)
    await store.commit(Batch(steps=[again]))
    assert await store.read_steps("job1") == [again, nested, other]

    # Cleared before the batch's own steps are written.
    later = _step("a", "1", 7, attempt=3)
    await store.commit(Batch(steps_cleared=[("job1", "a")], steps=[later]))
    assert await store.read_steps("job1") == [later, other]
    assert await store.read_steps("job2") == [elsewhere]


async def test_journal_steps_are_fenced_by_the_claim_and_deleted_with_their_job(
    store: Store,
) -> None:
    await add_job(store, "job1", finish="succeeded")
    assert await store.claim_job("job1", "cp1", lease_s=10)
    with pytest.raises(ClaimLost):
        await store.commit(Batch(steps=[_step("a", "0", 1)], owner="cp2"))
    with pytest.raises(ClaimLost):
        await store.commit(Batch(steps_cleared=[("job1", "a")], owner="cp2"))
    assert await store.read_steps("job1") == []
    await store.commit(Batch(steps=[_step("a", "0", 1)], owner="cp1"))
    assert await store.read_steps("job1") == [_step("a", "0", 1)]

    assert await store.delete_job("job1") is True
    assert await store.read_steps("job1") == []
