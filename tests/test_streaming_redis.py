"""Deltas from a worker in another process reach the API server's SSE clients through Redis.

The API server and its control plane run in the test process on a real Redis bus; the model
call runs in a real ``planweave worker`` process, which publishes the reply's pieces on the
job's live topic while it writes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.test_streaming import sse_frames

from planweave import Engine
from planweave.config import Settings
from planweave.server.testing import running_server

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["one", "two", "three", "four", "five", "six"]
REPLY = " ".join(WORDS)


@pytest.fixture
def worker_model(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """A ``planweave worker`` process (executor) on the Redis bus; yields its model's URL."""
    script = {"replies": [{"match": {"role": "executor"}, "content": REPLY, "delta_delay_s": 0.3}]}
    (tmp_path / "replies.yaml").write_text(yaml.safe_dump(script), encoding="utf-8")
    model = f"scripted:{tmp_path / 'replies.yaml'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planweave.cli",
                "worker",
                "--bus",
                redis_url,
                "--kinds",
                "executor",
                "--model",
                model,
                "--data-dir",
                str(tmp_path / "data"),
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield model
    finally:
        worker.kill()
        worker.wait(timeout=10)


async def test_a_worker_process_streams_to_the_servers_sse_clients(
    tmp_path: Path, redis_url: str, worker_model: str
) -> None:
    model = worker_model
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=redis_url,
        model=model,
        data_dir=tmp_path / "data",
        run_workers=False,
    )
    settings = Settings(data_dir=tmp_path / "data", tokens={}, rate_limit_per_s=0)
    frames: list[dict[str, Any]] = []
    try:
        async with (
            running_server(engine, settings) as api,
            httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        ):
            body = {"plan": {"tasks": [{"id": "count", "goal": "Count to six"}]}}
            response = await http.post("/v1/jobs", json=body)
            assert response.status_code == 201, response.text
            job_id = response.json()["job_id"]
            url = f"/v1/jobs/{job_id}/events"
            async for frame in sse_frames(http, url, {"deltas": "true"}):
                frames.append(frame)
            stored = (await http.get(url, params={"format": "json"})).json()["events"]
    finally:
        await engine.close()
    types = [frame["event"] for frame in frames]
    assert types[-1] == "JobCompleted", (tmp_path / "worker.log").read_text()[-2000:]
    deltas = [frame["data"] for frame in frames if frame["event"] == "delta"]
    # Several pieces, all before the call's event: they came while the model wrote.
    assert len(deltas) >= 3
    assert types.index("LlmCalled") > max(i for i, t in enumerate(types) if t == "delta")
    # (a stream that connected after the first word was written starts from the next)
    assert REPLY.endswith("".join(delta["text"] for delta in deltas))
    assert {delta["task_id"] for delta in deltas} == {"count"}
    assert "LlmDelta" not in [event["type"] for event in stored]
    (called,) = [event for event in stored if event["type"] == "LlmCalled"]
    assert called["reply"] == REPLY
    assert [event["seq"] for event in stored] == list(range(1, len(stored) + 1))
