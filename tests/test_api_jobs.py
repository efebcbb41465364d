"""The HTTP API on a real uvicorn server: jobs, tasks, artifacts, dead letters and errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from planweave import Engine, Plan, TaskSpec, ToolError, tool
from planweave.bus.memory import MemoryBus
from planweave.config import Settings
from planweave.constants import QUEUE_PREFIX
from planweave.llm import ScriptedModel
from planweave.server.testing import RunningServer, running_server

ALICE = "pw_alice_token_for_tests_0000000000"
BOB = "pw_bob_token_for_tests_11111111111111"
SCRAPER = "pw_metrics_token_for_tests_222222222"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

GOAL_REPLIES: list[dict[str, Any]] = [
    {
        "match": {"role": "planner", "contains": "squared"},
        "json": {
            "tasks": [
                {"id": "sum", "goal": "Compute 2+3", "depends_on": [], "kind": "execute"},
                {"id": "square", "goal": "Square the sum", "depends_on": ["sum"]},
            ]
        },
    },
    {
        "match": {"role": "executor", "contains": "Compute 2+3"},
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}],
    },
    {"match": {"role": "executor", "contains": "Compute 2+3"}, "content": "5"},
    {"match": {"role": "executor", "contains": "Square the sum"}, "content": "25"},
    {"match": {"role": "composer"}, "content": "# Answer\n\n2+3 squared is **25**."},
    {"match": {"role": "planner"}, "json": {"tasks": [{"id": "alt", "goal": "Another way"}]}},
    {"match": {"role": "executor", "contains": "Another way"}, "content": "done another way"},
]

fragile_calls = {"n": 0}
gates: dict[str, asyncio.Event] = {}


@tool
def fragile() -> str:
    """Fail the first time it is called, then work."""
    fragile_calls["n"] += 1
    if fragile_calls["n"] == 1:
        raise ToolError("broken")
    return "fixed"


@tool
def broken() -> str:
    """Always fail."""
    raise ToolError("no way")


@tool
async def slow() -> str:
    """Take a long time."""
    gates["started"].set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gates["release"].wait(), 30)
    return "late"


@tool
def text_of(size: int) -> str:
    """A text of ``size`` characters."""
    return "r" * size


def settings_for(tmp_path: Path, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "tokens": f"alice:{ALICE},bob:{BOB}",
            "metrics_token": SCRAPER,
            "rate_limit_per_s": 1000,
            "rate_limit_burst": 1000,
            **extra,
        }
    )


def engine_for(tmp_path: Path, **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=GOAL_REPLIES),
        data_dir=tmp_path / "data",
        tools=[fragile, broken, slow, text_of],
        **kwargs,
    )


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, engine: Engine | None = None, **extra: Any
) -> AsyncIterator[RunningServer]:
    engine = engine or engine_for(tmp_path)
    try:
        async with running_server(engine, settings_for(tmp_path, **extra)) as server:
            yield server
    finally:
        await engine.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningServer]:
    fragile_calls["n"] = 0
    gates.update(started=asyncio.Event(), release=asyncio.Event())
    engine = engine_for(tmp_path)
    try:
        async with running_server(engine, settings_for(tmp_path)) as server:
            yield server
    finally:
        gates["release"].set()
        await engine.close()


def client(server: RunningServer, token: str | None = ALICE) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10)


async def wait_for_status(http: httpx.AsyncClient, job_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(1000):
        job: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def tool_plan(*tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"plan": {"tasks": [{"kind": "tool", **t} for t in tasks], **extra}}


async def test_a_goal_is_planned_run_and_inspected_task_by_task(api: RunningServer) -> None:
    async with client(api) as http:
        created = await http.post("/v1/jobs", json={"goal": "What is 2+3, then squared?"})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        job = await wait_for_status(http, job_id, "succeeded", "failed")
        assert job["status"] == "succeeded", job["error"]
        assert "25" in job["result"]
        assert job["usage"]["llm_calls"] == 5 and job["usage"]["tokens_in"] > 0
        assert job["tasks_total"] == job["tasks_done"] == 4
        assert job["artifacts"] == ["result.md"]
        assert job["options"]["max_attempts"] == 3 and "workspace" not in job["options"]

        tasks = (await http.get(f"/v1/jobs/{job_id}/tasks")).json()["tasks"]
        assert [t["id"] for t in tasks] == ["root", "sum", "square", "compose"]
        square = next(t for t in tasks if t["id"] == "square")
        assert square["depends_on"] == ["sum"] and square["parent"] == "root"
        assert square["status"] == "succeeded" and square["result"] == "25"

        detail = (await http.get(f"/v1/jobs/{job_id}/tasks/sum")).json()
        assert [c["role"] for c in detail["llm_calls"]] == ["executor", "executor"]
        assert detail["llm_calls"][0]["prompt"] and detail["llm_calls"][1]["reply"] == "5"
        assert detail["tool_calls"][0]["name"] == "calculator"
        assert detail["tool_calls"][0]["outcome"] == "ok" and detail["tool_calls"][0]["result"]
        history = [e["type"] for e in detail["history"]]
        assert history[-1] == "TaskCompleted" and "TaskStarted" in history
        assert (await http.get(f"/v1/jobs/{job_id}/tasks/square")).json()["inputs"] == {"sum": "5"}
        assert (await http.get(f"/v1/jobs/{job_id}/tasks/nope")).status_code == 404

        listed = (await http.get(f"/v1/jobs/{job_id}/artifacts")).json()["artifacts"]
        assert [(a["name"], a["content_type"]) for a in listed] == [("result.md", "text/markdown")]
        download = await http.get(listed[0]["url"])
        assert download.status_code == 200
        assert download.text == job["result"]
        assert download.headers["content-type"].startswith("text/markdown")
        assert (
            int(download.headers["content-length"])
            == listed[0]["size"]
            == len(job["result"].encode())
        )
        assert download.headers["content-disposition"].startswith("attachment")
        assert download.headers["x-content-type-options"] == "nosniff"


async def test_a_big_job_is_read_in_pages_with_results_previewed(api: RunningServer) -> None:
    # 230 tasks of 20,000 characters each: 4.6 MB of results that no one response carries.
    ids = [f"t{i:03d}" for i in range(230)]
    tasks = [{"id": i, "tool": "text_of", "args": {"size": 20_000}} for i in ids]
    tasks[1]["args"] = {"size": 10}
    async with client(api) as http, client(api, BOB) as bob:
        created = await http.post("/v1/jobs", json=tool_plan(*tasks))
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        await wait_for_status(http, job_id, "succeeded")

        read = await http.get(f"/v1/jobs/{job_id}")
        assert len(read.content) < 400_000, len(read.content)
        job = read.json()
        assert job["status"] == "succeeded" and job["tasks_total"] == 230
        assert [t["id"] for t in job["tasks"]] == ids[:100]
        assert job["tasks_next_after"] == "t099"
        # 230 results side by side: the job's answer is shown in part too.
        assert job["result_truncated"] and len(job["result"]) == 65_536
        listed = (await http.get("/v1/jobs")).json()["jobs"]
        assert listed[0]["result_truncated"] and len(listed[0]["result"]) == 2_000
        first, small = job["tasks"][0], job["tasks"][1]
        assert first["result_truncated"] and first["result"] == "r" * 2_000
        assert not small["result_truncated"] and small["result"] == "r" * 10

        seen: list[str] = []
        after: str | None = None
        while True:
            query: dict[str, Any] = {"limit": 70} | ({"after": after} if after else {})
            page = await http.get(f"/v1/jobs/{job_id}/tasks", params=query)
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["tasks_total"] == 230 and body["limit"] == 70
            assert len(body["tasks"]) <= 70
            assert all(t["result_truncated"] for t in body["tasks"] if t["id"] != "t001")
            seen += [t["id"] for t in body["tasks"]]
            after = body["next_after"]
            if after is None:
                break
        assert seen == ids  # plan order, each task once

        default = (await http.get(f"/v1/jobs/{job_id}/tasks")).json()
        assert len(default["tasks"]) == 100 and default["next_after"] == "t099"
        whole = (await http.get(f"/v1/jobs/{job_id}/tasks", params={"limit": 500})).json()
        assert len(whole["tasks"]) == 230 and whole["next_after"] is None
        last = await http.get(f"/v1/jobs/{job_id}/tasks", params={"after": "t229"})
        assert last.json()["tasks"] == [] and last.json()["next_after"] is None

        detail = (await http.get(f"/v1/jobs/{job_id}/tasks/t000")).json()
        assert detail["result"] == "r" * 20_000 and not detail["result_truncated"]

        for bad in ({"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"after": ""}):
            refused = await http.get(f"/v1/jobs/{job_id}/tasks", params=bad)
            assert refused.status_code == 422, (bad, refused.text)
        unknown = await http.get(f"/v1/jobs/{job_id}/tasks", params={"after": "nope"})
        assert unknown.status_code == 404
        assert (await bob.get(f"/v1/jobs/{job_id}/tasks")).status_code == 404
        assert (await bob.get(f"/v1/jobs/{job_id}")).status_code == 404


async def test_artifact_downloads_stay_inside_the_workspace(
    api: RunningServer, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("canary")
    async with client(api) as http:
        job_id = (await http.post("/v1/jobs", json={"goal": "What is 2+3, then squared?"})).json()[
            "job_id"
        ]
        await wait_for_status(http, job_id, "succeeded")
        base = f"{api.url}/v1/jobs/{job_id}/artifacts/"
        for tail in (
            "..%2F..%2F..%2Fsecret.txt",
            "..%2Fresult.md",
            "%2Fetc%2Fpasswd",
            "/etc/passwd",
            "result.md%00.txt",
            str(secret).lstrip("/"),
        ):
            response = await http.get(httpx.URL(base + tail))
            assert response.status_code == 404, tail
            assert "canary" not in response.text
        # A symlink swapped in for a listed artifact is refused, not followed.
        artifact = tmp_path / "data" / "workspaces" / job_id / "result.md"
        artifact.unlink()
        os.symlink(secret, artifact)
        response = await http.get(f"/v1/jobs/{job_id}/artifacts/result.md")
        assert response.status_code == 404 and "canary" not in response.text


async def test_idempotency_listing_filters_and_pages(api: RunningServer) -> None:
    plan = tool_plan({"id": "a", "tool": "calculator", "args": {"expression": "6*7"}})
    async with client(api) as http:
        first = await http.post("/v1/jobs", json=plan, headers={"Idempotency-Key": "k-1"})
        again = await http.post("/v1/jobs", json=plan, headers={"Idempotency-Key": "k-1"})
        in_body = await http.post("/v1/jobs", json={**plan, "idempotency_key": "k-1"})
        assert (first.status_code, again.status_code, in_body.status_code) == (201, 200, 200)
        assert first.json()["job_id"] == again.json()["job_id"] == in_body.json()["job_id"]
        ids = [first.json()["job_id"]]
        for _ in range(3):
            ids.append((await http.post("/v1/jobs", json=plan)).json()["job_id"])
        failing = tool_plan({"id": "x", "tool": "broken", "max_attempts": 1})
        failed_id = (await http.post("/v1/jobs", json=failing)).json()["job_id"]
        await wait_for_status(http, failed_id, "failed")
        for job_id in ids:
            job = await wait_for_status(http, job_id, "succeeded")
            assert job["result"] == 42
        page = (await http.get("/v1/jobs", params={"limit": 2})).json()
        assert page["limit"] == 2 and page["offset"] == 0 and len(page["jobs"]) == 2
        everything = (await http.get("/v1/jobs")).json()["jobs"]
        assert len(everything) == 5 and everything[0]["job_id"] == failed_id  # newest first
        rest = (await http.get("/v1/jobs", params={"limit": 2, "offset": 2})).json()["jobs"]
        assert [j["job_id"] for j in rest] == [j["job_id"] for j in everything[2:4]]
        failed = (await http.get("/v1/jobs", params={"status": "failed"})).json()["jobs"]
        assert [j["job_id"] for j in failed] == [failed_id]
        assert failed[0]["error"] and failed[0]["tasks_total"] == 1
        bad = await http.get("/v1/jobs", params={"status": "sleeping"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
        for limit in (0, 201):
            assert (await http.get("/v1/jobs", params={"limit": limit})).status_code == 422


async def test_bad_submissions_are_422_with_every_problem_listed(api: RunningServer) -> None:
    cyclic = {
        "plan": {
            "tasks": [
                {"id": "a", "kind": "tool", "tool": "calculator", "depends_on": ["b"]},
                {"id": "b", "kind": "tool", "tool": "calculator", "depends_on": ["a"]},
                {"id": "c", "kind": "tool", "tool": "no_such_tool", "depends_on": ["zzz"]},
            ]
        }
    }
    async with client(api) as http:
        response = await http.post("/v1/jobs", json=cyclic)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        problems = " ".join(error["details"])
        assert "cycle" in problems and "zzz" in problems and "no_such_tool" in problems
        for body in (
            {},
            {"goal": "   "},
            {"goal": "x", "options": {"workspace": "/etc"}},
            {"goal": "x", "options": {"model": "scripted:/etc/passwd"}},
            {"goal": "x", "options": {"max_attempts": 0}},
            {"goal": "x", "surprise": 1},
            {"plan": {"tasks": []}},
        ):
            response = await http.post("/v1/jobs", json=body)
            assert response.status_code == 422, body
            assert response.json()["error"]["code"] == "validation_error"
        for raw in (
            b'{"goal": "x", "options": {"max_cost_usd": NaN}}',
            b'{"goal": "x", "options": {"max_cost_usd": Infinity}}',
            b'{"goal": "\\ud800"}',
            b'{"goal": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            b"{not json",
            b"[]",
        ):
            response = await http.post(
                "/v1/jobs", content=raw, headers={"Content-Type": "application/json"}
            )
            assert response.status_code in (400, 422), raw[:40]
            assert response.json()["error"]["code"] == "validation_error"
        assert (await http.get("/v1/jobs")).json()["jobs"] == []


async def test_cancel_retry_replan_and_delete(api: RunningServer) -> None:
    async with client(api) as http:
        slow_id = (await http.post("/v1/jobs", json=tool_plan({"id": "s", "tool": "slow"}))).json()[
            "job_id"
        ]
        await asyncio.wait_for(gates["started"].wait(), 5)
        for path in ("retry", "replan", "tasks/s/retry"):
            conflict = await http.post(f"/v1/jobs/{slow_id}/{path}")
            assert conflict.status_code == 409, path
            assert conflict.json()["error"]["code"] == "conflict"
        assert (await http.delete(f"/v1/jobs/{slow_id}")).status_code == 409
        cancelled = await http.post(f"/v1/jobs/{slow_id}/cancel")
        assert cancelled.status_code == 202
        job = await wait_for_status(http, slow_id, "cancelled")
        assert job["error"] == "cancelled by the user"
        assert (await http.post(f"/v1/jobs/{slow_id}/cancel")).status_code == 202  # a no-op

        plan = tool_plan(
            {"id": "a", "tool": "current_time"},
            {"id": "b", "tool": "fragile", "depends_on": ["a"], "max_attempts": 1},
        )
        job_id = (await http.post("/v1/jobs", json=plan)).json()["job_id"]
        assert (await wait_for_status(http, job_id, "failed", "succeeded"))["status"] == "failed"
        assert (await http.post(f"/v1/jobs/{job_id}/tasks/nope/retry")).status_code == 404
        retried = await http.post(f"/v1/jobs/{job_id}/tasks/b/retry")
        assert retried.status_code == 202 and retried.json()["job_id"] == job_id
        job = await wait_for_status(http, job_id, "succeeded", "failed")
        assert job["status"] == "succeeded" and job["result"] == "fixed"
        assert (await http.post(f"/v1/jobs/{job_id}/retry")).status_code == 409

        broken_id = (
            await http.post(
                "/v1/jobs", json=tool_plan({"id": "x", "tool": "broken", "max_attempts": 1})
            )
        ).json()["job_id"]
        await wait_for_status(http, broken_id, "failed")
        assert (await http.post(f"/v1/jobs/{broken_id}/replan")).status_code == 202
        job = await wait_for_status(http, broken_id, "succeeded", "failed")
        assert job["status"] == "succeeded" and job["result"] == "done another way"

        again = await http.post(f"/v1/jobs/{broken_id}/retry")
        assert again.status_code == 409
        assert (await http.delete(f"/v1/jobs/{broken_id}")).status_code == 204
        assert (await http.get(f"/v1/jobs/{broken_id}")).status_code == 404
        assert (await http.delete(f"/v1/jobs/{broken_id}")).status_code == 404


async def test_delete_refuses_a_finished_job_another_process_holds(tmp_path: Path) -> None:
    gates.update(started=asyncio.Event(), release=asyncio.Event())
    other = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}", data_dir=tmp_path / "data", run_workers=False
    )
    async with serving(tmp_path) as server, client(server) as http, other:
        job_id = (await http.post("/v1/jobs", json=tool_plan({"id": "s", "tool": "slow"}))).json()[
            "job_id"
        ]
        await asyncio.wait_for(gates["started"].wait(), 5)
        gates["release"].set()
        await wait_for_status(http, job_id, "succeeded")
        # Another process takes the finished job's claim (to run it again, say) once the
        # server's plane has let it go: deleting it now would pull it from under that process.
        owner = other.plane.owner
        for _ in range(500):
            if await other.store.claim_job(job_id, owner, lease_s=30):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the server never released the finished job's claim")
        refused = await http.delete(f"/v1/jobs/{job_id}")
        assert refused.status_code == 409 and "another process" in refused.text
        assert (await http.get(f"/v1/jobs/{job_id}")).json()["status"] == "succeeded"
        await other.store.release_job(job_id, owner)
        assert (await http.delete(f"/v1/jobs/{job_id}")).status_code == 204
        assert (await http.get(f"/v1/jobs/{job_id}")).status_code == 404


async def test_a_job_nobody_drives_is_shown_stalled(tmp_path: Path) -> None:
    # Another process submits a job and stops before any of it runs: its claim is released,
    # the job is left running with nobody to drive it.
    other = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}", data_dir=tmp_path / "data", run_workers=False
    )
    async with other:
        plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="current_time"),))
        job_id = await other.submit(plan=plan, tenant="alice")
    async with serving(tmp_path) as server, client(server) as http:
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] == "running" and job["stalled"] is True
        (row,) = (await http.get("/v1/jobs")).json()["jobs"]
        assert row["job_id"] == job_id and row["stalled"] is True
        finished = (
            await http.post("/v1/jobs", json=tool_plan({"id": "t", "tool": "current_time"}))
        ).json()
        done = await wait_for_status(http, finished["job_id"], "succeeded")
        assert done["stalled"] is False


async def test_dead_letters_are_listed_per_tenant_and_redriven(tmp_path: Path) -> None:
    bus = MemoryBus(max_deliveries=1)
    engine = engine_for(tmp_path, bus=bus, run_workers=False)
    queue = QUEUE_PREFIX + "tool"
    async with (
        serving(tmp_path, engine) as server,
        client(server) as alice,
        client(server, BOB) as bob,
    ):
        plan = tool_plan({"id": "a", "tool": "current_time"})
        job_id = (await alice.post("/v1/jobs", json=plan)).json()["job_id"]
        deliveries = await bus.receive(queue, "test", timeout_s=5)
        assert deliveries and deliveries[0].message.job_id == job_id
        await bus.nack(deliveries[0], reason="poison")
        letters = (await alice.get("/v1/dlq")).json()["dead_letters"]
        assert len(letters) == 1
        letter = letters[0]
        assert (letter["queue"], letter["job_id"], letter["task_id"]) == (
            queue,
            job_id,
            "a",
        )
        assert letter["deliveries"] == 1 and letter["reason"]
        path = f"/v1/dlq/{queue}/{letter['id']}"
        detail = (await alice.get(path)).json()
        assert detail["message"]["task_id"] == "a" and detail["message"]["attempt"] == 1
        assert (await bob.get("/v1/dlq")).json()["dead_letters"] == []
        assert (await bob.get(path)).status_code == 404
        assert (await bob.post(path + "/redrive")).status_code == 404
        assert (await alice.get(f"/v1/dlq/nope/{letter['id']}")).status_code == 404
        redriven = await alice.post(path + "/redrive")
        assert redriven.status_code == 202 and redriven.json()["id"] == letter["id"]
        assert await bus.depth(queue) == 1
        assert (await alice.get("/v1/dlq")).json()["dead_letters"] == []
        assert (await alice.post(path + "/redrive")).status_code == 404


async def test_errors_share_one_json_shape_and_security_headers(api: RunningServer) -> None:
    async with client(api) as http, client(api, token=None) as anonymous:
        cases = [
            (await http.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 404, "not_found"),
            (await http.get("/v1/no/such/route"), 404, "not_found"),
            (await http.put("/v1/jobs"), 405, "method_not_allowed"),
            (await http.get("/v1/jobs", params={"offset": -1}), 422, "validation_error"),
            (await anonymous.get("/v1/jobs"), 401, "unauthorized"),
            (
                await http.get("/v1/jobs", headers={"Authorization": "Bearer nope"}),
                401,
                "unauthorized",
            ),
        ]
        for response, status, code in cases:
            assert response.status_code == status, response.text
            assert response.json()["error"]["code"] == code
            assert response.json()["error"]["message"]
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        assert cases[4][0].headers["www-authenticate"].startswith("Bearer")


async def test_oversize_bodies_are_413(tmp_path: Path) -> None:
    async with serving(tmp_path, max_body_bytes=4096) as server, client(server) as http:
        big = {"goal": "x" * 5000}
        response = await http.post("/v1/jobs", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"goal": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        streamed = await http.post(
            "/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
        small = await http.post("/v1/jobs", json=tool_plan({"id": "a", "tool": "current_time"}))
        assert small.status_code == 201


async def test_a_token_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=3) as server,
        client(server) as alice,
        client(server, BOB) as bob,
    ):
        statuses = [(await alice.get("/v1/jobs")).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = await alice.get("/v1/jobs")
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert (await bob.get("/v1/jobs")).status_code == 200  # its own bucket
        assert (await alice.get("/healthz")).status_code == 200  # not limited


async def test_health_metrics_and_the_ui(api: RunningServer) -> None:
    async with (
        client(api) as http,
        client(api, token=None) as anonymous,
        client(api, token=SCRAPER) as scraper,
    ):
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/readyz")).json() == {"status": "ok"}
        assert (await anonymous.get("/metrics")).status_code == 401
        # The counts cover every tenant: a tenant's token does not read them.
        refused = await http.get("/metrics")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert "planweave_" not in refused.text
        assert (await scraper.get("/v1/jobs")).status_code == 401  # and it reads nothing else
        job_id = (await http.post("/v1/jobs", json={"goal": "What is 2+3, then squared?"})).json()[
            "job_id"
        ]
        await wait_for_status(http, job_id, "succeeded")
        await asyncio.sleep(0.1)
        response = await scraper.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        for line in (
            'planweave_jobs{status="succeeded"} 1.0',
            'planweave_events_total{type="JobCompleted"} 1.0',
            'planweave_llm_tokens_total{direction="in"}',
            "planweave_llm_cost_usd_total",
            'planweave_tool_call_latency_seconds_count{outcome="ok"} 1.0',
            'planweave_llm_call_latency_seconds_count{outcome="ok"} 5.0',
            'planweave_task_duration_seconds_count{outcome="succeeded"}',
            'planweave_queue_depth{queue="pw:work:tool"} 0.0',
            'planweave_tasks{status="running"} 0.0',
        ):
            assert line in text, line
        page = await anonymous.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
