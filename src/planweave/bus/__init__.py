"""The bus: work queues (at-least-once, leased, dead-lettered) and event topics.

Backends are chosen by URL scheme in one table and imported only when asked for, so the
in-process default never pulls in an optional dependency::

    bus = open_bus("memory://")
    await bus.open()
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from planweave.bus.base import Bus, BusMessage, DeadLetter, Delivery, Subscription
from planweave.bus.memory import MemoryBus
from planweave.errors import ConfigError, MissingDependency, UnknownBackend

__all__ = [
    "Bus",
    "BusMessage",
    "DeadLetter",
    "Delivery",
    "MemoryBus",
    "Subscription",
    "open_bus",
]

_BACKENDS: dict[str, str] = {
    "memory": "planweave.bus.memory:MemoryBus",
    "redis": "planweave.bus.redis:RedisBus",
    "rediss": "planweave.bus.redis:RedisBus",
}
"""URL scheme -> ``module:class`` of the backend."""

_EXTRAS: dict[str, str] = {"redis": "redis"}
"""Third-party package a backend needs -> the planweave extra that installs it."""


def open_bus(url: str, **options: Any) -> Bus:
    """Create the bus a URL names (``memory://``, ``redis://host:6379/0``).

    The bus is not yet opened: ``await bus.open()`` before use and ``await bus.close()`` after.

    Args:
        url: The bus URL; its scheme picks the backend.
        **options: Keyword options of the backend's constructor (e.g. ``max_deliveries``).

    Raises:
        UnknownBackend: The scheme is not one planweave knows.
        MissingDependency: The backend needs a package that is not installed.
    """
    scheme = url.partition(":")[0].lower()
    target = _BACKENDS.get(scheme)
    if target is None:
        raise UnknownBackend("bus", url, sorted({s + "://" for s in _BACKENDS}))
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing and missing != "planweave":
            raise MissingDependency(missing, _EXTRAS.get(missing, missing)) from exc
        raise ConfigError(
            f"the {scheme}:// bus backend is not available in this version of planweave"
        ) from exc
    return cast(Bus, getattr(module, class_name)(url, **options))
