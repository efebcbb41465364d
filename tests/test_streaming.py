"""Live token streaming: a model reply reaches followers while it is written; the log keeps only
the complete reply.

A scripted model holds each streamed call open after its first delta (``stream_gate``), so the
tests look at a call that has not finished, over a real HTTP server and a real SQLite store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from planweave import Engine, Plan, tool
from planweave.bus import MemoryBus
from planweave.config import Settings
from planweave.constants import EVENT_TOPIC_ALL
from planweave.events import LlmDelta
from planweave.llm import ChatMessage, LlmRequest, ScriptedModel
from planweave.messages import WorkItem
from planweave.server.testing import RunningServer, running_server
from planweave.workers._deltas import DeltaPublisher

TOKEN = "pw_streaming_test_token_00000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPLY = "Streaming works: the answer is forty two, written one word at a time."
# The model's task waits for a tool task the test lets go once its streams are connected, so
# no delta is published before anyone listens.
PLAN = {
    "tasks": [
        {"id": "wait", "kind": "tool", "tool": "hold"},
        {"id": "say", "goal": "Say the answer", "depends_on": ["wait"]},
    ]
}
ONE_TASK = {"plan": PLAN}
starts: dict[str, asyncio.Event] = {}


@tool
async def hold() -> str:
    """Wait until the test lets the job go on."""
    await starts["job"].wait()
    return "go"


def scripted(gate: asyncio.Event | None = None) -> ScriptedModel:
    return ScriptedModel(
        [{"match": {"role": "executor"}, "content": REPLY, "repeat": True}], stream_gate=gate
    )


@pytest.fixture
def gate() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def start() -> Iterator[asyncio.Event]:
    starts["job"] = event = asyncio.Event()
    yield event
    event.set()


@pytest.fixture
async def api(
    tmp_path: Path, gate: asyncio.Event, start: asyncio.Event
) -> AsyncIterator[RunningServer]:
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=scripted(gate),
        data_dir=tmp_path / "d",
        tools=[hold],
    )
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "d", "tokens": f"t:{TOKEN}", "rate_limit_per_s": 10_000}
    )
    try:
        async with running_server(engine, settings, keepalive_s=0.3) as server:
            yield server
    finally:
        start.set()
        gate.set()
        await engine.close()


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def sse_frames(
    http: httpx.AsyncClient, url: str, params: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Each SSE frame as ``{"event", "id" (or None), "data"}`` until the stream closes."""
    frame: dict[str, str] = {}
    async with http.stream("GET", url, params=params) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if frame:
                data = json.loads(frame["data"])
                yield {"event": frame["event"], "id": frame.get("id"), "data": data}
                frame = {}


async def test_deltas_reach_an_sse_client_before_the_call_ends_and_only_the_reply_is_stored(
    api: RunningServer, gate: asyncio.Event, start: asyncio.Event
) -> None:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(30), httpx.AsyncClient(base_url=api.url, headers=AUTH) as http:
        job_id = await submit(http, ONE_TASK)
        url = f"/v1/jobs/{job_id}/events"
        async for frame in sse_frames(http, url, {"deltas": "true"}):
            frames.append(frame)
            start.set()  # the stream is connected (its history came): let the job go on
            if frame["event"] == "delta" and not gate.is_set():
                # The model is still writing: its call is not in the log, the job runs on.
                stored = (await http.get(url, params={"format": "json"})).json()["events"]
                assert "LlmCalled" not in [event["type"] for event in stored]
                assert (await http.get(f"/v1/jobs/{job_id}")).json()["status"] == "running"
                assert not any(f["event"] == "LlmCalled" for f in frames)
                gate.set()
        stored = (await http.get(url, params={"format": "json"})).json()["events"]

    assert gate.is_set(), "no delta arrived while the call ran"
    deltas = [frame for frame in frames if frame["event"] == "delta"]
    assert len(deltas) >= 2  # the first word, then the rest once the call went on
    assert all(frame["id"] is None for frame in deltas)
    assert all(frame["data"]["type"] == "LlmDelta" for frame in deltas)
    assert {(d["data"]["task_id"], d["data"]["call"]) for d in deltas} == {("say", 1)}
    assert [d["data"]["index"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["data"]["text"] for d in deltas) == REPLY
    # The log holds the events alone, numbered without gaps, the full reply in LlmCalled.
    assert "LlmDelta" not in [event["type"] for event in stored]
    assert [event["seq"] for event in stored] == list(range(1, len(stored) + 1))
    (called,) = [event for event in stored if event["type"] == "LlmCalled"]
    assert called["reply"] == REPLY
    streamed = [frame["data"] for frame in frames if frame["event"] != "delta"]
    assert streamed == stored


async def test_a_stream_without_deltas_carries_the_log_alone(
    api: RunningServer, gate: asyncio.Event, start: asyncio.Event
) -> None:
    async with asyncio.timeout(30), httpx.AsyncClient(base_url=api.url, headers=AUTH) as http:
        job_id = await submit(http, ONE_TASK)
        url = f"/v1/jobs/{job_id}/events"
        plain: list[dict[str, Any]] = []
        subscribed = asyncio.Event()

        async def read_plain() -> None:
            async for frame in sse_frames(http, url, {}):
                plain.append(frame)
                subscribed.set()  # history came: live events reach it from now on

        reader = asyncio.create_task(read_plain())
        deltas = 0
        async for frame in sse_frames(http, url, {"deltas": "true"}):
            await subscribed.wait()
            start.set()  # both streams are connected
            if frame["event"] == "delta":
                deltas += 1
                gate.set()
        await reader
    assert deltas >= 2
    assert plain and plain[-1]["event"] == "JobCompleted"
    assert "delta" not in [frame["event"] for frame in plain]
    assert [int(frame["id"]) for frame in plain] == list(range(1, len(plain) + 1))


async def test_websocket_with_deltas_sends_the_reply_as_it_is_written(
    api: RunningServer, gate: asyncio.Event, start: asyncio.Event
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, ONE_TASK)
    messages: list[dict[str, Any]] = []
    url = f"{api.ws_url}/v1/jobs/{job_id}/events/ws?deltas=1"
    async with asyncio.timeout(30), connect(url, additional_headers=AUTH) as ws:
        with pytest.raises(ConnectionClosedOK):
            while True:
                message = json.loads(await ws.recv())
                messages.append(message)
                start.set()
                if message["type"] == "LlmDelta":
                    assert "LlmCalled" not in [m["type"] for m in messages]
                    gate.set()
    types = [message["type"] for message in messages]
    assert types[-1] == "JobCompleted"
    assert types.index("LlmDelta") < types.index("LlmCalled")
    text = "".join(m["text"] for m in messages if m["type"] == "LlmDelta")
    assert text == REPLY


async def test_engine_follow_with_deltas_and_without(tmp_path: Path, start: asyncio.Event) -> None:
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'j.db'}", model=scripted(), data_dir=tmp_path, tools=[hold]
    )
    async with engine:
        job_id = await engine.submit(plan=Plan.model_validate(PLAN))
        with_deltas = []
        async for event in engine.follow(job_id, deltas=True):
            with_deltas.append(event)
            start.set()
        again = [event async for event in engine.follow(job_id)]
        stored = await engine.events(job_id)
    deltas = [event for event in with_deltas if isinstance(event, LlmDelta)]
    assert "".join(delta.text for delta in deltas) == REPLY
    assert [event for event in with_deltas if not isinstance(event, LlmDelta)] == stored
    # History has no deltas: a later follow (or a listing) is the log.
    assert again == stored
    assert not any(isinstance(event, LlmDelta) for event in stored)


async def test_a_fast_model_is_coalesced_into_few_deltas() -> None:
    bus = MemoryBus()
    await bus.open()
    item = WorkItem.model_validate(
        {
            "job_id": "j1",
            "task_id": "t1",
            "attempt": 2,
            "spec": {"id": "t1", "goal": "g"},
            "worker": "executor",
            "reply_to": "pw:outcomes:x",
        }
    )
    publisher = DeltaPublisher(bus, item, coalesce_s=0.05)
    request = LlmRequest(messages=(ChatMessage(role="user", content="hi"),), agent="writer")
    words = [f"w{i} " for i in range(500)]
    received: list[LlmDelta] = []
    try:
        async with bus.subscribe(f"{EVENT_TOPIC_ALL}:j1") as sub:
            sink = publisher.open(request, model="scripted", format="text")
            for word in words:
                sink(word)  # a token at a time, faster than the coalescing window
                await asyncio.sleep(0)
            await sink.aclose()
            second = publisher.open(request, model="scripted", format="text")
            second("next call")
            await second.aclose()
            while sub.buffered():
                event = await sub.__aiter__().__anext__()
                assert isinstance(event, LlmDelta)
                received.append(event)
    finally:
        await bus.close()
    first = [delta for delta in received if delta.call == 1]
    assert "".join(delta.text for delta in first) == "".join(words)
    assert len(first) < len(words) / 10
    assert [delta.index for delta in first] == list(range(len(first)))
    assert [(d.call, d.text) for d in received if d.call != 1] == [(2, "next call")]
    assert {(d.job_id, d.task_id, d.attempt, d.agent, d.seq) for d in received} == {
        ("j1", "t1", 2, "writer", 0)
    }
