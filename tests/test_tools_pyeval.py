"""python_eval: expressions evaluate; escapes, imports, huge numbers and long work are stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planweave.tools import (
    FunctionTool,
    ToolContext,
    ToolProcesses,
    ToolRegistry,
    ToolResult,
    builtin_tools,
    invoke,
)
from planweave.tools._pyexpr import python_eval
from planweave.tools._tool import is_isolated


@pytest.fixture
async def processes() -> Any:
    pool = ToolProcesses(1)
    yield pool
    await pool.close()


@pytest.fixture
def ctx(tmp_path: Path, processes: ToolProcesses) -> ToolContext:
    return ToolContext(workspace=tmp_path, processes=processes)


async def call(ctx: ToolContext, expression: str, **variables: Any) -> ToolResult:
    args: dict[str, Any] = {"expression": expression}
    if variables:
        args["variables"] = variables
    return await invoke(ToolRegistry(builtin_tools()), "python_eval", args, ctx)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(2 + 3) * 4", 20),
        ("sorted(w.lower() for w in text.split())", ["a", "b", "c"]),
        ("{k: v * 2 for k, v in prices.items()}", {"tea": 4, "cake": 6}),
        ("sum(range(101))", 5050),
        ("round(sqrt(2), 3)", 1.414),
        ("(1, {2, 3})", [1, [2, 3]]),
        ("text[::-1]", "c B a"),
        ("max(prices, key=None) if prices else 0", "tea"),
        ("len([x for x in range(10) if x % 2])", 5),
    ],
)
async def test_expressions_evaluate(ctx: ToolContext, expression: str, expected: Any) -> None:
    result = await call(ctx, expression, text="a B c", prices={"tea": 2, "cake": 3})
    assert result.ok, result.error
    assert result.value == expected


@pytest.mark.parametrize(
    "expression",
    [
        "().__class__.__bases__",
        "().__class__.__bases__[0].__subclasses__()",
        "__import__('os').system('touch pwned')",
        "import os",
        "x = 1",
        "open('/etc/passwd').read()",
        "eval('1')",
        "getattr(1, '__class__')",
        "type(1)",
        "(lambda: 1)()",
        "'{0.__class__}'.format(1)",
        "text.__len__()",
        "globals()",
        "exit()",
    ],
)
async def test_escapes_are_refused(ctx: ToolContext, tmp_path: Path, expression: str) -> None:
    result = await call(ctx, expression, text="abc")
    assert not result.ok, result.value
    assert result.error_type == "policy", result.error
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "expression", ["10**10**10", "'a' * 10**9", "[0] * 10**9", "list(range(10**12))"]
)
async def test_huge_results_are_refused_at_once(ctx: ToolContext, expression: str) -> None:
    result = await call(ctx, expression)
    assert (result.ok, result.error_type) == (False, "error"), result.error


async def test_long_work_is_stopped_at_the_deadline(ctx: ToolContext) -> None:
    """Each power is under the exponent limit, but multiplying them takes many seconds: the
    worker process is killed at the tool's deadline (here a copy with a 1 s deadline)."""
    quick = FunctionTool(python_eval.fn, timeout_s=1.0, isolated=True)
    result = await invoke(
        ToolRegistry([quick]),
        "python_eval",
        {"expression": " * ".join(["9**3999999"] * 8)},
        ctx,
    )
    assert (result.ok, result.error_type) == (False, "timeout"), result.error
    after = await call(ctx, "1 + 1")  # a fresh worker serves the next call
    assert (after.ok, after.value) == (True, 2)
    assert is_isolated(ToolRegistry(builtin_tools()).get("python_eval"))  # the built-in too


async def test_bad_variable_names_are_refused(ctx: ToolContext) -> None:
    result = await invoke(
        ToolRegistry(builtin_tools()),
        "python_eval",
        {"expression": "1", "variables": {"__builtins__": {}}},
        ctx,
    )
    assert not result.ok and "not allowed" in (result.error or "")
