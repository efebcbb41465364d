"""The bus protocol: leased work queues with dead letters, and best-effort event topics.

The contract is written so that a Redis Streams consumer group can meet it as well as the
in-process bus; callers rely on what is said here and nothing more (tests/test_bus_contract.py
checks exactly this, against every backend).

Work queues (``enqueue``/``receive``/``ack``...) deliver each message **at least once**:

* **Lease.** ``receive`` leases each message it returns to its consumer for ``lease_s``. While
  the lease holds, the message is not delivered to anyone else. ``extend`` is the heartbeat: it
  sets the lease to end ``lease_s`` from now. ``ack`` ends the message for good.
* **Redelivery.** A message whose lease runs out without an ``ack`` (its worker died or hung) is
  delivered again, never before its lease has expired and soon after it has (the backend finds
  expired leases by a periodic scan; a consumer already waiting in ``receive`` gets it without
  calling again). A redelivered message keeps its ``id``; its ``deliveries`` count goes up by
  one with every delivery, starting at 1.
* **Give back.** ``nack`` hands a message back before its lease ends. It may be delivered again
  at once, or only once the lease it had would have expired: a stream backend may not be able
  to do better, and the contract allows either. Callers may rely on: the caller no longer holds
  it; it is delivered again (or dead-lettered) no later than its lease would have ended; the
  ``nack`` counted as a delivery.
* **Dead letters.** A message that has been delivered ``max_deliveries`` times (a backend
  option) is not delivered again: when that last lease expires, or that last delivery is
  nacked, the message moves to the queue's dead-letter list with the reason. ``redrive`` puts it
  back as a new message (its delivery count starts again; it may get a new id).
* **Fencing.** A delivery is one lease: once its lease has expired and the message was delivered
  again, ``ack``, ``nack`` and ``extend`` of the old delivery do nothing, so a slow worker cannot
  end or hold a message another worker now runs.
* **Order.** Messages never delivered before come out in the order they were enqueued; nothing
  is promised about where a redelivered message comes relative to others.
* **Counting.** ``depth`` and ``dead_letters`` account for every lease expired by the time of
  the call.

Topics (``publish``/``subscribe``) are **best-effort fan-out to current subscribers**, for live
views: an event goes to every subscription entered before it was published, in publish order;
nothing is kept for later subscribers, and a subscriber that falls too far behind (more than the
backend's buffer) misses events rather than holding up the publisher or other subscribers.
Readers that need every event (event streams) fill gaps from the store by ``seq``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from planweave.events import Event
from planweave.messages import CallReport, Outcome, StartedReport, StepAck, StepReport, WorkItem

__all__ = [
    "Bus",
    "BusMessage",
    "ConsumerInfo",
    "DeadLetter",
    "Delivery",
    "MessagePlace",
    "QueueStats",
    "Subscription",
]

BusMessage = WorkItem | StartedReport | CallReport | Outcome | StepReport | StepAck
MessagePlace = Literal["waiting", "leased", "dead"]
"""Where a queued message is (``Bus.locate``)."""


@dataclass(slots=True)
class Delivery:
    """One delivery of a queued message to a consumer: one lease.

    Attributes:
        queue: The queue it came from.
        id: The message's id, the same on every delivery of that message.
        message: The message.
        deliveries: How many times the message has been delivered, this time included (1 the
            first time).
        consumer: The consumer it is leased to (as named in ``receive``).
    """

    queue: str
    id: str
    message: BusMessage
    deliveries: int
    consumer: str


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A message that was delivered ``max_deliveries`` times without being acknowledged.

    Attributes:
        queue: The queue it was dead-lettered from.
        id: Its id in the dead-letter list (what ``redrive`` takes).
        message: The message.
        deliveries: How many times it was delivered.
        reason: Why it was dead-lettered: the last ``nack``'s reason, or that its lease expired.
        at: When it was dead-lettered (epoch seconds).
    """

    queue: str
    id: str
    message: BusMessage
    deliveries: int
    reason: str
    at: float


@dataclass(slots=True, frozen=True)
class ConsumerInfo:
    """A consumer of a work queue (one worker pool), as ``planweave status`` lists it.

    Attributes:
        name: The consumer's name (the worker pool's id, as given to ``receive``).
        pending: Messages leased to it now.
        idle_s: Seconds since it last received, extended or acknowledged (its heartbeat);
            ``None`` where the backend cannot tell.
    """

    name: str
    pending: int
    idle_s: float | None


@dataclass(slots=True, frozen=True)
class QueueStats:
    """What a work queue holds, for operators (``planweave status``, ``/metrics``).

    Attributes:
        queue: The queue's name.
        depth: Messages available to ``receive`` (as ``Bus.depth`` counts them).
        pending: Messages leased to a consumer now, not yet acknowledged.
        dead_letters: Messages in its dead-letter list.
        oldest_age_s: Age of the oldest message not yet acknowledged (waiting or leased);
            ``None`` when there is none, or where the backend cannot tell.
        consumers: Its consumers, by name.
    """

    queue: str
    depth: int
    pending: int
    dead_letters: int
    oldest_age_s: float | None
    consumers: tuple[ConsumerInfo, ...]


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
    """Work queues and event topics (see the module docstring for the delivery contract)."""

    url: str
    loses_messages: bool
    """Whether the bus can lose messages it accepted while their sender lives (a server that
    restarted without persistence): a control plane on such a bus checks, with ``locate``, that
    its work items are still there and sends again the ones that are gone."""

    async def open(self) -> None:
        """Connect and start background work (lease scans); call before anything else."""

    async def close(self) -> None:
        """Disconnect: subscriptions end, blocked ``receive`` calls return."""

    async def enqueue(self, queue: str, message: BusMessage) -> str:
        """Append a message to a work queue; once this returns the message is on the bus.
        Returns the message's id (as its deliveries will carry it)."""

    async def receive(
        self,
        queue: str,
        consumer: str,
        *,
        max_items: int = 1,
        timeout_s: float | None = None,
        lease_s: float = 30.0,
    ) -> list[Delivery]:
        """Lease up to ``max_items`` messages to ``consumer``, waiting for the first one.

        Returns at once with the messages already available (up to ``max_items``), else waits
        up to ``timeout_s`` (forever when ``None``; ``0`` does not wait) for one; it returns an
        empty list only once ``timeout_s`` has passed with nothing to deliver. A call cancelled while waiting loses no message: one already
        taken for it is given back or stays leased and is redelivered after ``lease_s``.
        """

    async def ack(self, delivery: Delivery) -> None:
        """The message was handled: it is never delivered again (ignored for a stale delivery)."""

    async def ack_many(self, deliveries: Iterable[Delivery]) -> None:
        """``ack`` each delivery (one round trip where the backend allows)."""

    async def nack(self, delivery: Delivery, *, reason: str = "") -> None:
        """Give the message back unhandled: delivered again no later than its lease would have
        ended (at once where the backend can), or dead-lettered with ``reason`` when this was
        its last allowed delivery. Ignored for a stale delivery."""

    async def extend(self, delivery: Delivery, *, lease_s: float) -> None:
        """Heartbeat: the lease now ends ``lease_s`` from now (ignored for a stale delivery)."""

    async def depth(self, queue: str) -> int:
        """Messages available to ``receive``: not acknowledged, not dead, not under a live lease
        (an expired lease counts as available)."""

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The queue's dead letters, in the order they were dead-lettered."""

    async def redrive(self, queue: str, message_id: str) -> bool:
        """Put a dead letter back on its queue as a new message (its delivery count starts
        again). Returns ``False`` when the queue has no such dead letter."""

    async def locate(self, queue: str, message_ids: Iterable[str]) -> dict[str, MessagePlace]:
        """Where each of these messages is: ``waiting``, ``leased`` (delivered, not yet
        acknowledged) or ``dead`` (in the dead-letter list). A message acknowledged, or lost (a
        server restarted without persistence), is left out."""

    async def stats(self, queue: str) -> QueueStats:
        """What the queue holds now, with its consumers (for operators; not on any hot path)."""

    async def queues(self) -> list[str]:
        """Names of the work queues that exist on the bus, sorted (any process's)."""

    async def remove_queue(self, queue: str) -> None:
        """Delete the queue with everything it holds (waiting and leased messages, dead
        letters, consumers); it no longer shows in ``queues``. A later ``enqueue`` or
        ``receive`` starts it again, empty. Removing a queue that does not exist does nothing.
        """

    async def publish(self, topic: str, event: Event) -> None:
        """Send an event to the topic's current subscribers (best effort; nothing is kept)."""

    async def publish_many(self, topic: str, events: Iterable[Event]) -> None:
        """``publish`` each event, in order."""

    def subscribe(self, topic: str) -> Subscription:
        """A subscription to a topic, to be entered with ``async with`` (see `Subscription`).

        Nothing is received until it is entered; events published before that are not
        delivered.
        """
