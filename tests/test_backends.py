"""The one URL -> backend resolver behind ``open_store``, ``open_bus`` and ``load_model``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from planweave._backends import BACKENDS, Concern, backend_class, missing_dependency
from planweave.bus import open_bus
from planweave.errors import MissingDependency, UnknownBackend
from planweave.llm import load_model
from planweave.store import open_store

OPENERS: dict[str, Callable[[str], Any]] = {
    "store": open_store,
    "bus": open_bus,
    "model": load_model,
}


@pytest.mark.parametrize(
    ("concern", "url", "valid"),
    [
        ("store", "mysql://localhost/db", ("memory://", "postgresql://", "sqlite://")),
        ("store", "jobs.db", ("memory://", "postgresql://", "sqlite://")),
        ("bus", "kafka://localhost", ("memory://", "redis://", "rediss://")),
        ("model", "gemini:pro", ("anthropic", "local", "openai", "scripted")),
    ],
)
def test_an_unknown_scheme_names_the_valid_ones(
    concern: str, url: str, valid: tuple[str, ...]
) -> None:
    with pytest.raises(UnknownBackend) as info:
        OPENERS[concern](url)
    assert info.value.concern == concern
    assert info.value.valid == valid
    message = str(info.value)
    assert repr(url) in message
    assert message.endswith(", ".join(valid))
    # A second spelling of a scheme is never offered.
    assert "postgres://" not in message


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "REDISS://cache.example:6380/2"])
def test_redis_urls_open_the_redis_bus(url: str) -> None:
    from planweave.bus import RedisBus

    bus = open_bus(url, max_deliveries=4)
    assert isinstance(bus, RedisBus)
    assert bus.url == url
    assert bus.max_deliveries == 4


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@localhost/jobs",
        "postgres://localhost/jobs",
        "postgresql+asyncpg://localhost:5433/jobs",
        "POSTGRES://localhost/jobs",
    ],
)
def test_every_spelling_of_a_postgres_url_opens_the_postgres_store(url: str) -> None:
    from planweave.store.postgres import PostgresStore

    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert backend_class("store", url) is PostgresStore


def test_a_missing_optional_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bus backend that needs the redis package, on a machine without it.
    (tmp_path / "pw_test_needs_redis.py").write_text("import redis\n\nclass Bus: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(BACKENDS["bus"], "needsredis", "pw_test_needs_redis:Bus")
    with pytest.raises(MissingDependency) as info:
        open_bus("needsredis://localhost")
    assert str(info.value) == "redis is not installed: run pip install 'planweave[redis]'"
    assert (info.value.package, info.value.extra) == ("redis", "redis")


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("llama_cpp", "llama-cpp-python", "local"),
        ("llama_cpp.llama", "llama-cpp-python", "local"),
        ("anthropic", "anthropic", "anthropic"),
        ("asyncpg", "asyncpg", "postgres"),
        ("redis.asyncio", "redis", "redis"),
        ("fastapi", "fastapi", "server"),
    ],
)
def test_every_optional_package_maps_to_its_extra(module: str, package: str, extra: str) -> None:
    error = missing_dependency(module)
    assert (error.package, error.extra) == (package, extra)
    assert str(error) == f"{package} is not installed: run pip install 'planweave[{extra}]'"


def test_a_broken_backend_module_is_not_reported_as_a_missing_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(BACKENDS["store"], "broken", "planweave.store.no_such_module:X")
    with pytest.raises(ModuleNotFoundError):
        backend_class("store", "broken://x")


def test_backends_are_imported_only_when_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "planweave.llm.anthropic", raising=False)
    open_store("memory://")
    open_bus("memory://")
    load_model("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "sk-test"})
    assert "planweave.llm.anthropic" not in sys.modules
    backend_class("model", "anthropic:claude-sonnet-4-5")
    assert "planweave.llm.anthropic" in sys.modules


@pytest.mark.parametrize("concern", list(BACKENDS))
def test_every_table_row_names_a_class_that_exists(concern: Concern) -> None:
    for scheme, target in BACKENDS[concern].items():
        module_name, _, class_name = target.partition(":")
        cls = backend_class(concern, f"{scheme}://")
        assert isinstance(cls, type)
        assert (cls.__module__, cls.__name__) == (module_name, class_name)
