"""A job's dollar budget, end to end: through ``planweave run --max-cost`` in a real process and
through ``POST /v1/jobs`` on a real uvicorn server.

The model is the real OpenAI provider talking to a real HTTP server that speaks the
chat-completions wire format and reports token usage, so each call is priced from
``llm/pricing.py`` exactly as a hosted model's is: ``gpt-4o-mini`` at 200 prompt and 50
completion tokens costs $0.00006 a call. A call is made only when what the job has left covers
the most it may cost (its prompt and its largest reply, priced), so with a budget of $0.0001 even
the planner's call (up to some $0.0007) is never made: the job fails with the code
``budget_exceeded`` having spent nothing, and its reason names the option to raise.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from planweave import Engine
from planweave.config import Settings
from planweave.llm import ModelOptions, load_model, price_usd
from planweave.server.testing import RunningServer, running_server
from planweave.store import open_store

MODEL = "gpt-4o-mini"
USAGE = (200, 50)
BUDGET_USD = 0.0001
TOKEN = "pw_budget_test_token_00000000000000"
PLAN = {
    "tasks": [
        {"id": "first", "goal": "Write the first line", "depends_on": [], "kind": "execute"},
        {"id": "second", "goal": "Write the second line", "depends_on": ["first"]},
    ]
}


@dataclass
class PricedServer:
    """An OpenAI-compatible server: a plan for structured requests, a short answer otherwise,
    and the same usage on every reply."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        content = json.dumps(PLAN) if body.get("response_format") else "A line of text."
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 1700000000,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": USAGE[0],
                    "completion_tokens": USAGE[1],
                    "total_tokens": sum(USAGE),
                },
            }
        )


@pytest.fixture(scope="module")
def priced_server() -> Iterator[PricedServer]:
    priced = PricedServer()
    app = Starlette(routes=[Route("/v1/chat/completions", priced.handle, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the OpenAI-compatible server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    priced.url = f"http://127.0.0.1:{port}/v1"
    yield priced
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def priced(priced_server: PricedServer) -> PricedServer:
    priced_server.requests.clear()
    return priced_server


def test_the_calls_cost_more_than_the_budget_by_the_second() -> None:
    per_call = price_usd(MODEL, *USAGE)
    assert per_call < BUDGET_USD < 2 * per_call


async def _job_failed(store_url: str, job_id: str) -> dict[str, Any]:
    store = open_store(store_url)
    await store.open()
    try:
        events = await store.read_events(job_id, after_seq=0)
    finally:
        await store.close()
    failed = [e for e in events if e.type == "JobFailed"]
    assert len(failed) == 1, [e.type for e in events]
    return failed[0].model_dump(mode="json")


def _cli(tmp_path: Path, priced: PricedServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANWEAVE_"))}
    env.update(OPENAI_BASE_URL=priced.url, COLUMNS="160")
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", "run", "Write two lines", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _store_args(tmp_path: Path) -> list[str]:
    return ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]


def test_cli_run_over_max_cost_fails_the_job_and_exits_1(
    tmp_path: Path, priced: PricedServer
) -> None:
    done = _cli(
        tmp_path,
        priced,
        "--model",
        f"openai:{MODEL}",
        "--max-cost",
        str(BUDGET_USD),
        "--json",
        *_store_args(tmp_path),
    )
    assert done.returncode == 1, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "failed"
    assert "budget of $0.0001 (max_cost_usd)" in job["error"]
    assert "raise the job option max_cost_usd" in job["error"]
    assert job["usage"]["cost_usd"] <= BUDGET_USD
    assert priced.requests == []  # no call could fit: none was made
    failed = asyncio.run(_job_failed(f"sqlite:///{tmp_path / 'jobs.db'}", job["job_id"]))
    assert failed["code"] == "budget_exceeded"
    assert failed["failed_task"] == "root"


def test_cli_run_over_max_cost_says_why_on_the_terminal(
    tmp_path: Path, priced: PricedServer
) -> None:
    done = _cli(
        tmp_path,
        priced,
        "--model",
        f"openai:{MODEL}",
        "--max-cost",
        str(BUDGET_USD),
        *_store_args(tmp_path),
    )
    assert done.returncode == 1, done.stderr
    assert "budget of $0.0001 (max_cost_usd)" in done.stdout + done.stderr


def test_cli_run_within_max_cost_succeeds(tmp_path: Path, priced: PricedServer) -> None:
    done = _cli(
        tmp_path, priced, "--model", f"openai:{MODEL}", "--max-cost", "1", "--json",
        *_store_args(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded"
    assert job["usage"]["cost_usd"] == pytest.approx(
        len(priced.requests) * price_usd(MODEL, *USAGE)
    )


@pytest.fixture
async def api(tmp_path: Path, priced: PricedServer) -> AsyncIterator[RunningServer]:
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=load_model(f"openai:{MODEL}", ModelOptions(base_url=priced.url)),
        data_dir=tmp_path / "data",
    )
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"t:{TOKEN}", "rate_limit_per_s": 1000}
    )
    try:
        async with running_server(engine, settings) as server:
            yield server
    finally:
        await engine.close()


async def test_api_job_over_max_cost_usd_fails_with_budget_exceeded(
    api: RunningServer, priced: PricedServer
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=10) as http:
        response = await http.post(
            "/v1/jobs", json={"goal": "Write two lines", "options": {"max_cost_usd": BUDGET_USD}}
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]
        url = f"/v1/jobs/{job_id}/events"
        # The event stream ends when the job does (the guard fails the test if it never does).
        async with asyncio.timeout(60), http.stream("GET", url) as stream:
            streamed = [line async for line in stream.aiter_lines() if line.startswith("event: ")]
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        page = (await http.get(url, params={"format": "json"})).json()
    assert streamed[-1] == "event: JobFailed"
    assert job["status"] == "failed"
    assert "budget of $0.0001 (max_cost_usd)" in job["error"]
    assert job["usage"]["cost_usd"] <= BUDGET_USD
    failed = [e for e in page["events"] if e["type"] == "JobFailed"]
    assert [(e["code"], e["failed_task"]) for e in failed] == [("budget_exceeded", "root")]
    assert any(e["type"] == "TaskNeedsBudget" for e in page["events"])
    assert priced.requests == []  # no call could fit: none was made
