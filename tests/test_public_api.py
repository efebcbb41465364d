"""The public API: what ``__all__`` promises exists, and the quick start works as written."""

from __future__ import annotations

import importlib

import pytest

import planweave

PACKAGES = [
    "planweave",
    "planweave.agents",
    "planweave.bus",
    "planweave.llm",
    "planweave.store",
    "planweave.tools",
    "planweave.errors",
    "planweave.events",
    "planweave.plan",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name is exported twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing


def test_the_top_level_names_a_user_needs_are_exported() -> None:
    for name in ("Engine", "tool", "Plan", "TaskSpec", "JobOptions", "JobResult", "PlanweaveError"):
        assert name in planweave.__all__


def test_every_error_derives_from_the_one_root() -> None:
    from planweave import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.PlanweaveError), name


def test_the_quick_start_tool_builds_its_schema_from_hints_and_docstring() -> None:
    @planweave.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    assert add(2, 3) == 5
    assert add.name == "add"
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
