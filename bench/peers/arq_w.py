"""arq, a Redis task queue, as the peer of the scaled section: the same number of no-op tasks
through the same number of worker processes on the same Redis server.

Each task increments a counter; the run ends when the counter reaches the number of tasks. The
wall time runs from the first ``enqueue_job`` to then, as planweave's runs from the first
submission to the last job's end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from arq import create_pool
from arq.connections import RedisSettings

from bench._procs import stop_all

__all__ = ["WorkerSettings", "run"]

_COUNTER = "bench:arq:done"
_ROOT = Path(__file__).resolve().parents[2]


def _settings(url: str) -> RedisSettings:
    parts = urlsplit(url)
    return RedisSettings(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        database=int((parts.path or "/0").strip("/") or 0),
    )


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(_COUNTER)


class WorkerSettings:
    functions = [noop]
    redis_settings = _settings(os.environ.get("BENCH_ARQ_REDIS", "redis://127.0.0.1:6379/0"))
    max_jobs = 128
    keep_result = 0
    poll_delay = 0.01


async def _drive(url: str, tasks: int, workers: int) -> dict[str, Any]:
    with warnings.catch_warnings():
        # arq is written for redis-py 5 and passes an argument redis-py 6+ deprecates; the
        # Makefile installs it beside the redis-py 8 planweave uses (see its setup target).
        warnings.filterwarnings("ignore", "Call to '__init__' function with deprecated usage")
        pool = await create_pool(_settings(url))
    try:
        await pool.delete(_COUNTER)
        started = time.perf_counter()
        for _ in range(tasks):
            await pool.enqueue_job("noop")
        while True:  # the workers count what they ran in Redis
            if int(await pool.get(_COUNTER) or 0) >= tasks:
                break
            await asyncio.sleep(0.01)
        wall_s = time.perf_counter() - started
    finally:
        await pool.aclose()
    return {
        "workers": workers,
        "tasks": tasks,
        "wall_s": round(wall_s, 3),
        "tasks_per_s": round(tasks / wall_s, 1),
    }


def run(url: str, *, tasks: int, workers: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_ARQ_REDIS": url, "PYTHONPATH": str(_ROOT)}
    command = [sys.executable, "-m", "arq", "bench.peers.arq_w.WorkerSettings"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        time.sleep(2.0)  # the workers connect (untimed)
        return asyncio.run(_drive(url, tasks, workers))
    finally:
        stop_all(procs, timeout_s=20)
