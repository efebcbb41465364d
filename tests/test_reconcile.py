"""The store, not the bus, decides what must run: work items a bus lost are sent again.

A bus that can lose what it accepted (``loses_messages``: Redis restarted without persistence)
is stood in for by memory buses that drop work items or refuse to take them; the control plane's
reconciler must notice that the store shows those tasks out while the bus no longer holds their
items, send them again, and the job must finish with each task completed once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec, tool
from planweave.bus import MemoryBus
from planweave.messages import WorkItem


class LosingBus(MemoryBus):
    """Loses the first ``lose`` work items it accepts, and, with ``down``, refuses the next
    ``down`` ones as a bus that is down would."""

    loses_messages = True

    def __init__(self, *, lose: int = 0, down: int = 0) -> None:
        super().__init__()
        self.lose = lose
        self.down = down
        self.lost: list[str] = []

    async def enqueue(self, queue: str, message: Any) -> str:
        if isinstance(message, WorkItem):
            if self.lose:
                self.lose -= 1
                self.lost.append(message.task_id)
                return f"lost-{message.task_id}"
            if self.down:
                self.down -= 1
                raise ConnectionError("the bus is down")
        return await super().enqueue(queue, message)


@tool
def echo(name: str) -> str:
    """Give the name back."""
    return name


PLAN = Plan(
    tasks=tuple(
        TaskSpec(
            id=f"t{n}",
            kind="tool",
            tool="echo",
            args={"name": f"t{n}"},
            depends_on=(f"t{n - 1}",) if n else (),
        )
        for n in range(5)
    )
)


@pytest.mark.parametrize(("lose", "down"), [(3, 0), (0, 2)], ids=["lost", "refused"])
async def test_work_items_the_bus_lost_or_refused_are_sent_again(
    lose: int, down: int, tmp_path: Path
) -> None:
    bus = LosingBus(lose=lose, down=down)
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        data_dir=tmp_path / "data",
        tools=[echo],
        builtins=False,
        work_lease_s=0.3,  # checks every 0.1 s
    ) as engine:
        result = await asyncio.wait_for(engine.run(plan=PLAN), 30)
        events = await engine.events(result.job_id)
        reconciler = engine.plane._reconciler
        assert reconciler is not None
        resent = reconciler.resent
    assert result.ok, result.error
    assert result.result == "t4"
    assert resent == lose + down
    completed = Counter(e.task_id for e in events if e.type == "TaskCompleted")
    assert completed == Counter(f"t{n}" for n in range(5))


async def test_the_in_process_bus_needs_no_reconciling(tmp_path: Path) -> None:
    engine = Engine(store="memory://", data_dir=tmp_path, builtins=False)
    assert engine.plane._reconciler is None


class PoisonBus(MemoryBus):
    """Every delivery of the ``poison`` task's work item vanishes with its worker: leased, never
    run, never acknowledged, as if it killed each worker that took it."""

    loses_messages = True

    def __init__(self) -> None:
        super().__init__(max_deliveries=2)
        self.swallowed = 0

    async def receive(self, queue: str, consumer: str, **kwargs: Any) -> list[Any]:
        while True:
            got = await super().receive(queue, consumer, **kwargs)
            kept = [
                d
                for d in got
                if not (isinstance(d.message, WorkItem) and d.message.task_id == "poison")
            ]
            self.swallowed += len(got) - len(kept)
            if kept or not got:
                return kept


async def test_a_dead_lettered_work_item_fails_its_task_and_other_jobs_go_on(
    tmp_path: Path,
) -> None:
    bus = PoisonBus()
    poison = Plan(tasks=(TaskSpec(id="poison", kind="tool", tool="echo", args={"name": "p"}),))
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        data_dir=tmp_path / "data",
        tools=[echo],
        builtins=False,
        work_lease_s=0.2,
    ) as engine:
        bad = await engine.submit(plan=poison)
        good = await asyncio.wait_for(engine.run(plan=PLAN), 30)
        failed = await asyncio.wait_for(engine.wait(bad), 30)
        letters = await engine.dead_letters("pw:work:tool")
    assert good.ok, good.error
    assert not failed.ok
    assert "dead-lettered" in (failed.error or "")
    assert bus.swallowed == 2
    assert [letter.message.task_id for letter in letters] == ["poison"]  # type: ignore[union-attr]
