"""The scaled section: tasks/s end to end on PostgreSQL + Redis with 1, 2 and 4 worker processes,
beside the embedded default and a Redis task queue (arq), in one run.

Each planweave run submits ``JOBS`` jobs of ``TASKS_PER_JOB`` independent no-op ``tool`` tasks
(the built-in ``current_time``) from one control plane in this process and waits for all of
them; the workers are ``planweave worker --kinds tool`` processes. Measured:

* **tasks/s**: tasks divided by the wall time from the first submission to the last job's end;
* **ready→running p50/p99**: per task, ``TaskStarted.at - TaskReady.at`` from the event log
  (the time a ready task waited for the plane to dispatch it and a worker to take it);
* **Postgres round trips per task**: the database's committed transactions plus statements
  during the run (``pg_stat_database`` / ``pg_stat_statements`` where installed) divided by the
  tasks — the group commit batches many tasks' events into one transaction.

The peer, arq, runs ``TASKS`` no-op jobs with the same number of worker processes on the same
Redis server. ``python -m bench.scaled --postgres URL --redis URL`` runs it against servers you
started (the admin URL of a PostgreSQL server on which it may create databases, and a Redis
server it may flush).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._procs import stop_all

__all__ = ["JOBS", "TASKS_PER_JOB", "WORKER_COUNTS", "run_scaled"]

JOBS = 100
TASKS_PER_JOB = 100
WORKER_COUNTS = (1, 2, 4)
WORKER_CONCURRENCY = 128
_ROOT = Path(__file__).resolve().parent.parent


def _plan() -> Any:
    from planweave import Plan, TaskSpec

    return Plan(
        tasks=tuple(
            TaskSpec(id=f"t{n}", kind="tool", tool="current_time", args={})
            for n in range(TASKS_PER_JOB)
        )
    )


def _latencies(events: Sequence[Any]) -> list[float]:
    ready: dict[str, float] = {}
    out: list[float] = []
    for event in events:
        if event.type == "TaskReady":
            ready[event.task_id] = event.at
        elif event.type == "TaskStarted" and event.task_id in ready:
            out.append(event.at - ready.pop(event.task_id))
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(engine: Any) -> dict[str, Any]:
    """Submit the jobs, wait for them all; the figures of one run."""
    plan = _plan()
    started = time.perf_counter()
    ids = await asyncio.gather(*(engine.submit(plan=plan) for _ in range(JOBS)))
    results = await asyncio.gather(*(engine.wait(job_id) for job_id in ids))
    wall_s = time.perf_counter() - started
    failed = [r.error for r in results if not r.ok]
    latencies: list[float] = []
    for job_id in ids:
        latencies += _latencies(await engine.events(job_id))
    tasks = JOBS * TASKS_PER_JOB
    return {
        "tasks": tasks,
        "wall_s": round(wall_s, 3),
        "tasks_per_s": round(tasks / wall_s, 1),
        "ready_to_running_p50_ms": round(_pct(latencies, 0.50) * 1000, 2),
        "ready_to_running_p99_ms": round(_pct(latencies, 0.99) * 1000, 2),
        "failed_jobs": len(failed),
        "first_error": failed[0] if failed else None,
    }


async def embedded(data_dir: Path) -> dict[str, Any]:
    """The embedded default: SQLite + the in-process bus, workers in this process."""
    from planweave import Engine

    async with Engine(store=f"sqlite:///{data_dir / 'embedded.db'}", data_dir=data_dir) as engine:
        return await _drive(engine)


def _start_workers(bus_url: str, count: int, data_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_ROOT / "src"), str(_ROOT)])}
    command = [sys.executable, "-m", "planweave.cli", "worker", "--bus", bus_url]
    command += ["--kinds", "tool", "--concurrency", str(WORKER_CONCURRENCY)]
    command += ["--data-dir", str(data_dir)]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]


async def _wait_consumers(engine: Any, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await engine.bus.stats("pw:work:tool")
        if len(stats.consumers) >= count:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{count} workers did not connect within {timeout_s:g} s")


async def _pg_counters(admin_url: str, database: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        commits = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database
        )
        try:
            calls = await conn.fetchval(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
                database,
            )
        except asyncpg.PostgresError:
            calls = 0
        return int(commits or 0), int(calls or 0)
    finally:
        await conn.close()


async def _fresh_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _flush_redis(redis_url: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def cluster(
    postgres_admin_url: str, redis_url: str, workers: int, data_dir: Path
) -> dict[str, Any]:
    """planweave on PostgreSQL + Redis with ``workers`` worker processes."""
    from planweave import Engine

    database = f"pw_bench_{workers}"
    await _fresh_database(postgres_admin_url, database)
    await _flush_redis(redis_url)
    store_url = postgres_admin_url.rsplit("/", 1)[0] + "/" + database
    procs = _start_workers(redis_url, workers, data_dir)
    try:
        engine = Engine(store=store_url, bus=redis_url, data_dir=data_dir, run_workers=False)
        async with engine:
            await _wait_consumers(engine, workers)
            before = await _pg_counters(postgres_admin_url, database)
            figures = await _drive(engine)
            after = await _pg_counters(postgres_admin_url, database)
    finally:
        stop_all(procs, timeout_s=40)
    commits, statements = after[0] - before[0], after[1] - before[1]
    figures["pg_transactions_per_task"] = round(commits / figures["tasks"], 3)
    if statements:
        figures["pg_statements_per_task"] = round(statements / figures["tasks"], 3)
    figures["workers"] = workers
    return figures


def arq_peer(redis_url: str, workers: int) -> dict[str, Any]:
    """arq: ``JOBS * TASKS_PER_JOB`` no-op jobs through ``workers`` arq worker processes."""
    from bench.peers import arq_w

    return arq_w.run(redis_url, tasks=JOBS * TASKS_PER_JOB, workers=workers)


async def run_scaled(
    postgres_admin_url: str, redis_url: str, data_dir: Path, counts: Sequence[int] = WORKER_COUNTS
) -> dict[str, Any]:
    """Every figure of the scaled section, in one run."""
    out: dict[str, Any] = {"embedded": await embedded(data_dir)}
    out["cluster"] = [await cluster(postgres_admin_url, redis_url, n, data_dir) for n in counts]
    peer: list[dict[str, Any]] = []
    for n in counts:
        await _flush_redis(redis_url)
        peer.append(await asyncio.to_thread(arq_peer, redis_url, n))
    out["arq"] = peer
    return out


def render(results: dict[str, Any]) -> str:
    rows = ["| run | workers | tasks/s | ready→running p50 | p99 | PG transactions/task |"]
    rows.append("| --- | --- | --- | --- | --- | --- |")
    e = results["embedded"]
    rows.append(
        f"| embedded (SQLite + memory://) | in-process | {e['tasks_per_s']} | "
        f"{e['ready_to_running_p50_ms']} ms | {e['ready_to_running_p99_ms']} ms | - |"
    )
    for c in results["cluster"]:
        rows.append(
            f"| PostgreSQL + Redis | {c['workers']} | {c['tasks_per_s']} | "
            f"{c['ready_to_running_p50_ms']} ms | {c['ready_to_running_p99_ms']} ms | "
            f"{c['pg_transactions_per_task']} |"
        )
    for a in results["arq"]:
        rows.append(f"| arq (same Redis) | {a['workers']} | {a['tasks_per_s']} | - | - | - |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaled", description=__doc__)
    parser.add_argument("--postgres", required=True, help="admin URL: postgresql://u@host:port/db")
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--data-dir", type=Path, default=Path(".planweave-bench"))
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run_scaled(args.postgres, args.redis, args.data_dir.resolve(), counts))
    print(render(results))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
