from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from planweave.errors import ToolError
from planweave.tools import ToolContext, ToolRegistry, ToolResult, builtin_tools, invoke
from planweave.tools._calculator import evaluate


async def call(tmp_path: Path, name: str, **args: object) -> ToolResult:
    ctx = ToolContext(workspace=tmp_path)
    return await invoke(ToolRegistry(builtin_tools()), name, args, ctx)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-(3 - +5)", 2),
        ("1.5e3 + 0.5", 1500.5),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(3.14159, 2)", 3.14),
        ("round(12345, -2)", 12300),
        ("log(8, 2)", 3.0),
        ("min(4, 2, 8) + max(1, 9)", 11),
        ("floor(2.7) + ceil(2.1)", 5),
        ("log10(1000)", 3.0),
        ("2 * pi", math.tau),
        ("e", math.e),
        ("  12  ", 12),
        ("2 ** 3 ** 2", 512),
        ("9 ** 999", 9**999),
        ("-" * 499 + "1", -1),
    ],
)
def test_evaluates_arithmetic(expression: str, expected: float) -> None:
    result = evaluate(expression)
    assert result == pytest.approx(expected)
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("9**9**9", "too large"),
        ("10**100000", "too large"),
        ("2**-100000", "too large"),
        ("(10**3000) * (10**3000)", "too large"),
        ("99999**5000", "too large"),
        ("2.0 ** 5000", "too large"),
        ("exp(1000)", "too large"),
        ("1e308 * 10", "not a finite number"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** 0.5", "complex"),
        ("1 +", "invalid expression"),
        ("1" * 501, "longer than 500 characters"),
        ("__import__('os').system('true')", "unknown function"),
        ("open('/etc/passwd')", "unknown function"),
        ("(1).__class__", "Attribute is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("1j * 2", "only numbers are allowed"),
        ("[1, 2]", "List is not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1 < 2", "Compare is not allowed"),
        ("1 << 2", "LShift is not supported"),
        ("round(2.5, ndigits=1)", "keyword arguments"),
        ("min()", "min() takes 1 to 100 arguments, got 0"),
        ("sqrt(4, 2)", "sqrt() takes 1 argument, got 2"),
        ("max(" + ",".join(["1"] * 101) + ")", "too many arguments (limit 100)"),
        ("round(1, -9999999)", "round() digits -9999999 are out of range (limit 1000)"),
        ("round(1, 99999999)", "out of range"),
        ("round(10 ** 3000, -1001)", "out of range"),
        ("round(2.5, 1.5)", "digits must be a whole number"),
        ("(" * 201 + "1" + ")" * 201, "nested"),
    ],
)
def test_refuses_what_is_not_safe_arithmetic(expression: str, fragment: str) -> None:
    with pytest.raises(ToolError) as info:
        evaluate(expression)
    assert fragment in str(info.value)
    assert info.value.retryable is False


async def test_calculator_tool_results(tmp_path: Path) -> None:
    ok = await call(tmp_path, "calculator", expression="(2 + 3) * sqrt(16)")
    assert (ok.ok, ok.value, ok.as_text()) == (True, 20.0, "20.0")
    refused = await call(tmp_path, "calculator", expression="9**9**9")
    assert (refused.ok, refused.error_type, refused.retryable) == (False, "error", False)
    assert refused.as_text().startswith("error: exponent")


async def test_current_time(tmp_path: Path) -> None:
    utc = await call(tmp_path, "current_time")
    parsed = dt.datetime.fromisoformat(utc.value)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert abs(parsed - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    tokyo = await call(tmp_path, "current_time", timezone="Asia/Tokyo")
    assert dt.datetime.fromisoformat(tokyo.value).utcoffset() == dt.timedelta(hours=9)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", ""])
async def test_current_time_unknown_zone(tmp_path: Path, zone: str) -> None:
    result = await call(tmp_path, "current_time", timezone=zone)
    assert (result.ok, result.error_type) == (False, "error")
    assert "unknown time zone" in (result.error or "")
