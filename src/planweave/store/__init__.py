"""Stores: the durable truth about jobs, chosen by URL.

``open_store("sqlite:///.planweave/planweave.db")``, ``open_store("postgresql://u:p@db/planweave")``
or ``open_store("memory://")``; the backend
module is imported only when its scheme is used (see ``planweave._backends``).
"""

from __future__ import annotations

from typing import Any, cast

from planweave._backends import backend_class, scheme_of
from planweave.errors import ConfigError
from planweave.store.base import ArtifactRow, Batch, Command, JobSummary, Store, TenantUsage
from planweave.store.memory import MemoryStore

__all__ = [
    "ArtifactRow",
    "Batch",
    "Command",
    "JobSummary",
    "MemoryStore",
    "Store",
    "TenantUsage",
    "open_store",
]


def open_store(url: str, **options: Any) -> Store:
    """Create the store for ``url``; the caller then awaits ``store.open()``.

    Args:
        url: ``memory://``, ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` or
            ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``.
        **options: Keyword options of the backend (for SQLite: ``synchronous``,
            ``busy_timeout_ms``; for Postgres: ``min_size``, ``max_size``,
            ``connect_timeout_s``, ``command_timeout_s``).

    Raises:
        UnknownBackend: the URL's scheme is not one of the known ones.
        MissingDependency: the backend needs an optional package that is not installed.
        ConfigError: an option is wrong.
    """
    cls = backend_class("store", url)
    try:
        return cast(Store, cls(url, **options))
    except TypeError as exc:
        scheme = scheme_of("store", url)
        raise ConfigError(f"bad option for the {scheme} store {url!r}: {exc}") from exc
