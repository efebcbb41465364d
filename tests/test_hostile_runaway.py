"""Runaway work and tenants' fair share, end to end: each runaway class is stopped by a limit
that is on by default, with the documented reason, in bounded time and without stalling the
event loop; one tenant's flood does not hold back another tenant's jobs; and private network
access is never inherited by every API tenant from the process.

Sizes are small, but each one trips its limit (the attacks used 10,000 tool calls, 100 x 100
sub-plans and 60,000 dependencies).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from planweave import Engine, JobResult, Plan, TaskSpec, tool
from planweave.config import Settings
from planweave.llm import ScriptedModel
from planweave.server.testing import running_server

LIMIT_S = 30.0
"""Every scenario must end well within this (a hang guard, not a timing assertion)."""


class StallMeter:
    """A ticker on the event loop that records its longest wait between ticks."""

    def __init__(self, tick_s: float = 0.01) -> None:
        self.tick_s = tick_s
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            self.longest_s = max(self.longest_s, now - last - self.tick_s)
            last = now

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@asynccontextmanager
async def engine_with(
    tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any
) -> AsyncIterator[Engine]:
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )
    async with engine:
        yield engine


async def run_bounded(engine: Engine, goal: str | None = None, **kwargs: Any) -> JobResult:
    return await asyncio.wait_for(engine.run(goal, **kwargs), LIMIT_S)


async def test_thousands_of_tool_calls_in_one_reply_run_only_up_to_the_cap(
    tmp_path: Path,
) -> None:
    flood = [{"name": "calculator", "arguments": {"expression": f"{i}*2"}} for i in range(3_000)]
    replies = [
        {"match": {"role": "executor", "contains": "Task:"}, "tool_calls": flood},
        {"match": {"role": "executor"}, "content": "All doubled.", "repeat": True},
    ]
    plan = Plan(tasks=(TaskSpec(id="a", goal="Double every number"),))
    async with engine_with(tmp_path, replies) as engine, StallMeter() as meter:
        result = await run_bounded(engine, plan=plan)
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert sum(e.type == "ToolCalled" for e in events) == 16  # max_tool_calls_per_step
    assert meter.longest_s < 5.0


async def test_nested_subplans_stop_at_the_job_task_limit(tmp_path: Path) -> None:
    def subplan(prefix: str, size: int, kind: str) -> dict[str, Any]:
        tasks = [
            {"id": f"t{i}", "goal": f"{prefix} {i}", "depends_on": [], "kind": kind}
            for i in range(1, size + 1)
        ]
        return {"tasks": tasks}

    replies = [
        {
            "match": {"role": "planner", "contains": "sub-plan at depth"},
            "json": subplan("Do step", 10, "execute"),
            "repeat": True,
        },
        {"match": {"role": "planner"}, "json": subplan("Plan part", 10, "plan")},
        {"match": {"role": "executor"}, "content": "Step done.", "repeat": True},
    ]
    async with engine_with(tmp_path, replies) as engine:
        result = await run_bounded(
            engine, "Build the whole thing", max_plan_tasks=10, max_job_tasks=45
        )
        state = await engine.get(result.job_id)
    assert result.status == "failed"
    assert "over its limit of 45" in (result.error or "")
    assert "raise the job option max_job_tasks" in (result.error or "")
    assert len(state.tasks) <= 45


async def test_a_free_model_is_stopped_by_the_token_budget(tmp_path: Path) -> None:
    # A scripted (or local) model costs $0: the dollar budget never trips, the token one does.
    replies = [{"match": {"role": "executor"}, "content": "word " * 2_000, "repeat": True}]
    plan = Plan(tasks=tuple(TaskSpec(id=f"t{i}", goal=f"Write part {i}") for i in range(20)))
    async with engine_with(tmp_path, replies, concurrency={"executor": 1}) as engine:
        result = await run_bounded(engine, plan=plan, max_job_tokens=5_000)
        events = await engine.events(result.job_id)
    assert result.status == "failed"
    assert result.usage.cost_usd == 0
    assert "raise the job option max_job_tokens" in (result.error or "")
    failed = [e for e in events if e.type == "JobFailed"]
    assert failed and failed[0].code == "budget_exceeded"  # type: ignore[union-attr]
    assert sum(e.type == "TaskCompleted" for e in events) < 20


async def test_a_planner_reply_with_sixty_thousand_dependencies_fails_fast(
    tmp_path: Path,
) -> None:
    deps = [f"ghost{i}" for i in range(60_000)]
    bad = {"tasks": [{"id": "t1", "goal": "Research", "depends_on": deps, "kind": "execute"}]}
    replies = [{"match": {"role": "planner"}, "json": bad, "repeat": True}]
    async with engine_with(tmp_path, replies) as engine, StallMeter() as meter:
        result = await run_bounded(engine, "Write a report", max_attempts=1)
    assert result.status == "failed"
    assert "at most 1000 are allowed" in (result.error or "")
    assert len(result.error or "") < 5_000
    assert meter.longest_s < 10.0  # the quadratic dedupe held the loop for 82 s


async def test_one_tenant_flooding_at_top_priority_does_not_hold_back_another(
    tmp_path: Path,
) -> None:
    order: list[str] = []

    @tool
    async def step(name: str) -> str:
        """Record a step."""
        await asyncio.sleep(0.02)
        order.append(name)
        return name

    def plan(prefix: str, size: int) -> Plan:
        return Plan(
            tasks=tuple(
                TaskSpec(id=f"s{i}", kind="tool", tool="step", args={"name": f"{prefix}{i}"})
                for i in range(size)
            )
        )

    async with engine_with(tmp_path, [], tools=[step], concurrency={"tool": 2}) as engine:
        flood = [
            await engine.submit(plan=plan(f"mallory{n}-", 10), tenant="mallory", priority=10**6)
            for n in range(10)
        ]
        alice = await engine.submit(plan=plan("alice-", 2), tenant="alice", priority=0)
        await asyncio.wait_for(engine.wait(alice), LIMIT_S)
        left_when_alice_finished = 102 - len(order)
        for job_id in flood:
            await asyncio.wait_for(engine.wait(job_id), LIMIT_S)
    assert len(order) == 102
    # Alice's two tasks took turns with mallory's, instead of waiting for all 100 of them.
    assert left_when_alice_finished >= 50


class Canary:
    """An HTTP server on loopback that counts its hits."""

    def __init__(self) -> None:
        self.hits = 0
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.hits += 1
                body = b"internal secret"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture
def canary() -> Iterator[Canary]:
    canary = Canary()
    thread = threading.Thread(
        target=canary.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield canary
    finally:
        canary.server.shutdown()
        canary.server.server_close()
        thread.join()


ALICE = "pw_alice_runaway_token_00000000000000"
OPS = "pw_ops_runaway_token_1111111111111111"


async def test_private_network_is_granted_per_tenant_never_by_the_process(
    tmp_path: Path, canary: Canary
) -> None:
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        allow_private_network=True,  # the process may reach loopback ...
    )
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "tokens": f"alice:{ALICE},ops:{OPS}",
            "allow_private_network": True,
            "private_network_tenants": ["ops"],  # ... but only ops' jobs may
            "rate_limit_per_s": 10_000,
            "rate_limit_burst": 10_000,
        }
    )
    body = {
        "plan": {"tasks": [{"id": "f", "kind": "tool", "tool": "http_fetch", "args": {}}]},
        "options": {"max_attempts": 1},
    }
    body["plan"]["tasks"][0]["args"] = {"url": canary.url}  # type: ignore[index]
    try:
        async with running_server(engine, settings) as server:
            outcomes = {}
            for name, token in (("alice", ALICE), ("ops", OPS)):
                headers = {"Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(
                    base_url=server.url, headers=headers, timeout=10
                ) as client:
                    created = await client.post("/v1/jobs", json=body)
                    assert created.status_code == 201, created.text
                    job_id = created.json()["job_id"]
                    outcomes[name] = await asyncio.wait_for(engine.wait(job_id), LIMIT_S)
    finally:
        await engine.close()
    assert outcomes["alice"].status == "failed"
    assert "private networks are not allowed" in (outcomes["alice"].error or "")
    assert outcomes["ops"].ok, outcomes["ops"].error
    assert canary.hits == 1  # only ops' job reached it


async def test_python_jobs_take_the_engine_network_setting_and_big_plans_need_a_raise(
    tmp_path: Path,
) -> None:
    from planweave import PlanInvalid

    plan = Plan(tasks=tuple(TaskSpec(id=f"t{i}", kind="tool", tool="noop") for i in range(30)))

    @tool
    def noop() -> str:
        """Do nothing."""
        return "ok"

    async with engine_with(tmp_path, [], tools=[noop], allow_private_network=True) as engine:
        job_id = await engine.submit(plan=Plan(tasks=plan.tasks[:1]))
        assert (await engine.get(job_id)).options.allow_private_network is True
        with pytest.raises(PlanInvalid, match="raise the job option max_job_tasks"):
            await engine.submit(plan=plan, max_job_tasks=20)
        result = await run_bounded(engine, plan=plan, max_job_tasks=30)
    assert result.ok
