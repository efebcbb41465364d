"""The client side of the server benchmarks, meant to run in a process of its own.

``python -m bench.server_clients submit URL --jobs 500 --concurrency 16 --tasks 3`` (S1) and
``python -m bench.server_clients subscribe URL JOB_ID --subscribers 500`` (S2) each print one
JSON line with their figures; ``subscribe`` first prints ``ready`` once every subscriber has its
stream open and the job's first event in hand, so the server side can let the job go on.

Clients and server run in separate processes so that on a small machine each gets a core and
neither's event loop stalls the other's; the figures include each side's CPU time, so a reader can
tell which one was saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "LagHistogram",
    "SeqCheck",
    "percentile",
    "plan_body",
    "submit_jobs",
    "subscribe",
]

TERMINAL_EVENTS = frozenset({"JobCompleted", "JobFailed", "JobCancelled"})
LAG_BUCKET_MS = 0.1


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank; ``nan`` when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class SeqCheck:
    """Checks, one event at a time, that a stream's ``seq`` runs 1, 2, 3, … with nothing missed
    or repeated."""

    received: int = 0
    last: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0

    def add(self, seq: int) -> None:
        self.received += 1
        if seq <= self.last:
            self.duplicates += 1
            return
        if seq != self.last + 1:
            self.gaps += 1
            self.missing += seq - self.last - 1
        self.last = seq

    def contiguous(self, total: int) -> bool:
        """Whether the stream was exactly events 1..``total``, each once."""
        return self.received == total and self.last == total and self.gaps == self.duplicates == 0


@dataclass
class LagHistogram:
    """Lags in buckets of :data:`LAG_BUCKET_MS`, so millions of samples cost little memory."""

    counts: Counter[int] = field(default_factory=Counter)
    total: int = 0
    max_ms: float = 0.0

    def add(self, lag_ms: float) -> None:
        self.counts[max(0, int(lag_ms / LAG_BUCKET_MS))] += 1
        self.total += 1
        self.max_ms = max(self.max_ms, lag_ms)

    def merge(self, other: LagHistogram) -> None:
        self.counts.update(other.counts)
        self.total += other.total
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float:
        """Upper edge of the bucket holding the ``q``-th percentile (ms); ``nan`` when empty."""
        if not self.total:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return (bucket + 1) * LAG_BUCKET_MS
        return self.max_ms


def plan_body(tasks: int, *, gate: bool = False) -> dict[str, Any]:
    """A job of ``tasks`` tool tasks: ``calculator`` ones, side by side; with ``gate`` the first
    is the ``gate`` tool and every other task waits for it."""
    specs: list[dict[str, Any]] = []
    if gate:
        specs.append({"id": "gate", "kind": "tool", "tool": "gate", "args": {}})
    for i in range(tasks - len(specs)):
        specs.append(
            {
                "id": f"c{i}",
                "kind": "tool",
                "tool": "calculator",
                "args": {"expression": f"{i} * 3 + 1"},
                "depends_on": ["gate"] if gate else [],
            }
        )
    return {"plan": {"tasks": specs}}


def _frames(buffer: bytearray) -> list[bytes]:
    """Cut the complete SSE frames off the front of ``buffer``."""
    end = buffer.rfind(b"\n\n")
    if end < 0:
        return []
    head = bytes(buffer[: end + 2])
    del buffer[: end + 2]
    return [frame for frame in head.split(b"\n\n") if frame]


def _data(frame: bytes) -> dict[str, Any] | None:
    """The JSON of a frame's ``data:`` line; ``None`` for a comment (keep-alive)."""
    for line in frame.split(b"\n"):
        if line.startswith(b"data: "):
            event: dict[str, Any] = json.loads(line[6:])
            return event
    return None


# --- S1: submitters -----------------------------------------------------------------------------


async def _completions(
    http: httpx.AsyncClient, done: dict[str, float], opened: asyncio.Event
) -> None:
    """Follow the tenant's live events; note when each job's terminal event arrives."""
    buffer = bytearray()
    async with http.stream("GET", "/v1/events", timeout=None) as response:
        response.raise_for_status()
        opened.set()
        async for chunk in response.aiter_raw():
            now = time.perf_counter()
            buffer += chunk
            for frame in _frames(buffer):
                event = _data(frame)
                if event is not None and event["type"] in TERMINAL_EVENTS:
                    done.setdefault(event["job_id"], now)


async def _final_statuses(http: httpx.AsyncClient, job_ids: set[str]) -> Counter[str]:
    """How the submitted jobs ended, from the job list (a few pages, not one request a job)."""
    final: Counter[str] = Counter()
    offset = 0
    while True:
        page = await http.get("/v1/jobs", params={"limit": 200, "offset": offset})
        page.raise_for_status()
        jobs = page.json()["jobs"]
        final.update(j["status"] for j in jobs if j["job_id"] in job_ids)
        if len(jobs) < 200:
            return final
        offset += 200


async def submit_jobs(
    url: str, *, jobs: int, concurrency: int, tasks: int, headers: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    """Submit ``jobs`` jobs from ``concurrency`` submitters at once; wait until all have ended.

    Completion is read from the tenant's live SSE stream (``GET /v1/events``), opened before the
    first submit; a job whose end the stream did not show is polled with ``GET /v1/jobs/{id}``.
    """
    body = plan_body(tasks)
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency)
    latencies_ms: list[float] = []
    statuses: Counter[int] = Counter()
    job_ids: list[str] = []
    done: dict[str, float] = {}
    cpu0 = time.process_time()
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        opened = asyncio.Event()
        watcher = asyncio.create_task(_completions(http, done, opened))
        await asyncio.wait_for(opened.wait(), 30)
        await asyncio.sleep(0.2)  # the stream's bus subscription starts just after its headers
        left = iter(range(jobs))

        async def submitter() -> None:
            for _ in left:
                t0 = time.perf_counter()
                response = await http.post("/v1/jobs", json=body)
                latencies_ms.append((time.perf_counter() - t0) * 1000)
                statuses[response.status_code] += 1
                if response.status_code in (200, 201, 202):
                    job_ids.append(response.json()["job_id"])

        start = time.perf_counter()
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(submitter() for _ in range(concurrency)))
            submitted = time.perf_counter()
            polled = 0
            while any(j not in done for j in job_ids):
                await asyncio.sleep(0.05)
                if time.perf_counter() - submitted > 10:  # the stream missed some: ask
                    for job_id in [j for j in job_ids if j not in done]:
                        view = (await http.get(f"/v1/jobs/{job_id}")).json()
                        if view["status"] != "running":
                            done[job_id] = time.perf_counter()
                            polled += 1
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        # A short job can end before its own 201 reaches the client.
        finished = max([submitted, *(done[j] for j in job_ids)])
        client_cpu_s = time.process_time() - cpu0
        final = await _final_statuses(http, set(job_ids))
    accepted = len(job_ids)
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "tasks_per_job": tasks,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted": accepted,
        "final_status": dict(final),
        "completions_polled": polled,
        "submit_wall_s": submitted - start,
        "complete_wall_s": finished - start,
        "submitted_per_s": accepted / (submitted - start),
        "completed_per_s": final["succeeded"] / (finished - start),
        "submit_ms": {
            "p50": percentile(latencies_ms, 50),
            "p99": percentile(latencies_ms, 99),
            "max": max(latencies_ms),
        },
        "client_cpu_s": client_cpu_s,
    }


# --- S2: subscribers ----------------------------------------------------------------------------


@dataclass
class _Subscriber:
    check: SeqCheck = field(default_factory=SeqCheck)
    lags: LagHistogram = field(default_factory=LagHistogram)
    history: int = 0
    last_type: str | None = None
    last_at_s: float = 0.0
    first: asyncio.Event = field(default_factory=asyncio.Event)


async def _follow(http: httpx.AsyncClient, job_id: str, sub: _Subscriber) -> None:
    """Read one SSE stream to its end; events emitted before the stream opened are history and
    have no lag."""
    buffer = bytearray()
    connect_at = time.time()
    async with http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            now = time.time()
            buffer += chunk
            for frame in _frames(buffer):
                event = _data(frame)
                if event is None:
                    continue
                sub.check.add(event["seq"])
                sub.last_type = event["type"]
                if event["at"] < connect_at:
                    sub.history += 1
                else:
                    sub.lags.add((now - event["at"]) * 1000)
                sub.last_at_s = now
                sub.first.set()


async def subscribe(
    url: str, job_id: str, *, subscribers: int, headers: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    """Open ``subscribers`` SSE streams of one job, print ``ready`` once each has an event, then
    read every stream to its end."""
    limits = httpx.Limits(max_connections=subscribers, max_keepalive_connections=0)
    subs = [_Subscriber() for _ in range(subscribers)]
    cpu0 = time.process_time()
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        tasks = [asyncio.create_task(_follow(http, job_id, sub)) for sub in subs]
        try:
            async with asyncio.timeout(timeout_s):
                firsts = asyncio.ensure_future(asyncio.gather(*(s.first.wait() for s in subs)))
                pending: set[asyncio.Future[Any]] = {firsts, *tasks}
                while not firsts.done():
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done - {firsts}:
                        task.result()  # a stream that failed before every stream had an event
                print("ready", flush=True)
                released_at = time.time()
                results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    lags = LagHistogram()
    for sub in subs:
        lags.merge(sub.lags)
    counts = [sub.check.received for sub in subs]
    return {
        "subscribers": subscribers,
        "errors": errors[:5],
        "error_count": len(errors),
        "events_min": min(counts),
        "events_max": max(counts),
        "gaps": sum(sub.check.gaps for sub in subs),
        "missing": sum(sub.check.missing for sub in subs),
        "duplicates": sum(sub.check.duplicates for sub in subs),
        "streams": [
            [s.check.received, s.check.last, s.check.gaps, s.check.duplicates] for s in subs
        ],
        "ended_terminal": sum(sub.last_type in TERMINAL_EVENTS for sub in subs),
        "history_events": sum(sub.history for sub in subs),
        "lag_samples": lags.total,
        "lag_ms": {"p50": lags.percentile(50), "p99": lags.percentile(99), "max": lags.max_ms},
        "delivery_wall_s": max(sub.last_at_s for sub in subs) - released_at,
        "client_cpu_s": time.process_time() - cpu0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_clients", description=__doc__)
    parser.add_argument("mode", choices=["submit", "subscribe"])
    parser.add_argument("url")
    parser.add_argument("job_id", nargs="?", help="the job to follow (subscribe)")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--token", default=None, help="API token (Authorization: Bearer)")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if args.mode == "submit":
        result = asyncio.run(
            submit_jobs(
                args.url,
                jobs=args.jobs,
                concurrency=args.concurrency,
                tasks=args.tasks,
                headers=headers,
                timeout_s=args.timeout_s,
            )
        )
    else:
        if not args.job_id:
            parser.error("subscribe needs a JOB_ID")
        result = asyncio.run(
            subscribe(
                args.url,
                args.job_id,
                subscribers=args.subscribers,
                headers=headers,
                timeout_s=args.timeout_s,
            )
        )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
