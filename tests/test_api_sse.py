"""Event streams over HTTP: SSE with resume, ``?after=``, WebSocket frames and JSON pages.

Whatever happens to a connection, the events a client ends up with are the job's events 1..N,
each exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from planweave import Engine, tool
from planweave.bus import MemoryBus
from planweave.config import Settings
from planweave.llm import ScriptedModel
from planweave.server.testing import RunningServer, running_server

TOKEN = "pw_sse_test_token_0000000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
gates: dict[str, asyncio.Event] = {}


@tool
async def pause(ms: int) -> int:
    """Wait a few milliseconds."""
    await asyncio.sleep(ms / 1000)
    return ms


@tool
async def hold() -> str:
    """Wait until the test lets go."""
    await gates["release"].wait()
    return "released"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[RunningServer]:
    gates["release"] = asyncio.Event()
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        tools=[pause, hold],
    )
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "tokens": f"t:{TOKEN}",
            "rate_limit_per_s": 10_000,
            "rate_limit_burst": 10_000,
        }
    )
    try:
        async with running_server(engine, settings, keepalive_s=0.3) as server:
            yield server
    finally:
        gates["release"].set()
        await engine.close()


def chain(n: int, ms: int = 15) -> dict[str, Any]:
    tasks = [
        {
            "id": f"t{i}",
            "kind": "tool",
            "tool": "pause",
            "args": {"ms": ms},
            "depends_on": [f"t{i - 1}"] if i else [],
        }
        for i in range(n)
    ]
    return {"plan": {"tasks": tasks}}


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def read_sse(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    stop_after: int | None = None,
    comments: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Frames of an SSE response (until it closes, or ``stop_after`` events, then drop it)."""
    events: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    async with asyncio.timeout(20), http.stream("GET", url, headers=headers, params=params) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith(":"):
                if comments is not None:
                    comments.append(line)
                continue
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if not frame:
                continue
            event = json.loads(frame["data"])
            assert int(frame["id"]) == event["seq"] and frame["event"] == event["type"]
            events.append(event)
            frame = {}
            if stop_after is not None and len(events) >= stop_after:
                break
    return events


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


async def test_a_running_jobs_stream_is_contiguous_and_closes_at_the_end(
    api: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, chain(12))
        events = await read_sse(http, f"/v1/jobs/{job_id}/events")
        stored = (await http.get(f"/v1/jobs/{job_id}/events", params={"format": "json"})).json()
    assert seqs(events) == list(range(1, len(events) + 1))
    assert events[0]["type"] == "JobSubmitted" and events[-1]["type"] == "JobCompleted"
    assert [e["type"] for e in events].count("TaskCompleted") == 12
    assert events == stored["events"]


async def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(
    api: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, chain(25, ms=10))
        url = f"/v1/jobs/{job_id}/events"
        received: list[dict[str, Any]] = []
        drops = 0
        while not received or received[-1]["type"] != "JobCompleted":
            headers = {"Last-Event-ID": str(received[-1]["seq"])} if received else {}
            # The first connection also names ?after=0: the header wins over it.
            part = await read_sse(
                http, url, headers=headers, params={"after": 0}, stop_after=7 if drops < 6 else None
            )
            drops += 1
            received.extend(part)
    assert drops >= 4
    assert seqs(received) == list(range(1, len(received) + 1))
    assert len({e["id"] for e in received}) == len(received)


async def test_after_replays_the_rest_of_a_finished_job(api: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, chain(3, ms=1))
        everything = await read_sse(http, f"/v1/jobs/{job_id}/events")
        last = everything[-1]["seq"]
        rest = await read_sse(http, f"/v1/jobs/{job_id}/events", params={"after": 5})
        assert seqs(rest) == list(range(6, last + 1))
        started = time.monotonic()
        assert await read_sse(http, f"/v1/jobs/{job_id}/events", params={"after": last}) == []
        assert time.monotonic() - started < 2  # a finished job's stream closes at once
        bad = await http.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 422


async def test_idle_streams_get_keepalives_and_end_when_the_server_stops(
    api: RunningServer,
) -> None:
    comments: list[str] = []
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(
            http, {"plan": {"tasks": [{"id": "h", "kind": "tool", "tool": "hold"}]}}
        )

        async def stop_soon() -> None:
            await asyncio.sleep(1.0)
            api.server.stop(api.context)

        stopper = asyncio.create_task(stop_soon())
        started = time.monotonic()
        events = await read_sse(http, f"/v1/jobs/{job_id}/events", comments=comments)
        await stopper
    assert time.monotonic() - started < 5
    assert ": keep-alive" in comments
    assert [e["type"] for e in events][:3] == ["JobSubmitted", "TaskReady", "TaskAssigned"]


async def test_websocket_stream_and_after(api: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, chain(6, ms=5))
    url = f"{api.ws_url}/v1/jobs/{job_id}/events/ws"
    frames: list[dict[str, Any]] = []
    async with connect(url, additional_headers=AUTH) as ws:
        with pytest.raises(ConnectionClosedOK):
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    assert seqs(frames) == list(range(1, len(frames) + 1))
    assert frames[-1]["type"] == "JobCompleted"
    tail: list[dict[str, Any]] = []
    async with connect(f"{url}?after=4&access_token={TOKEN}") as ws:
        with pytest.raises(ConnectionClosedOK):
            while True:
                tail.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    assert tail == frames[4:]


async def test_json_pages_chain_with_next_after(api: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, chain(5, ms=1))
        await read_sse(http, f"/v1/jobs/{job_id}/events")  # wait for the end
        pages: list[list[dict[str, Any]]] = []
        after = 0
        while True:
            page = (
                await http.get(
                    f"/v1/jobs/{job_id}/events",
                    params={"after": after, "limit": 4},
                    headers={"Accept": "application/json"},
                )
            ).json()
            if not page["events"]:
                assert page["next_after"] == after
                break
            pages.append(page["events"])
            after = page["next_after"]
            assert after == page["events"][-1]["seq"]
    assert all(len(p) <= 4 for p in pages) and len(pages) > 2
    flat = [e for p in pages for e in p]
    assert seqs(flat) == list(range(1, len(flat) + 1)) and flat[-1]["type"] == "JobCompleted"


def fan_out(n: int) -> dict[str, Any]:
    """A ``hold`` task and ``n`` quick tasks that wait for it: a burst of events when it ends."""
    tasks: list[dict[str, Any]] = [{"id": "h", "kind": "tool", "tool": "hold"}]
    tasks += [
        {"id": f"q{i}", "kind": "tool", "tool": "pause", "args": {"ms": 0}, "depends_on": ["h"]}
        for i in range(n)
    ]
    return {"plan": {"tasks": tasks}}


async def _burst_streams(api: RunningServer, subscribers: int) -> list[list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(http, fan_out(60))
        url = f"/v1/jobs/{job_id}/events"
        readers = [asyncio.create_task(read_sse(http, url)) for _ in range(subscribers)]
        await asyncio.sleep(0.3)  # the streams are open and live
        gates["release"].set()
        return await asyncio.gather(*readers)


async def test_a_burst_of_events_reaches_every_stream_once_and_in_order(
    api: RunningServer,
) -> None:
    streams = await _burst_streams(api, 5)
    for events in streams:
        assert seqs(events) == list(range(1, len(events) + 1))
        assert [e["type"] for e in events].count("TaskCompleted") == 61
        assert events[-1]["type"] == "JobCompleted"
    assert all(events == streams[0] for events in streams)


@pytest.fixture
async def api_small_buffers(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server whose bus keeps only 3 events per subscriber: live streams see gaps."""
    gates["release"] = asyncio.Event()
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=MemoryBus(max_subscriber_buffer=3),
        model=ScriptedModel(),
        data_dir=tmp_path / "data",
        tools=[pause, hold],
    )
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"t:{TOKEN}", "rate_limit_per_s": 0}
    )
    try:
        async with running_server(engine, settings, keepalive_s=0.3) as server:
            yield server
    finally:
        gates["release"].set()
        await engine.close()


async def test_events_a_slow_stream_missed_on_the_bus_are_filled_in_from_the_store(
    api_small_buffers: RunningServer,
) -> None:
    streams = await _burst_streams(api_small_buffers, 3)
    for events in streams:
        assert seqs(events) == list(range(1, len(events) + 1))
        assert [e["type"] for e in events].count("TaskCompleted") == 61
        assert events[-1]["type"] == "JobCompleted"


async def test_a_stream_opened_past_the_end_of_a_running_job_closes_when_the_job_ends(
    api: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as http:
        job_id = await submit(
            http, {"plan": {"tasks": [{"id": "h", "kind": "tool", "tool": "hold"}]}}
        )
        url = f"/v1/jobs/{job_id}/events"
        stored: list[dict[str, Any]] = []
        while not any(e["type"] == "TaskStarted" for e in stored):
            await asyncio.sleep(0.02)
            stored = (await http.get(url, params={"format": "json"})).json()["events"]
        past_end = stored[-1]["seq"] + 100
        sent: list[str] = []
        headers = {"Last-Event-ID": str(past_end)}
        # The guard fails the test if the stream is still open 20 s on.
        async with asyncio.timeout(20), http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    gates["release"].set()  # a keep-alive: the stream is open and waiting
                elif line:
                    sent.append(line)
        final = (await http.get(url, params={"format": "json"})).json()["events"]
    assert final[-1]["type"] == "JobCompleted"
    assert final[-1]["seq"] < past_end
    assert sent == []  # every event the job has is at or before the client's Last-Event-ID
