"""Micro-benchmark of the stores: µs per commit of a chain-like step.

Each step of a chain of N dependent tasks commits what the control plane writes for it: the job
row, the finished task and the next task (3 rows) and 4 events (TaskCompleted, TaskReady,
TaskAssigned, TaskStarted). ``await`` waits for every commit to be durable; ``soon`` queues each
step with ``commit_soon`` and awaits one commit at the end (group commit).

Run: ``.venv/bin/python bench/store_micro.py [--steps 200] [--runs 7]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from planweave.events import (
    Event,
    JobSubmitted,
    TaskAssigned,
    TaskCompleted,
    TaskReady,
    TaskStarted,
)
from planweave.plan import TaskSpec
from planweave.state import JobState, apply
from planweave.store import Batch, Store, open_store


def _chain(steps: int, job_id: str) -> tuple[JobState, list[Batch]]:
    """The batches a chain of ``steps`` tasks produces, built before timing."""
    plan = tuple(
        TaskSpec(id=f"t{i}", goal=f"step {i}", depends_on=(f"t{i - 1}",) if i else ())
        for i in range(steps)
    )
    seq = 1
    submitted = JobSubmitted(job_id=job_id, seq=seq, goal="chain", plan=plan)
    state = apply(None, submitted)
    batches = [
        Batch(
            jobs=[state.to_row()],
            tasks=[t.to_row(job_id) for t in state.tasks.values()],
            events=[submitted],
        )
    ]
    for i in range(steps):
        events: list[Event] = []
        task = f"t{i}"
        for event in (
            TaskAssigned(job_id=job_id, task_id=task, seq=seq + 1, attempt=1, worker="w"),
            TaskStarted(job_id=job_id, task_id=task, seq=seq + 2, attempt=1),
            TaskCompleted(job_id=job_id, task_id=task, seq=seq + 3, attempt=1, result=f"r{i}"),
        ):
            apply(state, event)
            events.append(event)
        seq += 3
        changed = [state.tasks[task]]
        if i + 1 < steps:
            seq += 1
            ready = TaskReady(job_id=job_id, task_id=f"t{i + 1}", seq=seq)
            apply(state, ready)
            events.append(ready)
            changed.append(state.tasks[f"t{i + 1}"])
        batches.append(
            Batch(
                jobs=[state.to_row()],
                tasks=[t.to_row(job_id) for t in changed],
                events=events,
            )
        )
    return state, batches


async def _run(store: Store, batches: list[Batch], mode: str) -> tuple[float, float]:
    await store.commit(batches[0])
    wall, cpu = time.perf_counter(), time.process_time()
    if mode == "await":
        for batch in batches[1:]:
            await store.commit(batch)
    else:
        for batch in batches[1:-1]:
            store.commit_soon(batch)
        await store.commit(batches[-1])
    return time.perf_counter() - wall, time.process_time() - cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {
            "memory": "memory://",
            "sqlite NORMAL": f"sqlite:///{Path(tmp) / 'normal.db'}",
            "sqlite FULL": f"sqlite:///{Path(tmp) / 'full.db'}?synchronous=FULL",
        }
        print(f"chain of {args.steps} steps (3 rows + 4 events per commit), median of {args.runs}")
        print(f"{'store':<15} {'mode':<6} {'wall µs/step':>13} {'cpu µs/step':>12}")
        for name, url in urls.items():
            for mode in ("await", "soon"):
                store = open_store(url)
                await store.open()
                walls, cpus = [], []
                for run in range(args.runs + 1):
                    _, batches = _chain(args.steps, f"{mode}-{run}")
                    wall, cpu = await _run(store, batches, mode)
                    if run:  # the first run warms up
                        walls.append(wall)
                        cpus.append(cpu)
                await store.close()
                per_wall = statistics.median(walls) / args.steps * 1e6
                per_cpu = statistics.median(cpus) / args.steps * 1e6
                print(f"{name:<15} {mode:<6} {per_wall:>13.1f} {per_cpu:>12.1f}")


if __name__ == "__main__":
    asyncio.run(main())
