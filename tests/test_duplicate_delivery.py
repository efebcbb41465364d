"""Every message delivered twice: outcomes are still recorded exactly once.

The bus promises at-least-once delivery, so a work item can run twice and a report can arrive
twice (a worker that lost its lease, a redelivery after a crash, a network retry). Here a bus
puts every message it is given on its queue twice, work items, started reports, call reports
and outcomes alike, and the job must end as if each had come once: every task completed exactly
once in the log, no gap or duplicate in ``seq``, and the stored state equal to the replayed log.
It runs on the in-process bus and on the Redis bus (a real ``redis-server``), whose streams,
leases and reconciler see every copy.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec, tool
from planweave.bus import MemoryBus
from planweave.bus.redis import RedisBus
from planweave.llm import ScriptedModel
from planweave.state import replay

TASKS = 40


class _Twice:
    """Put in front of a bus class: every message it is given is enqueued twice."""

    enqueued: Counter[str]

    async def enqueue(self, queue: str, message: Any) -> str:
        self.enqueued[type(message).__name__] += 1
        await super().enqueue(queue, message)  # type: ignore[misc]
        second: str = await super().enqueue(queue, message)  # type: ignore[misc]
        return second


class DuplicatingMemoryBus(_Twice, MemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.enqueued = Counter()


class DuplicatingRedisBus(_Twice, RedisBus):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.enqueued = Counter()


runs = Counter[str]()


@tool
async def step(name: str) -> str:
    """Count a run of a step and give its name back."""
    runs[name] += 1
    await asyncio.sleep(0.001)
    return name


def _plan() -> Plan:
    tools = tuple(
        TaskSpec(
            id=f"t{n}",
            kind="tool",
            tool="step",
            args={"name": f"t{n}"},
            depends_on=(f"t{n - 10}",) if n >= 10 else (),
        )
        for n in range(TASKS)
    )
    agent = TaskSpec(id="sum", goal="sum it up", depends_on=tuple(s.id for s in tools[-10:]))
    return Plan(tasks=(*tools, agent))


@pytest.mark.parametrize(
    ("store", "bus_kind"),
    [("memory", "memory"), ("sqlite", "memory"), ("sqlite", "redis"), ("postgres", "redis")],
)
async def test_every_message_twice_still_records_each_outcome_once(
    store: str, bus_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runs.clear()
    bus: DuplicatingMemoryBus | DuplicatingRedisBus
    if bus_kind == "redis":
        bus = DuplicatingRedisBus(request.getfixturevalue("redis_url"))
    else:
        bus = DuplicatingMemoryBus()
    model = ScriptedModel(
        replies=[{"match": {"role": "executor"}, "content": "summed", "repeat": True}]
    )
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'jobs.db'}"}
    url = urls[store] if store in urls else request.getfixturevalue("pg_url")
    async with Engine(
        store=url, bus=bus, model=model, data_dir=tmp_path / "data", tools=[step]
    ) as engine:
        result = await asyncio.wait_for(engine.run(plan=_plan()), 60)
        events = await engine.events(result.job_id)
        stored = await engine.get(result.job_id)

    assert result.ok, result.error
    assert bus.enqueued["WorkItem"] > 0 and bus.enqueued["Outcome"] > 0
    assert max(runs.values()) == 2, "the duplicated work items did not run twice"
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    completed = Counter(e.task_id for e in events if e.type == "TaskCompleted")
    assert sorted(completed) == sorted([f"t{n}" for n in range(TASKS)] + ["sum"])
    assert set(completed.values()) == {1}
    started = Counter((e.task_id, e.attempt) for e in events if e.type == "TaskStarted")
    assert set(started.values()) == {1}, "a duplicated started report was recorded twice"
    assert [e.type for e in events].count("JobCompleted") == 1
    assert replay(events).to_row() == stored.to_row()
