"""Topics of the Redis bus: one pub/sub connection per subscription, read into a bounded buffer.

A reader task drains the connection as fast as Redis sends, so the server never holds output
for a slow subscriber (nor cuts it off for exceeding its pub/sub buffer limit); when the reader
of the subscription falls behind, the oldest events in the buffer are dropped and counted.
Entering the subscription waits for Redis to confirm the SUBSCRIBE: an event published after
``async with`` returned reaches it. A lost connection is re-established with backoff and the
channel subscribed again; what was published meanwhile is missed (topics are best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from planweave.errors import BusUnavailable, UsageError
from planweave.events import Event, parse_event

if TYPE_CHECKING:
    from planweave.bus.redis import RedisBus

__all__ = ["RedisSubscription"]

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 1.0
_SUBSCRIBE_TIMEOUT_S = 10.0


class RedisSubscription:
    """A subscription to a topic of a `RedisBus` (a Redis pub/sub channel).

    Enter it (``async with bus.subscribe(topic) as sub``) to subscribe, iterate it to read
    events; leaving the block or ``await sub.close()`` ends the iteration. Events wait in a
    buffer of ``max_buffer`` events (unbounded with ``None``); beyond it the oldest are dropped
    and counted in ``dropped``.
    """

    def __init__(self, bus: RedisBus, topic: str, channel: str, max_buffer: int | None) -> None:
        self._bus = bus
        self.topic = topic
        self._channel = channel
        self._buffer: deque[Event] = deque(maxlen=max_buffer)
        self._waiter: asyncio.Future[None] | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._entered = False
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def buffered(self) -> int:
        """Events received and not yet read."""
        return len(self._buffer)

    async def __aenter__(self) -> RedisSubscription:
        """Subscribe; returns once Redis confirmed it (a closed bus gives an ended one)."""
        if self._entered:
            return self
        self._entered = True
        client = self._bus._client_or_none()
        if client is None or self._closed:
            self._end()
            return self
        self._pubsub = client.pubsub()
        try:
            await self._subscribe()
        except BaseException:
            await self._close_pubsub()
            self._end()
            raise
        self._bus._subscriptions.add(self)
        self._reader = asyncio.create_task(self._read(), name=f"redis-topic:{self.topic}")
        return self

    async def _subscribe(self) -> None:
        try:
            await self._pubsub.subscribe(self._channel)
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT_S):
                while True:
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "subscribe":
                        return
                    if message is not None:
                        self._take(message)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BusUnavailable(
                f"cannot subscribe to topic {self.topic!r} on {self._bus.where}: {exc}"
            ) from exc

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        try:
            event = parse_event(message["data"])
        except (ValidationError, ValueError) as exc:
            log.warning("dropped an undecodable event on topic %r: %s", self.topic, exc)
            return
        buffer = self._buffer
        if buffer.maxlen is not None and len(buffer) == buffer.maxlen:
            self.dropped += 1
        buffer.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _read(self) -> None:
        backoff_s, lost = 0.05, False
        while not self._closed:
            try:
                if lost:
                    await self._resubscribe()
                    log.info("topic %r is subscribed again", self.topic)
                    backoff_s, lost = 0.05, False
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The connection was lost (or the server is still down): a fresh connection
                # subscribes again after a backoff.
                if not lost:
                    log.warning("topic %r lost its Redis connection: %s", self.topic, exc)
                lost = True
                await asyncio.sleep(backoff_s)
                backoff_s = min(_MAX_BACKOFF_S, backoff_s * 2)
                continue
            if message is not None:
                self._take(message)

    async def _resubscribe(self) -> None:
        await self._close_pubsub()
        client = self._bus._client_or_none()
        if client is None:
            self._end()
            return
        self._pubsub = client.pubsub()
        await self._subscribe()

    def _end(self) -> None:
        self._closed = True
        self._buffer.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> Event:
        if not self._entered:
            raise UsageError(
                f"subscription to {self.topic!r} was never entered: "
                "use 'async with bus.subscribe(topic) as sub'"
            )
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    async def close(self) -> None:
        """Unsubscribe; an ``async for`` over this subscription ends."""
        self._entered = True
        self._end()
        self._bus._subscriptions.discard(self)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._close_pubsub()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
