"""What the control plane does around its writes: nothing of a new job runs before the job is
durable, a failed write stops the jobs it concerned, and every way of stopping gives claims back.

The store is a real SQLite file; where a test needs a write to wait or to fail, the store is a
``SqliteStore`` whose ``commit_soon`` holds back or fails batches on the test's say-so.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec, tool
from planweave.errors import StoreUnavailable
from planweave.store.base import Batch
from planweave.store.sqlite import SqliteStore


class GatedStore(SqliteStore):
    """A SQLite store whose writes can be held back (``gate``) or made to fail (``failing``)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if self.failing:
            failed: asyncio.Future[None] = loop.create_future()
            failed.set_exception(StoreUnavailable("database or disk is full"))
            return failed
        if self.gate.is_set():
            return super().commit_soon(batch)
        held: asyncio.Future[None] = loop.create_future()

        async def later() -> None:
            await self.gate.wait()
            inner = super(GatedStore, self).commit_soon(batch)
            try:
                await inner
            except Exception as exc:
                held.set_exception(exc)
            else:
                held.set_result(None)

        self._later = loop.create_task(later())  # referenced until the next held write
        return held


def engine_on(store: SqliteStore | str, tmp_path: Path, **kwargs: Any) -> Engine:
    return Engine(store=store, model="scripted", data_dir=tmp_path / "data", **kwargs)


async def test_no_work_of_a_new_job_runs_before_its_submission_is_durable(tmp_path: Path) -> None:
    ran: list[str] = []

    @tool
    def record(name: str) -> str:
        """Note that it ran."""
        ran.append(name)
        return name

    store = GatedStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="record", args={"name": "a"}),))
    async with engine_on(store, tmp_path, tools=[record]) as engine:
        store.gate.clear()
        submitting = asyncio.create_task(engine.submit(plan=plan))
        for _ in range(50):  # plenty of turns of the loop, and time, for work to go out
            await asyncio.sleep(0.01)
        assert ran == [], "a task ran before its job was in the store"
        assert not submitting.done()
        store.gate.set()
        job_id = await asyncio.wait_for(submitting, 10)
        result = await asyncio.wait_for(engine.wait(job_id), 10)
    assert result.status == "succeeded"
    assert ran == ["a"]


async def test_a_failed_write_stops_the_job_and_releases_its_claim(tmp_path: Path) -> None:
    started: dict[str, asyncio.Event] = {n: asyncio.Event() for n in ("long", "next")}
    ended: list[str] = []
    go = asyncio.Event()

    @tool
    async def wait_go(name: str) -> str:
        """Start, wait for the go (a long time for ``long``), end."""
        started[name].set()
        await go.wait()
        await asyncio.sleep(30 if name == "long" else 0.5)
        ended.append(name)
        return name

    @tool
    async def quick(name: str) -> str:
        """End once the go is given."""
        await go.wait()
        return name

    plan = Plan(
        tasks=(
            TaskSpec(id="long", kind="tool", tool="wait_go", args={"name": "long"}),
            TaskSpec(id="quick", kind="tool", tool="quick", args={"name": "q"}),
            TaskSpec(
                id="next",
                kind="tool",
                tool="wait_go",
                args={"name": "next"},
                depends_on=("quick",),
            ),
        )
    )
    store = GatedStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    async with engine_on(store, tmp_path, tools=[wait_go, quick]) as engine:
        job_id = await engine.submit(plan=plan, max_attempts=1)
        await asyncio.wait_for(started["long"].wait(), 10)
        store.failing = True  # the disk is full from now on
        go.set()  # quick ends: recording it fails
        with pytest.raises(StoreUnavailable, match="disk is full"):
            await asyncio.wait_for(engine.wait(job_id), 10)
        store.failing = False
        await asyncio.sleep(1.0)  # long enough for anything still running to end
        assert ended == [], "work of the stopped job ran on"
        assert engine.plane.job(job_id) is None
        assert await engine.claim(job_id) is None  # given back: another process may resume
        assert await engine.stalled(job_id)


async def test_a_job_that_fails_at_once_gives_its_claim_back(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan = Plan(
        tasks=(TaskSpec(id="a", kind="tool", tool="calculator", args={"expression": "1/0"}),)
    )
    async with engine_on(store, tmp_path) as engine:
        result = await engine.run(plan=plan, max_attempts=1)
        assert result.status == "failed"
    async with engine_on(store, tmp_path) as other:  # another process's engine
        assert await other.claim(result.job_id) is None
        await other.retry(result.job_id)  # not refused as held by the first one
        assert (await other.wait(result.job_id)).status == "failed"


async def test_a_job_taken_over_is_dropped_and_the_others_of_its_batch_carry_on(
    tmp_path: Path,
) -> None:
    from planweave.errors import ClaimLost
    from planweave.state import replay

    go = asyncio.Event()
    waiting = 0

    @tool
    async def gate(name: str) -> str:
        """Wait for the go, so both jobs' outcomes arrive together."""
        nonlocal waiting
        waiting += 1
        await go.wait()
        return name

    def plan(name: str) -> Plan:
        return Plan(
            tasks=(
                TaskSpec(id="a", kind="tool", tool="gate", args={"name": name}),
                TaskSpec(id="b", kind="tool", tool="gate", args={"name": name}, depends_on=("a",)),
            )
        )

    store = SqliteStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    async with engine_on(store, tmp_path, tools=[gate]) as engine:
        taken = await engine.submit(plan=plan("taken"))
        kept = await engine.submit(plan=plan("kept"))
        for _ in range(500):
            if waiting == 2:
                break
            await asyncio.sleep(0.01)
        assert waiting == 2
        # Another process takes the first job over.
        assert await store.claim_job(taken, "another-plane", lease_s=30.0, force=True)
        before = len(await engine.events(taken))
        go.set()
        with pytest.raises(ClaimLost):
            await asyncio.wait_for(engine.wait(taken), 10)
        result = await asyncio.wait_for(engine.wait(kept), 10)
        assert result.status == "succeeded"
        assert len(await engine.events(taken)) == before  # nothing more written for it
        claim = await engine.claim(taken)
        assert claim is not None and claim.owner == "another-plane"  # not released by us
    async with engine_on(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path) as reader:
        events = await reader.events(kept)
        stored = await reader.store.load_job(kept)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert stored is not None
    rebuilt = replay(events)
    assert rebuilt.to_row() == stored.to_row()
    assert {k: t.to_row(kept) for k, t in rebuilt.tasks.items()} == {
        k: t.to_row(kept) for k, t in stored.tasks.items()
    }


class HeldFailures(SqliteStore):
    """A SQLite store whose writes, once ``holding``, wait and then fail as a lost connection
    would: ``fail_first`` fails the oldest held write, ``fail_all`` the rest. Reading a job's
    commands fails every held write first (and gives the plane time to hear of it), which is
    where a write that failed late used to meet a job being resumed."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.holding = False
        self.held: list[asyncio.Future[None]] = []

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        if not self.holding:
            return super().commit_soon(batch)
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append(held)
        return held

    def fail_first(self) -> None:
        self.held.pop(0).set_exception(StoreUnavailable("connection lost"))

    def fail_all(self) -> None:
        while self.held:
            self.fail_first()

    async def read_commands(self, job_ids: list[str]) -> list[Any]:
        if self.held:
            self.fail_all()
            await asyncio.sleep(0.1)
        return await super().read_commands(job_ids)


async def test_a_job_resumed_while_an_earlier_write_of_it_still_fails_is_written_whole(
    tmp_path: Path,
) -> None:
    from planweave.state import replay

    finish = {n: asyncio.Event() for n in ("a1", "a2")}
    running: set[str] = set()

    @tool
    async def step(name: str) -> str:
        """Run until told to finish."""
        running.add(name)
        await finish[name].wait()
        return name

    plan = Plan(
        tasks=(
            TaskSpec(id="a1", kind="tool", tool="step", args={"name": "a1"}),
            TaskSpec(id="a2", kind="tool", tool="step", args={"name": "a2"}),
            TaskSpec(id="b", kind="tool", tool="step", args={"name": "a1"}, depends_on=("a1",)),
        )
    )
    store = HeldFailures(f"sqlite:///{tmp_path / 'jobs.db'}")
    async with engine_on(store, tmp_path, tools=[step]) as engine:
        job_id = await engine.submit(plan=plan)
        for _ in range(500):
            if running == {"a1", "a2"}:
                break
            await asyncio.sleep(0.01)
        assert running == {"a1", "a2"}
        store.holding = True  # the database goes away: the next writes hang, then fail
        for name in ("a1", "a2"):  # two batches of the job in flight
            count = len(store.held)
            finish[name].set()
            for _ in range(500):
                if len(store.held) > count:
                    break
                await asyncio.sleep(0.01)
            assert len(store.held) > count
        store.fail_first()  # the first failure stops the job; the second is still to come
        for _ in range(500):
            if engine.plane.job(job_id) is None:
                break
            await asyncio.sleep(0.01)
        assert engine.plane.job(job_id) is None
        store.holding = False  # the database is back
        resuming = asyncio.create_task(engine.resume(job_id))
        await asyncio.sleep(0.3)
        store.fail_all()  # the late failure of the earlier run's write
        result = await asyncio.wait_for(resuming, 10)
        assert result.status == "succeeded", result.error
    async with engine_on(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path) as reader:
        events = await reader.events(job_id)
        stored = await reader.store.load_job(job_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert stored is not None and stored.seq == events[-1].seq
    rebuilt = replay(events)
    assert rebuilt.to_row() == stored.to_row()
    assert {k: t.to_row(job_id) for k, t in rebuilt.tasks.items()} == {
        k: t.to_row(job_id) for k, t in stored.tasks.items()
    }


async def test_a_job_shown_failed_can_be_retried_at_once_while_its_end_is_being_written(
    tmp_path: Path,
) -> None:
    attempts: list[int] = []
    go = asyncio.Event()

    @tool
    async def flaky() -> str:
        """Fail the first time, once told to go."""
        await go.wait()
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first time")
        return "fixed"

    store = GatedStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="flaky", max_attempts=1),))
    async with engine_on(store, tmp_path, tools=[flaky]) as engine:
        job_id = await engine.submit(plan=plan)
        store.gate.clear()  # the job's end waits to be written
        go.set()
        for _ in range(500):
            if (await engine.get(job_id)).status == "failed":
                break
            await asyncio.sleep(0.01)
        assert (await engine.get(job_id)).status == "failed"
        retrying = asyncio.create_task(engine.retry(job_id))
        await asyncio.sleep(0.2)
        store.gate.set()
        result = await asyncio.wait_for(engine.wait(await asyncio.wait_for(retrying, 10)), 10)
    assert result.status == "succeeded" and result.result == "fixed"
    async with engine_on(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path) as reader:
        claim = await reader.claim(job_id)
        events = await reader.events(job_id)
    assert claim is None  # released once the retried run ended
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
