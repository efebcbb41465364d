"""What only the Redis bus has to get right: fencing between processes, entries it cannot read,
servers that are old, absent or restarted, consumers killed while holding messages, and a whole
engine run on it. The contract every bus meets is in test_bus_contract.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from tests.redis_server import RedisServer, free_port

from planweave import Engine, Plan, TaskSpec, tool
from planweave.bus import RedisBus, open_bus
from planweave.constants import DLQ_SUFFIX, REDIS_GROUP, REDIS_QUEUE_PREFIX
from planweave.errors import BusUnavailable, ConfigError, UsageError
from planweave.events import Event, TaskReady
from planweave.llm import ScriptedModel
from planweave.messages import WorkItem

WAIT_S = 10.0


def work(n: int) -> WorkItem:
    return WorkItem(
        id=f"w{n}",
        job_id="job",
        task_id=f"t{n}",
        attempt=1,
        worker="tool",
        reply_to="test:replies",
        spec=TaskSpec(id=f"t{n}"),
    )


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[RedisBus]:
    instance = RedisBus(redis_url, max_deliveries=3)
    await instance.open()
    yield instance
    await instance.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same server, to look at (and write) the keys directly."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def holder(raw: aioredis.Redis, queue: str, entry_id: str) -> tuple[str, int] | None:
    """Who holds an entry in the queue's consumer group, and its delivery count."""
    rows = await raw.xpending_range(
        REDIS_QUEUE_PREFIX + queue, REDIS_GROUP, min=entry_id, max=entry_id, count=1
    )
    if not rows:
        return None
    return rows[0]["consumer"].decode(), int(rows[0]["times_delivered"])


# --- fencing ------------------------------------------------------------------------------


async def test_a_stale_consumer_cannot_end_or_move_what_another_now_holds(
    bus: RedisBus, raw: aioredis.Redis
) -> None:
    await bus.enqueue("q", work(1))
    [stale] = await bus.receive("q", "c1", timeout_s=WAIT_S, lease_s=0.05)
    await asyncio.sleep(0.1)
    [current] = await bus.receive("q", "c2", timeout_s=WAIT_S, lease_s=30.0)
    assert (current.id, current.deliveries) == (stale.id, 2)
    # A bare XACK from c1 would end it; the bus checks who holds it first.
    await bus.ack(stale)
    await bus.ack_many([stale])
    await bus.nack(stale, reason="stale")
    await bus.extend(stale, lease_s=0.01)
    assert await holder(raw, "q", current.id) == ("c2", 2)
    assert await raw.xlen(REDIS_QUEUE_PREFIX + "q") == 1
    await asyncio.sleep(0.05)  # a stale extend did not shorten c2's lease
    assert await bus.receive("q", "c3", timeout_s=0) == []
    await bus.ack(current)
    assert await holder(raw, "q", current.id) is None
    assert await raw.xlen(REDIS_QUEUE_PREFIX + "q") == 0


async def test_ack_many_ends_deliveries_of_several_queues_and_skips_stale_ones(
    bus: RedisBus, raw: aioredis.Redis
) -> None:
    for queue in ("a", "b"):
        await bus.enqueue(queue, work(1))
        await bus.enqueue(queue, work(2))
    got = await bus.receive("a", "c1", max_items=2, timeout_s=WAIT_S)
    got += await bus.receive("b", "c1", max_items=2, timeout_s=WAIT_S)
    stale = dataclasses.replace(got[0], deliveries=5)  # as if from an earlier delivery
    await bus.ack_many([stale, *got[1:]])
    assert await raw.xlen(REDIS_QUEUE_PREFIX + "a") == 1  # the stale one was not acked
    assert await raw.xlen(REDIS_QUEUE_PREFIX + "b") == 0
    assert await holder(raw, "a", got[0].id) == ("c1", 1)


async def test_extend_resets_the_entry_idle_time_for_redis_tools(
    bus: RedisBus, raw: aioredis.Redis
) -> None:
    await bus.enqueue("q", work(1))
    [delivery] = await bus.receive("q", "c1", timeout_s=WAIT_S, lease_s=30.0)
    await asyncio.sleep(0.3)
    await bus.extend(delivery, lease_s=30.0)
    [row] = await raw.xpending_range(REDIS_QUEUE_PREFIX + "q", REDIS_GROUP, "-", "+", 1)
    assert row["time_since_delivered"] < 250
    assert int(row["times_delivered"]) == 1


# --- entries it cannot read -----------------------------------------------------------------


async def test_entries_that_cannot_be_read_are_dead_lettered_with_the_reason(
    bus: RedisBus, raw: aioredis.Redis
) -> None:
    stream = REDIS_QUEUE_PREFIX + "q"
    future = json.loads(work(9).model_dump_json()) | {"v": 99}
    await raw.xadd(stream, {"m": b"\xff\xfe not json"})
    await raw.xadd(stream, {"m": json.dumps(future)})
    await raw.xadd(stream, {"m": json.dumps({"type": "work_item"})})
    await raw.xadd(stream, {"other": "field"})
    await bus.enqueue("q", work(1))
    got = await bus.receive("q", "c1", max_items=10, timeout_s=WAIT_S)
    assert [d.message for d in got] == [work(1)]
    letters = await bus.undecodable_letters("q")
    assert [letter.data[:2] for letter in letters] == [b"\xff\xfe", b'{"', b'{"', b""]
    reasons = [letter.reason for letter in letters]
    assert "not JSON" in reasons[0]
    assert reasons[1] == "unknown schema version 99 (this planweave reads 1)"
    assert "not a bus message" in reasons[2] and "job_id" in reasons[2]
    assert "no message" in reasons[3]
    assert {letter.deliveries for letter in letters} == {1}
    assert await bus.dead_letters("q") == []  # only letters holding a message are listed there
    assert await bus.depth("q") == 0
    # The consumer goes on: the good message is acked, nothing else is delivered again.
    await bus.ack(got[0])
    assert await bus.receive("q", "c1", timeout_s=0.2) == []


async def test_an_entry_deleted_by_hand_while_leased_is_forgotten(
    bus: RedisBus, raw: aioredis.Redis
) -> None:
    await bus.enqueue("q", work(1))
    await bus.enqueue("q", work(2))
    [first] = await bus.receive("q", "c1", timeout_s=WAIT_S, lease_s=0.05)
    await raw.xdel(REDIS_QUEUE_PREFIX + "q", first.id)  # e.g. an operator's XTRIM
    await asyncio.sleep(0.1)
    got = await bus.receive("q", "c2", max_items=5, timeout_s=WAIT_S)
    assert [d.message for d in got] == [work(2)]
    assert await raw.zcard(REDIS_QUEUE_PREFIX + "q:leases") == 1
    assert await holder(raw, "q", first.id) is None
    assert await bus.depth("q") == 0


# --- servers: old, absent, locked, restarted ------------------------------------------------


async def _fake_redis(version: str) -> tuple[asyncio.Server, int]:
    """A TCP server speaking just enough RESP to claim to be an old Redis."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                break
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                await reader.readline()  # $length
                words.append((await reader.readline()).strip().upper())
            if words and words[0] == b"INFO":
                body = f"# Server\r\nredis_version:{version}\r\n".encode()
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


async def test_an_old_redis_is_refused_with_what_to_fix() -> None:
    server, port = await _fake_redis("6.2.14")
    async with server:
        bus = open_bus(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(ConfigError) as info:
            await bus.open()
    message = str(info.value)
    assert message == (
        f"the server at 127.0.0.1:{port}/0 is Redis 6.2.14; planweave needs Redis 7.0 or "
        "newer: upgrade it"
    )


async def test_an_unreachable_server_is_one_clear_error() -> None:
    port = free_port()
    bus = open_bus(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(ConfigError) as info:
        await bus.open()
    message = str(info.value)
    assert message.startswith(f"cannot reach Redis at 127.0.0.1:{port}/0 (")
    assert message.endswith("check the bus URL and that redis-server is running there")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://localhost:port/0", "the port must be a number"),
        ("redis://localhost:6379/zero", "the database after the port must be a number"),
        ("redis://localhost:99999/0", "the port must be a number"),
    ],
)
def test_a_malformed_url_says_how_to_write_one(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_bus(url)
    assert str(info.value).startswith(f"bad bus URL {url!r}: {says}; use redis://HOST:PORT/DB")


async def test_a_missing_or_wrong_password_says_to_fix_the_url(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "locked", None, "--requirepass", "s3cret")
    server.start()
    try:
        with pytest.raises(ConfigError, match="needs a password: put it in the bus URL"):
            await open_bus(server.url()).open()
        with pytest.raises(ConfigError, match="refused the password: fix it in the bus URL"):
            await open_bus(f"redis://:wrong@127.0.0.1:{server.port}/0").open()
        bus = open_bus(f"redis://:s3cret@127.0.0.1:{server.port}/0")
        await bus.open()
        await bus.enqueue("q", work(1))
        assert await bus.depth("q") == 1
        await bus.close()
    finally:
        server.stop()


async def test_a_server_restart_mid_receive_does_not_crash_the_consumer(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    bus = RedisBus(server.url(), retry_s=30.0)
    await bus.open()
    try:
        receiving = asyncio.create_task(bus.receive("q", "c1", timeout_s=30.0))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(server.restart, 0.5)  # the stream and its group are gone too
        assert not receiving.done()
        await bus.enqueue("q", work(1))
        [delivery] = await asyncio.wait_for(receiving, WAIT_S * 2)
        assert delivery.message == work(1)
        await bus.ack(delivery)
        assert await bus.depth("q") == 0
    finally:
        await bus.close()
        server.stop()


async def test_a_server_that_stays_down_becomes_bus_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    bus = RedisBus(server.url(), retry_s=0.3)
    await bus.open()
    server.stop()
    try:
        with pytest.raises(BusUnavailable, match=f"cannot reach Redis at 127.0.0.1:{server.port}"):
            await bus.enqueue("q", work(1))
        with pytest.raises(BusUnavailable):
            await bus.receive("q", "c1", timeout_s=0)
    finally:
        await bus.close()


# --- topics -------------------------------------------------------------------------------


def event(n: int) -> TaskReady:
    return TaskReady(id=f"e{n}", job_id="job", task_id=f"t{n}", at=float(n))


async def test_a_subscriber_that_falls_behind_loses_the_oldest_events(redis_url: str) -> None:
    bus = RedisBus(redis_url, max_subscriber_buffer=3)
    await bus.open()
    try:
        async with bus.subscribe("topic") as sub:
            await bus.publish_many("topic", [event(n) for n in range(5)])
            for _ in range(int(WAIT_S / 0.01)):  # the reader task takes them in as they come
                if sub.dropped >= 2:
                    break
                await asyncio.sleep(0.01)
            assert sub.buffered() == 3
            assert [await anext(sub) for _ in range(3)] == [event(2), event(3), event(4)]
    finally:
        await bus.close()


async def test_a_subscription_comes_back_after_a_server_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    bus = RedisBus(server.url())
    await bus.open()
    reading: asyncio.Future[Event] | None = None
    try:
        async with bus.subscribe("topic") as sub:
            await bus.publish("topic", event(1))
            assert await asyncio.wait_for(anext(sub), WAIT_S) == event(1)
            await asyncio.to_thread(server.restart, 0.2)
            # Best effort: events published before it subscribed again are missed, so keep
            # publishing until one arrives.
            reading = asyncio.ensure_future(anext(sub))
            async with asyncio.timeout(WAIT_S * 2):
                n = 2
                while not reading.done():
                    await bus.publish("topic", event(n))
                    await asyncio.sleep(0.05)
                    n += 1
            got = reading.result()
            assert got.task_id is not None and int(got.task_id[1:]) >= 2
    finally:
        await bus.close()
        server.stop()
        if reading is not None and not reading.done():
            reading.cancel()


async def test_a_bus_used_before_open_or_after_close_says_so(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    with pytest.raises(UsageError, match=r"call 'await bus.open\(\)' first"):
        await bus.enqueue("q", work(1))
    await bus.open()
    await bus.enqueue("q", work(1))
    await bus.close()
    with pytest.raises(BusUnavailable, match="was closed"):
        await bus.depth("q")
    assert await bus.receive("q", "c1", timeout_s=0.01) == []  # a loop that outlives it idles


# --- a consumer killed while it holds messages ----------------------------------------------

_DOOMED = """
import asyncio, sys
from planweave.bus import RedisBus

async def main() -> None:
    bus = RedisBus(sys.argv[1])
    await bus.open()
    got = await bus.receive("q", "doomed", max_items=3, timeout_s=10.0, lease_s=1.0)
    print(" ".join(d.id for d in got), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_messages_of_a_killed_consumer_go_to_another_after_the_lease(
    bus: RedisBus, redis_url: str
) -> None:
    for n in range(3):
        await bus.enqueue("q", work(n))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DOOMED, redis_url, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        held = line.decode().split()
        assert len(held) == 3
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to nack or ack anything
        await proc.wait()
    got = []
    while len(got) < 3:
        batch = await bus.receive("q", "survivor", max_items=3, timeout_s=WAIT_S)
        assert batch, "the killed consumer's messages were not delivered again"
        got += batch
    assert sorted(d.id for d in got) == sorted(held)
    assert {d.deliveries for d in got} == {2}
    assert sorted(d.message.task_id for d in got) == ["t0", "t1", "t2"]


# --- an engine on the Redis bus ---------------------------------------------------------------


async def test_an_engine_on_the_redis_bus_runs_a_plan_of_tool_tasks(
    tmp_path: Path, redis_url: str, raw: aioredis.Redis
) -> None:
    @tool
    def shout(word: str) -> str:
        """Upper-case a word."""
        return word.upper()

    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="shout", args={"word": "a"}),
            TaskSpec(id="b", kind="tool", tool="shout", args={"word": "b"}, depends_on=("a",)),
            TaskSpec(id="c", kind="tool", tool="shout", args={"word": "c"}, depends_on=("a",)),
            TaskSpec(
                id="d", kind="tool", tool="shout", args={"word": "done"}, depends_on=("b", "c")
            ),
        )
    )
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=redis_url,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        tools=[shout],
    )
    async with engine:
        assert isinstance(engine.bus, RedisBus)
        result = await asyncio.wait_for(engine.run(plan=plan), 60)
        queues = {queue.name: queue for queue in await engine.queues()}
    assert result.ok, result.error
    assert result.result == "DONE"
    assert all(queue.depth == 0 and queue.dead_letters == 0 for queue in queues.values())
    # Every work item and every report went through Redis and was acknowledged.
    streams = [
        key.decode()
        async for key in raw.scan_iter(f"{REDIS_QUEUE_PREFIX}*", _type="stream")
        if not key.endswith(DLQ_SUFFIX.encode())
    ]
    assert any(name.endswith(":tool") for name in streams), streams
    assert len(streams) >= 2  # the tool queue and the plane's outcome queue
    assert [await raw.xlen(name) for name in streams] == [0] * len(streams)


async def test_adoption_removes_the_reply_queues_of_gone_processes_and_keeps_live_ones(
    tmp_path: Path, redis_url: str
) -> None:
    from planweave.constants import JOURNAL_QUEUE_PREFIX, OUTCOME_QUEUE_PREFIX

    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=redis_url,
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        claim_lease_s=0.5,
    )
    gone = [OUTCOME_QUEUE_PREFIX + "plane-dead", JOURNAL_QUEUE_PREFIX + "worker-dead"]
    live = JOURNAL_QUEUE_PREFIX + "worker-live"
    async with engine:
        bus = engine.bus
        for queue in [*gone, live]:  # a reply each, leased to its reader
            await bus.enqueue(queue, work(1))
            (reply,) = await bus.receive(queue, queue.rsplit(":", 1)[1], timeout_s=1.0)
            if queue == live:
                await bus.ack(reply)  # the live reader handles its reply
        await bus.enqueue(QUEUE_PREFIX_TOOL, work(2))  # a work queue: never removed

        async def read_live() -> None:
            while True:  # a live worker keeps reading its queue
                for delivery in await bus.receive(live, "worker-live", timeout_s=0.2):
                    await bus.ack(delivery)

        reader = asyncio.create_task(read_live())
        try:
            await asyncio.sleep(1.3)  # more than two claim leases without a read of the others
            await engine.adopt_orphans()
            left = await bus.queues()
        finally:
            reader.cancel()
    assert not set(gone) & set(left)
    assert live in left and QUEUE_PREFIX_TOOL in left
    assert engine.plane.reply_queue not in await _queues_after_close(redis_url)


QUEUE_PREFIX_TOOL = "pw:work:tool"


async def _queues_after_close(redis_url: str) -> list[str]:
    bus = open_bus(redis_url)
    await bus.open()
    try:
        return await bus.queues()
    finally:
        await bus.close()
