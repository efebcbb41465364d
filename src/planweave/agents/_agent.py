"""The agent interface: one task in, one result out.

Every agent (the ReAct LLM agent today; sequential, parallel and loop workflow agents and agents
wrapped as tools later) is a value with a ``name`` and an async ``run``. A plan's ``execute``
task names the agent that runs it, and the worker looks it up in an :class:`AgentRegistry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from planweave.errors import ConfigError

if TYPE_CHECKING:
    from planweave.agents._context import AgentContext
    from planweave.agents._handoff import Handoff

__all__ = ["Agent", "AgentRegistry", "AgentResult", "AgentTask"]


@dataclass(frozen=True, kw_only=True)
class AgentTask:
    """What an agent is asked to do.

    Attributes:
        goal: The task's goal, in words.
        job_goal: The goal of the whole job, for context.
        inputs: Results of the tasks this one depends on, by task id.
        input_goals: Goals of those tasks, by task id (labels for ``inputs``).
    """

    goal: str
    job_goal: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    input_goals: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AgentResult:
    """What an agent produced.

    Attributes:
        output: The answer, as text (never empty).
        data: Structured extras, when the agent has any.
        steps: Model calls the agent made.
        handoff: Set when the agent passes the task on to another agent (see ``Handoff``).
    """

    output: str
    data: Any = None
    steps: int = 0
    handoff: Handoff | None = None


@runtime_checkable
class Agent(Protocol):
    """Anything that can run a task."""

    name: str

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Carry out ``task``; report model and tool calls through ``ctx.emit``."""
        ...


class AgentRegistry:
    """Agents by name."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[str, Agent] = {}
        self._descriptions: dict[str, str] = {}
        self._steps: set[str] = set()  # agents that only run a workflow's own step tasks
        for agent in agents:
            self.register(agent)

    def register(
        self, agent: Agent, *, replace: bool = False, description: str | None = None
    ) -> None:
        """Add ``agent`` under its name (``description``: its one-line description, where the
        agent itself has none); a workflow's member agents are added with it (so its steps can
        run as tasks that name them).

        Raises:
            ConfigError: another agent of that name is registered and ``replace`` is false.
        """
        from planweave.agents._workflows import is_step_agent, members_of

        for each in (agent, *members_of(agent)):
            existing = self._agents.get(each.name)
            if existing is each:
                continue
            if existing is not None and not (replace and each is agent):
                raise ConfigError(
                    f"an agent named {each.name!r} is already registered (pass replace=True, "
                    "or give one of them another name)"
                )
            self._agents[each.name] = each
            if is_step_agent(each):
                self._steps.add(each.name)
        if description:
            self._descriptions[agent.name] = " ".join(description.split())

    def get(self, name: str) -> Agent:
        """The agent called ``name``.

        Raises:
            ConfigError: no agent has that name; the message lists the registered ones.
        """
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown agent {name!r}; registered agents: {known}") from None

    def names(self) -> list[str]:
        """Registered agent names, sorted (without the merge agents of parallel workflows,
        which only their own merge tasks name)."""
        return sorted(name for name in self._agents if name not in self._steps)

    def descriptions(self) -> dict[str, str]:
        """Each registered agent's one-line description (``""`` for one without), by name,
        sorted: what the planner is told when it assigns agents to tasks."""
        out: dict[str, str] = {}
        for name in self.names():
            description = getattr(self._agents[name], "description", None)
            if not isinstance(description, str) or not description.strip():
                description = self._descriptions.get(name, "")
            out[name] = description.strip()
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __len__(self) -> int:
        return len(self._agents)
