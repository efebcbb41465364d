from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pytest

import planweave.tools
from planweave.errors import (
    ApprovalRequired,
    ConfigError,
    PolicyViolation,
    RetryTask,
    ToolArgumentsInvalid,
    ToolNotFound,
    ToolTimeout,
)
from planweave.llm.base import ToolSpec
from planweave.tools import Tool, ToolContext, ToolRegistry, ToolResult, invoke, tool


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(workspace=tmp_path, job_id="job-1", task_id="task-1")


@tool
def add(a: int, b: int = 2) -> int:
    """Add two integers.

    This second paragraph is not part of the description.

    Args:
        a: first number
        b (int): second number,
            which defaults to two

    Returns:
        The sum.
    """
    return a + b


def test_public_api_is_exported() -> None:
    assert sorted(planweave.tools.__all__) == sorted(
        [
            "FunctionTool",
            "Tool",
            "ToolContext",
            "WebSearchConfig",
            "ToolProcesses",
            "ToolRegistry",
            "ToolResult",
            "builtin_tools",
            "invoke",
            "resolve_in_workspace",
            "run_tool_call",
            "tool",
        ]
    )
    for name in planweave.tools.__all__:
        assert getattr(planweave.tools, name) is not None


def test_tool_stays_callable_like_the_function() -> None:
    assert isinstance(add, Tool)
    assert add(2, 3) == 5
    assert add(a=1) == 3
    assert add.__name__ == "add"


def test_schema_from_type_hints_defaults_and_docstring() -> None:
    assert add.name == "add"
    assert add.description == "Add two integers."
    assert add.timeout_s == 30.0
    assert add.parameters["type"] == "object"
    assert add.parameters["required"] == ["a"]
    assert add.parameters["properties"] == {
        "a": {"type": "integer", "description": "first number"},
        "b": {
            "type": "integer",
            "default": 2,
            "description": "second number, which defaults to two",
        },
    }
    assert "title" not in add.parameters


def test_schema_covers_common_types() -> None:
    @tool
    def many(
        text: str,
        ratio: float,
        flag: bool,
        tags: list[str],
        mode: Literal["fast", "slow"] = "fast",
        limit: int | None = None,
    ) -> None:
        """Do many things."""

    props = many.parameters["properties"]
    assert props["text"]["type"] == "string"
    assert props["ratio"]["type"] == "number"
    assert props["flag"]["type"] == "boolean"
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert {"type": "null"} in props["limit"]["anyOf"]
    assert many.parameters["required"] == ["text", "ratio", "flag", "tags"]


def test_property_named_title_and_json_are_kept() -> None:
    @tool
    def note(title: str, json: str = "{}") -> str:
        """Make a note."""
        return title + json

    assert set(note.parameters["properties"]) == {"title", "json"}
    assert note.parameters["required"] == ["title"]


def test_context_parameter_is_injected_and_not_in_schema(ctx: ToolContext) -> None:
    @tool
    def whoami(ctx: ToolContext, suffix: str = "") -> str:
        """Say which job is calling."""
        return ctx.job_id + suffix

    assert list(whoami.parameters["properties"]) == ["suffix"]
    assert whoami.parameters["required"] == []
    assert asyncio.run(whoami.call({"suffix": "!"}, ctx)) == "job-1!"


def test_spec_is_a_tool_spec() -> None:
    spec = add.spec()
    assert isinstance(spec, ToolSpec)
    assert spec.name == "add"
    assert spec.description == "Add two integers."
    assert spec.parameters == add.parameters


def test_decorator_options_override_name_description_timeout() -> None:
    @tool(name="plus", description="Sum.", timeout_s=5.0)
    def whatever(a: int) -> int:
        return a

    assert (whatever.name, whatever.description, whatever.timeout_s) == ("plus", "Sum.", 5.0)


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dots.are.bad"])
def test_invalid_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid tool name"):
        tool(name=name)(lambda: None)


def test_var_args_are_refused() -> None:
    def splat(*args: int) -> None:
        """Nope."""

    with pytest.raises(ConfigError, match=r"\*args"):
        tool(splat)


async def test_call_validates_and_coerces(ctx: ToolContext) -> None:
    assert await add.call({"a": 4}, ctx) == 6
    assert await add.call({"a": "4", "b": 1}, ctx) == 5


async def test_async_tool(ctx: ToolContext) -> None:
    @tool
    async def slow_echo(text: str) -> str:
        """Echo after a pause."""
        await asyncio.sleep(0)
        return text.upper()

    assert await slow_echo.call({"text": "hi"}, ctx) == "HI"
    result = await invoke(ToolRegistry([slow_echo]), "slow_echo", {"text": "x"}, ctx)
    assert result.ok
    assert result.value == "X"
    assert result.latency_ms >= 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({}, "a: missing required argument"),
        ({"a": "abc"}, "a: Input should be a valid integer"),
        ({"a": 1, "c": 3}, "c: unexpected argument"),
        ({"a": [1]}, "a: Input should be a valid integer"),
        ({"a": "1" * 10_000_000}, "a: Unable to parse input string as an integer"),
    ],
)
async def test_bad_arguments_are_rejected_before_the_function_runs(
    ctx: ToolContext, args: dict[str, object], fragment: str
) -> None:
    calls = 0

    @tool
    def counted(a: int) -> int:
        """Count calls."""
        nonlocal calls
        calls += 1
        return a

    with pytest.raises(ToolArgumentsInvalid, match="invalid arguments for tool 'counted'") as info:
        await counted.call(args, ctx)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 500
    result = await invoke(ToolRegistry([counted]), "counted", args, ctx)
    assert (result.ok, result.error_type, result.retryable) == (False, "arguments_invalid", False)
    assert calls == 0


async def test_arguments_that_are_not_an_object(ctx: ToolContext) -> None:
    with pytest.raises(ToolArgumentsInvalid, match="expected a JSON object"):
        await add.call(["a"], ctx)  # type: ignore[arg-type]


@pytest.mark.parametrize("is_async", [True, False])
async def test_timeout_gives_a_timeout_result(ctx: ToolContext, is_async: bool) -> None:
    if is_async:

        async def sleeper() -> str:
            await asyncio.sleep(5)
            return "late"

        slow: Tool[[], object] = tool(timeout_s=0.05)(sleeper)
    else:
        import time

        def blocking() -> str:
            time.sleep(0.3)
            return "late"

        slow = tool(timeout_s=0.05)(blocking)
    with pytest.raises(ToolTimeout, match=r"did not finish within 0\.05 s"):
        await slow.call({}, ctx)
    result = await invoke(ToolRegistry([slow]), slow.name, {}, ctx)
    assert (result.ok, result.error_type, result.retryable) == (False, "timeout", True)
    assert result.latency_ms < 1000


@pytest.mark.parametrize(
    ("exc", "message", "retryable", "error_type"),
    [
        (ValueError("boom"), "ValueError: boom", False, "error"),
        (KeyError("k"), "KeyError: 'k'", False, "error"),
        (ConnectionError("reset"), "ConnectionError: reset", True, "error"),
        (TimeoutError("slow upstream"), "TimeoutError: slow upstream", True, "error"),
        (OSError("network down"), "OSError: network down", True, "error"),
        (FileNotFoundError("gone"), "FileNotFoundError: gone", False, "error"),
        (PolicyViolation("not there"), "not there", False, "policy"),
        (ToolNotFound("inner"), "inner", False, "not_found"),
    ],
)
async def test_exceptions_become_tool_errors(
    ctx: ToolContext, exc: Exception, message: str, retryable: bool, error_type: str
) -> None:
    @tool
    def broken() -> None:
        """Fail."""
        raise exc

    result = await invoke(ToolRegistry([broken]), "broken", {}, ctx)
    assert result == ToolResult(
        ok=False,
        error=message,
        error_type=error_type,  # type: ignore[arg-type]
        retryable=retryable,
        latency_ms=result.latency_ms,
    )
    assert result.as_text() == f"error: {message}"


@pytest.mark.parametrize("signal", [RetryTask("again", delay_s=1.0), ApprovalRequired("ask")])
async def test_signals_propagate_through_invoke(ctx: ToolContext, signal: Exception) -> None:
    @tool
    async def steer() -> None:
        """Steer the engine."""
        raise signal

    with pytest.raises(type(signal)):
        await invoke(ToolRegistry([steer]), "steer", {}, ctx)


def test_registry_basics() -> None:
    def shout(text: str) -> str:
        """Shout."""
        return text.upper()

    registry = ToolRegistry([add])
    wrapped = registry.register(shout)
    assert isinstance(wrapped, Tool)
    assert registry.names() == ["add", "shout"]
    assert "shout" in registry
    assert "nope" not in registry
    assert len(registry) == 2
    assert registry.get("add") is add
    assert registry.register(add) is add  # registering the same tool again is harmless
    assert [s.name for s in registry.specs()] == ["add", "shout"]
    assert [s.name for s in registry.specs(["shout"])] == ["shout"]
    sub = registry.subset(["shout"])
    assert sub.names() == ["shout"]
    assert len(registry) == 2


def test_registry_refuses_two_tools_with_one_name() -> None:
    @tool(name="add")
    def other_add(a: int) -> int:
        """Not the same."""
        return a

    registry = ToolRegistry([add])
    with pytest.raises(ConfigError, match="two different tools are named 'add'"):
        registry.register(other_add)
    assert registry.get("add") is add


def test_unknown_tool_lists_available_names() -> None:
    registry = ToolRegistry([add])
    with pytest.raises(ToolNotFound, match=r"no tool named 'sub' \(available: add\)"):
        registry.get("sub")
    with pytest.raises(ToolNotFound):
        registry.subset(["sub"])


async def test_invoke_unknown_tool_is_a_result(ctx: ToolContext) -> None:
    result = await invoke(ToolRegistry([add]), "sub", {}, ctx)
    assert (result.ok, result.error_type) == (False, "not_found")
    assert "available: add" in (result.error or "")


def test_result_as_text() -> None:
    assert ToolResult(ok=True, value="plain").as_text() == "plain"
    assert ToolResult(ok=True, value={"a": [1, "é"]}).as_text() == '{"a": [1, "é"]}'
    assert ToolResult(ok=True, value=None).as_text() == "null"
    long = ToolResult(ok=True, value="x" * 50).as_text(max_chars=10)
    assert long.startswith("x" * 10)
    assert "40 more characters cut" in long
    failed = ToolResult(ok=False, error="nope", error_type="error")
    assert failed.as_text() == "error: nope"


def test_high_impact_may_be_a_flag_or_a_function_of_the_arguments() -> None:
    from planweave.tools._tool import is_high_impact, sandbox_of

    @tool(high_impact=True, sandbox="workspace only")
    def wipe(path: str) -> str:
        """Delete a file."""
        return path

    @tool(high_impact=lambda args: args["method"] != "GET")
    def call_api(method: str) -> str:
        """Call an API."""
        return method

    @tool
    def look(path: str) -> str:
        """Read a file."""
        return path

    assert is_high_impact(wipe, {"path": "a"}) is True
    assert sandbox_of(wipe) == "workspace only"
    assert is_high_impact(call_api, {"method": "GET"}) is False
    assert is_high_impact(call_api, {"method": "POST"}) is True
    assert is_high_impact(call_api, {}) is True  # a check that raises asks for approval
    assert is_high_impact(look, {"path": "a"}) is False
    assert sandbox_of(look) == ""
