"""The two loads of the scaled section, run on an open engine: a burst (every job submitted at
once, so the latency is mostly the time a task queued behind the others) and a steady load (jobs
submitted one by one at a fixed rate below what the engine sustains, so the latency is what a
task waits when the engine keeps up).

Both end with every job's event log read back: the tasks that ran are counted there, and each
task's ready→running latency is ``TaskStarted.at - TaskReady.at``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["burst", "percentile", "plan_of", "steady"]


def plan_of(tasks: int) -> Any:
    """One job: ``tasks`` independent no-op ``tool`` tasks (the built-in ``current_time``)."""
    from planweave import Plan, TaskSpec

    return Plan(
        tasks=tuple(
            TaskSpec(id=f"t{n}", kind="tool", tool="current_time", args={}) for n in range(tasks)
        )
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _scan(events: Sequence[Any]) -> tuple[list[float], int]:
    """The ready→running latencies (s) of a job's tasks, and how many tasks completed."""
    ready: dict[str, float] = {}
    latencies: list[float] = []
    completed = 0
    for event in events:
        if event.type == "TaskReady":
            ready[event.task_id] = event.at
        elif event.type == "TaskStarted" and event.task_id in ready:
            latencies.append(event.at - ready.pop(event.task_id))
        elif event.type == "TaskCompleted":
            completed += 1
    return latencies, completed


async def _figures(
    engine: Any, ids: Sequence[str], results: Sequence[Any], tasks_per_job: int, wall_s: float
) -> dict[str, Any]:
    failed = [r.error for r in results if not r.ok]
    latencies: list[float] = []
    completed = 0
    for job_id in ids:
        found, done = _scan(await engine.events(job_id))
        latencies += found
        completed += done
    submitted = len(ids) * tasks_per_job
    return {
        "jobs": len(ids),
        "tasks_per_job": tasks_per_job,
        "tasks_submitted": submitted,
        "tasks_completed": completed,
        "latency_samples": len(latencies),
        "wall_s": round(wall_s, 3),
        "tasks_per_s": round(completed / wall_s, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "failed_jobs": len(failed),
        "first_error": failed[0] if failed else None,
    }


async def burst(engine: Any, *, jobs: int, tasks_per_job: int) -> dict[str, Any]:
    """Submit ``jobs`` jobs at once and wait for them all; tasks/s over the wall time from the
    first submission to the last job's end."""
    plan = plan_of(tasks_per_job)
    started = time.perf_counter()
    ids = await asyncio.gather(*(engine.submit(plan=plan) for _ in range(jobs)))
    results = await asyncio.gather(*(engine.wait(job_id) for job_id in ids))
    wall_s = time.perf_counter() - started
    return await _figures(engine, ids, results, tasks_per_job, wall_s)


async def steady(
    engine: Any, *, tasks_per_s: float, duration_s: float, tasks_per_job: int
) -> dict[str, Any]:
    """Offer ``tasks_per_s`` for ``duration_s``: one job of ``tasks_per_job`` every
    ``tasks_per_job / tasks_per_s`` seconds, each submitted on its schedule whether or not the
    ones before it have been accepted yet (an open loop, as independent clients would)."""
    plan = plan_of(tasks_per_job)
    interval_s = tasks_per_job / tasks_per_s
    count = max(2, round(duration_s / interval_s))
    loop = asyncio.get_running_loop()
    started = loop.time()
    submits: list[asyncio.Future[str]] = []
    for n in range(count):
        delay_s = started + n * interval_s - loop.time()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        submits.append(asyncio.ensure_future(engine.submit(plan=plan)))
    # The rate actually offered: the last submission may start late on a loaded machine.
    offered_s = loop.time() - started + interval_s
    ids = await asyncio.gather(*submits)
    results = await asyncio.gather(*(engine.wait(job_id) for job_id in ids))
    wall_s = loop.time() - started
    figures = await _figures(engine, ids, results, tasks_per_job, wall_s)
    figures["offered_tasks_per_s"] = round(tasks_per_s, 1)
    figures["submitted_tasks_per_s"] = round(count * tasks_per_job / offered_s, 1)
    return figures
