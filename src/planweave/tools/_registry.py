"""The set of tools an agent may use: any :class:`Tool`, found by name.

The registry holds tools of any implementation (``@tool`` functions, classes written to the
:class:`Tool` protocol); how a call runs is the tool runtime's business (``_runtime``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from planweave.errors import ConfigError, ToolNotFound
from planweave.llm.base import ToolSpec
from planweave.tools._decorator import FunctionTool
from planweave.tools._isolation import check_isolated_class
from planweave.tools._tool import Tool, is_isolated, spec_of

__all__ = ["ToolRegistry"]


class ToolRegistry:
    """Tools by name.

    Args:
        tools: Tools (any :class:`Tool`), or plain functions to wrap with :func:`tool`.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.register(item)

    def register(self, tool_or_fn: Tool | Callable[..., Any]) -> Tool:
        """Add a tool (a plain function is wrapped first) and return it.

        Raises:
            ConfigError: Another tool already has this name, or an ``isolated = True`` class
                tool is one a worker process could not make (nested, or needing arguments).
        """
        new: Tool = tool_or_fn if isinstance(tool_or_fn, Tool) else FunctionTool(tool_or_fn)
        if not isinstance(new, FunctionTool) and is_isolated(new):
            check_isolated_class(new)
        existing = self._tools.get(new.name)
        if existing is not None and existing is not new and not _same_function(existing, new):
            raise ConfigError(
                f"two different tools are named {new.name!r}: rename one with @tool(name=...)"
            )
        if existing is None:
            self._tools[new.name] = new
        return self._tools[new.name]

    def get(self, name: str) -> Tool:
        """Return the tool called ``name``.

        Raises:
            ToolNotFound: No such tool; the message lists the available ones.
        """
        try:
            return self._tools[name]
        except KeyError:
            available = ", ".join(self.names()) or "none"
            raise ToolNotFound(f"no tool named {name!r} (available: {available})") from None

    def names(self) -> list[str]:
        """Names of the registered tools, sorted."""
        return sorted(self._tools)

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        """Specs to offer a model: of ``names`` in that order, or of every tool by name."""
        chosen = self.names() if names is None else list(names)
        return [spec_of(self.get(name)) for name in chosen]

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A new registry with only ``names`` (each must exist)."""
        return ToolRegistry(self.get(name) for name in names)

    async def aclose(self) -> None:
        """Close the tools that hold a connection (an MCP tool's server): each tool with an
        async ``aclose()`` method, once."""
        for each in self._tools.values():
            close = getattr(each, "aclose", None)
            if callable(close):
                await close()

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter([self._tools[name] for name in self.names()])

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"


def _same_function(a: Tool, b: Tool) -> bool:
    """Two wrappers of one function are one tool (a module imported twice, say)."""
    return isinstance(a, FunctionTool) and isinstance(b, FunctionTool) and a.fn is b.fn
