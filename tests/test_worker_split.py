"""A control plane without workers and worker pools without a control plane, on one bus.

This is how a cluster splits the work (``planweave serve`` drives jobs, ``planweave worker``
runs them); here both halves share one in-process bus, so the split itself is tested without a
network. The cross-process version, on Redis, is in the Redis tests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from planweave import Engine, Plan, TaskSpec, tool
from planweave.bus import MemoryBus
from planweave.cli import app
from planweave.errors import UsageError
from planweave.llm import ScriptedModel

PLAN = Plan(
    tasks=(
        TaskSpec(id="a", kind="tool", tool="shout", args={"text": "a"}),
        TaskSpec(id="b", kind="tool", tool="shout", args={"text": "b"}, depends_on=("a",)),
    )
)


@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


async def test_a_plane_without_workers_finishes_a_job_on_a_worker_engine(tmp_path: Path) -> None:
    bus = MemoryBus()
    plane = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        tools=[shout],
        run_workers=False,
    )
    workers = Engine(
        store="memory://",
        bus=bus,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        tools=[shout],
        run_plane=False,
        worker_kinds=["tool"],
    )
    async with plane, workers:
        assert [pool.kind for pool in workers._pools] == ["tool"]
        result = await asyncio.wait_for(plane.run(plan=PLAN), 30)
        stats = await bus.stats("pw:work:tool")
    assert result.ok, result.error
    assert result.result == "B"
    assert (stats.depth, stats.pending, stats.dead_letters) == (0, 0, 0)
    # The worker engine never opened or wrote its store.
    assert await workers.store.list_jobs() == []


async def test_a_worker_engine_refuses_to_drive_jobs(tmp_path: Path) -> None:
    engine = Engine(bus="memory://", data_dir=tmp_path, builtins=False, run_plane=False)
    with pytest.raises(UsageError, match="runs workers only"):
        await engine.submit("a goal")
    with pytest.raises(UsageError, match="runs workers only"):
        await engine.resume("job1")
    await engine.close()


def test_an_unknown_worker_kind_names_the_kinds(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown worker kind judge: the kinds are planner"):
        Engine(data_dir=tmp_path, run_plane=False, worker_kinds=["tool", "judge"])


async def test_bus_stats_count_waiting_leased_and_dead_messages() -> None:
    from planweave.messages import WorkItem

    bus = MemoryBus(max_deliveries=1)
    await bus.open()
    spec = TaskSpec(id="t", kind="tool", tool="shout", args={"text": "x"})
    for n in range(3):
        await bus.enqueue(
            "q",
            WorkItem(
                job_id=f"j{n}", task_id="t", attempt=1, spec=spec, reply_to="r", worker="tool"
            ),
        )
    first, second = await bus.receive("q", "worker-1", max_items=2, timeout_s=0)
    await bus.nack(second, reason="boom")  # its last delivery: dead-lettered
    stats = await bus.stats("q")
    assert (stats.depth, stats.pending, stats.dead_letters) == (1, 1, 1)
    assert [(c.name, c.pending) for c in stats.consumers] == [("worker-1", 1)]
    assert await bus.queues() == ["q"]
    await bus.ack(first)
    assert (await bus.stats("q")).pending == 0
    await bus.close()


@pytest.mark.parametrize("command", ["worker", "status"])
def test_worker_and_status_need_a_shared_bus(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [command, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"'planweave {command}' needs a shared bus (--bus redis://" in result.output


async def test_a_store_outage_during_adoption_is_tried_again_on_the_next_round(
    tmp_path: Path,
) -> None:
    from planweave.errors import StoreUnavailable
    from planweave.store.sqlite import SqliteStore

    gate = asyncio.Event()

    @tool
    async def wait_for_gate() -> str:
        """Wait until the test opens the gate."""
        await gate.wait()
        return "through"

    class FlakyStore(SqliteStore):
        outages = 1

        async def load_job(self, job_id: str) -> Any:
            if self.outages:
                self.outages -= 1
                raise StoreUnavailable("the store is restarting")
            return await super().load_job(job_id)

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    plan = Plan(tasks=(TaskSpec(id="w", kind="tool", tool="wait_for_gate", args={}),))
    first = Engine(store=url, data_dir=tmp_path / "data", tools=[wait_for_gate], builtins=False)
    async with first:
        job_id = await first.submit(plan=plan)
        await asyncio.sleep(0.2)
        await first.close(grace_s=0.05)  # gives the job back, unfinished
    second = Engine(
        store=FlakyStore(url), data_dir=tmp_path / "data", tools=[wait_for_gate], builtins=False
    )
    async with second:
        assert await second.adopt_orphans() == []  # the outage: not given up on
        assert await second.adopt_orphans() == [job_id]
        gate.set()
        assert (await asyncio.wait_for(second.wait(job_id), 30)).ok
