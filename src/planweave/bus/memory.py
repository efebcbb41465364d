"""The in-process bus (``memory://``): the embedded default, and the reference for the contract.

It keeps the delivery guarantees of the scaled Redis bus inside one event loop: a received message
is leased, redelivered when its lease runs out, and dead-lettered after ``max_deliveries``. It sits
on the hot path of every task, so the common cases are cheap: a receive that finds messages returns
without suspending; an enqueue that finds a consumer waiting hands the message straight to it
(filling up to its ``max_items`` until it wakes) instead of waking it to race for the queue. Expired
leases are found by a scan that runs on a timer and, at most once per reap interval, on receive;
nothing is spawned per message.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType

from planweave.bus.base import (
    BusMessage,
    ConsumerInfo,
    DeadLetter,
    Delivery,
    MessagePlace,
    QueueStats,
)
from planweave.constants import DEFAULT_MAX_DELIVERIES
from planweave.errors import ConfigError, UsageError
from planweave.events import Event

__all__ = ["MemoryBus", "MemorySubscription"]

_MAX_REAP_INTERVAL_S = 0.5
DEFAULT_SUBSCRIBER_BUFFER = 10_000
"""Events a subscriber may fall behind by before the oldest are dropped (and counted): a slow
reader costs bounded memory, and readers that must see everything (event streams) refill gaps
from the store."""
_MIN_REAP_INTERVAL_S = 0.001


_Waiting = tuple[str, BusMessage, int]
"""A message waiting in a queue: (id, message, deliveries so far)."""

_Lease = tuple[Delivery, float]
"""A message in flight: its current delivery and the lease deadline (clock seconds)."""


class _Waiter:
    """A consumer blocked in ``receive``; messages are leased to it directly while it is open."""

    __slots__ = ("consumer", "fut", "items", "lease_s", "max_items", "open")

    def __init__(
        self, fut: asyncio.Future[None], consumer: str, lease_s: float, max_items: int
    ) -> None:
        self.fut = fut
        self.consumer = consumer
        self.lease_s = lease_s
        self.max_items = max_items
        self.items: list[Delivery] = []
        self.open = True


class _Queue:
    __slots__ = ("dead", "inflight", "waiters", "waiting")

    def __init__(self) -> None:
        self.waiting: deque[_Waiting] = deque()
        self.inflight: dict[str, _Lease] = {}
        self.waiters: deque[_Waiter] = deque()
        self.dead: dict[str, DeadLetter] = {}


def _time_out(waiter: _Waiter) -> None:
    waiter.open = False
    if not waiter.fut.done():
        waiter.fut.set_result(None)


class MemorySubscription:
    """A subscription to a topic of a `MemoryBus`.

    Enter it (``async with bus.subscribe(topic) as sub``) to start receiving, iterate it
    (``async for event in sub``) to read events; leaving the block or ``await sub.close()`` ends
    the iteration. Events wait in a buffer of ``max_subscriber_buffer`` events (unbounded with
    ``None``); beyond it the oldest are dropped and counted in ``dropped``, so a slow subscriber
    never holds up a publisher or other subscribers.
    """

    __slots__ = ("_buffer", "_bus", "_closed", "_entered", "_waiter", "dropped", "topic")

    def __init__(self, bus: MemoryBus, topic: str, max_buffer: int | None) -> None:
        self._bus = bus
        self.topic = topic
        self._buffer: deque[Event] = deque(maxlen=max_buffer)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._entered = False
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def buffered(self) -> int:
        """Events received and not yet read."""
        return len(self._buffer)

    def _put(self, event: Event) -> None:
        buffer = self._buffer
        if buffer.maxlen is not None and len(buffer) == buffer.maxlen:
            self.dropped += 1
        buffer.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self) -> None:
        self._closed = True
        self._buffer.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> MemorySubscription:
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
        """Stop receiving events; an ``async for`` over this subscription ends."""
        self._entered = True  # reading a closed subscription ends at once
        self._bus._unsubscribe(self)
        self._end()

    async def __aenter__(self) -> MemorySubscription:
        """Start receiving the topic's events (a closed bus gives an ended subscription)."""
        if not self._entered:
            self._entered = True
            if not self._closed:
                self._bus._subscribe(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class MemoryBus:
    """An in-process `Bus`: work queues with leases and dead letters, and event topics.

    Args:
        url: Its URL, ``memory://``.
        max_deliveries: Deliveries of a message before an expired lease or a ``nack`` moves it
            to the dead-letter list instead of delivering it again.
        max_subscriber_buffer: Events a subscriber may fall behind before its oldest are
            dropped (``None``: unbounded).
        clock: Monotonic clock for lease deadlines, in seconds (tests pass a fake one).

    Call ``await bus.open()`` to start the reaper that redelivers expired leases to consumers
    already waiting; ``await bus.close()`` stops it, ends every subscription and wakes blocked
    receivers with no messages (a later ``receive`` waits as usual, so a consumer loop that
    outlives the bus idles instead of spinning).

    Beyond the `Bus` contract it promises (and its own tests check): a ``nack`` gives the message
    back at once, first in line; expired leases are taken back, oldest first, within a quarter of
    the shortest lease in use (at most 0.5 s); a delivery is fenced by its delivery count, so
    ``ack``, ``nack`` and ``extend`` of a delivery whose lease has expired and was taken back are
    ignored even before the message is delivered again.
    """

    loses_messages = False
    """Messages live as long as the process that holds them, with its control plane: none is
    ever lost behind a live plane's back, so the plane need not check on its work items."""

    def __init__(
        self,
        url: str = "memory://",
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_subscriber_buffer: int | None = DEFAULT_SUBSCRIBER_BUFFER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_deliveries < 1:
            raise ConfigError(f"max_deliveries must be at least 1, not {max_deliveries}")
        if max_subscriber_buffer is not None and max_subscriber_buffer < 1:
            raise ConfigError(
                f"max_subscriber_buffer must be at least 1 or None, not {max_subscriber_buffer}"
            )
        self.url = url
        self.max_deliveries = max_deliveries
        self.max_subscriber_buffer = max_subscriber_buffer
        self._clock = clock
        self._seq = itertools.count(1)
        self._queues: dict[str, _Queue] = {}
        self._topics: dict[str, dict[MemorySubscription, None]] = {}
        self._closed = False
        self._reap_interval_s = _MAX_REAP_INTERVAL_S
        self._next_reap_at = 0.0
        self._reap_handle: asyncio.TimerHandle | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        self._closed = False
        self._schedule_reaper()

    async def close(self) -> None:
        self._closed = True
        if self._reap_handle is not None:
            self._reap_handle.cancel()
            self._reap_handle = None
        for q in self._queues.values():
            while q.waiters:
                _time_out(q.waiters.popleft())
        for subscribers in self._topics.values():
            for sub in subscribers:
                sub._end()
        self._topics.clear()

    # --- work queues --------------------------------------------------------------------------

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    async def enqueue(self, queue: str, message: BusMessage) -> str:
        q = self._queues.get(queue)
        if q is None:
            q = self._queue(queue)
        message_id = str(next(self._seq))
        waiters = q.waiters
        while waiters:
            waiter = waiters[0]
            if not waiter.open or waiter.fut.cancelled():
                waiters.popleft()
                continue
            # A consumer is waiting: lease the message to it directly.
            delivery = Delivery(queue, message_id, message, 1, waiter.consumer)
            q.inflight[message_id] = (delivery, self._clock() + waiter.lease_s)
            items = waiter.items
            if not items:
                waiter.fut.set_result(None)
            items.append(delivery)
            if len(items) >= waiter.max_items:
                waiter.open = False
                waiters.popleft()
            return message_id
        q.waiting.append((message_id, message, 0))
        return message_id

    def _feed_waiters(self, queue: str, q: _Queue) -> None:
        """Lease waiting messages to open waiters (after messages were put back)."""
        waiting, waiters = q.waiting, q.waiters
        while waiting and waiters:
            waiter = waiters[0]
            if not waiter.open or waiter.fut.cancelled():
                waiters.popleft()
                continue
            message_id, message, deliveries = waiting.popleft()
            delivery = Delivery(queue, message_id, message, deliveries + 1, waiter.consumer)
            q.inflight[message_id] = (delivery, self._clock() + waiter.lease_s)
            items = waiter.items
            if not items:
                waiter.fut.set_result(None)
            items.append(delivery)
            if len(items) >= waiter.max_items:
                waiter.open = False
                waiters.popleft()

    async def receive(
        self,
        queue: str,
        consumer: str,
        *,
        max_items: int = 1,
        timeout_s: float | None = None,
        lease_s: float = 30.0,
    ) -> list[Delivery]:
        now = self._clock()
        if lease_s < self._reap_interval_s * 4:
            self._shorten_reap_interval(lease_s)
        if now >= self._next_reap_at:
            self._reap(now)
        q = self._queues.get(queue)
        if q is None:
            q = self._queue(queue)
        waiting = q.waiting
        if waiting:
            # Fast path: lease what is there without suspending.
            deadline = now + lease_s
            inflight = q.inflight
            out: list[Delivery] = []
            for _ in range(min(max_items, len(waiting))):
                message_id, message, deliveries = waiting.popleft()
                delivery = Delivery(queue, message_id, message, deliveries + 1, consumer)
                inflight[message_id] = (delivery, deadline)
                out.append(delivery)
            return out
        if timeout_s is not None and timeout_s <= 0:
            return []

        # Slow path: wait for an enqueue (or a redelivery) to hand messages over.
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), consumer, lease_s, max(1, max_items))
        q.waiters.append(waiter)
        if self._reap_handle is None:
            self._schedule_reaper()
        timer = loop.call_later(timeout_s, _time_out, waiter) if timeout_s is not None else None
        try:
            await waiter.fut
        except BaseException:
            # Cancelled, perhaps after messages were handed over: give them back undelivered.
            waiter.open = False
            self._give_back(queue, q, waiter.items)
            raise
        finally:
            waiter.open = False
            if timer is not None:
                timer.cancel()
            if waiter in q.waiters:  # a full waiter was already taken off
                q.waiters.remove(waiter)
        return waiter.items

    def _give_back(self, queue: str, q: _Queue, items: list[Delivery]) -> None:
        back: list[_Waiting] = []
        for delivery in items:
            lease = q.inflight.get(delivery.id)
            if lease is not None and lease[0].deliveries == delivery.deliveries:
                del q.inflight[delivery.id]
                back.append((delivery.id, delivery.message, delivery.deliveries - 1))
        if back:
            q.waiting.extendleft(reversed(back))
            self._feed_waiters(queue, q)

    def _holder(self, delivery: Delivery) -> _Queue | None:
        """The queue of a delivery that still holds its lease (``None``: a stale delivery)."""
        q = self._queues.get(delivery.queue)
        if q is None:
            return None
        lease = q.inflight.get(delivery.id)
        if lease is None or lease[0].deliveries != delivery.deliveries:
            return None
        return q

    async def ack(self, delivery: Delivery) -> None:
        q = self._queues.get(delivery.queue)
        if q is not None:
            lease = q.inflight.get(delivery.id)
            if lease is not None and lease[0].deliveries == delivery.deliveries:
                del q.inflight[delivery.id]

    async def ack_many(self, deliveries: Iterable[Delivery]) -> None:
        """``ack`` each delivery (one call for a batch of reports)."""
        queues = self._queues
        for delivery in deliveries:
            q = queues.get(delivery.queue)
            if q is not None:
                lease = q.inflight.get(delivery.id)
                if lease is not None and lease[0].deliveries == delivery.deliveries:
                    del q.inflight[delivery.id]

    async def nack(self, delivery: Delivery, *, reason: str = "") -> None:
        q = self._holder(delivery)
        if q is None:
            return
        del q.inflight[delivery.id]
        if delivery.deliveries >= self.max_deliveries:
            self._dead_letter(q, delivery, reason or "nacked")
        else:
            q.waiting.appendleft((delivery.id, delivery.message, delivery.deliveries))
            self._feed_waiters(delivery.queue, q)

    async def extend(self, delivery: Delivery, *, lease_s: float) -> None:
        q = self._holder(delivery)
        if q is not None:
            q.inflight[delivery.id] = (q.inflight[delivery.id][0], self._clock() + lease_s)
            if lease_s < self._reap_interval_s * 4:
                self._shorten_reap_interval(lease_s)

    async def depth(self, queue: str) -> int:
        self._reap(self._clock())
        q = self._queues.get(queue)
        return len(q.waiting) if q is not None else 0

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        self._reap(self._clock())
        q = self._queues.get(queue)
        return list(q.dead.values()) if q is not None else []

    async def stats(self, queue: str) -> QueueStats:
        """The queue now; a consumer's ``idle_s`` is 0 while it waits in ``receive`` and unknown
        (``None``) otherwise, and ``oldest_age_s`` is not kept (``None``)."""
        self._reap(self._clock())
        q = self._queues.get(queue)
        if q is None:
            return QueueStats(queue, 0, 0, 0, None, ())
        pending: dict[str, int] = {}
        for delivery, _deadline in q.inflight.values():
            pending[delivery.consumer] = pending.get(delivery.consumer, 0) + 1
        waiting = {waiter.consumer for waiter in q.waiters if waiter.open}
        names = sorted(pending.keys() | waiting)
        consumers = tuple(
            ConsumerInfo(name, pending.get(name, 0), 0.0 if name in waiting else None)
            for name in names
        )
        return QueueStats(queue, len(q.waiting), len(q.inflight), len(q.dead), None, consumers)

    async def queues(self) -> list[str]:
        return sorted(self._queues)

    async def remove_queue(self, queue: str) -> None:
        q = self._queues.pop(queue, None)
        if q is not None:
            while q.waiters:
                _time_out(q.waiters.popleft())

    async def locate(self, queue: str, message_ids: Iterable[str]) -> dict[str, MessagePlace]:
        self._reap(self._clock())
        q = self._queues.get(queue)
        if q is None:
            return {}
        wanted = set(message_ids)
        found: dict[str, MessagePlace] = {}
        for message_id in wanted:
            if message_id in q.inflight:
                found[message_id] = "leased"
            elif message_id in q.dead:
                found[message_id] = "dead"
        if len(found) < len(wanted):
            found.update((m, "waiting") for m, _, _ in q.waiting if m in wanted)
        return found

    async def redrive(self, queue: str, message_id: str) -> bool:
        q = self._queues.get(queue)
        letter = q.dead.pop(message_id, None) if q is not None else None
        if q is None or letter is None:
            return False
        q.waiting.append((letter.id, letter.message, 0))
        self._feed_waiters(queue, q)
        return True

    def _dead_letter(self, q: _Queue, delivery: Delivery, reason: str) -> None:
        q.dead[delivery.id] = DeadLetter(
            queue=delivery.queue,
            id=delivery.id,
            message=delivery.message,
            deliveries=delivery.deliveries,
            reason=reason,
            at=time.time(),
        )

    # --- lease expiry -------------------------------------------------------------------------

    def _reap(self, now: float) -> None:
        """Take back every expired lease: redeliver it, or dead-letter it when delivered enough."""
        self._next_reap_at = now + self._reap_interval_s
        for name, q in self._queues.items():
            inflight = q.inflight
            if not inflight:
                continue
            expired = [lease[0] for lease in inflight.values() if lease[1] <= now]
            if not expired:
                continue
            back: list[_Waiting] = []
            for delivery in expired:
                del inflight[delivery.id]
                if delivery.deliveries >= self.max_deliveries:
                    reason = f"lease expired after {delivery.deliveries} deliveries"
                    self._dead_letter(q, delivery, reason)
                else:
                    back.append((delivery.id, delivery.message, delivery.deliveries))
            if back:
                # Expired messages are older than the waiting ones: they go first, oldest first.
                back.sort(key=lambda waiting: int(waiting[0]))
                q.waiting.extendleft(reversed(back))
                self._feed_waiters(name, q)

    def _shorten_reap_interval(self, lease_s: float) -> None:
        interval = max(_MIN_REAP_INTERVAL_S, lease_s / 4)
        if interval >= self._reap_interval_s:
            return
        self._reap_interval_s = interval
        self._next_reap_at = min(self._next_reap_at, self._clock() + interval)
        handle = self._reap_handle
        if handle is not None:
            loop = asyncio.get_running_loop()
            if handle.when() > loop.time() + interval:
                handle.cancel()
                self._reap_handle = None
                self._schedule_reaper()

    def _schedule_reaper(self) -> None:
        if self._closed or self._reap_handle is not None:
            return
        loop = asyncio.get_running_loop()
        self._reap_handle = loop.call_later(self._reap_interval_s, self._reap_tick)

    def _reap_tick(self) -> None:
        self._reap_handle = None
        self._reap(self._clock())
        self._schedule_reaper()

    # --- topics -------------------------------------------------------------------------------

    async def publish(self, topic: str, event: Event) -> None:
        subscribers = self._topics.get(topic)
        if subscribers:
            for sub in subscribers:
                sub._put(event)

    async def publish_many(self, topic: str, events: Iterable[Event]) -> None:
        """``publish`` each event, in order (one call for a batch of events)."""
        subscribers = self._topics.get(topic)
        if subscribers:
            for event in events:
                for sub in subscribers:
                    sub._put(event)

    def subscribe(self, topic: str) -> MemorySubscription:
        return MemorySubscription(self, topic, self.max_subscriber_buffer)

    def _subscribe(self, sub: MemorySubscription) -> None:
        if self._closed:
            sub._end()
        else:
            self._topics.setdefault(sub.topic, {})[sub] = None

    def _unsubscribe(self, sub: MemorySubscription) -> None:
        subscribers = self._topics.get(sub.topic)
        if subscribers is not None:
            subscribers.pop(sub, None)
            if not subscribers:
                del self._topics[sub.topic]
