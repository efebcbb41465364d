"""JSON from models, with a bound on nesting depth.

A model can write ``[[[[...]]]]`` a few thousand levels deep in a reply or in tool arguments.
Python's parser then raises a bare ``RecursionError`` (and a slightly shallower value parses but
breaks the next recursive step: validation, the JSON encoder of an event). Every place that
parses or accepts JSON from a model goes through here, so deep nesting is one clear, bounded
error (:class:`JsonTooDeep`) that the caller turns into a failed attempt or a tool error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from planweave.constants import MAX_JSON_DEPTH

__all__ = ["TOO_DEEP_TEXT", "JsonTooDeep", "dumps_bounded", "loads_bounded", "too_deep"]

TOO_DEEP_TEXT = f"[nested deeper than {MAX_JSON_DEPTH} levels]"
"""What is shown (in events, prompts, tool-call arguments) in place of a value too deep to
encode."""


class JsonTooDeep(json.JSONDecodeError):
    """JSON nested deeper than the limit (a ``JSONDecodeError``, so callers that handle bad JSON
    handle it too)."""

    def __init__(self, doc: str = "", max_depth: int = MAX_JSON_DEPTH) -> None:
        super().__init__(f"nested deeper than {max_depth} levels", doc, 0)
        self.max_depth = max_depth


def too_deep(value: Any, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests lists, tuples and mappings deeper than ``max_depth`` levels.

    Iterative, so any depth is measured without recursion; a scalar has depth 0.
    """
    if not isinstance(value, list | tuple | Mapping):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, Mapping) else node
        for child in children:
            if isinstance(child, list | tuple | Mapping):
                stack.append((child, depth + 1))
    return False


def loads_bounded(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON leniently (``strict=False``: raw newlines in strings) with a depth limit.

    Raises:
        JsonTooDeep: The value nests deeper than ``max_depth`` levels.
        json.JSONDecodeError: The text is not JSON.
    """
    try:
        value = json.loads(text, strict=False)
    except RecursionError:
        raise JsonTooDeep(text, max_depth) from None
    if too_deep(value, max_depth):
        raise JsonTooDeep(text, max_depth)
    return value


def dumps_bounded(value: Any) -> str:
    """``value`` as JSON text for people and prompts (``default=str``), or
    :data:`TOO_DEEP_TEXT` when it nests deeper than the limit."""
    if too_deep(value):
        return TOO_DEEP_TEXT
    return json.dumps(value, ensure_ascii=False, default=str)
