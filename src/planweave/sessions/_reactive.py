"""``@reactive``: a Python function as a session agent.

The function gets exactly what an LLM agent of the session would be shown, as data: the inputs
routed to it and the results of the agents it depends on (their cutoff fields). It runs as an
engine job like any agent (retries, hooks, events), so it can stand in for an LLM agent in
tests, or do the deterministic parts of a session (sums, lookups) for free.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, overload

from planweave.agents import AgentResult, AgentTask
from planweave.errors import ConfigError

if TYPE_CHECKING:
    from planweave.agents._context import AgentContext

__all__ = ["ReactiveAgent", "ReactiveFunction", "reactive"]

ReactiveFunction = Callable[[list[dict[str, Any]], dict[str, Any]], Any | Awaitable[Any]]
"""``fn(inputs, results)``: ``inputs`` are ``{"text", "tags"}`` mappings, ``results`` the
dependencies' results by agent name; returns the agent's result (JSON-able)."""


class ReactiveAgent:
    """An agent that calls a Python function with a session's inputs and results.

    Register it with the engine (``Engine(agents=[...])``) and name it in the session file
    (``agent: NAME``).
    """

    def __init__(self, name: str, function: ReactiveFunction) -> None:
        self.name = name
        self.function = function
        self.description = (inspect.getdoc(function) or "").split("\n", 1)[0] or None

    def __repr__(self) -> str:
        return f"ReactiveAgent(name={self.name!r})"

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Call the function with the data the session sent as the task's goal."""
        try:
            data = json.loads(task.goal)
        except ValueError:
            data = {"inputs": [{"text": task.goal, "tags": []}], "results": {}}
        value = self.function(list(data.get("inputs", [])), dict(data.get("results", {})))
        if inspect.isawaitable(value):
            value = await value
        output = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return AgentResult(output=output or "null", data=None if isinstance(value, str) else value)


@overload
def reactive(function: ReactiveFunction, /) -> ReactiveAgent: ...
@overload
def reactive(*, name: str | None = None) -> Callable[[ReactiveFunction], ReactiveAgent]: ...
def reactive(
    function: ReactiveFunction | None = None, /, *, name: str | None = None
) -> ReactiveAgent | Callable[[ReactiveFunction], ReactiveAgent]:
    """Make a Python function a session agent, named ``name`` (default: the function's name)::

    @reactive
    def budget(inputs, results):
        return {"total": sum(r.get("price", 0) for r in results.values())}
    """

    def wrap(fn: ReactiveFunction) -> ReactiveAgent:
        if not callable(fn):
            raise ConfigError("reactive: decorate a function")
        return ReactiveAgent(name or str(getattr(fn, "__name__", "reactive")), fn)

    return wrap if function is None else wrap(function)
