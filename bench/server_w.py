"""Server benchmarks: S1 (jobs/s through the API) and S2 (one job's SSE stream to many clients).

``python -m bench.server_w S1`` (or ``S2``) prints one JSON line, like ``bench.run_one``.

Both serve the real app with uvicorn on 127.0.0.1 (``planweave.server.testing.running_server``)
in this process, with the engine and its workers beside it as ``planweave serve`` runs them: the
default store (a SQLite file in a fresh temporary data dir), the memory bus, a bearer token, and
the rate limit turned off. The clients run in a second process (``bench.server_clients``), so
server and clients each have their own event loop and, on a two-core machine, their own core.

S1: ``concurrency`` submitters post ``jobs`` jobs of ``tasks`` ``calculator`` tasks each and wait
    until every job has ended (read from the tenant's live SSE stream).
S2: one job, a ``gate`` task and ``tasks - 1`` ``calculator`` tasks that wait for it (5 events a
    task, ToolCalled among them, plus JobSubmitted and JobCompleted: 5 x 2,500 + 2 = 12,502
    events); ``subscribers``
    SSE clients open the job's stream while the gate holds it, and the gate opens once every one
    of them has had its first event. Lag is receive time minus the event's ``at``, over the events
    emitted after a stream opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.server_clients import SeqCheck, plan_body

__all__ = ["SERVER_BENCHES", "main", "s1", "s2"]

S1_JOBS = 500
S1_CONCURRENCY = 16
S1_TASKS = 3
S2_TASKS = 2500
S2_SUBSCRIBERS = 500

_ROOT = Path(__file__).resolve().parent.parent
_TOKEN = "pw_bench_server_token_0000000000000"
_VARIANT = (
    "uvicorn in the bench process (engine + workers beside it), clients in a 2nd process; "
    "store: default SQLite file, bus memory://, bearer token, rate limit off"
)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@asynccontextmanager
async def _served(data_dir: Path, tools: list[Any]) -> AsyncIterator[Any]:
    from planweave import Engine
    from planweave.config import Settings
    from planweave.llm import ScriptedModel
    from planweave.server.testing import running_server

    settings = Settings.model_validate(
        {"data_dir": data_dir, "tokens": f"bench:{_TOKEN}", "rate_limit_per_s": 0}
    )
    engine = Engine(**{**settings.engine_kwargs(), "model": ScriptedModel(), "tools": tools})
    try:
        async with running_server(engine, settings) as api:
            yield engine, api
    finally:
        await engine.close()


async def _clients(
    args: list[str], *, timeout_s: float, on_ready: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run ``bench.server_clients`` with ``args``; call ``on_ready`` on its ``ready`` line and
    return the JSON of its last line."""
    command = [sys.executable, "-m", "bench.server_clients", *args, "--token", _TOKEN]
    command += ["--timeout-s", str(timeout_s)]
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.create_task(proc.stderr.read())
    last = ""
    try:
        async with asyncio.timeout(timeout_s + 30):
            async for raw in proc.stdout:
                line = raw.decode().strip()
                if line == "ready" and on_ready is not None:
                    on_ready()
                elif line:
                    last = line
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = (await stderr).decode().strip()
    if proc.returncode != 0 or not last.startswith("{"):
        tail = err.splitlines()[-1] if err else "no output"
        raise RuntimeError(f"the clients exited {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads(last)
    return result


async def s1(
    *,
    jobs: int = S1_JOBS,
    concurrency: int = S1_CONCURRENCY,
    tasks: int = S1_TASKS,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """S1: submit ``jobs`` small jobs through the API and wait for all of them."""
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        async with _served(Path(tmp) / "data", []) as (_, api):
            cpu0 = time.process_time()
            args = ["submit", api.url, "--jobs", str(jobs), "--concurrency", str(concurrency)]
            figures = await _clients([*args, "--tasks", str(tasks)], timeout_s=timeout_s)
            server_cpu_s = time.process_time() - cpu0
    problems = []
    if figures["accepted"] != jobs:
        problems.append(f"{figures['accepted']} of {jobs} submits accepted: {figures['statuses']}")
    if figures["final_status"].get("succeeded", 0) != figures["accepted"]:
        problems.append(f"jobs ended {figures['final_status']}")
    return {
        "bench": "S1",
        "status": "failed" if problems else "ok",
        **({"reason": "; ".join(problems)} if problems else {}),
        "variant": _VARIANT,
        **figures,
        "server_cpu_s": server_cpu_s,
        "server_peak_rss_mib": _peak_rss_mib(),
    }


async def s2(
    *, tasks: int = S2_TASKS, subscribers: int = S2_SUBSCRIBERS, timeout_s: float = 600.0
) -> dict[str, Any]:
    """S2: ``subscribers`` SSE clients follow one job of ``tasks`` tool tasks."""
    import httpx

    from planweave import tool

    release = asyncio.Event()

    @tool
    async def gate() -> str:
        """Wait until every subscriber is connected."""
        await release.wait()
        return "open"

    marks: dict[str, float] = {}

    def on_ready() -> None:
        marks["released"] = time.perf_counter()
        marks["cpu0"] = time.process_time()
        release.set()

    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        async with _served(Path(tmp) / "data", [gate]) as (engine, api):
            headers = {"Authorization": f"Bearer {_TOKEN}"}
            async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60) as http:
                response = await http.post("/v1/jobs", json=plan_body(tasks, gate=True))
                response.raise_for_status()
                job_id: str = response.json()["job_id"]
            args = ["subscribe", api.url, job_id, "--subscribers", str(subscribers)]
            clients = asyncio.create_task(_clients(args, timeout_s=timeout_s, on_ready=on_ready))
            try:
                async with asyncio.timeout(timeout_s + 60):
                    await asyncio.wait(
                        [clients, asyncio.create_task(release.wait())],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if clients.done():
                        clients.result()
                        raise RuntimeError("the subscribers ended before the job started")
                    ended = await engine.wait(job_id)
                    state = ended.status
                    job_wall_s = time.perf_counter() - marks["released"]
                    figures = await clients
            finally:
                release.set()
                clients.cancel()
            server_cpu_s = time.process_time() - marks["cpu0"]
            total = len(await engine.events(job_id))
    streams = figures.pop("streams")
    contiguous = sum(
        SeqCheck(received=r, last=last, gaps=g, duplicates=d).contiguous(total)
        for r, last, g, d in streams
    )
    problems = []
    if state != "succeeded":
        problems.append(f"the job ended {state!r}: {ended.error}")
    if contiguous != subscribers:
        problems.append(f"{subscribers - contiguous} subscribers missed or repeated events")
    if figures["error_count"]:
        problems.append(f"{figures['error_count']} streams failed: {figures['errors']}")
    delivered = sum(r for r, *_ in streams)
    return {
        "bench": "S2",
        "status": "failed" if problems else "ok",
        **({"reason": "; ".join(problems)} if problems else {}),
        "variant": _VARIANT,
        "tasks": tasks,
        "events_per_job": total,
        "contiguous_subscribers": contiguous,
        **figures,
        "events_delivered": delivered,
        "events_delivered_per_s": delivered / figures["delivery_wall_s"],
        "job_wall_s": job_wall_s,
        "server_cpu_s": server_cpu_s,
        "server_peak_rss_mib": _peak_rss_mib(),
    }


SERVER_BENCHES: dict[str, Callable[..., Any]] = {"S1": s1, "S2": s2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_w", description=__doc__)
    parser.add_argument("bench", choices=sorted(SERVER_BENCHES))
    parser.add_argument("--jobs", type=int, default=S1_JOBS, help="S1 jobs")
    parser.add_argument("--concurrency", type=int, default=S1_CONCURRENCY, help="S1 submitters")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per job")
    parser.add_argument("--subscribers", type=int, default=S2_SUBSCRIBERS, help="S2 streams")
    args = parser.parse_args(argv)
    try:
        if args.bench == "S1":
            result = asyncio.run(
                s1(jobs=args.jobs, concurrency=args.concurrency, tasks=args.tasks or S1_TASKS)
            )
        else:
            result = asyncio.run(s2(tasks=args.tasks or S2_TASKS, subscribers=args.subscribers))
    except Exception as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        result = {"bench": args.bench, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
