"""Stores: the durable truth about jobs, chosen by URL.

``open_store("sqlite:///.planweave/planweave.db")`` or ``open_store("memory://")``; the backend
module is imported only when its scheme is used, so an optional driver is needed only by those
who choose it.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from planweave.errors import ConfigError, MissingDependency, UnknownBackend
from planweave.store.base import ArtifactRow, Batch, Command, JobSummary, Store
from planweave.store.memory import MemoryStore

__all__ = [
    "ArtifactRow",
    "Batch",
    "Command",
    "JobSummary",
    "MemoryStore",
    "Store",
    "open_store",
]

_BACKENDS: dict[str, str] = {
    "memory": "planweave.store.memory:MemoryStore",
    "sqlite": "planweave.store.sqlite:SqliteStore",
    "postgresql": "planweave.store.postgres:PostgresStore",
}

# Drivers a backend needs beyond the core dependencies, and the extra that installs them.
_EXTRAS: dict[str, tuple[str, str]] = {"asyncpg": ("asyncpg", "postgres")}


def open_store(url: str, **options: Any) -> Store:
    """Create the store for ``url``; the caller then awaits ``store.open()``.

    Args:
        url: ``memory://``, ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db``
            or ``postgresql://…``.
        **options: Keyword options of the backend (for SQLite: ``synchronous``,
            ``busy_timeout_ms``).

    Raises:
        UnknownBackend: the URL's scheme is not one of the known ones.
        MissingDependency: the backend needs an optional package that is not installed.
        ConfigError: the backend is not available in this version, or an option is wrong.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    scheme = scheme.split("+", 1)[0]  # postgresql+asyncpg:// names the same backend
    target = _BACKENDS.get(scheme)
    if target is None:
        raise UnknownBackend("store", url, [f"{name}://" for name in _BACKENDS])
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in _EXTRAS:
            package, extra = _EXTRAS[exc.name]
            raise MissingDependency(package, extra) from exc
        if exc.name == module_name:
            raise ConfigError(
                f"the {scheme} store is not available in this version of planweave; "
                "use sqlite:///path/to/file.db or memory://"
            ) from exc
        raise
    cls = getattr(module, class_name)
    try:
        return cast(Store, cls(url, **options))
    except TypeError as exc:
        raise ConfigError(f"bad option for the {scheme} store {url!r}: {exc}") from exc
