"""The bus contract: one suite, run against every bus implementation.

It asserts what the protocol in ``planweave.bus.base`` states and nothing more: no redelivery
order, no immediate redelivery after ``nack`` (a stream backend may give a message back only when
its lease would have ended), no lease-scan speed, no fairness between consumers. Tests of what
only the in-process bus promises are at the end, named ``test_memory_*``.

A new backend joins by adding a `Backend` to ``BACKENDS``, with ``make_fake_time``: the property
test drives lease expiry with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.redis_server import shared_server

import planweave.bus
from planweave.bus import Bus, Delivery, MemoryBus, RedisBus, open_bus
from planweave.errors import ConfigError, UnknownBackend, UsageError
from planweave.events import Event, TaskReady
from planweave.messages import WorkItem
from planweave.plan import TaskSpec

SHORT_LEASE_S = 0.05
"""A lease that runs out during a test."""
NACK_LEASE_S = 0.5
"""The lease of a message a test will nack: a backend that gives nacked messages back only when
their lease ends does so well within `WAIT_S`, and the lease does not run out before the nack."""
WAIT_S = 5.0
"""How long a test waits for something the contract says happens (a generous upper bound: the
tests never depend on how fast it happens)."""


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[int], Bus]
    """A bus with ``max_deliveries`` on the real clock."""
    make_fake_time: Callable[[int, FakeClock], Bus]
    """A bus whose lease deadlines follow a `FakeClock`."""


MEMORY = Backend(
    name="memory",
    make=lambda max_deliveries: open_bus("memory://", max_deliveries=max_deliveries),
    make_fake_time=lambda max_deliveries, clock: MemoryBus(
        max_deliveries=max_deliveries, clock=clock
    ),
)


def _fresh_redis_bus(max_deliveries: int, clock: FakeClock) -> Bus:
    server = shared_server()
    server.flush()  # the property test reuses one queue name across its examples
    return RedisBus(server.url(), max_deliveries=max_deliveries, clock=clock)


REDIS = Backend(
    name="redis",
    make=lambda max_deliveries: open_bus(shared_server().url(), max_deliveries=max_deliveries),
    make_fake_time=_fresh_redis_bus,
)

BACKENDS = [pytest.param(MEMORY, id="memory"), pytest.param(REDIS, id="redis")]

MAX_DELIVERIES = 3


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    result: Backend = request.param
    return result


@pytest.fixture
async def bus(backend: Backend) -> AsyncIterator[Bus]:
    instance = backend.make(MAX_DELIVERIES)
    await instance.open()
    yield instance
    await instance.close()


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    return f"test:{request.node.name}:{time.monotonic_ns()}"


def work(n: int) -> WorkItem:
    return WorkItem(
        id=f"w{n}",
        job_id="job",
        task_id=f"t{n}",
        attempt=1,
        worker="executor",
        reply_to="test:replies",
        spec=TaskSpec(id=f"t{n}"),
    )


def event(n: int) -> Event:
    return TaskReady(id=f"e{n}", job_id="job", task_id=f"t{n}", at=float(n))


def task_ids(deliveries: list[Delivery]) -> list[str]:
    return [d.message.task_id for d in deliveries]


# --- work queues ----------------------------------------------------------------------------


async def test_delivers_in_fifo_order(bus: Bus, queue: str) -> None:
    for n in range(5):
        await bus.enqueue(queue, work(n))
    got: list[Delivery] = []
    for _ in range(5):
        got += await bus.receive(queue, "c1", timeout_s=1.0)
    assert task_ids(got) == [f"t{n}" for n in range(5)]
    assert {d.deliveries for d in got} == {1}
    assert {d.consumer for d in got} == {"c1"}
    assert {d.queue for d in got} == {queue}
    assert len({d.id for d in got}) == 5
    assert got[0].message == work(0)


async def test_receive_returns_at_most_max_items(bus: Bus, queue: str) -> None:
    for n in range(5):
        await bus.enqueue(queue, work(n))
    first = await bus.receive(queue, "c1", max_items=3, timeout_s=1.0)
    rest = await bus.receive(queue, "c1", max_items=10, timeout_s=1.0)
    assert task_ids(first) == ["t0", "t1", "t2"]
    assert task_ids(rest) == ["t3", "t4"]


async def test_receive_waits_its_timeout_when_there_are_no_messages(bus: Bus, queue: str) -> None:
    started = time.monotonic()
    assert await bus.receive(queue, "c1", timeout_s=0.1) == []
    assert time.monotonic() - started >= 0.09
    assert await bus.receive(queue, "c1", timeout_s=0) == []


async def test_waiting_consumer_gets_a_later_message(bus: Bus, queue: str) -> None:
    receiving = asyncio.create_task(bus.receive(queue, "c1", max_items=5, timeout_s=5.0))
    await asyncio.sleep(0.01)
    await bus.enqueue(queue, work(1))
    got = await receiving
    assert task_ids(got) == ["t1"]
    assert got[0].deliveries == 1


async def test_ack_removes_the_message(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    [delivery] = await bus.receive(queue, "c1", timeout_s=1.0, lease_s=SHORT_LEASE_S)
    await bus.ack(delivery)
    await asyncio.sleep(SHORT_LEASE_S * 3)
    assert await bus.receive(queue, "c1", timeout_s=SHORT_LEASE_S * 2) == []
    assert await bus.depth(queue) == 0
    assert await bus.dead_letters(queue) == []


async def test_a_leased_message_is_not_delivered_to_another_consumer(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    [held] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=30.0)
    assert await bus.receive(queue, "c2", timeout_s=0.1) == []
    assert await bus.depth(queue) == 0
    await bus.ack(held)


async def test_expired_lease_is_redelivered_with_its_count(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    [first] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=SHORT_LEASE_S)
    await asyncio.sleep(SHORT_LEASE_S * 2)
    [again] = await bus.receive(queue, "c2", timeout_s=WAIT_S, lease_s=10.0)
    assert again.id == first.id
    assert again.message == first.message
    assert (first.deliveries, again.deliveries) == (1, 2)
    assert again.consumer == "c2"


async def test_expired_lease_reaches_a_consumer_already_waiting(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    [first] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=SHORT_LEASE_S)
    # c2 starts waiting while c1 still holds the lease, and is not called again.
    [again] = await bus.receive(queue, "c2", timeout_s=WAIT_S)
    assert again.id == first.id
    assert again.deliveries == 2


async def test_extend_keeps_the_lease(bus: Bus, queue: str) -> None:
    lease_s = SHORT_LEASE_S * 4
    await bus.enqueue(queue, work(1))
    [delivery] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=lease_s)
    for _ in range(8):  # twice the first lease in all
        await asyncio.sleep(SHORT_LEASE_S)
        await bus.extend(delivery, lease_s=lease_s)
        assert await bus.receive(queue, "c2", timeout_s=0) == []
    await bus.ack(delivery)
    await asyncio.sleep(SHORT_LEASE_S * 3)
    assert await bus.receive(queue, "c2", timeout_s=0) == []
    assert await bus.depth(queue) == 0


async def test_nack_gives_the_message_back(bus: Bus, queue: str) -> None:
    # Delivered again at once or once the lease would have ended: the contract allows either.
    await bus.enqueue(queue, work(1))
    [first] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)
    await bus.nack(first, reason="try again")
    [again] = await bus.receive(queue, "c2", timeout_s=WAIT_S)
    assert again.id == first.id
    assert again.message == work(1)
    assert again.deliveries == 2
    assert await bus.dead_letters(queue) == []


async def test_expired_too_often_goes_to_dead_letters(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    seen = []
    for _ in range(MAX_DELIVERIES):
        [delivery] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=SHORT_LEASE_S)
        seen.append(delivery.deliveries)
        await asyncio.sleep(SHORT_LEASE_S * 2)
    assert seen == [1, 2, 3]
    [letter] = await bus.dead_letters(queue)
    assert letter.message == work(1)
    assert letter.queue == queue
    assert letter.deliveries == MAX_DELIVERIES
    assert "lease expired" in letter.reason
    assert letter.at == pytest.approx(time.time(), abs=60)
    assert await bus.depth(queue) == 0
    # A dead letter is not delivered again; the queue goes on with other messages.
    await bus.enqueue(queue, work(2))
    assert task_ids(await bus.receive(queue, "c1", max_items=5, timeout_s=WAIT_S)) == ["t2"]


async def test_nacked_too_often_goes_to_dead_letters_with_reason(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    for n in range(1, MAX_DELIVERIES + 1):
        [delivery] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)
        assert delivery.deliveries == n
        await bus.nack(delivery, reason=f"boom {n}")
    # Dead at once: not delivered again, even after its lease would have ended.
    [letter] = await bus.dead_letters(queue)
    assert letter.message == work(1)
    assert letter.reason == f"boom {MAX_DELIVERIES}"
    assert letter.deliveries == MAX_DELIVERIES
    assert await bus.receive(queue, "c1", timeout_s=NACK_LEASE_S * 2) == []
    assert await bus.depth(queue) == 0


async def test_redrive_puts_a_dead_letter_back(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    for _ in range(MAX_DELIVERIES):
        [delivery] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)
        await bus.nack(delivery)
    [letter] = await bus.dead_letters(queue)
    assert await bus.redrive(queue, letter.id) is True
    assert await bus.dead_letters(queue) == []
    assert await bus.depth(queue) == 1
    [again] = await bus.receive(queue, "c1", timeout_s=WAIT_S)
    assert again.message == work(1)
    assert again.deliveries == 1
    assert await bus.redrive(queue, letter.id) is False
    assert await bus.redrive(queue, "no-such-id") is False


async def kill(bus: Bus, queue: str, delivery: Delivery) -> None:
    """Nack a message until it is dead (it must be the only one available)."""
    while True:
        await bus.nack(delivery, reason=f"{delivery.message.task_id} failed")
        if delivery.deliveries >= MAX_DELIVERIES:
            return
        [delivery] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)


async def test_dead_letters_are_listed_in_the_order_they_died(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    [held] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=30.0)
    await bus.enqueue(queue, work(2))
    [younger] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)
    await kill(bus, queue, younger)  # t2 dies first, while t1 is held
    await bus.extend(held, lease_s=NACK_LEASE_S)
    await kill(bus, queue, held)
    letters = await bus.dead_letters(queue)
    assert [letter.message.task_id for letter in letters] == ["t2", "t1"]
    assert [letter.reason for letter in letters] == ["t2 failed", "t1 failed"]


async def test_a_stale_delivery_cannot_end_or_give_back_the_new_one(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue, work(1))
    [stale] = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=SHORT_LEASE_S)
    [current] = await bus.receive(queue, "c2", timeout_s=WAIT_S, lease_s=30.0)
    assert current.deliveries == 2
    assert current.id == stale.id
    await bus.ack(stale)
    await bus.nack(stale, reason="stale")
    await bus.extend(stale, lease_s=30.0)
    assert await bus.depth(queue) == 0  # still leased to c2
    assert await bus.receive(queue, "c3", timeout_s=0.1) == []
    await bus.extend(current, lease_s=NACK_LEASE_S)
    await bus.nack(current)
    [again] = await bus.receive(queue, "c3", timeout_s=WAIT_S)  # not acked by the stale ack
    assert again.deliveries == 3
    assert await bus.dead_letters(queue) == []


async def test_depth_counts_waiting_messages(bus: Bus, queue: str) -> None:
    assert await bus.depth(queue) == 0
    for n in range(3):
        await bus.enqueue(queue, work(n))
    assert await bus.depth(queue) == 3
    assert len(await bus.receive(queue, "c1", timeout_s=1.0, lease_s=SHORT_LEASE_S)) == 1
    assert await bus.depth(queue) == 2
    await asyncio.sleep(SHORT_LEASE_S * 3)
    assert await bus.depth(queue) == 3
    assert await bus.depth(queue + ":other") == 0


async def test_locate_tells_where_each_message_is(bus: Bus, queue: str) -> None:
    dead = await bus.enqueue(queue, work(0))
    for _ in range(MAX_DELIVERIES):  # nacked on its last delivery: dead
        (delivery,) = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)
        assert delivery.id == dead
        await bus.nack(delivery, reason="boom")
    done, leased, waiting = [await bus.enqueue(queue, work(n)) for n in (1, 2, 3)]
    assert len({dead, done, leased, waiting}) == 4
    first, second = await bus.receive(queue, "c1", max_items=2, timeout_s=1.0)
    assert (first.id, second.id) == (done, leased)
    await bus.ack(first)
    places = await bus.locate(queue, [dead, done, leased, waiting, "0-1"])
    assert places == {dead: "dead", leased: "leased", waiting: "waiting"}


async def test_stats_count_what_a_queue_holds_and_who_holds_it(bus: Bus, queue: str) -> None:
    for n in range(3):
        await bus.enqueue(queue, work(n))
    (held,) = await bus.receive(queue, "worker-1", timeout_s=1.0)
    stats = await bus.stats(queue)
    assert (stats.queue, stats.depth, stats.pending, stats.dead_letters) == (queue, 2, 1, 0)
    assert [(c.name, c.pending) for c in stats.consumers if c.pending] == [("worker-1", 1)]
    assert queue in await bus.queues()
    await bus.ack(held)
    assert (await bus.stats(queue)).pending == 0


async def test_a_removed_queue_is_gone_with_everything_it_held(bus: Bus, queue: str) -> None:
    dead = await bus.enqueue(queue, work(0))
    for _ in range(MAX_DELIVERIES):  # nacked on its last delivery: dead
        (delivery,) = await bus.receive(queue, "c1", timeout_s=WAIT_S, lease_s=NACK_LEASE_S)
        await bus.nack(delivery, reason="boom")
    assert len(await bus.dead_letters(queue)) == 1
    await bus.enqueue(queue, work(1))
    await bus.enqueue(queue, work(2))
    assert len(await bus.receive(queue, "c1", timeout_s=1.0)) == 1  # one leased, one waiting
    await bus.enqueue(queue + ":kept", work(3))

    await bus.remove_queue(queue)
    await bus.remove_queue(queue + ":never-made")  # nothing to remove: no error
    assert queue not in await bus.queues()
    assert queue + ":kept" in await bus.queues()
    assert await bus.depth(queue) == 0
    assert await bus.dead_letters(queue) == []
    assert await bus.locate(queue, [dead]) == {}
    await bus.enqueue(queue, work(4))  # starts again, empty
    assert task_ids(await bus.receive(queue, "c2", max_items=5, timeout_s=1.0)) == ["t4"]
    assert task_ids(await bus.receive(queue + ":kept", "c1", timeout_s=1.0)) == ["t3"]


async def test_queues_are_separate(bus: Bus, queue: str) -> None:
    await bus.enqueue(queue + ":a", work(1))
    await bus.enqueue(queue + ":b", work(2))
    assert task_ids(await bus.receive(queue + ":b", "c1", max_items=5, timeout_s=1.0)) == ["t2"]
    assert task_ids(await bus.receive(queue + ":a", "c1", max_items=5, timeout_s=1.0)) == ["t1"]


async def test_concurrent_consumers_get_distinct_messages(bus: Bus, queue: str) -> None:
    total = 60
    received: dict[str, list[str]] = {}

    async def consume(name: str) -> None:
        mine = received.setdefault(name, [])
        while True:
            batch = await bus.receive(queue, name, max_items=3, timeout_s=0.3, lease_s=30.0)
            if not batch:
                return
            for delivery in batch:
                mine.append(delivery.message.task_id)
                await asyncio.sleep(0)
                await bus.ack(delivery)

    consumers = [asyncio.create_task(consume(f"c{i}")) for i in range(4)]
    await asyncio.sleep(0.01)
    for n in range(total):
        await bus.enqueue(queue, work(n))
        if n % 7 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*consumers)
    # Each message went to exactly one consumer (no lease expired); how they were spread over
    # the consumers is up to the backend.
    everything = [task_id for ids in received.values() for task_id in ids]
    assert sorted(everything) == sorted(f"t{n}" for n in range(total))


async def test_cancelled_receive_loses_no_message(bus: Bus, queue: str) -> None:
    # Cancelled just after a message was handed to it.
    receiving = asyncio.create_task(bus.receive(queue, "c1", timeout_s=5.0, lease_s=SHORT_LEASE_S))
    await asyncio.sleep(0.01)
    await bus.enqueue(queue, work(1))
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert task_ids(await bus.receive(queue, "c2", timeout_s=5.0)) == ["t1"]
    # Cancelled while waiting on an empty queue.
    idle = asyncio.create_task(bus.receive(queue, "c3", timeout_s=5.0))
    await asyncio.sleep(0.01)
    idle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await idle
    await bus.enqueue(queue, work(2))
    assert task_ids(await bus.receive(queue, "c4", timeout_s=5.0)) == ["t2"]


# --- topics -------------------------------------------------------------------------------


async def collect(sub: AsyncIterator[Event], count: int) -> list[Event]:
    out: list[Event] = []
    async for item in sub:
        out.append(item)
        if len(out) == count:
            break
    return out


async def test_publish_fans_out_to_every_subscriber(bus: Bus, queue: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        subs = [await stack.enter_async_context(bus.subscribe(queue)) for _ in range(3)]
        readers = [asyncio.create_task(collect(aiter(sub), 5)) for sub in subs]
        for n in range(5):
            await bus.publish(queue, event(n))
        results = await asyncio.wait_for(asyncio.gather(*readers), 5.0)
    assert results == [[event(n) for n in range(5)]] * 3


async def test_topics_are_separate(bus: Bus, queue: str) -> None:
    async with bus.subscribe(queue + ":a") as sub:
        await bus.publish(queue + ":b", event(1))
        await bus.publish(queue + ":a", event(2))
        assert await asyncio.wait_for(collect(aiter(sub), 1), 5.0) == [event(2)]


async def test_closed_subscription_ends_and_receives_nothing(bus: Bus, queue: str) -> None:
    async with bus.subscribe(queue) as leaving, bus.subscribe(queue) as staying:
        leaving_reader = asyncio.create_task(collect(aiter(leaving), 100))
        await bus.publish(queue, event(1))
        await asyncio.sleep(0.01)
        await leaving.close()
        assert await asyncio.wait_for(leaving_reader, 5.0) == [event(1)]
        await bus.publish(queue, event(2))
        assert await asyncio.wait_for(collect(aiter(staying), 2), 5.0) == [event(1), event(2)]
        assert await asyncio.wait_for(collect(aiter(leaving), 1), 5.0) == []


async def test_events_before_subscribe_are_not_delivered(bus: Bus, queue: str) -> None:
    await bus.publish(queue, event(1))
    async with bus.subscribe(queue) as sub:
        await bus.publish(queue, event(2))
        assert await asyncio.wait_for(collect(aiter(sub), 1), 5.0) == [event(2)]


async def test_leaving_the_block_ends_the_subscription(bus: Bus, queue: str) -> None:
    async with bus.subscribe(queue) as sub:
        await bus.publish(queue, event(1))
        assert await asyncio.wait_for(collect(aiter(sub), 1), 5.0) == [event(1)]
    await bus.publish(queue, event(2))
    assert await asyncio.wait_for(collect(aiter(sub), 1), 5.0) == []


async def test_slow_subscriber_does_not_hold_up_others(bus: Bus, queue: str) -> None:
    async with bus.subscribe(queue) as slow, bus.subscribe(queue) as fast:
        reader = asyncio.create_task(collect(aiter(fast), 500))
        for n in range(500):
            await bus.publish(queue, event(n))
        assert await asyncio.wait_for(reader, 5.0) == [event(n) for n in range(500)]
        # The slow one lost nothing it was given to reorder: what it reads is in publish order
        # (best effort: a backend with a small buffer may have dropped the oldest).
        late = await asyncio.wait_for(collect(aiter(slow), 2), 5.0)
        assert all(e in [event(n) for n in range(500)] for e in late)
        assert late[0].at < late[1].at


# --- invariant under random operations ------------------------------------------------------

Op = (
    tuple[Literal["enqueue"]]
    | tuple[Literal["receive"], int, float]
    | tuple[Literal["ack", "nack", "stale"], int]
    | tuple[Literal["extend"], int, float]
    | tuple[Literal["advance"], float]
)

LEASES_S = st.sampled_from([1.0, 3.0])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue")),
        st.tuples(st.just("receive"), st.integers(1, 3), LEASES_S),
        st.tuples(st.sampled_from(["ack", "nack", "stale"]), st.integers(0, 50)),
        st.tuples(st.just("extend"), st.integers(0, 50), LEASES_S),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 2.0, 5.0])),
    ),
    max_size=80,
)


@dataclass
class Tracked:
    """What the test expects of one message."""

    state: Literal["waiting", "inflight", "given_back", "acked", "dead"] = "waiting"
    """``given_back``: nacked, and available again at once or from ``deadline`` on (the
    contract allows either)."""
    deliveries: int = 0
    deadline: float = 0.0
    delivery: Delivery | None = None
    superseded: list[Delivery] = field(default_factory=list)
    """Earlier deliveries of the message that was delivered again since: fenced off."""
    reason: str = ""
    """Expected in the dead letter's reason."""


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
async def test_every_message_is_in_exactly_one_state(backend: Backend, ops: list[Op]) -> None:
    clock = FakeClock()
    bus = backend.make_fake_time(MAX_DELIVERIES, clock)
    queue = "prop"
    tracked: dict[str, Tracked] = {}
    await bus.open()

    def in_state(state: str) -> list[str]:
        return [key for key, t in tracked.items() if t.state == state]

    def held() -> list[Tracked]:
        return [t for t in tracked.values() if t.state == "inflight"]

    def settle(t: Tracked, reason: str) -> None:
        if t.deliveries >= MAX_DELIVERIES:
            t.state, t.reason = "dead", reason
        else:
            t.state = "waiting"

    async def check() -> None:
        waiting, given_back = len(in_state("waiting")), len(in_state("given_back"))
        assert waiting <= await bus.depth(queue) <= waiting + given_back
        letters = await bus.dead_letters(queue)
        assert sorted(letter.message.task_id for letter in letters) == sorted(in_state("dead"))
        for letter in letters:
            assert letter.deliveries == MAX_DELIVERIES
            assert tracked[letter.message.task_id].reason in letter.reason
        assert len(tracked) == sum(
            len(in_state(s)) for s in ("waiting", "inflight", "given_back", "acked", "dead")
        )

    async def apply(op: Op) -> None:
        if op[0] == "enqueue":
            tracked[f"t{len(tracked)}"] = Tracked()
            await bus.enqueue(queue, work(len(tracked) - 1))
        elif op[0] == "receive":
            _, max_items, lease_s = op
            waiting, given_back = len(in_state("waiting")), len(in_state("given_back"))
            got = await bus.receive(queue, "c", max_items=max_items, timeout_s=0, lease_s=lease_s)
            assert min(max_items, waiting) <= len(got) <= min(max_items, waiting + given_back)
            for delivery in got:
                t = tracked[delivery.message.task_id]
                assert t.state in ("waiting", "given_back"), "delivered a message not available"
                assert delivery.deliveries == t.deliveries + 1
                if t.delivery is not None:
                    t.superseded.append(t.delivery)
                t.state, t.deliveries = "inflight", delivery.deliveries
                t.deadline, t.delivery = clock.now + lease_s, delivery
        elif op[0] in ("ack", "nack", "extend"):
            holding = held()
            if not holding:
                return
            t = holding[op[1] % len(holding)]
            assert t.delivery is not None
            if op[0] == "ack":
                await bus.ack(t.delivery)
                t.state = "acked"
            elif op[0] == "nack":
                await bus.nack(t.delivery, reason="nope")
                if t.deliveries >= MAX_DELIVERIES:
                    t.state, t.reason = "dead", "nope"
                else:
                    t.state = "given_back"  # the deadline stays: available by then at the latest
            else:
                await bus.extend(t.delivery, lease_s=op[2])
                t.deadline = clock.now + op[2]
        elif op[0] == "stale":
            # ack, nack or extend through a delivery that was superseded: nothing changes.
            olds = [(t, d) for t in tracked.values() for d in t.superseded]
            if not olds:
                return
            _, old = olds[op[1] % len(olds)]
            if op[1] % 3 == 0:
                await bus.ack(old)
            elif op[1] % 3 == 1:
                await bus.nack(old, reason="stale")
            else:
                await bus.extend(old, lease_s=99.0)
        else:
            clock.now += op[1]
            for t in tracked.values():
                if t.state == "inflight" and t.deadline <= clock.now:
                    settle(t, "lease expired")
                elif t.state == "given_back" and t.deadline <= clock.now:
                    t.state = "waiting"
        await check()

    try:
        for op in ops:
            await apply(op)
        # A consumer that never acks: everything still waiting ends dead, nothing is lost.
        while in_state("waiting") or in_state("inflight") or in_state("given_back"):
            await apply(("receive", 100, 1.0))
            await apply(("advance", 2.0))
        assert len(in_state("acked")) + len(in_state("dead")) == len(tracked)
    finally:
        await bus.close()


# --- open_bus and the memory backend --------------------------------------------------------


def test_open_bus_picks_the_backend_by_scheme() -> None:
    bus = open_bus("memory://", max_deliveries=7)
    assert isinstance(bus, MemoryBus)
    assert isinstance(bus, Bus)
    assert bus.url == "memory://"
    assert bus.max_deliveries == 7


def test_open_bus_rejects_an_unknown_scheme() -> None:
    with pytest.raises(UnknownBackend) as info:
        open_bus("kafka://localhost")
    assert "memory://" in str(info.value)
    assert "redis://" in str(info.value)


def test_bus_package_exports_what_it_declares() -> None:
    for name in planweave.bus.__all__:
        assert hasattr(planweave.bus, name), name
    assert {"Bus", "Delivery", "DeadLetter", "Subscription", "MemoryBus", "open_bus"} <= set(
        planweave.bus.__all__
    )


def test_memory_bus_rejects_bad_options() -> None:
    with pytest.raises(ConfigError):
        MemoryBus(max_deliveries=0)
    with pytest.raises(ConfigError):
        MemoryBus(max_subscriber_buffer=0)


async def test_memory_nack_redelivers_at_once_ahead_of_the_queue() -> None:
    bus = MemoryBus(max_deliveries=5)
    await bus.open()
    await bus.enqueue("q", work(1))
    await bus.enqueue("q", work(2))
    [first] = await bus.receive("q", "c1", lease_s=30.0)
    await bus.nack(first)
    assert await bus.depth("q") == 2
    got = await bus.receive("q", "c2", max_items=2, timeout_s=0)
    assert [(d.message.task_id, d.deliveries) for d in got] == [("t1", 2), ("t2", 1)]
    await bus.close()


async def test_memory_waiting_consumer_gets_a_burst_in_one_batch() -> None:
    bus = MemoryBus()
    receiving = asyncio.create_task(bus.receive("q", "c1", max_items=3, timeout_s=5.0))
    await asyncio.sleep(0)
    for n in range(5):
        await bus.enqueue("q", work(n))
    assert task_ids(await receiving) == ["t0", "t1", "t2"]
    assert await bus.depth("q") == 2
    await bus.close()


async def test_memory_cancelled_receive_gives_its_messages_back_undelivered() -> None:
    bus = MemoryBus()
    receiving = asyncio.create_task(bus.receive("q", "c1", max_items=5))
    await asyncio.sleep(0)
    await bus.enqueue("q", work(1))
    await bus.enqueue("q", work(2))
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    got = await bus.receive("q", "c2", max_items=5, timeout_s=0)
    assert task_ids(got) == ["t1", "t2"]
    assert [d.deliveries for d in got] == [1, 1]
    await bus.close()


async def test_memory_close_wakes_receivers_and_ends_subscriptions() -> None:
    bus = MemoryBus()
    await bus.open()
    receiving = asyncio.create_task(bus.receive("q", "c1"))
    async with bus.subscribe("topic") as sub:
        reading = asyncio.create_task(collect(sub, 1))
        await asyncio.sleep(0.01)
        await bus.close()
        assert await asyncio.wait_for(receiving, 5.0) == []
        assert await asyncio.wait_for(reading, 5.0) == []


async def test_memory_subscriber_buffer_drops_oldest() -> None:
    bus = MemoryBus(max_subscriber_buffer=3)
    async with bus.subscribe("topic") as sub:
        for n in range(5):
            await bus.publish("topic", event(n))
        assert sub.dropped == 2
        assert await collect(sub, 3) == [event(2), event(3), event(4)]


async def test_memory_subscription_receives_only_once_entered() -> None:
    bus = MemoryBus()
    sub = bus.subscribe("topic")
    await bus.publish("topic", event(1))
    with pytest.raises(UsageError, match="async with"):
        await anext(aiter(sub))
    async with sub:
        await bus.publish("topic", event(2))
        assert await collect(sub, 1) == [event(2)]
    await bus.close()


async def test_memory_subscription_entered_after_close_is_ended() -> None:
    bus = MemoryBus()
    await bus.open()
    await bus.close()
    async with bus.subscribe("topic") as sub:
        await bus.publish("topic", event(1))
        assert await collect(sub, 1) == []


async def test_memory_receive_after_close_waits_instead_of_spinning() -> None:
    bus = MemoryBus()
    await bus.open()
    await bus.close()
    started = time.monotonic()
    assert await bus.receive("q", "c1", timeout_s=0.05) == []
    assert time.monotonic() - started >= 0.04
