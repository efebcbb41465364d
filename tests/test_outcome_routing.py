"""Reports reach the control plane that owns their job, however many planes share one bus.

Two engines (two control planes, as two ``serve`` processes would be) share one bus and one
SQLite file; workers of either may run either plane's work items, and each outcome must come back
to the plane that dispatched it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from planweave import Engine, JobOptions, Plan, TaskSpec, tool
from planweave.bus import MemoryBus
from planweave.control.plane import ControlPlane, PlaneSettings
from planweave.messages import Outcome, WorkItem
from planweave.store import open_store
from planweave.workers.pool import Reporter, WorkerPool


@tool
async def step(n: int) -> int:
    """Return ``n`` after a pause, so both planes have work out at once."""
    await asyncio.sleep(0.002)
    return n


def chain(prefix: str, length: int) -> Plan:
    tasks = [TaskSpec(id=f"{prefix}0", kind="tool", tool="step", args={"n": 0})]
    for n in range(1, length):
        tasks.append(
            TaskSpec(
                id=f"{prefix}{n}",
                kind="tool",
                tool="step",
                args={"n": n},
                depends_on=(f"{prefix}{n - 1}",),
            )
        )
    return Plan(tasks=tuple(tasks))


async def test_two_planes_on_one_bus_each_get_only_their_own_outcomes(tmp_path: Path) -> None:
    bus = MemoryBus()
    store_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engines = [
        Engine(
            store=store_url,
            bus=bus,
            model="scripted",
            tools=[step],
            builtins=False,
            data_dir=tmp_path / name,
        )
        for name in ("a", "b")
    ]
    for engine in engines:
        await engine.start()
    try:
        job_ids = [
            await engine.submit(plan=chain(prefix, 30))
            for engine, prefix in zip(engines, "xy", strict=True)
        ]
        results = await asyncio.wait_for(
            asyncio.gather(
                *(engine.wait(job) for engine, job in zip(engines, job_ids, strict=True))
            ),
            30.0,
        )
        assert [r.status for r in results] == ["succeeded", "succeeded"]
        assert [r.result for r in results] == [29, 29]
        # Neither plane was handed (and dropped) a report of the other's job.
        assert [e.plane.rejected_reports for e in engines] == [0, 0]
        assert engines[0].plane.reply_queue != engines[1].plane.reply_queue
    finally:
        for engine in engines:
            await engine.close()


async def test_a_job_taken_over_gets_its_reports_on_the_new_owners_queue(tmp_path: Path) -> None:
    """After a takeover, new attempts report to the new owner; the old owner's late reports go
    to the old owner's queue, where nobody drives the job any more."""
    bus = MemoryBus()
    await bus.open()
    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.open()
    release = asyncio.Event()
    running = asyncio.Event()
    sent_to: list[tuple[int, str]] = []

    async def handler(item: WorkItem, report: Reporter) -> Outcome:
        sent_to.append((item.attempt, item.reply_to))
        running.set()
        if item.attempt == 1:
            await release.wait()  # the first owner's attempt outlives its owner's interest
        return Outcome(
            job_id=item.job_id,
            task_id=item.task_id,
            attempt=item.attempt,
            status="succeeded",
            result=item.attempt,
        )

    pool = WorkerPool(bus=bus, kind="tool", handler=handler, concurrency=4)
    await pool.start()
    settings = PlaneSettings(workspace_root=tmp_path / "ws")
    first = ControlPlane(store=store, bus=bus, settings=settings, owner="first")
    second = ControlPlane(store=store, bus=bus, settings=settings, owner="second")
    await first.start()
    await second.start()
    try:
        job_id = await first.submit(
            goal="g",
            plan=(TaskSpec(id="t", kind="tool", tool="anything"),),
            options=JobOptions(),
        )
        await asyncio.wait_for(running.wait(), 10.0)
        await first.stop()  # releases its claim: the job may be taken over
        await second.adopt(job_id)
        state = await asyncio.wait_for(second.wait(job_id), 10.0)
        assert state.status == "succeeded"
        assert state.tasks["t"].result == 2
        assert sent_to == [(1, first.reply_queue), (2, second.reply_queue)]
        # The old attempt's late outcome goes to the old owner's queue, not to the new owner.
        release.set()
        stale = await bus.receive(first.reply_queue, "test", max_items=10, timeout_s=5.0)
        assert [(type(d.message).__name__, d.message.attempt) for d in stale] == [("Outcome", 1)]
        assert second.rejected_reports == 0
    finally:
        release.set()
        await second.stop()
        await pool.stop()
        await store.close()
        await bus.close()
