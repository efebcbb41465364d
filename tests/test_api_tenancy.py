"""Tenancy: every route of the OpenAPI description refuses a missing or bad token (401) and
answers another tenant's jobs, tasks, events, artifacts and dead letters as unknown (404)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from planweave import Engine
from planweave.bus.memory import MemoryBus
from planweave.config import Settings
from planweave.constants import QUEUE_PREFIX
from planweave.llm import ScriptedModel
from planweave.server.testing import RunningServer, running_server
from planweave.store.base import ArtifactRow, Batch

ALICE = "pw_alice_tenancy_token_000000000000"
BOB = "pw_bob_tenancy_token_1111111111111111"
PUBLIC = {"/healthz", "/readyz"}
STREAMS = {"/v1/events"}
QUEUE = QUEUE_PREFIX + "tool"
PARTY_FILE = Path(__file__).resolve().parent.parent / "examples" / "party" / "party.yaml"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, MemoryBus]]:
    # No workers: alice's job stays put, so its work item can be dead-lettered by hand.
    bus = MemoryBus(max_deliveries=1)
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=bus,
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        run_workers=False,
    )
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "tokens": f"alice:{ALICE},bob:{BOB}",
            "rate_limit_per_s": 10_000,
            "rate_limit_burst": 10_000,
            "auth_failure_burst": 10_000,  # this test fails to authenticate on purpose, a lot
        }
    )
    try:
        async with running_server(engine, settings) as server:
            yield server, bus
    finally:
        await engine.close()


def client(server: RunningServer, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10)


async def alice_resources(server: RunningServer, bus: MemoryBus) -> dict[str, str]:
    """A job of alice's with a task, an artifact and a dead letter."""
    engine = server.context.engine
    async with client(server, ALICE) as alice:
        plan = {"plan": {"tasks": [{"id": "a", "kind": "tool", "tool": "current_time"}]}}
        job_id = (await alice.post("/v1/jobs", json=plan)).json()["job_id"]
    workspace = tmp_workspace = engine.plane.settings.workspace_root / job_id
    tmp_workspace.mkdir(parents=True)
    (workspace / "result.md").write_text("alice's secret result")
    await engine.store.commit(
        Batch(
            artifacts=[
                ArtifactRow(
                    job_id=job_id,
                    name="result.md",
                    path=str(workspace / "result.md"),
                    size=21,
                    content_type="text/markdown",
                    created_at=0.0,
                )
            ]
        )
    )
    deliveries = await bus.receive(QUEUE, "test", timeout_s=5)
    assert deliveries
    await bus.nack(deliveries[0], reason="poison")
    letter = (await bus.dead_letters(QUEUE))[0]
    session = await engine.sessions.create(
        PARTY_FILE,
        inputs=["alice's secret theme"],
        tenant="alice",
    )
    return {
        "session_id": session.id,
        "input_id": session.state.current_inputs()[0].input_id,
        "job_id": job_id,
        "task_id": "a",
        "name": "result.md",
        "queue": QUEUE,
        "letter_id": letter.id,
    }


def operations(server: RunningServer) -> list[tuple[str, str]]:
    spec: dict[str, Any] = server.app.openapi()
    ops = [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(ops) >= 17, ops
    # Cancel and delete change the job: try them last.
    return sorted(ops, key=lambda op: (op[1].endswith("/cancel"), op[0] == "DELETE"))


def fill(path: str, values: dict[str, str]) -> str:
    return path.format(**values)


async def test_every_route_refuses_a_missing_or_bad_token(
    api: tuple[RunningServer, MemoryBus],
) -> None:
    server, bus = api
    values = await alice_resources(server, bus)
    async with client(server, None) as anonymous, client(server, "pw_not_a_token") as bad:
        for method, path in operations(server):
            if path in PUBLIC:
                continue
            url = fill(path, values)
            for http in (anonymous, bad):
                response = await http.request(method, url, json={} if method == "POST" else None)
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["error"]["code"] == "unauthorized"
            # Also with a body the route could not parse: auth comes first.
            response = await anonymous.request(method, url, content=b"{oops")
            assert response.status_code == 401
        for path in PUBLIC:
            assert (await anonymous.get(path)).status_code == 200


async def test_another_tenant_sees_nothing_of_alices(
    api: tuple[RunningServer, MemoryBus],
) -> None:
    server, bus = api
    values = await alice_resources(server, bus)
    job_id = values["job_id"]
    async with client(server, ALICE) as alice, client(server, BOB) as bob:
        for method, path in operations(server):
            if "{" not in path:
                continue
            url = fill(path, values)
            response = await bob.request(method, url)
            assert response.status_code == 404, (method, path, response.status_code)
            assert response.json()["error"]["code"] == "not_found"
            assert "secret" not in response.text and job_id not in response.text
        # The same URLs do resolve for alice (so bob's 404s are about tenancy, not typos).
        for method, path in operations(server):
            if "{" not in path:
                continue
            url = fill(path, values)
            params = {"format": "json"} if path.endswith("/events") else None
            body = {"text": "more"} if path.endswith("/inputs") else None
            response = await alice.request(method, url, params=params, json=body)
            assert response.status_code not in (401, 404, 405, 422), (method, path, response.text)
        assert (await bob.get("/v1/jobs")).json()["jobs"] == []
        assert (await bob.get("/v1/dlq")).json()["dead_letters"] == []
        # An idempotency key is per tenant: bob's does not return alice's job.
        plan = {"plan": {"tasks": [{"id": "b", "kind": "tool", "tool": "current_time"}]}}
        mine = await alice.post("/v1/jobs", json=plan, headers={"Idempotency-Key": "same"})
        theirs = await bob.post("/v1/jobs", json=plan, headers={"Idempotency-Key": "same"})
        assert theirs.status_code == 201 and theirs.json()["job_id"] != mine.json()["job_id"]


async def test_websocket_auth_and_tenancy(api: tuple[RunningServer, MemoryBus]) -> None:
    server, bus = api
    values = await alice_resources(server, bus)
    url = f"{server.ws_url}/v1/jobs/{values['job_id']}/events/ws"
    for headers, query, status in (
        ({}, "", 401),
        ({"Authorization": "Bearer nope"}, "", 401),
        ({}, "?access_token=nope", 401),
        ({"Authorization": f"Bearer {BOB}"}, "", 404),
        ({}, f"?access_token={BOB}", 404),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + query, additional_headers=headers):
                pass
        assert refused.value.response.status_code == status
        body = json.loads(refused.value.response.body or b"{}")
        assert body["error"]["code"] == ("unauthorized" if status == 401 else "not_found")
    async with connect(f"{url}?access_token={ALICE}") as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["type"] == "JobSubmitted" and first["seq"] == 1
    assert first["tenant"] == "alice"


async def test_the_global_stream_carries_only_the_callers_jobs(
    api: tuple[RunningServer, MemoryBus],
) -> None:
    server, _ = api
    plan = {"plan": {"tasks": [{"id": "a", "kind": "tool", "tool": "current_time"}]}}
    seen: list[dict[str, Any]] = []
    async with (
        client(server, ALICE) as alice,
        client(server, BOB) as bob,
        bob.stream("GET", "/v1/events") as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        alice_job = (await alice.post("/v1/jobs", json=plan)).json()["job_id"]
        bob_job = (await bob.post("/v1/jobs", json=plan)).json()["job_id"]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if seen[-1]["type"] == "TaskAssigned":
                            break
    assert {e["job_id"] for e in seen} == {bob_job}
    assert alice_job not in json.dumps(seen)
    assert [e["type"] for e in seen][:1] == ["JobSubmitted"]
