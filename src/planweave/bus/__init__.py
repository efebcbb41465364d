"""The bus: work queues (at-least-once, leased, dead-lettered) and event topics.

Backends are chosen by URL scheme (see ``planweave._backends``) and imported only when asked for,
so the in-process default never pulls in an optional dependency::

    bus = open_bus("memory://")
    await bus.open()
"""

from __future__ import annotations

from typing import Any, cast

from planweave._backends import backend_class
from planweave.bus.base import (
    Bus,
    BusMessage,
    ConsumerInfo,
    DeadLetter,
    Delivery,
    QueueStats,
    Subscription,
)
from planweave.bus.memory import MemoryBus

__all__ = [
    "Bus",
    "BusMessage",
    "ConsumerInfo",
    "DeadLetter",
    "Delivery",
    "MemoryBus",
    "QueueStats",
    "Subscription",
    "open_bus",
]


def open_bus(url: str, **options: Any) -> Bus:
    """Create the bus a URL names (``memory://``).

    The bus is not yet opened: ``await bus.open()`` before use and ``await bus.close()`` after.

    Args:
        url: The bus URL; its scheme picks the backend.
        **options: Keyword options of the backend's constructor (e.g. ``max_deliveries``).

    Raises:
        UnknownBackend: The scheme is not one planweave knows.
        ConfigError: The backend is not available in this version.
        MissingDependency: The backend needs a package that is not installed.
    """
    return cast(Bus, backend_class("bus", url)(url, **options))
