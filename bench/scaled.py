"""The scaled section: tasks/s end to end on PostgreSQL + Redis with 1, 2 and 4 worker processes,
beside the embedded default and a Redis task queue (arq), in one run.

Each planweave run submits ``JOBS`` jobs of ``TASKS_PER_JOB`` independent no-op ``tool`` tasks
(the built-in ``current_time``) from one control plane in this process and waits for all of
them; the workers are ``planweave worker --kinds tool`` processes. Measured:

* **tasks/s**: tasks completed divided by the wall time from the first submission to the last
  job's end, with every job submitted at once (the burst);
* **ready→running p50/p99**: per task, ``TaskStarted.at - TaskReady.at`` from the event log
  (the time a ready task waited for the plane to dispatch it and a worker to take it), in the
  burst (mostly queueing behind the other tasks) and under a steady load: jobs of
  ``STEADY_TASKS_PER_JOB`` tasks submitted at a fixed rate, ``STEADY_FRACTION`` of the tasks/s
  the same setup reached in the burst, for ``STEADY_S`` seconds;
* **Postgres transactions per task**: the database's committed transactions during the run
  (``pg_stat_database``; statements too where ``pg_stat_statements`` is installed) divided by
  the tasks; each phase opens its own engine and the counters are read once its connections
  are gone, so every transaction is counted, opening the store included.

The peer, arq, runs as many no-op jobs as the burst with the same number of worker processes on
the same Redis server. ``python -m bench`` runs this section on throwaway servers it starts;
``python -m bench.scaled`` runs it alone, on throwaway servers too or, given ``--postgres URL
--redis URL``, on servers you started (the admin URL of a PostgreSQL server on which it may
create databases, and a Redis server it may flush).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import _servers
from bench._load import burst, steady
from bench._procs import stop_all

__all__ = [
    "JOBS",
    "STEADY_FRACTION",
    "STEADY_S",
    "STEADY_TASKS_PER_JOB",
    "TASKS_PER_JOB",
    "WORKER_COUNTS",
    "ScaledSize",
    "run_scaled",
]

JOBS = 100
TASKS_PER_JOB = 100
WORKER_COUNTS = (1, 2, 4)
# A job's tasks are all ready at once, so a job of 100 is itself a burst of 100: the steady load
# is made of small jobs, offered at half the rate the burst reached, below saturation.
STEADY_TASKS_PER_JOB = 10
STEADY_FRACTION = 0.5
STEADY_S = 10.0
WORKER_CONCURRENCY = 128
_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, kw_only=True)
class ScaledSize:
    """How big each run is: the burst's jobs and tasks, the worker counts, the steady load."""

    jobs: int = JOBS
    tasks_per_job: int = TASKS_PER_JOB
    worker_counts: tuple[int, ...] = WORKER_COUNTS
    steady_fraction: float = STEADY_FRACTION
    steady_s: float = STEADY_S
    steady_tasks_per_job: int = STEADY_TASKS_PER_JOB

    @property
    def tasks(self) -> int:
        return self.jobs * self.tasks_per_job


def _say(text: str) -> None:
    print(f"scaled: {text}", file=sys.stderr, flush=True)


async def _both_loads(engine: Any, size: ScaledSize) -> tuple[dict[str, Any], dict[str, Any]]:
    loaded = await burst(engine, jobs=size.jobs, tasks_per_job=size.tasks_per_job)
    return loaded, await _steady(engine, size, loaded["tasks_per_s"])


async def _steady(engine: Any, size: ScaledSize, burst_tasks_per_s: float) -> dict[str, Any]:
    return await steady(
        engine,
        tasks_per_s=max(size.steady_fraction * burst_tasks_per_s, 1.0),
        duration_s=size.steady_s,
        tasks_per_job=size.steady_tasks_per_job,
    )


async def embedded(data_dir: Path, size: ScaledSize = ScaledSize()) -> dict[str, Any]:
    """The embedded default: SQLite + the in-process bus, workers in this process."""
    from planweave import Engine

    _say("embedded (SQLite + memory://): burst, then steady load")
    async with Engine(store=f"sqlite:///{data_dir / 'embedded.db'}", data_dir=data_dir) as engine:
        loaded, held = await _both_loads(engine, size)
    return {"run": "embedded", "workers": None, "burst": loaded, "steady": held}


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


async def _pg_counters(admin_url: str, database: str, timeout_s: float = 30.0) -> tuple[int, int]:
    """Committed transactions and statements of ``database`` so far, read once none of its
    connections is left: a backend hands its counts to the statistics when it exits, so the
    figures are then complete."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        deadline = time.monotonic() + timeout_s
        while await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"connections to {database} stayed open {timeout_s:g} s")
            await asyncio.sleep(0.05)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
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
    postgres_admin_url: str,
    redis_url: str,
    workers: int,
    data_dir: Path,
    size: ScaledSize = ScaledSize(),
) -> dict[str, Any]:
    """planweave on PostgreSQL + Redis with ``workers`` worker processes: the burst on one
    engine, then the steady load on another (so each phase's transactions are its own)."""
    from planweave import Engine

    _say(f"PostgreSQL + Redis, {workers} worker process(es): burst, then steady load")
    database = f"pw_bench_{workers}"
    await _fresh_database(postgres_admin_url, database)
    await _flush_redis(redis_url)
    store_url = postgres_admin_url.rsplit("/", 1)[0] + "/" + database
    procs = _start_workers(redis_url, workers, data_dir)
    phases: list[dict[str, Any]] = []
    try:
        for phase in ("burst", "steady"):
            counted = await _pg_counters(postgres_admin_url, database)
            engine = Engine(store=store_url, bus=redis_url, data_dir=data_dir, run_workers=False)
            async with engine:
                await _wait_consumers(engine, workers)
                if phase == "burst":
                    figures = await burst(engine, jobs=size.jobs, tasks_per_job=size.tasks_per_job)
                else:
                    figures = await _steady(engine, size, phases[0]["tasks_per_s"])
            after = await _pg_counters(postgres_admin_url, database)
            tasks = max(figures["tasks_submitted"], 1)
            figures["pg_transactions_per_task"] = round((after[0] - counted[0]) / tasks, 3)
            if after[1] - counted[1]:
                figures["pg_statements_per_task"] = round((after[1] - counted[1]) / tasks, 3)
            phases.append(figures)
    finally:
        stop_all(procs, timeout_s=40)
    return {"run": "cluster", "workers": workers, "burst": phases[0], "steady": phases[1]}


def arq_peer(redis_url: str, workers: int, tasks: int = JOBS * TASKS_PER_JOB) -> dict[str, Any]:
    """arq: ``tasks`` no-op jobs through ``workers`` arq worker processes."""
    from bench.peers import arq_w

    _say(f"arq, {workers} worker process(es)")
    return {"run": "arq", **arq_w.run(redis_url, tasks=tasks, workers=workers)}


async def run_scaled(
    postgres_admin_url: str, redis_url: str, data_dir: Path, size: ScaledSize = ScaledSize()
) -> dict[str, Any]:
    """Every figure of the scaled section, in one run."""
    out: dict[str, Any] = {
        "size": {
            "jobs": size.jobs,
            "tasks_per_job": size.tasks_per_job,
            "worker_counts": list(size.worker_counts),
            "worker_concurrency": WORKER_CONCURRENCY,
            "steady_fraction": size.steady_fraction,
            "steady_s": size.steady_s,
            "steady_tasks_per_job": size.steady_tasks_per_job,
        },
        "embedded": await embedded(data_dir, size),
    }
    out["cluster"] = [
        await cluster(postgres_admin_url, redis_url, n, data_dir, size) for n in size.worker_counts
    ]
    peer: list[dict[str, Any]] = []
    for n in size.worker_counts:
        await _flush_redis(redis_url)
        peer.append(await asyncio.to_thread(arq_peer, redis_url, n, size.tasks))
    out["arq"] = peer
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaled", description=__doc__)
    parser.add_argument(
        "--postgres",
        help="admin URL of a server you started: postgresql://u@host:port/db "
        "(default: a throwaway server, with --redis's)",
    )
    parser.add_argument("--redis", help="redis://host:port/db (with --postgres)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--tasks-per-job", type=int, default=TASKS_PER_JOB)
    parser.add_argument("--steady-s", type=float, default=STEADY_S)
    parser.add_argument("--steady-tasks-per-job", type=int, default=STEADY_TASKS_PER_JOB)
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--json", action="store_true", help="print one JSON line, no table")
    args = parser.parse_args(argv)
    if (args.postgres is None) != (args.redis is None):
        parser.error("give both --postgres and --redis, or neither (throwaway servers)")
    size = replace(
        ScaledSize(),
        jobs=args.jobs,
        tasks_per_job=args.tasks_per_job,
        worker_counts=tuple(int(n) for n in args.workers.split(",")),
        steady_s=args.steady_s,
        steady_tasks_per_job=args.steady_tasks_per_job,
    )
    # SIGTERM (how python -m bench stops this process) unwinds as Ctrl-C does: the workers are
    # stopped, the servers and folders this process made are removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="pw-bench-scaled-"))
        )
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        if args.postgres is None:
            missing = _servers.missing_servers()
            if missing:
                raise SystemExit("; ".join(missing))
            redis = stack.enter_context(_servers.redis_server())
            pg = stack.enter_context(_servers.postgres_server(durability="default"))
            urls = pg.admin_dsn, redis.url()
        else:
            urls = args.postgres, args.redis
        results = asyncio.run(run_scaled(*urls, data_dir, size))
    if args.json:
        print(json.dumps(results))
        return
    from bench.scaled_report import render_scaled

    render_scaled(results, plain=True)


if __name__ == "__main__":
    main()
