"""Tools: typed Python functions that agents call, and the policies that keep them safe.

Write a tool with :func:`tool`, collect tools in a :class:`ToolRegistry`, and call them with
:func:`invoke`, which turns every tool failure into a :class:`ToolResult`::

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two integers.\"\"\"
        return a + b

    result = await invoke(ToolRegistry([add]), "add", {"a": 2, "b": 3}, ctx)
"""

from __future__ import annotations

from planweave.tools._context import ToolContext
from planweave.tools._decorator import Tool, tool
from planweave.tools._paths import resolve_in_workspace
from planweave.tools._registry import ToolRegistry, ToolResult, invoke
from planweave.tools.builtins import builtin_tools

__all__ = [
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "builtin_tools",
    "invoke",
    "resolve_in_workspace",
    "tool",
]
