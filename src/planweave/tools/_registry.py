"""The set of tools an agent may use, and the one way the engine calls them.

``invoke`` is the boundary between the engine and tool code: every tool problem (unknown name,
bad arguments, timeout, policy refusal, crash) becomes a ``ToolResult`` the agent can read and
react to, so a misbehaving tool never takes the worker down. Only control-flow signals pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from planweave.errors import (
    ConfigError,
    PolicyViolation,
    ToolArgumentsInvalid,
    ToolError,
    ToolNotFound,
    ToolTimeout,
)
from planweave.llm.base import ToolSpec
from planweave.tools._context import ToolContext
from planweave.tools._decorator import Tool

__all__ = ["ToolErrorType", "ToolRegistry", "ToolResult", "invoke"]

ToolErrorType = Literal["", "arguments_invalid", "timeout", "policy", "not_found", "error"]
AnyTool = Tool[..., Any]


class ToolRegistry:
    """Tools by name.

    Args:
        tools: Tools, or plain functions to wrap with :func:`tool`.
    """

    def __init__(self, tools: Iterable[AnyTool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, AnyTool] = {}
        for item in tools:
            self.register(item)

    def register(self, tool_or_fn: AnyTool | Callable[..., Any]) -> AnyTool:
        """Add a tool (a plain function is wrapped first) and return it.

        Raises:
            ConfigError: Another tool already has this name.
        """
        new = tool_or_fn if isinstance(tool_or_fn, Tool) else Tool(tool_or_fn)
        existing = self._tools.get(new.name)
        if existing is not None and existing is not new and existing.fn is not new.fn:
            raise ConfigError(
                f"two different tools are named {new.name!r}: rename one with @tool(name=...)"
            )
        if existing is None:
            self._tools[new.name] = new
        return self._tools[new.name]

    def get(self, name: str) -> AnyTool:
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
        return [self.get(name).spec() for name in chosen]

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A new registry with only ``names`` (each must exist)."""
        return ToolRegistry(self.get(name) for name in names)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[AnyTool]:
        return iter([self._tools[name] for name in self.names()])

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class ToolResult:
    """What came of one tool call, as the agent sees it.

    Attributes:
        ok: Whether the tool returned normally.
        value: What it returned (``None`` on failure).
        error: The error message on failure.
        error_type: ``""`` when ok, else ``arguments_invalid``, ``timeout``, ``policy``,
            ``not_found`` or ``error``.
        retryable: Whether calling again may succeed.
        latency_ms: How long the call took.
    """

    ok: bool
    value: Any = None
    error: str | None = None
    error_type: ToolErrorType = ""
    retryable: bool = False
    latency_ms: float = 0.0

    def as_text(self, max_chars: int = 4000) -> str:
        """Render for a model: the value as text (JSON for structures) or ``error: ...``."""
        text = _render(self.value) if self.ok else f"error: {self.error}"
        if len(text) > max_chars:
            cut = len(text) - max_chars
            text = f"{text[:max_chars]}\n[... {cut} more characters cut]"
        return text


def _error_type(exc: ToolError) -> ToolErrorType:
    if isinstance(exc, ToolArgumentsInvalid):
        return "arguments_invalid"
    if isinstance(exc, ToolTimeout):
        return "timeout"
    if isinstance(exc, PolicyViolation):
        return "policy"
    if isinstance(exc, ToolNotFound):
        return "not_found"
    return "error"


async def invoke(
    registry: ToolRegistry, name: str, args: Mapping[str, Any], ctx: ToolContext
) -> ToolResult:
    """Call tool ``name`` and report the outcome; tool failures never raise.

    Args:
        registry: Where to find the tool.
        name: The tool's name, as the model wrote it.
        args: The arguments, as the model wrote them.
        ctx: The context of the call.

    Returns:
        ``ok=True`` with the value, or ``ok=False`` with the error, its type and whether a retry
        may help.

    Raises:
        Signal: A signal the tool raised on purpose (``RetryTask``, ``ApprovalRequired``).
    """
    start = time.perf_counter()
    try:
        value = await registry.get(name).call(args, ctx)
    except ToolError as exc:
        return ToolResult(
            ok=False,
            error=str(exc),
            error_type=_error_type(exc),
            retryable=exc.retryable,
            latency_ms=(time.perf_counter() - start) * 1000,
        )
    return ToolResult(ok=True, value=value, latency_ms=(time.perf_counter() - start) * 1000)
