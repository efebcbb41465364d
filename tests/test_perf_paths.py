"""The fast paths of the task hot path behave as the slow ones did: deadlines, tool arguments,
lazily built reports, and the SQLite writer's coalescing of repeated rows."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from planweave import Engine, Plan, TaskSpec, tool
from planweave._deadline import deadline
from planweave.bus import MemoryBus
from planweave.constants import CONTROL_TOPIC, OUTCOME_QUEUE_PREFIX
from planweave.errors import ToolArgumentsInvalid, ToolTimeout
from planweave.events import JobCancelled, JobSubmitted, TaskReady
from planweave.messages import Outcome, WorkItem
from planweave.plan import TaskSpec as Spec
from planweave.state import apply
from planweave.store import Batch, open_store
from planweave.tools import ToolContext
from planweave.workers.pool import Reporter, WorkerPool

# --- tools ----------------------------------------------------------------------------------------


@tool
async def nothing() -> str:
    """Take no arguments."""
    return "done"


@tool(timeout_s=0.05)
async def dawdle() -> str:
    """Take too long."""
    await asyncio.sleep(5)
    return "late"


async def test_a_tool_without_parameters_runs_on_an_empty_object_and_refuses_anything_else(
    tmp_path: Path,
) -> None:
    ctx = ToolContext(workspace=tmp_path)
    assert await nothing.call({}, ctx) == "done"
    with pytest.raises(ToolArgumentsInvalid, match="unexpected argument"):
        await nothing.call({"x": 1}, ctx)


async def test_a_tool_called_directly_still_times_out(tmp_path: Path) -> None:
    with pytest.raises(ToolTimeout, match=r"0\.05 s"):
        await dawdle.call({}, ToolContext(workspace=tmp_path))


async def test_a_task_timeout_shorter_than_the_tool_fails_the_attempt(tmp_path: Path) -> None:
    @tool
    async def sleepy() -> str:
        """Sleep for a long time."""
        await asyncio.sleep(5)
        return "late"

    plan = Plan(tasks=(TaskSpec(id="s", kind="tool", tool="sleepy", timeout_s=0.05),))
    async with Engine(store="memory://", bus="memory://", tools=[sleepy]) as engine:
        started = time.monotonic()
        result = await engine.run(plan=plan, max_attempts=1)
    assert result.status == "failed"
    assert "longer than its timeout of 0.05 s" in (result.error or "")
    assert time.monotonic() - started < 3.0


async def test_a_tool_that_exceeds_its_own_timeout_in_a_job_fails_as_a_tool_timeout() -> None:
    plan = Plan(tasks=(TaskSpec(id="d", kind="tool", tool="dawdle"),))
    async with Engine(store="memory://", bus="memory://", tools=[dawdle]) as engine:
        result = await engine.run(plan=plan, max_attempts=1)
    assert result.status == "failed"
    assert "did not finish within 0.05 s" in (result.error or "")


# --- the SQLite writer ----------------------------------------------------------------------------


async def test_rows_written_several_times_in_one_group_keep_their_last_version(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'rows.db'}")
    await store.open()
    try:
        submitted = JobSubmitted(
            job_id="j", seq=1, goal="g", plan=(Spec(id="a", goal="a"), Spec(id="b", goal="b"))
        )
        state = apply(None, submitted)
        futures = [
            store.commit_soon(
                Batch(
                    jobs=[state.to_row()],
                    tasks=[t.to_row("j") for t in state.tasks.values()],
                    events=[submitted],
                )
            )
        ]
        readies = []
        for seq, task_id in ((2, "a"), (3, "b")):
            ready = TaskReady(job_id="j", task_id=task_id, seq=seq)
            apply(state, ready)
            readies.append(ready)
            futures.append(
                store.commit_soon(
                    Batch(
                        jobs=[state.to_row()],
                        tasks=[state.tasks[task_id].to_row("j")],
                        events=[ready],
                    )
                )
            )
        await asyncio.gather(*futures)
        loaded = await store.load_job("j")
        events = await store.read_events("j")
    finally:
        await store.close()
    assert loaded is not None
    assert loaded.seq == 3
    assert {t.id: t.status for t in loaded.tasks.values()} == {"a": "ready", "b": "ready"}
    assert events == [submitted, *readies]  # each event stored as it was, none coalesced


# --- the memory bus's batch calls -----------------------------------------------------------------


async def test_ack_many_acknowledges_current_deliveries_and_ignores_stale_ones() -> None:
    bus = MemoryBus()
    await bus.open()
    try:
        for n in range(3):
            await bus.enqueue(
                "q", Outcome(job_id="j", task_id=f"t{n}", attempt=1, status="succeeded")
            )
        first = await bus.receive("q", "c1", max_items=3, lease_s=0.05)
        await asyncio.sleep(0.1)  # the leases run out: these deliveries are now stale
        again = await bus.receive("q", "c2", max_items=3, timeout_s=1.0)
        await bus.ack_many(first)
        assert await bus.receive("q", "c3", timeout_s=0) == []
        await bus.ack_many(again)
        await asyncio.sleep(0.1)
        assert await bus.receive("q", "c3", timeout_s=0.2) == []  # acknowledged for good
    finally:
        await bus.close()
    assert [d.message.task_id for d in again] == ["t0", "t1", "t2"]


async def test_publish_many_delivers_in_order_to_the_topic_only() -> None:
    bus = MemoryBus()
    await bus.open()
    events = [TaskReady(job_id="j", task_id=f"t{n}", seq=n + 1) for n in range(3)]
    async with bus.subscribe("events:j") as sub, bus.subscribe("events:k") as other:
        await bus.publish_many("events:j", events)
        await bus.publish_many("events:nobody", events)
        got = [await sub.__anext__() for _ in events]
        await bus.close()
        assert [e async for e in other] == []
    assert got == events


# --- worker pool runners --------------------------------------------------------------------------


REPLIES = OUTCOME_QUEUE_PREFIX + "test"


def _item(job_id: str, task_id: str) -> WorkItem:
    return WorkItem(
        job_id=job_id,
        task_id=task_id,
        attempt=1,
        worker="tool",
        reply_to=REPLIES,
        spec=Spec(id=task_id, kind="tool", tool="t"),
    )


def _done(item: WorkItem) -> Outcome:
    return Outcome(
        job_id=item.job_id, task_id=item.task_id, attempt=item.attempt, status="completed"
    )


@contextlib.asynccontextmanager
async def _open_bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus()
    await bus.open()
    try:
        yield bus
    finally:
        await bus.close()


async def _outcomes(bus: MemoryBus, count: int) -> list[Outcome]:
    got: list[Outcome] = []
    while len(got) < count:
        for delivery in await bus.receive(REPLIES, "test", max_items=100, timeout_s=5):
            await bus.ack(delivery)
            if isinstance(delivery.message, Outcome):
                got.append(delivery.message)
    return got


async def test_a_pool_runs_no_more_items_at_once_than_its_concurrency() -> None:
    running = 0
    most = 0

    async def handler(item: WorkItem, report: Reporter) -> Outcome:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return _done(item)

    async with _open_bus() as bus:
        pool = WorkerPool(bus=bus, kind="tool", handler=handler, concurrency=3)
        await pool.start()
        for i in range(20):
            await bus.enqueue(pool.queue, _item("j", f"t{i}"))
        outcomes = await asyncio.wait_for(_outcomes(bus, 20), 5)
        await pool.stop(grace_s=1)
    assert sorted(o.task_id for o in outcomes) == sorted(f"t{i}" for i in range(20))
    assert most == 3


async def test_an_item_of_an_ended_job_is_dropped_and_its_worker_keeps_working() -> None:
    started = asyncio.Event()
    timed_out: list[str] = []

    async def handler(item: WorkItem, report: Reporter) -> Outcome:
        if item.job_id == "gone":
            started.set()
            await asyncio.sleep(30)
        else:
            try:
                with deadline(0.01):  # on the worker whose item was stopped
                    await asyncio.sleep(1)
            except TimeoutError:
                timed_out.append(item.task_id)
        return _done(item)

    async with _open_bus() as bus:
        pool = WorkerPool(bus=bus, kind="tool", handler=handler, concurrency=1)
        await pool.start()
        await bus.enqueue(pool.queue, _item("gone", "slow"))
        await asyncio.wait_for(started.wait(), 5)
        await bus.publish(CONTROL_TOPIC, JobCancelled(job_id="gone"))
        await bus.enqueue(pool.queue, _item("next", "quick"))
        outcomes = await asyncio.wait_for(_outcomes(bus, 1), 5)
        assert [o.task_id for o in outcomes] == ["quick"]
        assert timed_out == ["quick"]  # a timeout, not taken for the earlier cancellation
        await pool.stop(grace_s=1)
        # Acked, not given back: nobody runs it again.
        assert await bus.depth(pool.queue) == 0
        assert await bus.receive(pool.queue, "other", timeout_s=0) == []


async def test_stopping_a_pool_lets_quick_items_finish_and_gives_slow_ones_back() -> None:
    async def handler(item: WorkItem, report: Reporter) -> Outcome:
        await asyncio.sleep(0.05 if item.task_id == "quick" else 30)
        return _done(item)

    async with _open_bus() as bus:
        pool = WorkerPool(bus=bus, kind="tool", handler=handler, concurrency=4)
        await pool.start()
        await bus.enqueue(pool.queue, _item("j", "quick"))
        await bus.enqueue(pool.queue, _item("j", "slow"))
        await asyncio.sleep(0.02)
        await pool.stop(grace_s=0.3)
        outcomes = await _outcomes(bus, 1)
        assert [o.task_id for o in outcomes] == ["quick"]
        back = await bus.receive(pool.queue, "other", timeout_s=0)
        assert [d.message.task_id for d in back if isinstance(d.message, WorkItem)] == ["slow"]


async def test_a_worker_whose_item_ignored_a_cancellation_can_still_be_cancelled_later() -> None:
    running: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}
    stopped = asyncio.Event()

    async def handler(item: WorkItem, report: Reporter) -> Outcome:
        running[item.job_id].set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if item.job_id == "a":
                return _done(item)  # finishes anyway
            stopped.set()
            raise
        return _done(item)

    async with _open_bus() as bus:
        pool = WorkerPool(bus=bus, kind="tool", handler=handler, concurrency=1)
        await pool.start()
        await bus.enqueue(pool.queue, _item("a", "stubborn"))
        await asyncio.wait_for(running["a"].wait(), 5)
        await bus.publish(CONTROL_TOPIC, JobCancelled(job_id="a"))
        assert [o.task_id for o in await asyncio.wait_for(_outcomes(bus, 1), 5)] == ["stubborn"]
        await bus.enqueue(pool.queue, _item("b", "next"))
        await asyncio.wait_for(running["b"].wait(), 5)
        await bus.publish(CONTROL_TOPIC, JobCancelled(job_id="b"))
        await asyncio.wait_for(stopped.wait(), 5)
        await pool.stop(grace_s=1)
