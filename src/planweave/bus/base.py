"""The bus protocol: work queues with leases and a dead-letter queue, and event topics.

Work is delivered at least once. A received message is leased to its consumer for ``lease_s``;
it is redelivered when the lease runs out without an ``ack`` (its worker died or hung), and after
``max_deliveries`` deliveries it moves to the queue's dead-letter list, where it can be inspected
and redriven. Topics fan events out to every current subscriber (live views; nothing is kept).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from planweave.events import Event
from planweave.messages import CallReport, Outcome, StartedReport, WorkItem

__all__ = ["Bus", "BusMessage", "DeadLetter", "Delivery", "Subscription"]

BusMessage = WorkItem | StartedReport | CallReport | Outcome


@dataclass(slots=True)
class Delivery:
    """One delivery of a queued message to a consumer."""

    queue: str
    id: str
    message: BusMessage
    deliveries: int
    consumer: str


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A message that was delivered too often without being acknowledged."""

    queue: str
    id: str
    message: BusMessage
    deliveries: int
    reason: str
    at: float


class Subscription(Protocol):
    """A subscription to a topic: an async context manager and an async iterator of events.

    Use it as ``async with bus.subscribe(topic) as sub: async for event in sub: ...``. Entering
    it subscribes (a network backend does its round trip there, so ``subscribe`` itself does no
    I/O); leaving it, or ``await sub.close()``, unsubscribes and ends an ``async for`` over it.
    Iterating a subscription that was never entered is an error.
    """

    async def __aenter__(self) -> Self:
        """Start receiving: events published from now on are delivered (best effort)."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``close()``."""
        ...

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def close(self) -> None:
        """Stop receiving; an ``async for`` over the subscription ends. Closing twice is fine."""
        ...

    def buffered(self) -> int:
        """Events already received and waiting to be read (0 when the backend cannot tell)."""
        ...


@runtime_checkable
class Bus(Protocol):
    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def enqueue(self, queue: str, message: BusMessage) -> None:
        """Append a message to a work queue."""

    async def receive(
        self,
        queue: str,
        consumer: str,
        *,
        max_items: int = 1,
        timeout_s: float | None = None,
        lease_s: float = 30.0,
    ) -> list[Delivery]:
        """Wait up to ``timeout_s`` (forever when ``None``) for messages and lease them.

        Returns an empty list on timeout.
        """

    async def ack(self, delivery: Delivery) -> None:
        """The message was handled: forget it."""

    async def ack_many(self, deliveries: Iterable[Delivery]) -> None:
        """``ack`` each delivery (one round trip where the backend allows)."""

    async def nack(self, delivery: Delivery, *, reason: str = "") -> None:
        """The message was not handled: deliver it again now (or dead-letter it)."""

    async def extend(self, delivery: Delivery, *, lease_s: float) -> None:
        """Heartbeat: keep the lease on a message being worked on."""

    async def depth(self, queue: str) -> int:
        """Messages waiting (not leased) in a queue."""

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The queue's dead letters, oldest first."""

    async def redrive(self, queue: str, message_id: str) -> bool:
        """Put a dead letter back on its queue; ``False`` when there is no such letter."""

    async def publish(self, topic: str, event: Event) -> None:
        """Send an event to the topic's current subscribers."""

    async def publish_many(self, topic: str, events: Iterable[Event]) -> None:
        """``publish`` each event, in order."""

    def subscribe(self, topic: str) -> Subscription:
        """A subscription to a topic, to be entered with ``async with`` (see `Subscription`).

        Nothing is received until it is entered; events published before that are not
        delivered.
        """
