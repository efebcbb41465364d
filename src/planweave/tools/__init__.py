"""Tools: what agents and ``tool`` tasks call, and the one runtime every call goes through.

A tool is anything that implements :class:`Tool` (a name, a description, a JSON schema of its
parameters, an async ``call``). Write one from a typed function with :func:`tool`, or as a class
(an MCP tool, an agent, a script); collect tools in a :class:`ToolRegistry`, and call them with
:func:`run_tool_call` (or :func:`invoke`), which validates, times, bounds and records the call
and turns every tool failure into a :class:`ToolResult`::

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two integers.\"\"\"
        return a + b

    result = await invoke(ToolRegistry([add]), "add", {"a": 2, "b": 3}, ctx)
"""

from __future__ import annotations

from planweave.tools._context import ToolContext
from planweave.tools._decorator import FunctionTool, tool
from planweave.tools._isolation import ToolProcesses
from planweave.tools._paths import resolve_in_workspace
from planweave.tools._registry import ToolRegistry
from planweave.tools._runtime import ToolResult, invoke, run_tool_call
from planweave.tools._search import WebSearchConfig
from planweave.tools._tool import Tool
from planweave.tools.builtins import builtin_tools

__all__ = [
    "FunctionTool",
    "Tool",
    "ToolContext",
    "ToolProcesses",
    "ToolRegistry",
    "ToolResult",
    "WebSearchConfig",
    "builtin_tools",
    "invoke",
    "resolve_in_workspace",
    "run_tool_call",
    "tool",
]
