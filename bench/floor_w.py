"""The floors: W1-W4 with no engine at all, so planweave is judged as a ratio to them.

Absolute µs per task differ up to 3x between machines of one kind, and so do the peers', so a
fixed µs target says more about the machine than the engine. These rows run the same shapes on
the cheapest thing that can run them, in the same process layout and the same run as the
engines, and planweave's targets are ratios to them:

- **W1**: one asyncio task, then 500 tasks created and gathered, then one more: the cost of a
  task per step (create, schedule, run, collect its result) for a fan-out.
- **W2**: a chain of 200 coroutines, each run as an asyncio task and awaited before the next
  starts: the task-per-step cost when every step waits for the one before.
- **W3**: 200 jobs gathered, each 5 steps that are tasks sleeping 20 ms. Its ideal is
  5 x 20 ms = 100 ms of wall time; this row shows how close asyncio itself comes.
- **W4**: a chain of 200 steps, each one small ``INSERT`` and a ``COMMIT`` with the standard
  library's ``sqlite3`` on a fresh file (WAL, ``synchronous=NORMAL``), on the event loop's
  thread: the raw cost of one durable commit per step.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

from bench.workloads import (
    W1_WIDTH,
    W2_LENGTH,
    W3_RUNS,
    W3_SLEEP_S,
    W3_STEPS,
    W4_LENGTH,
    RunFn,
    Timer,
    WorkloadFactory,
)

__all__ = ["VARIANTS", "WORKLOADS", "w1", "w2", "w3", "w4"]

VARIANTS = {
    "W1": "bare asyncio: 1 task, 500 tasks gathered, 1 task",
    "W2": "bare asyncio: each step a task, awaited in turn",
    "W3": "bare asyncio: 200 jobs gathered, each step a task sleeping 20 ms",
    "W4": "raw sqlite3: INSERT + COMMIT per step, WAL, synchronous=NORMAL, fresh file per run",
}


async def _step(i: int) -> int:
    return i


def _check(done: int, expected: int) -> None:
    if done != expected:
        raise RuntimeError(f"expected {expected} steps to run, counted {done}")


@asynccontextmanager
async def w1(width: int = W1_WIDTH) -> AsyncIterator[RunFn]:
    async def run(timer: Timer) -> None:
        with timer:
            first = await asyncio.create_task(_step(1))
            fan = await asyncio.gather(*(asyncio.create_task(_step(1)) for _ in range(width)))
            last = await asyncio.create_task(_step(1))
        _check(first + sum(fan) + last, width + 2)

    yield run


@asynccontextmanager
async def w2(length: int = W2_LENGTH) -> AsyncIterator[RunFn]:
    async def run(timer: Timer) -> None:
        done = 0
        with timer:
            for _ in range(length):
                done += await asyncio.create_task(_step(1))
        _check(done, length)

    yield run


@asynccontextmanager
async def w3(
    runs: int = W3_RUNS, steps: int = W3_STEPS, sleep_s: float = W3_SLEEP_S
) -> AsyncIterator[RunFn]:
    async def sleepy() -> int:
        await asyncio.sleep(sleep_s)
        return 1

    async def job() -> int:
        done = 0
        for _ in range(steps):
            done += await asyncio.create_task(sleepy())
        return done

    async def run(timer: Timer) -> None:
        with timer:
            done = await asyncio.gather(*(job() for _ in range(runs)))
        _check(sum(done), runs * steps)

    yield run


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE steps (seq INTEGER PRIMARY KEY, task TEXT NOT NULL, body TEXT)")
    return db


@asynccontextmanager
async def w4(length: int = W4_LENGTH) -> AsyncIterator[RunFn]:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        counter = 0

        async def run(timer: Timer) -> None:
            nonlocal counter
            counter += 1
            # A fresh database file per run, opened untimed (as the engines' stores are).
            with closing(_open(Path(tmp) / f"run{counter}.db")) as db:
                with timer:
                    for i in range(length):
                        db.execute("BEGIN")
                        db.execute(
                            "INSERT INTO steps VALUES (?, ?, ?)", (i, f"t{i}", '{"status":"done"}')
                        )
                        db.execute("COMMIT")
                (count,) = db.execute("SELECT count(*) FROM steps").fetchone()
            _check(count, length)

        yield run


WORKLOADS: dict[str, WorkloadFactory] = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}
