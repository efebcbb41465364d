"""Safe arithmetic for agents: a small evaluator over Python's ``ast``, never ``eval``.

Only numbers, the arithmetic operators, parentheses and a short list of math functions and
constants are understood; anything else is refused by name. Every operand and every function
argument is bounded *before* the work is done (exponents, operand sizes, ``round`` digits, the
number of arguments), so that an expression such as ``9**9**9`` or ``round(1, -9999999)`` is
refused at once instead of holding the interpreter (and its GIL) while Python builds a huge
integer. The built-in ``calculator`` tool also runs in a worker process that is killed at its
deadline (``@tool(isolated=True)``), in case a bound here is ever missed.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from planweave.errors import ToolError

__all__ = ["MAX_ARGUMENTS", "MAX_EXPRESSION_CHARS", "MAX_ROUND_DIGITS", "evaluate"]

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 10_000  # about 3,000 digits: well under Python's int-to-str limit
MAX_EXPONENT = 10_000
MAX_ROUND_DIGITS = 1_000
"""Largest ``ndigits`` (either sign) ``round`` accepts: ``round(x, -n)`` builds ``10**n``."""
MAX_ARGUMENTS = 100
"""Most arguments one function call (``min``, ``max``) accepts."""

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
# How many arguments each function takes: (fewest, most).
_ARITY: dict[str, tuple[int, int]] = {
    "round": (1, 2),
    "min": (1, MAX_ARGUMENTS),
    "max": (1, MAX_ARGUMENTS),
    "log": (1, 2),
}


class CalculatorError(ToolError):
    """An expression the calculator cannot or will not evaluate."""


def _check_size(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError(f"result is too large (over {MAX_INT_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    return value


def _bits(value: Number) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, int) and abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {exponent} is too large (limit {MAX_EXPONENT})")
    both_int = isinstance(base, int) and isinstance(exponent, int)
    if both_int and exponent > 0 and _bits(base) * exponent > MAX_INT_BITS * 2:
        raise CalculatorError(f"result is too large (over {MAX_INT_BITS} bits)")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculatorError("result is a complex number")
    return result


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Pow):
        return _power(left, right)
    both_int = isinstance(left, int) and isinstance(right, int)
    if isinstance(op, ast.Mult) and both_int and _bits(left) + _bits(right) > MAX_INT_BITS * 2:
        raise CalculatorError(f"result is too large (over {MAX_INT_BITS} bits)")
    func = _BINARY.get(type(op))
    if func is None:
        raise CalculatorError(f"operator {type(op).__name__} is not supported")
    result: Number = func(left, right)
    return result


def _check_call(name: str, args: list[Number]) -> None:
    """Refuse a call whose arguments would make the function itself do unbounded work."""
    fewest, most = _ARITY.get(name, (1, 1))
    if not fewest <= len(args) <= most:
        wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
        noun = "argument" if wanted == "1" else "arguments"
        raise CalculatorError(f"{name}() takes {wanted} {noun}, got {len(args)}")
    if name == "round" and len(args) == 2:
        digits = args[1]
        if not isinstance(digits, int):
            raise CalculatorError("round() digits must be a whole number")
        if abs(digits) > MAX_ROUND_DIGITS:
            raise CalculatorError(
                f"round() digits {digits} are out of range (limit {MAX_ROUND_DIGITS})"
            )


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
        return node.value
    if isinstance(node, ast.BinOp):
        return _check_size(_binary(node.op, _eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        result: Number = _UNARY[type(node.op)](_eval(node.operand))
        return result
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r} (known: {', '.join(_CONSTANTS)})")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            known = ", ".join(_FUNCTIONS)
            raise CalculatorError(f"unknown function (known: {known})")
        if node.keywords:
            raise CalculatorError("keyword arguments are not supported")
        if len(node.args) > MAX_ARGUMENTS:
            raise CalculatorError(f"too many arguments (limit {MAX_ARGUMENTS})")
        args = [_eval(arg) for arg in node.args]
        _check_call(node.func.id, args)
        value: Number = _FUNCTIONS[node.func.id](*args)
        return _check_size(value)
    raise CalculatorError(f"{type(node).__name__} is not allowed in an expression")


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression.

    Raises:
        ToolError: The expression is too long, malformed, uses anything but arithmetic, or its
            result would be too large; never retryable.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"invalid expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise CalculatorError("expression is nested too deeply") from None
    try:
        return _eval(tree)
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result is too large") from None
    except RecursionError:
        raise CalculatorError("expression is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise CalculatorError(f"cannot evaluate: {exc}") from None
