"""From a URL to the backend class that serves it: stores, buses, models and artifact stores.

Each concern has one table, URL scheme -> ``"module:Class"``; a backend's module is imported only
when its scheme is used, so an optional dependency is needed only by those who choose it. Every
way a URL can be wrong is answered here, once, with a message that says what to do:

* an unknown scheme names the valid ones (`UnknownBackend`);
* a backend whose optional package is missing names the extra that installs it
  (`MissingDependency`: ``pip install 'planweave[redis]'``).

Adding a backend is one row in its table (and one in ``EXTRAS`` if it needs a package).
"""

from __future__ import annotations

import importlib
from typing import Final, Literal

from planweave.errors import MissingDependency, UnknownBackend

__all__ = [
    "BACKENDS",
    "EXTRAS",
    "Concern",
    "backend_class",
    "missing_dependency",
    "safe_url",
    "scheme_of",
]

Concern = Literal["store", "bus", "model", "artifacts"]

BACKENDS: Final[dict[Concern, dict[str, str]]] = {
    "store": {
        "sqlite": "planweave.store.sqlite:SqliteStore",
        "postgresql": "planweave.store.postgres:PostgresStore",
        "memory": "planweave.store.memory:MemoryStore",
    },
    "bus": {
        "memory": "planweave.bus.memory:MemoryBus",
        "redis": "planweave.bus.redis:RedisBus",
        "rediss": "planweave.bus.redis:RedisBus",
    },
    "model": {
        "openai": "planweave.llm.openai:OpenAIModel",
        "local": "planweave.llm.local:LocalModel",
        "scripted": "planweave.llm.scripted:ScriptedModel",
        "anthropic": "planweave.llm.anthropic:AnthropicModel",
    },
    "artifacts": {
        "file": "planweave.artifacts.files:FileArtifactStore",
        "s3": "planweave.artifacts.s3:S3ArtifactStore",
    },
}
"""Per concern: URL scheme -> ``module:Class`` of the backend."""

_ALIASES: Final[dict[Concern, dict[str, str]]] = {
    "store": {"postgres": "postgresql"},
    "bus": {},
    "model": {},
    "artifacts": {},
}
"""Per concern: another spelling of a scheme -> the scheme of ``BACKENDS`` it means."""

EXTRAS: Final[dict[str, tuple[str, str]]] = {
    "llama_cpp": ("llama-cpp-python", "local"),
    "anthropic": ("anthropic", "anthropic"),
    "asyncpg": ("asyncpg", "postgres"),
    "redis": ("redis", "redis"),
    "fastapi": ("fastapi", "server"),
    "uvicorn": ("uvicorn", "server"),
    "boto3": ("boto3", "s3"),
    "botocore": ("boto3", "s3"),
}
"""Importable top-level module -> (pip package, planweave extra that installs it)."""


def scheme_of(concern: Concern, url: str) -> str:
    """The scheme of a backend URL, lower-cased (``postgresql+asyncpg://`` -> ``postgresql``).

    A model URL may be a bare scheme (``scripted``); a store or bus URL without ``:`` has none.
    """
    if concern == "model":
        return url.partition(":")[0].strip().lower()
    if ":" not in url:
        return ""
    return url.partition(":")[0].strip().lower().partition("+")[0]


def safe_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def _valid(concern: Concern) -> list[str]:
    suffix = "" if concern == "model" else "://"
    return [scheme + suffix for scheme in sorted(BACKENDS[concern])]


def missing_dependency(module: str) -> MissingDependency:
    """The error for an optional module that is not installed, naming the extra to install."""
    top = module.partition(".")[0]
    package, extra = EXTRAS.get(top, (top, top))
    return MissingDependency(package, extra)


def backend_class(concern: Concern, url: str) -> type:
    """Import and return the class that serves ``url`` for ``concern``.

    Raises:
        UnknownBackend: the scheme is not one planweave knows.
        MissingDependency: the backend needs an optional package that is not installed.
    """
    scheme = scheme_of(concern, url)
    target = BACKENDS[concern].get(_ALIASES[concern].get(scheme, scheme))
    if target is None:
        raise UnknownBackend(concern, url, _valid(concern))
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing in EXTRAS:
            raise missing_dependency(missing) from exc
        raise
    cls: type = getattr(module, class_name)
    return cls
