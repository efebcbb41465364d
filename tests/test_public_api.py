"""The public API: ``__all__`` lists exactly the public names, and the quick start works as
written.

A module's public names are the names not starting with ``_`` that it defines (``def``,
``class``, a top-level assignment) or, for a package, re-exports from its own submodules,
less imported modules and typing helpers (``TypeVar``, ``ParamSpec``). They are read from the
module's source and cross-checked at run time, so a public class added without an ``__all__``
entry fails here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import ParamSpec, TypeVar

import pytest

import planweave

PACKAGES = [
    "planweave",
    "planweave.agents",
    "planweave.artifacts",
    "planweave.bus",
    "planweave.hooks",
    "planweave.llm",
    "planweave.mcp",
    "planweave.store",
    "planweave.tools",
    "planweave.errors",
    "planweave.events",
    "planweave.plan",
    "planweave.sessions",
]


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, including those under ``if``/``try`` (not ``if TYPE_CHECKING``)."""
    for node in body:
        if isinstance(node, ast.If):
            test = node.test
            checking = isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            checking |= isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            if not checking:
                yield from _statements(node.body)
            yield from _statements(node.orelse)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody):
                yield from _statements(part)
            for handler in node.handlers:
                yield from _statements(handler.body)
        else:
            yield node


def _targets(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Tuple | ast.List):
        for element in node.elts:
            yield from _targets(element)


def _origin(module: ModuleType, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from … import`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _own(module: ModuleType, origin: str) -> bool:
    """Whether ``origin`` is ``module`` itself or, for a package, one of its submodules."""
    name = module.__name__
    return origin == name or (hasattr(module, "__path__") and origin.startswith(name + "."))


def _helper(value: object) -> bool:
    return isinstance(value, ModuleType | TypeVar | ParamSpec)


def public_names(module: ModuleType) -> set[str]:
    """The names ``module`` defines or (a package) re-exports from itself, less the private
    ones, imported modules and typing helpers."""
    names: set[str] = set()
    for node in _statements(ast.parse(inspect.getsource(module)).body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_targets(target))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            names.update(_targets(node.target))
        elif isinstance(node, ast.ImportFrom) and _own(module, _origin(module, node)):
            names.update(alias.asname or alias.name for alias in node.names)
    # What the source does not show (a class made by a function): anything whose home is here.
    for name, value in vars(module).items():
        home = getattr(value, "__module__", None)
        defined = inspect.isclass(value) or inspect.isfunction(value)
        if defined and isinstance(home, str) and _own(module, home):
            names.add(name)
    return {
        name
        for name in names
        if not name.startswith("_") and name != "*" and not _helper(getattr(module, name, None))
    }


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "a name is exported twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_is_in_all(name: str) -> None:
    module = importlib.import_module(name)
    unlisted = sorted(public_names(module) - set(module.__all__))
    assert not unlisted, f"public in {name} but not in its __all__: {unlisted}"


def test_the_rule_finds_a_public_class_left_out_of_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "apicheck_pkg"
    package.mkdir()
    (package / "_impl.py").write_text(
        "class Exported: ...\nclass Forgotten: ...\nclass _Hidden: ...\n", encoding="utf-8"
    )
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from __future__ import annotations

            import os
            from typing import TYPE_CHECKING, Any, TypeVar

            from apicheck_pkg._impl import Exported, Forgotten
            from ._impl import _Hidden

            if TYPE_CHECKING:
                from collections.abc import Sequence

            __all__ = ["Exported", "LIMIT", "listed"]

            T = TypeVar("T")
            LIMIT = 3
            _cache: dict[str, Any] = {}
            VERSION: str = "1"


            def listed() -> None: ...


            def helper() -> None: ...


            class Added: ...


            def _make() -> type:
                class Made: ...

                return Made


            Dynamic = _make()
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("apicheck_pkg")
        found = public_names(module) - set(module.__all__)
    finally:
        for name in [n for n in sys.modules if n.startswith("apicheck_pkg")]:
            del sys.modules[name]
    assert found == {"Added", "Dynamic", "Forgotten", "VERSION", "helper"}


def test_the_top_level_names_a_user_needs_are_exported() -> None:
    for name in ("Engine", "tool", "Plan", "TaskSpec", "JobOptions", "JobResult", "PlanweaveError"):
        assert name in planweave.__all__


def test_every_error_derives_from_the_one_root() -> None:
    from planweave import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    classes = [cls for cls in classes if isinstance(cls, type)]  # not the Literal code types
    assert len(classes) > 20
    for cls in classes:
        assert issubclass(cls, errors.PlanweaveError), cls.__name__


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


def test_each_status_list_is_the_one_its_type_names() -> None:
    from typing import get_args

    from planweave import constants, state

    assert get_args(state.JobStatus) == constants.JOB_STATUSES
    assert get_args(state.TaskStatus) == constants.TASK_STATUSES
    assert set(constants.JOB_STATUSES) > constants.TERMINAL_STATUSES
    assert constants.ABANDON_EVENT_TYPES < constants.TERMINAL_EVENT_TYPES
