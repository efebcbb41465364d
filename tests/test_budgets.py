"""Budgets, end to end on a real SQLite store and the scripted model: tokens, dollars (priced by
the settings' ``prices`` table), wall time, tool calls and fan-out, per job and per task.

Every limit is tried on a plan of four parallel execute tasks whose agents keep calling a tool,
so the branches compete for the same budget: the job must stop with ``budget_exceeded``, with a
reason naming the option to raise, and its spend must exceed the budget by at most one model
call (the largest the job made). Jobs within their budgets succeed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from planweave import Engine, JobResult, Plan, TaskSpec
from planweave.cli import app
from planweave.config import Settings
from planweave.events import JobOptions, LlmCalled
from planweave.llm import ScriptedModel
from planweave.llm.pricing import price_usd, set_price_overrides
from planweave.plan import TaskBudget
from planweave.server.testing import running_server

LIMIT_S = 60.0
"""A hang guard, not a timing assertion."""

PRICE = (1000.0, 2000.0)
"""$ per million tokens in and out for the scripted model (the settings' price table)."""

TOKEN = "pw_budgets_test_token_0000000000000"

LOOPING = [
    {
        "match": {"role": "executor"},
        "tool_calls": [{"name": "calculator", "arguments": {"expression": f"{i}*7"}}],
    }
    for i in range(400)
]
"""An executor that keeps calling the calculator (a new sum each time): a budget ends it."""

ANSWERING = [
    {"match": {"role": "executor", "contains": "calculator"}, "content": "42.", "repeat": True},
    {
        "match": {"role": "executor"},
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}],
        "repeat": True,
    },
]


@pytest.fixture(autouse=True)
def prices() -> Iterator[None]:
    yield
    set_price_overrides({})


def parallel(n: int = 4, **budget: Any) -> Plan:
    """``n`` independent execute tasks; the first has ``budget`` (when given)."""
    tasks = [
        TaskSpec(
            id=f"t{i}",
            goal=f"Compute part {i}",
            budget=TaskBudget(**budget) if i == 0 and budget else None,
        )
        for i in range(n)
    ]
    return Plan(tasks=tuple(tasks))


@asynccontextmanager
async def engine_with(
    tmp_path: Path, replies: list[dict[str, Any]], **settings: Any
) -> AsyncIterator[Engine]:
    kwargs = Settings.model_validate(
        {"data_dir": tmp_path / "data", "store": f"sqlite:///{tmp_path / 'jobs.db'}", **settings}
    ).engine_kwargs()
    kwargs.update(model=ScriptedModel(replies=replies), concurrency={"executor": 4})
    async with Engine(**kwargs) as engine:
        yield engine


async def run(
    engine: Engine, plan: Plan | None = None, goal: str | None = None, **opts: Any
) -> JobResult:
    return await asyncio.wait_for(engine.run(goal, plan=plan, max_agent_steps=50, **opts), LIMIT_S)


async def calls(engine: Engine, job_id: str) -> list[LlmCalled]:
    return [e for e in await engine.events(job_id) if isinstance(e, LlmCalled)]


def failed_reason(result: JobResult) -> str:
    assert result.status == "failed", result
    return result.error or ""


async def test_tokens_job_budget_holds_across_parallel_branches(tmp_path: Path) -> None:
    budget = 6_000
    async with engine_with(tmp_path, LOOPING) as engine:
        result = await run(engine, parallel(), max_job_tokens=budget)
        made = await calls(engine, result.job_id)
        events = await engine.events(result.job_id)
    reason = failed_reason(result)
    assert "max_job_tokens" in reason and "raise the job option" in reason
    assert [e.code for e in events if e.type == "JobFailed"] == ["budget_exceeded"]  # type: ignore[attr-defined]
    # Every call is counted at its most before it is made, and the scripted model's replies are
    # shorter than that: the branches together never overshoot (at most one call is allowed).
    assert sum(c.tokens_in + c.tokens_out for c in made) <= budget
    assert len({c.task_id for c in made}) >= 2  # the branches shared it
    assert any(e.type == "TaskNeedsBudget" for e in events)


async def test_dollar_job_budget_priced_by_the_settings_price_table(tmp_path: Path) -> None:
    budget = 8.0
    async with engine_with(tmp_path, LOOPING, prices={"scripted": list(PRICE)}) as engine:
        result = await run(engine, parallel(), max_cost_usd=budget)
        made = await calls(engine, result.job_id)
    reason = failed_reason(result)
    assert "max_cost_usd" in reason
    for call in made:  # priced by the table, not the model's $0
        assert call.cost_usd == pytest.approx(
            price_usd("scripted", call.tokens_in, call.tokens_out)
        )
        assert call.cost_usd > 0
    assert sum(c.cost_usd for c in made) <= budget  # counted at its most before each call
    assert result.usage.cost_usd == pytest.approx(sum(c.cost_usd for c in made))


async def test_tool_call_job_budget_holds_across_parallel_branches(tmp_path: Path) -> None:
    async with engine_with(tmp_path, LOOPING) as engine:
        result = await run(engine, parallel(), max_job_tool_calls=6)
        events = await engine.events(result.job_id)
    reason = failed_reason(result)
    assert "max_job_tool_calls" in reason
    assert sum(e.type == "ToolCalled" for e in events) <= 6


async def test_wall_time_job_budget_stops_a_slow_job(tmp_path: Path) -> None:
    slow = [{"match": {"role": "executor"}, "content": "done", "delay_s": 30.0, "repeat": True}]
    async with engine_with(tmp_path, slow) as engine:
        result = await run(engine, parallel(), max_time_s="1s")
        state = await engine.get(result.job_id)
    reason = failed_reason(result)
    assert "max_time_s" in reason and "time budget of 1 s" in reason
    assert state.options.max_time_s == 1.0


async def test_fanout_job_budget_stops_a_plan_that_creates_too_many_tasks(tmp_path: Path) -> None:
    replies = [
        {
            "match": {"role": "planner"},
            "json": {"tasks": [{"id": f"s{i}", "goal": f"Step {i}"} for i in range(5)]},
            "repeat": True,
        },
        {"match": {"role": "executor"}, "content": "ok", "repeat": True},
        {"match": {"role": "composer"}, "content": "all done", "repeat": True},
    ]
    async with engine_with(tmp_path, replies) as engine:
        over = await run(engine, goal="Do five steps", max_fanout=3)
        within = await run(engine, goal="Do five steps again", max_fanout=10)
        events = await engine.events(over.job_id)
    reason = failed_reason(over)
    assert "max_fanout" in reason
    assert not any(e.type == "TaskStarted" and e.task_id == "s0" for e in events)
    assert within.ok, within.error


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"max_tokens": 3_000}, "budget.max_tokens"),
        ({"max_cost_usd": 4.0}, "budget.max_cost_usd"),
        ({"max_tool_calls": 2}, "budget.max_tool_calls"),
    ],
)
async def test_task_budget_stops_the_job_while_parallel_branches_run(
    tmp_path: Path, budget: dict[str, Any], field: str
) -> None:
    async with engine_with(tmp_path, LOOPING, prices={"scripted": list(PRICE)}) as engine:
        result = await run(engine, parallel(**budget), max_job_tokens=None, max_cost_usd=None)
        made = await calls(engine, result.job_id)
        events = await engine.events(result.job_id)
    reason = failed_reason(result)
    assert field in reason and "'t0'" in reason
    mine = [c for c in made if c.task_id == "t0"]
    if "max_tokens" in budget:
        assert sum(c.tokens_in + c.tokens_out for c in mine) <= budget["max_tokens"]
    if "max_cost_usd" in budget:
        assert sum(c.cost_usd for c in mine) <= budget["max_cost_usd"]
    if "max_tool_calls" in budget:
        tools = [e for e in events if e.type == "ToolCalled" and e.task_id == "t0"]
        assert len(tools) <= budget["max_tool_calls"]


async def test_task_wall_time_budget(tmp_path: Path) -> None:
    slow = [{"match": {"role": "executor"}, "content": "done", "delay_s": 30.0, "repeat": True}]
    async with engine_with(tmp_path, slow) as engine:
        result = await run(engine, parallel(max_time_s=1.0))
    reason = failed_reason(result)
    assert "task 't0'" in reason and "budget.max_time_s" in reason


async def test_task_fanout_budget(tmp_path: Path) -> None:
    replies = [
        {
            "match": {"role": "planner"},
            "json": {"tasks": [{"id": f"s{i}", "goal": f"Step {i}"} for i in range(3)]},
        },
        {"match": {"role": "executor"}, "content": "ok", "repeat": True},
    ]
    plan = Plan(
        tasks=(TaskSpec(id="big", goal="Split this", kind="plan", budget=TaskBudget(max_fanout=2)),)
    )
    async with engine_with(tmp_path, replies) as engine:
        result = await run(engine, plan)
    reason = failed_reason(result)
    assert "budget.max_fanout" in reason and "'big'" in reason


async def test_jobs_within_their_budgets_succeed(tmp_path: Path) -> None:
    async with engine_with(tmp_path, ANSWERING, prices={"scripted": list(PRICE)}) as engine:
        result = await run(
            engine,
            parallel(max_tokens=20_000, max_tool_calls=3, max_cost_usd=30.0, max_time_s=60),
            max_job_tokens=100_000,
            max_cost_usd=100.0,
            max_time_s=600,
            max_job_tool_calls=40,
            max_fanout=10,
        )
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert 4 <= sum(e.type == "ToolCalled" for e in events) <= 12
    assert result.usage.cost_usd > 0


def test_cli_budget_flags_parse_and_bad_values_give_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "replies.yaml").write_text(
        yaml.safe_dump(
            {"replies": [{"match": {"role": "executor"}, "content": "ok", "repeat": True}]}
        ),
        encoding="utf-8",
    )
    (tmp_path / "plan.yaml").write_text(
        yaml.safe_dump({"tasks": [{"id": "a", "goal": "Say ok"}]}), encoding="utf-8"
    )
    store = ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]
    base = ["run", "--plan", "plan.yaml", "--model", "scripted:replies.yaml", *store]
    bad = CliRunner().invoke(app, [*base, "--max-time", "soon"])
    assert bad.exit_code == 2
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--max-time" in lines[0] and "'soon'" in lines[0], bad.output
    good = CliRunner().invoke(
        app,
        [*base, "--max-cost", "0.50", "--max-tokens", "200000", "--max-time", "10m",
         "--max-tool-calls", "300", "--json"],
    )  # fmt: skip
    assert good.exit_code == 0, good.output
    job = json.loads(good.stdout[good.stdout.index("{") :])
    assert job["status"] == "succeeded"
    assert job["budget"] == {
        "max_cost_usd": 0.5,
        "max_tokens": 200_000,
        "max_time_s": 600,
        "max_tool_calls": 300,
        "max_fanout": None,
    }
    assert job["spent"]["tokens"] == job["usage"]["tokens_in"] + job["usage"]["tokens_out"]


def test_cli_live_header_shows_spend_against_the_budgets() -> None:
    from planweave.cli._format import spend_parts
    from planweave.control import decider

    options = JobOptions(max_time_s=600, max_cost_usd=0.5, max_job_tokens=200_000)
    state, _ = decider.submit("j", goal="g", plan=(TaskSpec(id="a"),), options=options, now=0.0)
    assert spend_parts(state, now=72.0) == ["1m12s/10m00s", "0/200.0k tokens", "$0/$0.500"]


async def test_api_job_view_shows_budget_and_spent(tmp_path: Path) -> None:
    kwargs = Settings.model_validate(
        {"data_dir": tmp_path / "data", "store": f"sqlite:///{tmp_path / 'jobs.db'}"}
    ).engine_kwargs()
    kwargs.update(model=ScriptedModel(replies=ANSWERING))
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"t:{TOKEN}", "rate_limit_per_s": 1000}
    )
    engine = Engine(**kwargs)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {
        "plan": {"tasks": [{"id": "a", "goal": "Compute"}]},
        "options": {"max_time_s": "10m", "max_job_tool_calls": 30, "max_job_tokens": 50_000},
    }
    try:
        async with (
            running_server(engine, settings) as server,
            httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http,
        ):
            bad = await http.post("/v1/jobs", json={**body, "options": {"max_time_s": "soon"}})
            assert bad.status_code == 422
            created = await http.post("/v1/jobs", json=body)
            assert created.status_code == 201, created.text
            job_id = created.json()["job_id"]
            async with (
                asyncio.timeout(LIMIT_S),
                http.stream("GET", f"/v1/jobs/{job_id}/events") as s,
            ):
                [line async for line in s.aiter_lines()]
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
    finally:
        await engine.close()
    assert job["status"] == "succeeded", job
    assert job["budget"]["max_time_s"] == 600
    assert job["budget"]["max_tool_calls"] == 30
    assert job["budget"]["max_tokens"] == 50_000
    assert job["spent"]["tool_calls"] >= 1
    assert job["spent"]["tokens"] == job["usage"]["tokens_in"] + job["usage"]["tokens_out"] > 0
    assert job["spent"]["elapsed_s"] > 0


def test_durations_in_job_options() -> None:
    assert JobOptions(max_time_s="1h30m").max_time_s == 5400
    assert JobOptions(max_time_s="90s").max_time_s == 90
    with pytest.raises(ValueError, match="max_time_s"):
        JobOptions(max_time_s="-3m")


async def test_workers_without_the_store_hold_to_the_grants_in_their_work_items(
    tmp_path: Path,
) -> None:
    # The split a cluster uses: the plane drives the job, worker pools on a shared bus run it and
    # never read the store, so they only know the grant each work item carries.
    from planweave.bus import MemoryBus

    bus = MemoryBus()
    budget = 6_000
    plane = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        run_workers=False,
    )
    workers = Engine(
        store="memory://",
        bus=bus,
        model=ScriptedModel(replies=LOOPING),
        data_dir=tmp_path / "data",
        run_plane=False,
        concurrency={"executor": 4},
    )
    async with plane, workers:
        result = await run(plane, parallel(), max_job_tokens=budget)
        made = await calls(plane, result.job_id)
        assert await workers.store.list_jobs() == []
    assert "max_job_tokens" in failed_reason(result)
    assert sum(c.tokens_in + c.tokens_out for c in made) <= budget


def test_the_decider_shares_grants_waits_for_returns_and_stops_when_nothing_can_cover() -> None:
    from planweave.control import decider
    from planweave.events import Grant
    from planweave.messages import Outcome

    options = JobOptions(max_job_tokens=1_000, max_cost_usd=None)
    plan = tuple(TaskSpec(id=f"t{i}", goal="g") for i in range(4))
    state, _ = decider.submit("j", goal="g", plan=plan, options=options, now=0.0)

    def assign(task_id: str) -> Grant:
        events = decider.assign(state, task_id, worker="executor", now=1.0).events
        grant = events[0].grant  # type: ignore[union-attr]
        assert grant is not None
        return grant

    def outcome(task_id: str, **fields: Any) -> list[str]:
        task = state.tasks[task_id]
        done = Outcome(job_id="j", task_id=task_id, attempt=task.attempt, **fields)
        return [e.type for e in decider.on_outcome(state, done, now=2.0).events]

    grants = [assign(f"t{i}").tokens or 0 for i in range(4)]
    assert grants == [250, 250, 250, 250]  # shared evenly among the ready tasks
    need = {"status": "failed", "error_type": "budget_needed", "retryable": True}
    # t0's next call may take 600: the others hold the rest, so it waits for them.
    assert outcome("t0", needs=Grant(tokens=600), **need) == ["TaskStarted", "TaskNeedsBudget"]
    assert outcome("t1", status="succeeded", result="ok")[-1] == "TaskCompleted"
    woke = outcome("t2", status="succeeded", result="ok")
    assert woke[-1] == "TaskReady"  # 750 unreserved now: t0 runs again
    assert (assign("t0").tokens or 0) >= 600
    # A call no return could ever cover stops the job, naming the option to raise.
    events = decider.on_outcome(
        state,
        Outcome(job_id="j", task_id="t0", attempt=2, needs=Grant(tokens=5_000), **need),
        now=3.0,
    ).events
    failed = events[-1]
    assert failed.type == "JobFailed" and failed.code == "budget_exceeded"  # type: ignore[union-attr]
    assert "max_job_tokens" in failed.reason  # type: ignore[union-attr]


async def test_the_wall_time_budget_counts_from_submission_across_a_restart(
    tmp_path: Path,
) -> None:
    slow = [{"match": {"role": "executor"}, "content": "done", "delay_s": 30.0, "repeat": True}]
    async with engine_with(tmp_path, slow) as first:
        job_id = await first.submit(plan=parallel(1), max_time_s=1.5)
        await asyncio.sleep(0.2)  # its task is running when the process goes away
    await asyncio.sleep(1.5)  # the budget runs out while nothing drives the job
    async with engine_with(tmp_path, slow) as second:
        result = await asyncio.wait_for(second.resume(job_id, force=True), LIMIT_S)
    assert "max_time_s" in failed_reason(result)
