"""Whole jobs on a SQLite file with the scripted model: planning, tools, retries, replan, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, RetryTask, TaskSpec, ToolError, tool
from planweave.llm import ScriptedModel


def engine_for(
    tmp_path: Path, replies: list[dict[str, Any]] | None = None, **kwargs: Any
) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies or []),
        data_dir=tmp_path / "data",
        **kwargs,
    )


def contiguous(events: list[Any]) -> bool:
    return [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_goal_is_planned_executed_with_tools_and_composed(tmp_path: Path) -> None:
    replies = [
        {
            "match": {"role": "planner"},
            "json": {
                "tasks": [
                    {"id": "sum", "goal": "Compute 2+3", "depends_on": [], "kind": "execute"},
                    {
                        "id": "square",
                        "goal": "Square the sum",
                        "depends_on": ["sum"],
                        "kind": "execute",
                    },
                ]
            },
        },
        {
            "match": {"role": "executor", "contains": "Compute 2+3"},
            "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}],
        },
        {"match": {"role": "executor", "contains": "Compute 2+3"}, "content": "5"},
        {
            "match": {"role": "executor", "contains": "Square the sum"},
            "tool_calls": [{"name": "calculator", "arguments": {"expression": "5**2"}}],
        },
        {"match": {"role": "executor", "contains": "Square the sum"}, "content": "25"},
        {"match": {"role": "composer"}, "content": "# Answer\n\n2+3 squared is **25**."},
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run("What is 2+3, then squared?")
        assert result.ok, result.error
        assert "25" in result.result
        assert [p.name for p in result.artifacts] == ["result.md"]
        assert result.artifacts[0].read_text() == result.result
        assert result.usage.llm_calls == 6
        assert result.usage.tokens_in > 0
        events = await engine.events(result.job_id)
        assert contiguous(events)
        kinds = [e.type for e in events]
        assert kinds[0] == "JobSubmitted" and kinds[-1] == "JobCompleted"
        assert kinds.count("SubtasksPlanned") == 1
        assert kinds.count("ToolCalled") == 2
        assert kinds.count("LlmCalled") == 6
        state = await engine.get(result.job_id)
        assert {t: s.status for t, s in state.tasks.items()} == {
            "root": "succeeded",
            "sum": "succeeded",
            "square": "succeeded",
            "compose": "succeeded",
        }
        assert state.tasks["square"].result == "25"


async def test_a_user_plan_runs_a_diamond_in_dependency_order(tmp_path: Path) -> None:
    order: list[str] = []

    @tool
    def record(name: str) -> str:
        """Record a name."""
        order.append(name)
        return name.upper()

    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="record", args={"name": "a"}),
            TaskSpec(id="b", kind="tool", tool="record", args={"name": "b"}, depends_on=("a",)),
            TaskSpec(id="c", kind="tool", tool="record", args={"name": "c"}, depends_on=("a",)),
            TaskSpec(id="d", kind="tool", tool="record", args={"name": "d"}, depends_on=("b", "c")),
        )
    )
    async with engine_for(tmp_path, tools=[record]) as engine:
        result = await engine.run(plan=plan)
    assert result.ok
    assert result.result == "D"
    assert order[0] == "a" and order[-1] == "d" and sorted(order) == ["a", "b", "c", "d"]


async def test_a_plan_task_decomposes_recursively(tmp_path: Path) -> None:
    replies = [
        {
            "match": {"role": "planner", "contains": "Write a guide"},
            "json": {
                "tasks": [
                    {"id": "intro", "goal": "Write the intro", "depends_on": [], "kind": "execute"},
                    {
                        "id": "body",
                        "goal": "Write the body sections",
                        "depends_on": ["intro"],
                        "kind": "plan",
                    },
                ]
            },
        },
        {
            "match": {"role": "planner", "contains": "Write the body sections"},
            "json": {
                "tasks": [
                    {"id": "s1", "goal": "Section one", "depends_on": [], "kind": "execute"},
                    {"id": "s2", "goal": "Section two", "depends_on": ["s1"], "kind": "execute"},
                ]
            },
        },
        {"match": {"role": "executor"}, "content": "text", "repeat": True},
        {"match": {"role": "composer"}, "content": "# Guide"},
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run("Write a guide")
        state = await engine.get(result.job_id)
    assert result.ok, result.error
    assert set(state.tasks) == {"root", "intro", "body", "body.s1", "body.s2", "compose"}
    assert state.tasks["body.s2"].depth == 2
    assert state.tasks["body.s2"].spec.depends_on == ("body.s1",)
    assert state.tasks["compose"].spec.depends_on == ("body",)


async def test_failures_are_retried_then_succeed(tmp_path: Path) -> None:
    calls = {"n": 0}

    @tool
    def flaky() -> str:
        """Fail twice, then work."""
        calls["n"] += 1
        if calls["n"] < 3:
            raise ToolError("temporarily down", retryable=True)
        return "ok"

    plan = Plan(tasks=(TaskSpec(id="f", kind="tool", tool="flaky"),))
    async with engine_for(tmp_path, tools=[flaky]) as engine:
        result = await engine.run(plan=plan, retry_base_s=0.01, max_attempts=3)
        events = await engine.events(result.job_id)
    assert result.ok
    assert calls["n"] == 3
    assert [e.type for e in events].count("TaskRetrying") == 2
    assert [e.attempt for e in events if e.type == "TaskAssigned"] == [1, 2, 3]  # type: ignore[union-attr]


async def test_retry_task_signal_and_failing_for_good(tmp_path: Path) -> None:
    @tool
    def never() -> str:
        """Always asks for another try."""
        raise RetryTask("not yet", delay_s=0.01)

    plan = Plan(
        tasks=(
            TaskSpec(id="n", kind="tool", tool="never", max_attempts=2),
            TaskSpec(id="after", kind="tool", tool="current_time", depends_on=("n",)),
        )
    )
    async with engine_for(tmp_path, tools=[never]) as engine:
        result = await engine.run(plan=plan)
        state = await engine.get(result.job_id)
    assert result.status == "failed"
    assert "not yet" in (result.error or "")
    assert state.tasks["after"].status == "cancelled"


async def test_replan_after_a_failure_keeps_finished_work(tmp_path: Path) -> None:
    runs: list[str] = []

    @tool
    def step(name: str) -> str:
        """Run a step."""
        runs.append(name)
        if name == "bad":
            raise ToolError("this approach cannot work")
        return name

    replies = [
        {
            "match": {"role": "planner"},
            "json": {
                "tasks": [
                    {
                        "id": "fix",
                        "goal": "Do the remaining work another way",
                        "depends_on": [],
                        "kind": "execute",
                    },
                ]
            },
        },
        {"match": {"role": "executor"}, "content": "done another way"},
    ]
    plan = Plan(
        tasks=(
            TaskSpec(id="good", kind="tool", tool="step", args={"name": "good"}),
            TaskSpec(
                id="bad", kind="tool", tool="step", args={"name": "bad"}, depends_on=("good",)
            ),
            TaskSpec(
                id="last", kind="tool", tool="step", args={"name": "last"}, depends_on=("bad",)
            ),
        ),
        on_failure="replan",
    )
    async with engine_for(tmp_path, replies, tools=[step]) as engine:
        result = await engine.run(plan=plan)
        state = await engine.get(result.job_id)
    assert result.ok, result.error
    assert runs == ["good", "bad"]
    assert state.tasks["last"].status == "cancelled"
    assert state.tasks["replan1"].status == "succeeded"
    assert state.tasks["replan1.fix"].result == "done another way"
    assert result.result == "done another way"


async def test_cancel_stops_a_running_job(tmp_path: Path) -> None:
    started = asyncio.Event()
    stopped = asyncio.Event()

    @tool
    async def slow() -> str:
        """Take a long time."""
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()
        return "late"

    plan = Plan(
        tasks=(
            TaskSpec(id="s", kind="tool", tool="slow"),
            TaskSpec(id="t", kind="tool", tool="slow", depends_on=("s",)),
        )
    )
    async with engine_for(tmp_path, tools=[slow]) as engine:
        job_id = await engine.submit(plan=plan)
        await asyncio.wait_for(started.wait(), 5)
        assert await engine.cancel(job_id, reason="changed my mind")
        result = await asyncio.wait_for(engine.wait(job_id), 5)
        assert result.status == "cancelled"
        assert result.error == "changed my mind"
        assert not await engine.cancel(job_id)
        events = await engine.events(job_id)
        assert events[-1].type == "JobCancelled"
        await asyncio.wait_for(stopped.wait(), 5)  # the running tool was stopped, not awaited


async def test_bad_plans_are_refused_before_anything_runs(tmp_path: Path) -> None:
    from planweave import PlanInvalid

    async with engine_for(tmp_path) as engine:
        with pytest.raises(PlanInvalid) as info:
            await engine.submit(
                plan=[
                    TaskSpec(id="a", kind="tool", tool="nope", depends_on=("b",)),
                    TaskSpec(id="b", kind="tool", tool="calculator", depends_on=("a",)),
                ]
            )
        text = str(info.value)
        assert "unknown tool 'nope'" in text and "cycle" in text
        assert await engine.store.list_jobs() == []


async def test_a_missing_model_fails_the_job_with_a_clear_reason(tmp_path: Path) -> None:
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model="openai:gpt-4o-mini",
        data_dir=tmp_path,
    )
    from planweave.llm import ModelOptions

    engine.models.options = ModelOptions(api_key=None, base_url=None, max_retries=0)
    async with engine:
        result = await engine.run("anything", max_attempts=1)
    assert result.status == "failed"
    assert "OPENAI_API_KEY" in (result.error or "")


async def test_the_store_equals_the_replayed_event_log(tmp_path: Path) -> None:
    from planweave.state import replay

    replies = [
        {
            "match": {"role": "planner"},
            "json": {
                "tasks": [
                    {"id": "x", "goal": "Do x", "depends_on": [], "kind": "execute"},
                    {"id": "y", "goal": "Do y", "depends_on": ["x"], "kind": "execute"},
                ]
            },
        },
        {"match": {"role": "executor"}, "content": "ok", "repeat": True},
        {"match": {"role": "composer"}, "content": "# Done"},
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run("two steps")
        stored = await engine.store.load_job(result.job_id)
        rebuilt = replay(await engine.events(result.job_id))
    assert stored is not None
    assert rebuilt.to_row() == stored.to_row()
    assert {k: t.to_row(result.job_id) for k, t in rebuilt.tasks.items()} == {
        k: t.to_row(result.job_id) for k, t in stored.tasks.items()
    }


@pytest.mark.local_model
@pytest.mark.timeout(900)
async def test_the_offline_local_model_drives_a_job_to_a_valid_end(tmp_path: Path) -> None:
    from planweave.llm import ModelOptions

    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model="local:",
        model_options=ModelOptions(n_threads=1, max_tokens=128),
        data_dir=tmp_path,
    )
    async with engine:
        result = await engine.run("Write a haiku about rain", max_agent_steps=1)
        events = await engine.events(result.job_id)
        state = await engine.get(result.job_id)
    assert result.status in ("succeeded", "failed")
    assert contiguous(events)
    assert events[-1].type in ("JobCompleted", "JobFailed")
    assert all(t.terminal for t in state.tasks.values())
    assert any(e.type == "LlmCalled" for e in events)
    if result.ok:
        assert isinstance(result.result, str) and result.result.strip()
        assert result.artifacts and result.artifacts[0].exists()
    else:
        assert result.error


async def test_a_failed_job_is_retried_and_finishes(tmp_path: Path) -> None:
    attempts = {"n": 0}

    @tool
    def fragile() -> str:
        """Fail the first time it is ever called."""
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ToolError("broken")
        return "fixed"

    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="current_time"),
            TaskSpec(id="b", kind="tool", tool="fragile", depends_on=("a",), max_attempts=1),
            TaskSpec(id="c", kind="tool", tool="current_time", depends_on=("b",)),
        )
    )
    async with engine_for(tmp_path, tools=[fragile]) as engine:
        first = await engine.run(plan=plan)
        assert first.status == "failed"
        a_result = (await engine.get(first.job_id)).tasks["a"].result
        await engine.retry(first.job_id, task_id="b")
        second = await engine.wait(first.job_id)
        state = await engine.get(first.job_id)
        events = await engine.events(first.job_id)
    assert second.ok, second.error
    assert state.tasks["a"].result == a_result and state.tasks["a"].attempt == 1
    assert state.tasks["b"].attempt == 2 and state.tasks["c"].status == "succeeded"
    assert contiguous(events)
    assert [e.type for e in events].count("JobReopened") == 1


async def test_a_failed_job_can_be_replanned(tmp_path: Path) -> None:
    @tool
    def broken() -> str:
        """Always fails."""
        raise ToolError("no way")

    replies = [
        {
            "match": {"role": "planner"},
            "json": {
                "tasks": [{"id": "alt", "goal": "Another way", "depends_on": [], "kind": "execute"}]
            },
        },
        {"match": {"role": "executor"}, "content": "done"},
    ]
    plan = Plan(tasks=(TaskSpec(id="x", kind="tool", tool="broken", max_attempts=1),))
    async with engine_for(tmp_path, replies, tools=[broken]) as engine:
        first = await engine.run(plan=plan)
        assert first.status == "failed"
        await engine.replan(first.job_id)
        second = await engine.wait(first.job_id)
        state = await engine.get(first.job_id)
    assert second.ok, second.error
    assert state.tasks["x"].superseded and state.tasks["replan1.alt"].result == "done"


async def test_retrying_a_running_or_succeeded_job_is_refused(tmp_path: Path) -> None:
    from planweave import UsageError

    plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="current_time"),))
    async with engine_for(tmp_path) as engine:
        done = await engine.run(plan=plan)
        with pytest.raises(UsageError, match="only a failed or cancelled job"):
            await engine.retry(done.job_id)


async def test_an_idempotency_key_gives_back_the_first_job(tmp_path: Path) -> None:
    plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="current_time"),))
    async with engine_for(tmp_path) as engine:
        first = await engine.submit(plan=plan, idempotency_key="k1", tenant="acme")
        again = await engine.submit(plan=plan, idempotency_key="k1", tenant="acme")
        other = await engine.submit(plan=plan, idempotency_key="k1", tenant="globex")
        await engine.wait(first)
        await engine.wait(other)
        later = await engine.submit(plan=plan, idempotency_key="k1", tenant="acme")
        acme = await engine.store.list_jobs(tenant="acme")
    assert first == again == later
    assert other != first
    assert [j.job_id for j in acme] == [first]


async def test_higher_priority_jobs_are_dispatched_first(tmp_path: Path) -> None:
    order: list[str] = []
    gate = asyncio.Event()

    @tool
    async def step(name: str) -> str:
        """Record a step once the gate opens."""
        await gate.wait()
        order.append(name)
        return name

    def plan(prefix: str) -> Plan:
        return Plan(
            tasks=tuple(
                TaskSpec(id=f"{prefix}{i}", kind="tool", tool="step", args={"name": f"{prefix}{i}"})
                for i in range(3)
            )
        )

    async with engine_for(tmp_path, tools=[step], concurrency={"tool": 1}) as engine:
        low = await engine.submit(plan=plan("low"), priority=0)
        high = await engine.submit(plan=plan("high"), priority=5)
        gate.set()
        await engine.wait(low)
        await engine.wait(high)
    assert order[0] == "low0"  # already running when the urgent job came
    assert order[1:4] == ["high0", "high1", "high2"]


def test_run_sync_runs_a_job_from_plain_code(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    result = engine.run_sync(
        plan=Plan(
            tasks=(TaskSpec(id="x", kind="tool", tool="calculator", args={"expression": "6*7"}),)
        )
    )
    assert result.ok and result.result == 42


async def test_files_a_task_writes_become_artifacts(tmp_path: Path) -> None:
    plan = Plan(
        tasks=(
            TaskSpec(
                id="w",
                kind="tool",
                tool="write_file",
                args={"path": "report/summary.txt", "content": "hello"},
            ),
            TaskSpec(
                id="r",
                kind="tool",
                tool="read_file",
                args={"path": "report/summary.txt"},
                depends_on=("w",),
            ),
        )
    )
    async with engine_for(tmp_path) as engine:
        result = await engine.run(plan=plan)
        rows = await engine.store.artifacts(result.job_id)
    assert result.ok, result.error
    assert [(a.name, a.size, a.content_type) for a in rows] == [
        ("report/summary.txt", 5, "text/plain")
    ]
    assert result.artifacts[0].is_absolute() and result.artifacts[0].read_text() == "hello"
