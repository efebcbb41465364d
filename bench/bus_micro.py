"""Micro-benchmark of the in-process bus: microseconds per enqueue -> receive -> ack round trip.

Run: ``.venv/bin/python bench/bus_micro.py [rounds]``. Prints one line per scenario:

* handoff: a consumer is already blocked in ``receive``; each enqueue hands the message to it and
  the producer yields once so the consumer can take, ack and wait again (one loop cycle each);
* fast path: enqueue, receive and ack in one task, no suspension (bookkeeping cost only);
* batch: 100 enqueues, then one ``receive(max_items=100)`` and 100 acks;
* loop baseline: one bare ``await asyncio.sleep(0)`` cycle, for scale.
"""

from __future__ import annotations

import asyncio
import sys
import time

from planweave.bus.memory import MemoryBus
from planweave.messages import WorkItem
from planweave.plan import TaskSpec

QUEUE = "pw:work:bench"


def _item() -> WorkItem:
    return WorkItem(
        job_id="job",
        task_id="t",
        attempt=1,
        worker="executor",
        reply_to="pw:outcomes:bench",
        spec=TaskSpec(id="t"),
    )


async def handoff(rounds: int) -> float:
    bus = MemoryBus()
    await bus.open()
    item = _item()
    done = 0

    async def consume() -> None:
        nonlocal done
        while done < rounds:
            for delivery in await bus.receive(QUEUE, "c1", max_items=10):
                await bus.ack(delivery)
                done += 1

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    started = time.perf_counter()
    for _ in range(rounds):
        await bus.enqueue(QUEUE, item)
        await asyncio.sleep(0)
    await consumer
    elapsed = time.perf_counter() - started
    await bus.close()
    assert done == rounds
    return elapsed / rounds


async def fast_path(rounds: int) -> float:
    bus = MemoryBus()
    await bus.open()
    item = _item()
    started = time.perf_counter()
    for _ in range(rounds):
        await bus.enqueue(QUEUE, item)
        for delivery in await bus.receive(QUEUE, "c1", timeout_s=0):
            await bus.ack(delivery)
    elapsed = time.perf_counter() - started
    await bus.close()
    return elapsed / rounds


async def batch(rounds: int) -> float:
    bus = MemoryBus()
    await bus.open()
    item = _item()
    size = 100
    started = time.perf_counter()
    for _ in range(rounds // size):
        for _ in range(size):
            await bus.enqueue(QUEUE, item)
        for delivery in await bus.receive(QUEUE, "c1", max_items=size, timeout_s=0):
            await bus.ack(delivery)
    elapsed = time.perf_counter() - started
    await bus.close()
    return elapsed / (rounds // size * size)


async def loop_baseline(rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / rounds


async def main(rounds: int) -> None:
    print(f"MemoryBus, {rounds} rounds, Python {sys.version.split()[0]}")
    for name, scenario in [
        ("handoff (consumer waiting)", handoff),
        ("fast path (same task)", fast_path),
        ("batch of 100", batch),
        ("loop baseline sleep(0)", loop_baseline),
    ]:
        await scenario(rounds // 10)  # warm up
        best = min([await scenario(rounds) for _ in range(3)])
        print(f"  {name:<28} {best * 1e6:7.2f} us per round trip")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
