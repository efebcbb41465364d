"""Per-tenant quotas and the per-job byte cap, end to end on a real server: one tenant that
floods the server with jobs, fills its storage or spends its dollars is refused (429 with a
``code`` saying which quota) while another tenant still submits and runs; a tenant's jobs past
its running-job limit wait and start by themselves; deleting jobs frees storage; and a job that
records more than ``max_job_bytes`` fails with ``job_too_large``, its stored state equal to
its replayed log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from planweave import Engine, QuotaExceeded, TaskSpec, TenantQuotas, tool
from planweave.config import Settings
from planweave.events import JobFailed, JobSubmitted, LlmCalled, TaskCompleted
from planweave.llm import ScriptedModel
from planweave.server.testing import RunningServer, running_server
from planweave.state import replay
from planweave.store import Batch

ALICE = "pw_alice_quota_token_00000000000000"
BOB = "pw_bob_quota_token_11111111111111111"
LIMIT_S = 30.0
"""A hang guard for waiting on jobs, not a timing assertion."""

BLOCKED = {"plan": {"tasks": [{"id": "wait", "kind": "tool", "tool": "gate"}]}}
QUICK = {"plan": {"tasks": [{"id": "now", "kind": "tool", "tool": "current_time"}]}}


@asynccontextmanager
async def served(
    tmp_path: Path, quotas: TenantQuotas
) -> AsyncIterator[tuple[RunningServer, asyncio.Event]]:
    """A server for alice and bob with ``quotas``, and the gate its ``gate`` tool waits on."""
    opened = asyncio.Event()

    @tool
    async def gate() -> str:
        """Wait until the test opens the gate."""
        await opened.wait()
        return "open"

    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        tools=[gate],
        tenant_quotas=quotas,
    )
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "tokens": f"alice:{ALICE},bob:{BOB}",
            "rate_limit_per_s": 10_000,
            "rate_limit_burst": 10_000,
        }
    )
    try:
        async with running_server(engine, settings) as server:
            yield server, opened
    finally:
        opened.set()
        await engine.close()


def client(server: RunningServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def finished(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job's view once it ended."""
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        view: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
        if view["status"] != "running":
            return view
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not end")


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def refused(response: httpx.Response, code: str) -> str:
    """Check a quota refusal; return its message."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert int(response.headers["Retry-After"]) >= 1
    message: str = error["message"]
    return message


async def test_a_tenant_past_its_running_jobs_waits_and_past_its_queue_is_refused(
    tmp_path: Path,
) -> None:
    quotas = TenantQuotas(max_running_jobs=1, max_queued_jobs=1)
    async with served(tmp_path, quotas) as (server, opened):
        engine = server.context.engine
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            running = await submit(alice, BLOCKED)
            waiting = await submit(alice, QUICK)
            message = refused(await alice.post("/v1/jobs", json=QUICK), "tenant_job_limit")
            assert "alice" in message and "1 running plus 1 waiting" in message

            # The waiting job is admitted but none of its tasks went to a worker.
            assert engine.queued(waiting) and not engine.queued(running)
            state = await engine.get(waiting)
            assert state.status == "running" and state.tasks["now"].attempt == 0

            # Another tenant is not held back by alice's jobs: it submits and runs.
            bobs = await submit(bob, QUICK)
            assert (await finished(bob, bobs))["status"] == "succeeded"
            assert engine.queued(waiting)

            opened.set()  # alice's running job ends: the waiting one starts by itself
            assert (await finished(alice, running))["status"] == "succeeded"
            assert (await finished(alice, waiting))["status"] == "succeeded"
            assert not engine.queued(waiting)
            await finished(alice, await submit(alice, QUICK))  # room again


async def test_storage_quota_refuses_until_finished_jobs_are_deleted(tmp_path: Path) -> None:
    quotas = TenantQuotas(max_storage_bytes=1)  # whatever a job stores fills it
    async with served(tmp_path, quotas) as (server, _):
        engine = server.context.engine
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            first = await submit(alice, QUICK)
            assert (await finished(alice, first))["status"] == "succeeded"
            usage = await engine.store.tenant_usage("alice", since=0.0)
            assert usage.stored_bytes == (await engine.get(first)).data_bytes > 0

            message = refused(await alice.post("/v1/jobs", json=QUICK), "tenant_storage_limit")
            assert "delete finished jobs" in message
            with pytest.raises(QuotaExceeded) as caught:
                await engine.submit(
                    plan=[TaskSpec(id="now", kind="tool", tool="current_time")], tenant="alice"
                )
            assert caught.value.code == "tenant_storage_limit"

            await finished(bob, await submit(bob, QUICK))  # bob's storage is his own

            assert (await alice.delete(f"/v1/jobs/{first}")).status_code == 204
            assert (await engine.store.tenant_usage("alice", since=0.0)).stored_bytes == 0
            await finished(alice, await submit(alice, QUICK))


async def spent(server: RunningServer, tenant: str, job_id: str, cost_usd: float) -> None:
    """Record a finished job of ``tenant`` that spent ``cost_usd`` on a model call just now."""
    now = time.time()
    events = [
        JobSubmitted(job_id=job_id, seq=1, at=now, goal="an earlier job", tenant=tenant),
        LlmCalled(
            job_id=job_id,
            task_id="root",
            seq=2,
            at=now,
            model="openai:x",
            role="planner",
            cost_usd=cost_usd,
        ),
        JobFailed(job_id=job_id, seq=3, at=now, reason="over"),
    ]
    state = replay(list(events))
    await server.context.engine.store.commit(
        Batch(
            jobs=[state.to_row()],
            tasks=[t.to_row(job_id) for t in state.tasks.values()],
            events=list(events),
        )
    )


async def test_spend_quota_caps_a_jobs_budget_and_refuses_once_spent(tmp_path: Path) -> None:
    quotas = TenantQuotas(max_spend_usd=1.0, spend_window_s=3600)
    async with served(tmp_path, quotas) as (server, _):
        engine = server.context.engine
        async with client(server, ALICE) as alice, client(server, BOB) as bob:
            await spent(server, "alice", "earlier1", 0.75)
            # The new job may spend only what alice has left, not its own $5 default.
            capped = await submit(alice, {**QUICK, "options": {"max_cost_usd": 3}})
            assert (await engine.get(capped)).options.max_cost_usd == pytest.approx(0.25)
            await finished(alice, capped)

            await spent(server, "alice", "earlier2", 0.30)
            message = refused(await alice.post("/v1/jobs", json=QUICK), "tenant_spend_limit")
            assert "$1.05" in message and "$1.00" in message

            own = await submit(bob, QUICK)  # bob spent nothing: his budget is his own
            assert (await engine.get(own)).options.max_cost_usd == 1.0
            await finished(bob, own)


async def test_a_job_over_max_job_bytes_fails_and_its_state_is_its_replayed_log(
    tmp_path: Path,
) -> None:
    @tool
    def blob(n: int) -> str:
        """Return n bytes of text."""
        return "x" * n

    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        tools=[blob],
    )
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"alice:{ALICE}", "rate_limit_per_s": 0}
    )
    # Four results of 30,000 characters each: each is under max_result_bytes (64 KiB), so it
    # is kept in the log, but together they are over a max_job_bytes of 64 KiB.
    tasks = [{"id": f"b{i}", "kind": "tool", "tool": "blob", "args": {"n": 30_000}}
             for i in range(4)]  # fmt: skip
    for i in range(1, 4):
        tasks[i]["depends_on"] = [f"b{i - 1}"]
    body = {"plan": {"tasks": tasks}, "options": {"max_job_bytes": 65_536}}
    try:
        async with running_server(engine, settings) as server, client(server, ALICE) as alice:
            job_id = await submit(alice, body)
            view = await finished(alice, job_id)
            assert view["status"] == "failed"
            assert "max_job_bytes" in view["error"]

            events = await engine.events(job_id)
            ending = events[-1]
            assert isinstance(ending, JobFailed) and ending.code == "job_too_large"
            completed = [e for e in events if isinstance(e, TaskCompleted)]
            assert len(completed) == 3  # the third result took it over the limit
            stored = await engine.get(job_id)
            assert stored.data_bytes > 65_536
            assert replay(events).to_row() == stored.to_row()

            # The same plan with the default limit (64 MiB) succeeds.
            fine = await submit(alice, {"plan": {"tasks": tasks}})
            assert (await finished(alice, fine))["status"] == "succeeded"
            again = await engine.get(fine)
            assert replay(await engine.events(fine)).to_row() == again.to_row()
    finally:
        await engine.close()
