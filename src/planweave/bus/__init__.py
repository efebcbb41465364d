"""The bus: work queues (at-least-once, leased, dead-lettered) and event topics.

Backends are chosen by URL scheme (see ``planweave._backends``) and imported only when asked for,
so the in-process default never pulls in an optional dependency::

    bus = open_bus("memory://")        # or "redis://localhost:6379/0"
    await bus.open()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from planweave._backends import backend_class
from planweave._lazy import lazy_exports as _lazy_exports
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

if TYPE_CHECKING:
    from planweave.bus.redis import RedisBus, UndecodableLetter

# The Redis bus needs the optional redis package: imported only when one of its names is used.
_LAZY: dict[str, str] = {
    "RedisBus": "planweave.bus.redis",
    "UndecodableLetter": "planweave.bus.redis",
}

__getattr__, __dir__ = _lazy_exports("planweave.bus", _LAZY, globals())

__all__ = [
    "Bus",
    "BusMessage",
    "ConsumerInfo",
    "DeadLetter",
    "Delivery",
    "MemoryBus",
    "QueueStats",
    "RedisBus",
    "Subscription",
    "UndecodableLetter",
    "open_bus",
]


def open_bus(url: str, **options: Any) -> Bus:
    """Create the bus a URL names (``memory://``, ``redis://HOST:PORT/DB``, ``rediss://``).

    The bus is not yet opened: ``await bus.open()`` before use and ``await bus.close()`` after.

    Args:
        url: The bus URL; its scheme picks the backend.
        **options: Keyword options of the backend's constructor (e.g. ``max_deliveries``).

    Raises:
        UnknownBackend: The scheme is not one planweave knows.
        MissingDependency: The backend needs a package that is not installed.
    """
    return cast(Bus, backend_class("bus", url)(url, **options))
