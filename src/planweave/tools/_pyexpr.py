"""``python_eval``: one Python expression, evaluated with ``simpleeval`` in a worker process.

``simpleeval`` walks the expression's syntax tree itself instead of handing it to ``eval``:
only literals, operators, comparisons, conditionals, comprehensions, subscripts and calls of
the whitelisted functions below exist. Imports, assignments, lambdas and any name outside the
whitelist fail; attributes starting with ``_`` (``().__class__``) and methods outside
``simpleeval``'s per-type allowlist are refused; powers, string repeats and comprehensions are
bounded. The call runs in a tool worker process, killed at its deadline and held to the
engine's memory limit, so an expression that computes for too long or allocates too much is
stopped without touching the engine.
"""

from __future__ import annotations

import ast
import itertools
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import simpleeval  # type: ignore[import-untyped]

from planweave._text import truncate
from planweave.errors import PolicyViolation, ToolError
from planweave.tools._decorator import tool

__all__ = ["python_eval"]

MAX_EXPRESSION_CHARS = 10_000
MAX_RANGE = 1_000_000
"""Most numbers one ``range`` may give."""
MAX_RESULT_BITS = 12_000
"""Largest integer result (about 3,600 digits): bigger ones are refused rather than shown."""
MAX_RESULT_ITEMS = 100_000
"""Most items a result sequence may hold."""


def _range(*args: int) -> range:
    made = range(*args)
    if len(made) > MAX_RANGE:
        raise ToolError(f"range of {len(made)} numbers, over the limit of {MAX_RANGE}")
    return made


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "all": all,
    "any": any,
    "bool": bool,
    "ceil": math.ceil,
    "cos": math.cos,
    "dict": dict,
    "divmod": divmod,
    "enumerate": enumerate,
    "exp": math.exp,
    "float": float,
    "floor": math.floor,
    "int": int,
    "len": len,
    "list": list,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "max": max,
    "min": min,
    "range": _range,
    "reversed": reversed,
    "round": round,
    "set": set,
    "sin": math.sin,
    "sorted": sorted,
    "sqrt": math.sqrt,
    "str": str,
    "sum": sum,
    "tan": math.tan,
    "tuple": tuple,
    "zip": zip,
}
_NAMES: dict[str, Any] = {"True": True, "False": False, "None": None, "pi": math.pi, "e": math.e}


def _jsonable(value: Any, depth: int = 0) -> Any:
    """The result as JSON data: tuples and sets become lists, other objects their text."""
    if depth > 50:
        raise ToolError("the result is nested too deeply to show")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_RESULT_BITS:
            raise ToolError(
                f"the result is an integer of {value.bit_length()} bits, too large to show"
            )
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_jsonable(v, depth + 1) for v in items]
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        items = list(itertools.islice(value, MAX_RESULT_ITEMS + 1))
        if len(items) > MAX_RESULT_ITEMS:
            raise ToolError(f"the result has more than {MAX_RESULT_ITEMS} items, too many to show")
        return [_jsonable(v, depth + 1) for v in items]
    return truncate(str(value), 10_000)


def _check_variables(variables: dict[str, Any]) -> None:
    for name in variables:
        if not name.isidentifier() or name.startswith("_"):
            raise ToolError(f"variable name {name!r} is not allowed: use letters, digits and _")


@tool(
    timeout_s=5.0,
    isolated=True,
    sandbox=(
        "Evaluates one expression without imports, assignments, '_' attributes or names outside "
        "a whitelist, in a worker process killed at its 5 s deadline and held to a memory limit."
    ),
)
def python_eval(expression: str, variables: dict[str, Any] | None = None) -> Any:
    """Evaluate one Python expression and return its value (as JSON: tuples and sets become lists).

    Literals, arithmetic, comparisons, `x if c else y`, list/dict/set comprehensions,
    subscripts and slices, string and list methods, and the functions abs, all, any, bool,
    ceil, cos, dict, divmod, enumerate, exp, float, floor, int, len, list, log, log10, log2,
    max, min, range, reversed, round, set, sin, sorted, sqrt, str, sum, tan, tuple and zip,
    with the constants pi and e. No imports, statements or attributes starting with "_".

    Args:
        expression: The expression, e.g. "sorted(w.lower() for w in text.split())[:3]".
        variables: Names the expression may use, with their JSON values, e.g. {"text": "..."}.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    variables = variables or {}
    _check_variables(variables)
    try:
        ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise PolicyViolation(
            f"not a single Python expression ({exc.msg}): statements, imports and assignments "
            "are not allowed"
        ) from None
    evaluator = simpleeval.EvalWithCompoundTypes(
        functions=dict(_FUNCTIONS),
        names={**_NAMES, **variables},
        allowed_attrs=simpleeval.BASIC_ALLOWED_ATTRS,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value = evaluator.eval(expression.strip())
    except ToolError:
        raise
    except (simpleeval.FeatureNotAvailable, simpleeval.FunctionNotDefined) as exc:
        raise PolicyViolation(f"not allowed: {truncate(str(exc), 300)}") from None
    except simpleeval.InvalidExpression as exc:
        raise ToolError(f"not allowed: {truncate(str(exc), 300)}") from None
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError, Warning) as exc:
        raise ToolError(f"{type(exc).__name__}: {truncate(str(exc), 300)}") from None
    return _jsonable(value)
