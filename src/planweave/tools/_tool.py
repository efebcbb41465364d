"""The tool interface: anything with a name, a description, a JSON schema and an async call.

``@tool`` turns a typed Python function into one (:class:`FunctionTool`), but a tool can be
built from anything else: an MCP server's tool, an agent, a script. The engine only needs what
this protocol states; the tool runtime (``_runtime``) validates the arguments against
``parameters``, applies ``timeout_s``, times the call and records it, whatever the
implementation.

A class may also say ``isolated = True`` (an optional attribute, not part of the protocol's
required members, so older tools keep matching it): its calls then run like those of
``@tool(isolated=True)``, in a worker process of the engine's pool that is killed at the call's
deadline and held to the pool's memory limit. Two more optional attributes describe a tool to
people and to the approval gate: ``high_impact`` (``True``, or a function of the call's
arguments, when a call needs a person's approval first) and ``sandbox`` (a sentence on what the
tool may reach).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from planweave.llm.base import ToolSpec
from planweave.tools._context import ToolContext

__all__ = ["Tool", "is_high_impact", "is_isolated", "sandbox_of", "spec_of"]


@runtime_checkable
class Tool(Protocol):
    """A tool a model, or a ``tool`` task, can call.

    Attributes:
        name: The name models call the tool by (1 to 64 letters, digits, ``_`` or ``-``).
        description: What the tool does, for the model.
        parameters: JSON schema of the arguments (an ``object`` schema).
        timeout_s: Longest a call may take before it fails with ``ToolTimeout``.

    A class may set ``isolated = True`` as well: each call then runs in a tool worker process
    (killed at ``timeout_s``, held to the engine's ``tool_memory_bytes``), on an instance the
    worker makes itself. The class must then be defined at the top level of a module and be
    constructible with no arguments; ``args``, the result and errors travel as JSON, and its
    ``ctx`` has the workspace, ids, limits and deadline but no model or event sink.
    """

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]: ...

    @property
    def timeout_s(self) -> float: ...

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Run the tool on ``args`` (already checked against ``parameters``).

        ``ctx`` gives the workspace, the calling task's model (``ctx.model``, or
        ``ctx.complete`` to have the call recorded), its event sink and its deadline. Raise
        ``ToolError`` (or a subclass) for failures the model should read about.
        """
        ...


def spec_of(tool: Tool) -> ToolSpec:
    """What a model is told about ``tool``."""
    return ToolSpec(name=tool.name, description=tool.description, parameters=tool.parameters)


def is_isolated(tool: Tool) -> bool:
    """Whether ``tool``'s calls run in a tool worker process (``isolated = True``)."""
    return getattr(tool, "isolated", False) is True


def is_high_impact(tool: Tool, args: Mapping[str, Any]) -> bool:
    """Whether this call of ``tool`` needs a person's approval before it runs.

    ``high_impact`` may be a bool or a function of the call's arguments; a function that
    raises counts as high impact (when in doubt, ask).
    """
    flag = getattr(tool, "high_impact", False)
    if callable(flag):
        try:
            return bool(flag(args))
        except Exception:
            return True
    return flag is True


def sandbox_of(tool: Tool) -> str:
    """The tool's ``sandbox`` sentence, or ``""`` when it states none."""
    text = getattr(tool, "sandbox", "")
    return text if isinstance(text, str) else ""
