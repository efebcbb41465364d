"""The Redis Streams bus (``redis://host:port/db``, ``rediss://`` for TLS): the scaled deployment.

Each work queue is a stream read through one consumer group, so any number of processes on any
machines share it, and Redis' tools (``XINFO``, ``XPENDING``, consumer-group lag for autoscalers)
see the queues as they are. What the bus contract needs beyond a consumer group lives in Lua
scripts that check and act in one step on the server (see ``_redis_scripts``): a lease per
delivery that ``receive`` sets and ``extend`` moves, redelivery of expired leases, dead letters
after ``max_deliveries``, and fencing, so that a slow consumer's ``ack`` cannot end an entry
that another consumer now holds.

A ``receive`` that finds nothing waits on the stream (``XREAD BLOCK``) until a new entry comes
or the earliest lease in the queue ends, so a consumer already waiting gets expired work without
calling again; nothing runs in the background. Messages are JSON; an entry that cannot be
decoded, or that carries a schema version this planweave does not read, is dead-lettered at
once with the reason and never reaches the consumer. A lost connection is retried with backoff
for ``retry_s`` before an operation raises `BusUnavailable`; no redis exception leaves this
package.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from planweave.bus import _redis_scripts as scripts
from planweave.bus._redis_topics import RedisSubscription
from planweave.bus.base import (
    BusMessage,
    ConsumerInfo,
    DeadLetter,
    Delivery,
    MessagePlace,
    QueueStats,
)
from planweave.bus.memory import DEFAULT_SUBSCRIBER_BUFFER
from planweave.constants import (
    DEFAULT_BUS_RETRY_S,
    DEFAULT_MAX_DELIVERIES,
    DLQ_SUFFIX,
    REDIS_GROUP,
    REDIS_LEASES_SUFFIX,
    REDIS_MIN_VERSION,
    REDIS_QUEUE_PREFIX,
    REDIS_TOPIC_PREFIX,
    SCHEMA_VERSION,
)
from planweave.errors import BusUnavailable, ConfigError, UsageError
from planweave.events import Event
from planweave.messages import message_adapter

__all__ = ["RedisBus", "UndecodableLetter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_WAIT_S = 1.0
"""Longest one ``XREAD BLOCK`` of a waiting ``receive``: a bound on how late it notices a lease
that a ``nack`` or a shortened ``extend`` ended early (it wakes at once for new entries and
when the earliest lease it knew of ends)."""
_MAX_BACKOFF_S = 1.0
_CONNECT_TIMEOUT_S = 5.0
_STREAM_ID = re.compile(r"\d+-\d+")


@dataclass(slots=True, frozen=True)
class UndecodableLetter:
    """A dead letter whose entry is not a message this planweave can read.

    It was dead-lettered on its first delivery, without reaching a consumer: its payload is not
    JSON of a known message type, or it carries another schema version. ``redrive`` takes its
    ``id`` like any dead letter's.

    Attributes:
        queue: The queue it was dead-lettered from.
        id: Its id in the dead-letter stream.
        data: The entry's payload as stored (empty when the entry had none).
        deliveries: How many times it was delivered.
        reason: Why it could not be read.
        at: When it was dead-lettered (epoch seconds).
    """

    queue: str
    id: str
    data: bytes
    deliveries: int
    reason: str
    at: float


def _checked_url(url: str) -> tuple[str, int, int]:
    """Host, port and database of a bus URL, or a `ConfigError` that says what is wrong."""
    example = "redis://HOST:PORT/DB (or rediss:// for TLS), e.g. redis://localhost:6379/0"
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"bad bus URL {url!r}: use {example}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(
            f"bad bus URL {url!r}: the port must be a number; use {example}"
        ) from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError(
            f"bad bus URL {url!r}: the database after the port must be a number; use {example}"
        )
    return parts.hostname or "localhost", port, int(path or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: list[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _decode(payload: Any) -> BusMessage | str:
    """The message an entry carries, or why it cannot be read."""
    if not isinstance(payload, bytes) or not payload:
        return "undecodable entry: it has no message ('m' field)"
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"undecodable entry: not JSON ({exc})"
    if not isinstance(data, dict):
        return "undecodable entry: not a JSON object"
    version = data.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return f"unknown schema version {version!r} (this planweave reads {SCHEMA_VERSION})"
    try:
        return message_adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"undecodable entry: not a bus message ({where or 'message'}: {first['msg']})"


class RedisBus:
    """A `Bus` on Redis Streams: work queues shared by processes on any machines, and topics.

    Args:
        url: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS; a password as
            ``redis://:PASSWORD@HOST:PORT/DB``).
        max_deliveries: Deliveries of a message before an expired lease or a ``nack`` moves it
            to the dead-letter stream instead of delivering it again.
        max_subscriber_buffer: Events a subscriber may fall behind before its oldest are
            dropped (``None``: unbounded).
        retry_s: How long an operation keeps retrying, with backoff, while Redis cannot be
            reached, before it raises `BusUnavailable`.
        clock: Clock for lease deadlines, in seconds (tests pass a fake one); by default Redis'
            own clock, so that consumers on machines whose clocks differ agree on every lease.

    Raises:
        ConfigError: The URL is malformed, or an option is out of range.
    """

    loses_messages = True
    """A server restarted without persistence forgets its queues: the control plane checks on
    its work items (``locate``) and sends again those that are gone."""

    def __init__(
        self,
        url: str,
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_subscriber_buffer: int | None = DEFAULT_SUBSCRIBER_BUFFER,
        retry_s: float = DEFAULT_BUS_RETRY_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if max_deliveries < 1:
            raise ConfigError(f"max_deliveries must be at least 1, not {max_deliveries}")
        if max_subscriber_buffer is not None and max_subscriber_buffer < 1:
            raise ConfigError(
                f"max_subscriber_buffer must be at least 1 or None, not {max_subscriber_buffer}"
            )
        if retry_s < 0:
            raise ConfigError(f"retry_s must be 0 or more, not {retry_s}")
        host, port, db = _checked_url(url)
        self.url = url
        self.where = f"{host}:{port}/{db}"
        """Where the server is, for messages (the URL without its password)."""
        self.max_deliveries = max_deliveries
        self.max_subscriber_buffer = max_subscriber_buffer
        self.retry_s = retry_s
        self._clock = clock
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._subscriptions: set[RedisSubscription] = set()
        self._waits: set[asyncio.Task[Any]] = set()
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and check that the server is Redis 7 or newer.

        Raises:
            ConfigError: The server cannot be reached, refused the password, or is older
                than Redis 7.
            BusUnavailable: It refused the ``INFO`` command.
        """
        if self._client is not None:
            return
        self._closed = False
        try:
            client: aioredis.Redis = aioredis.Redis.from_url(
                self.url,
                socket_connect_timeout=_CONNECT_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),  # this class retries, with its own backoff
            )
        except ValueError as exc:
            raise ConfigError(f"bad bus URL {self.url!r}: {exc}") from None
        try:
            info = await client.info("server")
        except (AuthenticationError, ResponseError) as exc:
            await client.aclose()
            text = str(exc)
            if isinstance(exc, ResponseError) and not any(
                word in text for word in ("NOAUTH", "WRONGPASS", "HELLO", "AUTH")
            ):
                raise BusUnavailable(f"Redis at {self.where} refused INFO: {text}") from None
            if urlsplit(self.url).password is None:
                raise ConfigError(
                    f"Redis at {self.where} needs a password: put it in the bus URL "
                    "(redis://:PASSWORD@HOST:PORT/DB)"
                ) from None
            raise ConfigError(
                f"Redis at {self.where} refused the password: fix it in the bus URL "
                "(redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@... for an ACL user)"
            ) from None
        except (RedisError, OSError) as exc:
            # At start a server that cannot be reached is a setting to fix (exit 2 in the CLI);
            # a connection lost later is retried and becomes BusUnavailable.
            await client.aclose()
            raise ConfigError(
                f"cannot reach Redis at {self.where} ({exc}): check the bus URL and that "
                "redis-server is running there"
            ) from None
        version = str(info.get("redis_version", "0"))
        numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        if numbers < REDIS_MIN_VERSION:
            await client.aclose()
            raise ConfigError(
                f"the server at {self.where} is Redis {version}; planweave needs Redis "
                f"{'.'.join(map(str, REDIS_MIN_VERSION))} or newer: upgrade it"
            )
        self._client = client
        self._scripts = {
            name: client.register_script(source) for name, source in scripts.SCRIPTS.items()
        }

    async def close(self) -> None:
        """Disconnect: subscriptions end, blocked ``receive`` calls return no messages."""
        self._closed = True
        for sub in list(self._subscriptions):
            await sub.close()
        for wait in list(self._waits):
            wait.cancel()
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (RedisError, OSError) as exc:
                log.debug("closing the Redis connection: %s", exc)

    def _client_or_none(self) -> aioredis.Redis | None:
        return None if self._closed else self._client

    def _open_client(self) -> aioredis.Redis:
        client = self._client
        if client is None:
            if self._closed:
                raise BusUnavailable(f"the bus on Redis at {self.where} was closed")
            raise UsageError("the Redis bus is not open: call 'await bus.open()' first")
        return client

    async def _call(self, what: str, make: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run one round trip, retrying with backoff for ``retry_s`` while Redis is unreachable."""
        delay_s, first_failure = 0.05, 0.0
        while True:
            client = self._open_client()
            try:
                return await make(client)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if isinstance(exc, AuthenticationError):
                    raise ConfigError(f"Redis at {self.where} refused the credentials") from None
                now = time.monotonic()
                if not first_failure:
                    first_failure = now
                    log.warning(
                        "lost the connection to Redis at %s (%s): retrying", self.where, exc
                    )
                if self._closed or now - first_failure >= self.retry_s:
                    raise BusUnavailable(
                        f"cannot reach Redis at {self.where} ({what}): {exc}"
                    ) from None
                await asyncio.sleep(delay_s)
                delay_s = min(_MAX_BACKOFF_S, delay_s * 2)
            except RedisError as exc:
                raise BusUnavailable(f"Redis at {self.where} refused {what}: {exc}") from None

    def _now_arg(self) -> int:
        return -1 if self._clock is None else int(self._clock() * 1000)

    @staticmethod
    def _keys(queue: str) -> list[str]:
        stream = REDIS_QUEUE_PREFIX + queue
        return [stream, stream + REDIS_LEASES_SUFFIX, stream + DLQ_SUFFIX]

    def _script_named(self, name: str) -> Any:
        self._open_client()  # raises when not open
        return self._scripts[name]

    async def _script(self, name: str, queue: str, args: list[Any]) -> Any:
        script = self._script_named(name)
        keys = self._keys(queue)
        return await self._call(name, lambda client: script(keys=keys, args=args))

    # --- work queues --------------------------------------------------------------------------

    async def enqueue(self, queue: str, message: BusMessage) -> str:
        stream = REDIS_QUEUE_PREFIX + queue
        payload = message.model_dump_json()
        entry_id = await self._call("XADD", lambda client: client.xadd(stream, {"m": payload}))
        return _text(entry_id)

    async def receive(
        self,
        queue: str,
        consumer: str,
        *,
        max_items: int = 1,
        timeout_s: float | None = None,
        lease_s: float = 30.0,
    ) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        if self._closed:
            # Like the in-process bus: a loop that outlives the bus idles instead of spinning.
            await asyncio.sleep(timeout_s if timeout_s is not None else _MAX_WAIT_S)
            return []
        end = None if timeout_s is None else loop.time() + timeout_s
        lease_ms = max(1, round(lease_s * 1000))
        stream = REDIS_QUEUE_PREFIX + queue
        while True:
            args = [consumer, max(1, max_items), lease_ms, self._now_arg(), self.max_deliveries]
            reply = await self._script("receive", queue, args)
            *flat, next_ms, last_id = reply
            out = await self._deliveries(queue, consumer, flat)
            if out:
                return out
            if flat:
                continue  # everything taken was undecodable and is dead now: look again
            wait_s = _MAX_WAIT_S if end is None else min(_MAX_WAIT_S, end - loop.time())
            if int(next_ms) >= 0:
                wait_s = min(wait_s, int(next_ms) / 1000 + 0.001)
            if wait_s <= 0:
                return []
            if not await self._wait_for_entries(stream, last_id, wait_s):
                return []

    async def _wait_for_entries(self, stream: str, last_id: Any, wait_s: float) -> bool:
        """Block until the stream has an entry after ``last_id`` or ``wait_s`` passed; ``False``
        when the bus was closed meanwhile."""
        block_ms = max(1, round(wait_s * 1000))
        wait = asyncio.ensure_future(
            self._call(
                "XREAD", lambda client: client.xread({stream: last_id}, count=1, block=block_ms)
            )
        )
        self._waits.add(wait)
        try:
            await wait
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and (task is None or not task.cancelling()):
                return False
            raise
        except BusUnavailable:
            if self._closed:
                return False
            raise
        finally:
            self._waits.discard(wait)
        return not self._closed

    async def _deliveries(self, queue: str, consumer: str, flat: list[Any]) -> list[Delivery]:
        out: list[Delivery] = []
        for i in range(0, len(flat), 3):
            entry_id, fields, count = _text(flat[i]), _fields(flat[i + 1]), int(flat[i + 2])
            message = _decode(fields.get("m"))
            if isinstance(message, str):
                log.warning("dead-lettered entry %s of queue %r: %s", entry_id, queue, message)
                await self._script("reject", queue, [entry_id, consumer, count, message])
                continue
            out.append(Delivery(queue, entry_id, message, count, consumer))
        return out

    async def ack(self, delivery: Delivery) -> None:
        args = [delivery.id, delivery.consumer, delivery.deliveries]
        await self._script("ack", delivery.queue, args)

    async def ack_many(self, deliveries: Iterable[Delivery]) -> None:
        """``ack`` each delivery, in one round trip (one script call per queue, pipelined)."""
        by_queue: dict[str, list[Any]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).extend((d.id, d.consumer, d.deliveries))
        if not by_queue:
            return
        script = self._script_named("ack")

        async def run(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for queue, args in by_queue.items():
                await script(keys=self._keys(queue), args=args, client=pipe)  # queued, not sent
            result: list[Any] = await pipe.execute()
            return result

        await self._call("ack", run)

    async def nack(self, delivery: Delivery, *, reason: str = "") -> None:
        args = [
            delivery.id,
            delivery.consumer,
            delivery.deliveries,
            self._now_arg(),
            self.max_deliveries,
            reason or "nacked",
        ]
        await self._script("nack", delivery.queue, args)

    async def extend(self, delivery: Delivery, *, lease_s: float) -> None:
        lease_ms = max(1, round(lease_s * 1000))
        args = [delivery.id, delivery.consumer, delivery.deliveries, self._now_arg(), lease_ms]
        await self._script("extend", delivery.queue, args)

    async def depth(self, queue: str) -> int:
        result = await self._script("depth", queue, [self._now_arg(), self.max_deliveries])
        return int(result)

    async def _dead_entries(self, queue: str) -> list[tuple[str, dict[str, Any]]]:
        entries = await self._script("dead_letters", queue, [self._now_arg(), self.max_deliveries])
        return [(_text(entry_id), _fields(flat)) for entry_id, flat in entries]

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The queue's dead letters that hold a message, oldest first (see `undecodable_letters`
        for the entries that could not be read)."""
        out: list[DeadLetter] = []
        for entry_id, fields in await self._dead_entries(queue):
            message = _decode(fields.get("m"))
            if isinstance(message, str):
                continue
            out.append(
                DeadLetter(
                    queue=queue,
                    id=entry_id,
                    message=message,
                    deliveries=int(fields.get("deliveries", 0)),
                    reason=_text(fields.get("reason", b"")),
                    at=float(fields.get("at", 0.0)),
                )
            )
        return out

    async def undecodable_letters(self, queue: str) -> list[UndecodableLetter]:
        """The queue's dead letters whose entry could not be read as a message, oldest first."""
        out: list[UndecodableLetter] = []
        for entry_id, fields in await self._dead_entries(queue):
            data = fields.get("m", b"")
            if isinstance(_decode(data), str):
                out.append(
                    UndecodableLetter(
                        queue=queue,
                        id=entry_id,
                        data=data if isinstance(data, bytes) else b"",
                        deliveries=int(fields.get("deliveries", 0)),
                        reason=_text(fields.get("reason", b"")),
                        at=float(fields.get("at", 0.0)),
                    )
                )
        return out

    async def locate(self, queue: str, message_ids: Iterable[str]) -> dict[str, MessagePlace]:
        ids = [m for m in message_ids if _STREAM_ID.fullmatch(m)]
        if not ids:
            return {}
        flat = await self._script("locate", queue, [self._now_arg(), self.max_deliveries, *ids])
        places: dict[str, MessagePlace] = {}
        for i in range(0, len(flat), 2):
            place = _text(flat[i + 1])
            if place in ("waiting", "leased", "dead"):
                places[_text(flat[i])] = place  # type: ignore[assignment]
        return places

    async def stats(self, queue: str) -> QueueStats:
        """The queue from Redis' own records: ``XINFO CONSUMERS`` gives each worker's pending
        count and idle time (since it last read, claimed or acknowledged), and the oldest entry's
        id its age."""
        depth = await self.depth(queue)
        stream = REDIS_QUEUE_PREFIX + queue

        async def read(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.xlen(stream + DLQ_SUFFIX)
            pipe.xrange(stream, count=1)
            pipe.time()
            result: list[Any] = await pipe.execute()
            try:
                result.append(await client.xinfo_consumers(stream, REDIS_GROUP))
            except ResponseError:  # no stream or no group yet
                result.append([])
            return result

        dead, oldest, now, consumers = await self._call("XINFO", read)
        oldest_age_s = None
        if oldest:
            first_ms = int(_text(oldest[0][0]).partition("-")[0])
            now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
            oldest_age_s = max(0.0, (now_ms - first_ms) / 1000)
        infos = tuple(
            ConsumerInfo(
                name=_text(c.get("name", b"")),
                pending=int(c.get("pending", 0)),
                idle_s=int(c.get("idle", 0)) / 1000,
            )
            for c in consumers
        )
        pending = sum(c.pending for c in infos)
        return QueueStats(queue, depth, pending, int(dead), oldest_age_s, infos)

    async def queues(self) -> list[str]:
        async def scan(client: aioredis.Redis) -> list[str]:
            found: list[str] = []
            async for key in client.scan_iter(match=REDIS_QUEUE_PREFIX + "*", _type="stream"):
                name = _text(key)[len(REDIS_QUEUE_PREFIX) :]
                if not name.endswith(DLQ_SUFFIX):
                    found.append(name)
            return found

        return sorted(await self._call("SCAN", scan))

    async def remove_queue(self, queue: str) -> None:
        keys = self._keys(queue)
        await self._call("DEL", lambda client: client.delete(*keys))

    async def redrive(self, queue: str, message_id: str) -> bool:
        if not _STREAM_ID.fullmatch(message_id):
            return False
        return bool(await self._script("redrive", queue, [message_id]))

    # --- topics -------------------------------------------------------------------------------

    async def publish(self, topic: str, event: Event) -> None:
        channel = REDIS_TOPIC_PREFIX + topic
        payload = event.model_dump_json()
        await self._call("PUBLISH", lambda client: client.publish(channel, payload))

    async def publish_many(self, topic: str, events: Iterable[Event]) -> None:
        """``publish`` each event, in order, in one round trip."""
        channel = REDIS_TOPIC_PREFIX + topic
        payloads = [event.model_dump_json() for event in events]
        if not payloads:
            return

        async def run(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for payload in payloads:
                pipe.publish(channel, payload)
            result: list[Any] = await pipe.execute()
            return result

        await self._call("PUBLISH", run)

    def subscribe(self, topic: str) -> RedisSubscription:
        return RedisSubscription(
            self, topic, REDIS_TOPIC_PREFIX + topic, self.max_subscriber_buffer
        )
