"""Just enough Google-style docstring parsing to describe a tool to a model.

A tool's docstring is its documentation for people and for models at once: the first paragraph
becomes the tool description and the ``Args:`` section the per-parameter descriptions.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_ARGS_HEADERS = frozenset({"args", "arguments", "parameters", "params", "keyword args"})
_ARG_LINE = re.compile(r"^\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:\s*(?P<desc>.*)$")


@dataclass(frozen=True)
class ParsedDocstring:
    """The parts of a docstring a tool needs."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Split a Google-style docstring into its first paragraph and its ``Args:`` entries.

    Args:
        doc: The raw docstring (``None`` gives an empty result).

    Returns:
        The description (first paragraph, lines joined by spaces) and a mapping from parameter
        name to its description (continuation lines joined by spaces).
    """
    if not doc:
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()

    first: list[str] = []
    for line in lines:
        if not line.strip():
            if first:
                break
            continue
        if line.strip().rstrip(":").lower() in _ARGS_HEADERS and line.strip().endswith(":"):
            break
        first.append(line.strip())

    params: dict[str, str] = {}
    in_args = False
    header_indent = 0
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        if not in_args:
            if stripped.endswith(":") and stripped[:-1].lower() in _ARGS_HEADERS:
                in_args, header_indent, entry_indent, current = True, _indent(line), None, None
            continue
        if not stripped:
            continue
        indent = _indent(line)
        if indent <= header_indent:
            in_args = stripped.endswith(":") and stripped[:-1].lower() in _ARGS_HEADERS
            current, entry_indent = None, None
            continue
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_LINE.match(stripped) if indent == entry_indent else None
        if match:
            current = match.group("name")
            params[current] = match.group("desc").strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return ParsedDocstring(description=" ".join(first), params=params)
