"""The engine's API for the edges, on a real SQLite file: listing, deleting, artifacts,
workspaces, dead letters, queues, allowed models, start-up adoption and the one ``follow``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, JobBusy, JobNotFound, Plan, TaskSpec, UsageError, tool
from planweave.bus.memory import MemoryBus
from planweave.constants import QUEUE_PREFIX, WORKER_PLANNER
from planweave.events import Event
from planweave.llm import ScriptedModel

gates: dict[str, asyncio.Event] = {}


@tool
async def hold(name: str = "h") -> str:
    """Wait until the test opens the gate named ``name``."""
    gates.setdefault(f"{name}:started", asyncio.Event()).set()
    gate = gates.setdefault(name, asyncio.Event())
    await gate.wait()
    return "opened"


def engine_for(tmp_path: Path, **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        tools=[hold],
        **kwargs,
    )


@pytest.fixture(autouse=True)
def fresh_gates() -> None:
    gates.clear()


async def started(name: str = "h") -> None:
    await asyncio.wait_for(gates.setdefault(f"{name}:started", asyncio.Event()).wait(), 10)


def open_gate(name: str = "h") -> None:
    gates.setdefault(name, asyncio.Event()).set()


def chain(n: int) -> Plan:
    return Plan(
        tasks=tuple(
            TaskSpec(
                id=f"t{i}",
                kind="tool",
                tool="calculator",
                args={"expression": f"{i}+1"},
                depends_on=(f"t{i - 1}",) if i else (),
            )
            for i in range(n)
        )
    )


def held(gate: str = "h") -> Plan:
    return Plan(tasks=(TaskSpec(id="h", kind="tool", tool="hold", args={"name": gate}),))


async def collect(events: AsyncIterator[Event], timeout_s: float = 10) -> list[Event]:
    async def drain() -> list[Event]:
        return [event async for event in events]

    return await asyncio.wait_for(drain(), timeout_s)


def seqs(events: list[Event]) -> list[int]:
    return [event.seq for event in events]


# --- listing, artifacts, workspaces ---------------------------------------------------------


async def test_list_jobs_filters_by_status_and_tenant_and_pages(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        done = [await engine.submit(plan=chain(1), tenant="alice") for _ in range(3)]
        for job_id in done:
            await engine.wait(job_id)
        running = await engine.submit(plan=held(), tenant="bob")
        listed = await engine.list_jobs()
        assert [s.job_id for s in listed] == [running, *reversed(done)]
        assert [s.job_id for s in await engine.list_jobs(status="running")] == [running]
        alice = await engine.list_jobs(tenant="alice", status="succeeded")
        assert [s.job_id for s in alice] == list(reversed(done))
        page = await engine.list_jobs(tenant="alice", limit=2, offset=1)
        assert [s.job_id for s in page] == list(reversed(done))[1:3]
        assert await engine.find_prefix(running[:6]) == [running]
        open_gate()
        await engine.wait(running)


async def test_artifacts_and_the_default_workspace(tmp_path: Path) -> None:
    plan = Plan(
        tasks=(
            TaskSpec(
                id="w", kind="tool", tool="write_file", args={"path": "a.txt", "content": "hi"}
            ),
        )
    )
    async with engine_for(tmp_path) as engine:
        result = await engine.run(plan=plan)
        assert result.ok, result.error
        workspace = await engine.workspace(result.job_id)
        rows = await engine.artifacts(result.job_id)
    assert workspace == (tmp_path / "data" / "workspaces" / result.job_id).resolve()
    assert [(row.name, row.size) for row in rows] == [("a.txt", 2)]
    assert (workspace / "a.txt").read_text() == "hi"


async def test_workspace_is_the_one_the_job_was_given(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    plan = Plan(
        tasks=(
            TaskSpec(
                id="w", kind="tool", tool="write_file", args={"path": "b.txt", "content": "yo"}
            ),
        )
    )
    async with engine_for(tmp_path) as engine:
        result = await engine.run(plan=plan, workspace=str(mine))
        assert result.ok, result.error
        assert await engine.workspace(result.job_id) == mine
        await engine.delete(result.job_id)
        with pytest.raises(JobNotFound):
            await engine.workspace(result.job_id)
    # A folder the user gave the job is theirs: deleting the job keeps it.
    assert (mine / "b.txt").read_text() == "yo"


# --- delete ---------------------------------------------------------------------------------


async def test_delete_refuses_a_running_job_then_removes_it_with_its_workspace(
    tmp_path: Path,
) -> None:
    plan = Plan(
        tasks=(
            TaskSpec(
                id="w", kind="tool", tool="write_file", args={"path": "c.txt", "content": "x"}
            ),
            TaskSpec(id="h", kind="tool", tool="hold", depends_on=("w",)),
        )
    )
    async with engine_for(tmp_path) as engine:
        job_id = await engine.submit(plan=plan)
        workspace = await engine.workspace(job_id)
        await started()
        assert (workspace / "c.txt").exists()
        with pytest.raises(JobBusy, match="cancel it first"):
            await engine.delete(job_id)
        assert await engine.cancel(job_id)
        assert (await engine.wait(job_id)).status == "cancelled"
        await engine.delete(job_id)
        with pytest.raises(JobNotFound):
            await engine.get(job_id)
        assert await engine.events(job_id) == []
        assert await engine.artifacts(job_id) == []
        assert not workspace.exists()
        with pytest.raises(JobNotFound):
            await engine.delete(job_id)


async def test_delete_refuses_a_job_another_process_runs(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as first, engine_for(tmp_path) as second:
        running = await second.submit(plan=held())
        with pytest.raises(JobBusy):
            await first.delete(running)
        finished = await first.submit(plan=held("fin"))
        open_gate("fin")
        assert (await first.wait(finished)).ok
        # The other process holds the finished job's claim (it is reopening it, say), once the
        # first one has let it go.
        for _ in range(500):
            if await second.store.claim_job(finished, second.plane.owner, lease_s=30):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the finished job's claim was never released")
        with pytest.raises(JobBusy, match="another process"):
            await first.delete(finished)
        assert (await first.get(finished)).status == "succeeded"
        await second.store.release_job(finished, second.plane.owner)
        await first.delete(finished)
        with pytest.raises(JobNotFound):
            await second.get(finished)
        open_gate()
        await second.wait(running)


# --- dead letters, queues, models -----------------------------------------------------------


async def test_dead_letters_queues_and_redrive(tmp_path: Path) -> None:
    bus = MemoryBus(max_deliveries=1)
    queue = QUEUE_PREFIX + "tool"
    async with engine_for(tmp_path, bus=bus, run_workers=False) as engine:
        names = engine.queue_names()
        assert queue in names and engine.plane.reply_queue in names
        job_id = await engine.submit(plan=chain(1))
        (delivery,) = await bus.receive(queue, "test", timeout_s=5)
        await bus.nack(delivery, reason="poison")
        letters = await engine.dead_letters()
        assert [(d.queue, d.message.job_id, d.reason) for d in letters] == [
            (queue, job_id, "poison")
        ]
        assert await engine.dead_letters(queue) == letters
        info = {q.name: q for q in await engine.queues()}
        assert set(info) == set(names)
        assert (info[queue].depth, info[queue].dead_letters) == (0, 1)
        with pytest.raises(UsageError, match="no queue 'nope'"):
            await engine.dead_letters("nope")
        with pytest.raises(UsageError):
            await engine.redrive("nope", letters[0].id)
        assert await engine.redrive(queue, letters[0].id)
        assert not await engine.redrive(queue, letters[0].id)
        info = {q.name: q for q in await engine.queues()}
        assert (info[queue].depth, info[queue].dead_letters) == (1, 0)


@pytest.mark.parametrize("extra", [(), (hold,)])
async def test_planners_are_told_every_tool_by_an_engine_that_runs_no_workers(
    tmp_path: Path, extra: tuple[Any, ...]
) -> None:
    from planweave.tools import builtin_tools

    bus = MemoryBus()
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        tools=extra,
        run_workers=False,
    )
    async with engine:
        await engine.submit("What is 2+3?")
        (delivery,) = await bus.receive(QUEUE_PREFIX + WORKER_PLANNER, "test", timeout_s=5)
    # shell is offered only where shell_commands allow some programs
    expected = [t.name for t in builtin_tools() if t.name != "shell"] + [t.name for t in extra]
    assert sorted(delivery.message.known_tools) == sorted(expected)


async def test_allowed_models_are_the_default_then_the_configured_ones(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    default = engine.allowed_models()
    assert len(default) == 1
    assert engine.allowed_models(["openai:gpt-4o-mini", default[0], "openai:gpt-4o-mini"]) == [
        default[0],
        "openai:gpt-4o-mini",
    ]


async def test_submit_once_creates_one_job_per_key(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        twins = await asyncio.gather(
            *(engine.submit_once(plan=chain(1), idempotency_key="k") for _ in range(3))
        )
        assert len({job_id for job_id, _ in twins}) == 1
        assert [created for _, created in twins].count(True) == 1
        job_id = twins[0][0]
        await engine.wait(job_id)
        assert await engine.submit_once(plan=chain(1), idempotency_key="k") == (job_id, False)
        other, created = await engine.submit_once(plan=chain(1), idempotency_key="k", tenant="b")
        assert created and other != job_id
        _, created = await engine.submit_once(plan=chain(1), idempotency_key=None)
        assert created
        for summary in await engine.list_jobs(status="running"):
            await engine.wait(summary.job_id)


# --- what runs where: active jobs and start-up adoption --------------------------------------


async def test_active_jobs_running_and_adopt_active(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as live:
        held_live = await live.submit(plan=held("live"))
        stopped_engine = engine_for(tmp_path)
        await stopped_engine.start()
        orphan = await stopped_engine.submit(plan=held("orphan"))
        # Its process stops without finishing the job: the job stays active, unowned.
        await stopped_engine.close(grace_s=0.1)
        assert set(await live.active_jobs()) == {held_live, orphan}
        assert [s.id for s in await live.running()] == [held_live]
        assert live.runs_here(held_live) and not live.runs_here(orphan)
        async with engine_for(tmp_path) as serve:
            assert await serve.adopt_active() == [orphan]
            assert serve.runs_here(orphan) and not serve.runs_here(held_live)
            open_gate("orphan")
            assert (await serve.wait(orphan)).ok
            assert await serve.adopt_active() == []
        open_gate("live")
        assert (await live.wait(held_live)).ok
        assert await live.active_jobs() == []


# --- follow ---------------------------------------------------------------------------------


async def test_follow_ends_at_the_jobs_end_with_every_event_once(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        job_id = await engine.submit(plan=chain(5))
        followed = await collect(engine.follow(job_id))
        stored = await engine.events(job_id)
        assert followed == stored
        assert seqs(followed) == list(range(1, len(stored) + 1))
        assert followed[-1].type == "JobCompleted"
        # A finished job: the history, then the end.
        assert await collect(engine.follow(job_id)) == stored
        assert await collect(engine.follow(job_id, after_seq=len(stored))) == []


async def test_follow_resumes_from_after_seq_without_gaps_or_duplicates(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        job_id = await engine.submit(plan=held())
        first: list[Event] = []
        async with contextlib.aclosing(engine.follow(job_id)) as events:
            async for event in events:
                first.append(event)
                if event.type == "TaskStarted":
                    break
        open_gate()
        rest = await collect(engine.follow(job_id, after_seq=first[-1].seq))
        assert rest[-1].type == "JobCompleted"
        assert first + rest == await engine.events(job_id)


async def test_follow_a_job_another_process_runs(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as runner, engine_for(tmp_path, run_workers=False) as reader:
        job_id = await runner.submit(plan=held())
        follower = asyncio.create_task(collect(reader.follow(job_id, poll_s=0.05)))
        await asyncio.sleep(0.2)
        assert not follower.done()
        open_gate()
        followed = await follower
        assert followed == await runner.events(job_id)
        assert followed[-1].type == "JobCompleted"


async def test_follow_past_the_last_event_ends_when_the_job_ends(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine, engine_for(tmp_path, run_workers=False) as reader:
        job_id = await engine.submit(plan=held())
        here = asyncio.create_task(collect(engine.follow(job_id, after_seq=10_000)))
        remote = asyncio.create_task(collect(reader.follow(job_id, after_seq=10_000, poll_s=0.05)))
        await asyncio.sleep(0.2)
        assert not here.done() and not remote.done()
        open_gate()
        assert await here == []
        assert await remote == []


async def test_follow_runs_batch_history_and_tick_while_idle(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        job_id = await engine.submit(plan=held())
        runs: list[list[Event] | None] = []
        async with contextlib.aclosing(engine.follow_runs(job_id, tick_s=0.05)) as stream:
            async for run in stream:
                runs.append(run)
                if runs.count(None) == 2:
                    open_gate()
        history = runs[0]
        assert history is not None and len(history) > 1  # one run, not an event at a time
        assert None in runs
        events = [event for run in runs if run for event in run]
        assert events == await engine.events(job_id)


async def test_follow_an_unknown_job_is_an_error(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        with pytest.raises(JobNotFound):
            await collect(engine.follow("nope"))
