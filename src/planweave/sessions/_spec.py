"""What a session is made of: its agents, what each consumes, their dependencies, the routing
and the aggregator, read from one YAML file (``SessionSpec.from_file``).

The whole file is checked before a session starts: a dependency cycle, an unknown agent named
anywhere, an unknown routing mode or a bad limit is one ``ConfigError`` naming the file and the
field, and nothing runs.
"""

from __future__ import annotations

import graphlib
import hashlib
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from planweave._files import load_yaml_file
from planweave.errors import ConfigError

__all__ = [
    "AggregatorSpec",
    "Consumes",
    "RoutingSpec",
    "SessionAgentSpec",
    "SessionBudget",
    "SessionSpec",
    "load_route_function",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
RouteFunction = Callable[[str, Sequence[str]], Sequence[str]]


class Consumes(BaseModel):
    """Which inputs an agent reacts to.

    Attributes:
        tags: Inputs carrying any of these tags.
        keywords: Inputs whose text contains any of these words (case-insensitive).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tags: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


class SessionAgentSpec(BaseModel):
    """One agent of a session.

    Give either ``instructions`` (an LLM agent made for the session, with ``model`` and
    ``tools``) or ``agent``, the name of an agent registered with the engine.

    Attributes:
        name: The agent's name on the board (letters, digits, ``_`` and ``-``).
        instructions: What the agent does, for an agent made for the session.
        agent: A registered agent that runs in its place.
        model: The model URL this agent calls (default: the engine's).
        tools: Tools it may use (default: none).
        consumes: The inputs routed to it.
        depends_on: Agents whose results it reads; it re-runs when one of them changes.
        cutoff: Fields of its JSON result that its dependents and the aggregator read (they
            are shown only these): a new result equal to the previous one on these fields does
            not wake them (default: the whole result).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    instructions: str | None = None
    agent: str | None = None
    model: str | None = None
    tools: tuple[str, ...] = ()
    consumes: Consumes = Field(default_factory=Consumes)
    depends_on: tuple[str, ...] = ()
    cutoff: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits, _ and - (at most 64)")
        if (self.instructions is None) == (self.agent is None):
            raise ValueError(f"agent {self.name!r}: give instructions or agent (one of them)")
        return self


class AggregatorSpec(BaseModel):
    """The always-reactive agent over every current result: it runs once the board settles.

    Its answer is a JSON object with ``recommendations``, ``next_steps`` and
    ``budget_summary``; the session adds ``completion_percent``, the share of ``required``
    agents that have a result.

    Attributes:
        name: Its name in events (default ``aggregate``).
        instructions: What it does, for an agent made for the session.
        agent: A registered agent that runs in its place.
        model: Its model URL (default: the engine's).
        required: Agents counted by ``completion_percent`` (default: all).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "aggregate"
    instructions: str | None = None
    agent: str | None = None
    model: str | None = None
    required: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.instructions is None) == (self.agent is None):
            raise ValueError("give instructions or agent (one of them)")
        return self


class RoutingSpec(BaseModel):
    """How the analyzer decides which agents an input concerns.

    Attributes:
        mode: ``tags`` (an input's tags and the keywords in its text, against each agent's
            ``consumes``), ``function`` (``function`` is called) or ``llm`` (an LLM agent
            answers ``{"agents": [...], "reason": "..."}``).
        function: ``module:function`` taking ``(text, tags)`` and returning agent names.
        instructions: The classifier's instructions (``llm``).
        agent: A registered classifier agent (``llm``), in place of ``instructions``.
        model: The classifier's model URL (``llm``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["tags", "function", "llm"] = "tags"
    function: str | None = None
    instructions: str | None = None
    agent: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.mode == "function" and not self.function:
            raise ValueError("mode function needs function: module:function")
        if self.function is not None and ":" not in self.function:
            raise ValueError(f"function {self.function!r}: write it as module:function")
        if self.mode == "llm" and self.instructions is None and self.agent is None:
            raise ValueError("mode llm needs instructions or agent")
        return self


class SessionBudget(BaseModel):
    """What a session may spend on agent runs; past it, agents wait (``blocked``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, ge=0)


class SessionSpec(BaseModel):
    """A reactive session: a board of inputs that agents react to.

    Attributes:
        name: The session kind's name.
        agents: The agents (their names are unique).
        aggregator: The agent over all results (optional).
        routing: How inputs are routed to agents.
        debounce_s: Quiet time after an input change before agents run, so that quick changes
            coalesce into one re-run.
        max_input_chars: Largest input text accepted.
        max_inputs: Most current inputs a session holds.
        max_changes_per_minute: Most inputs added or removed in any 60 s (``None``: no limit);
            past it a change raises ``SessionRateLimited``.
        budget: Tokens and dollars the session may spend.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "session"
    agents: tuple[SessionAgentSpec, ...]
    aggregator: AggregatorSpec | None = None
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    debounce_s: float = Field(default=0.05, ge=0, le=60)
    max_input_chars: int = Field(default=8000, ge=1, le=1_000_000)
    max_inputs: int = Field(default=500, ge=1, le=100_000)
    max_changes_per_minute: int | None = Field(default=600, ge=1)
    budget: SessionBudget = Field(default_factory=SessionBudget)
    _by_name: dict[str, SessionAgentSpec] = PrivateAttr(default_factory=dict)
    _order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _graph(self) -> Self:
        if not self.agents:
            raise ValueError("agents: give at least one agent")
        names = [agent.name for agent in self.agents]
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name in seen:
                raise ValueError(f"agents[{index}].name: {name!r} appears twice")
            seen.add(name)
        for index, agent in enumerate(self.agents):
            for dep in agent.depends_on:
                if dep not in seen:
                    raise ValueError(f"agents[{index}].depends_on: unknown agent {dep!r}")
                if dep == agent.name:
                    raise ValueError(f"agents[{index}].depends_on: {dep!r} depends on itself")
        if self.aggregator is not None:
            if self.aggregator.name in seen:
                raise ValueError(f"aggregator.name: {self.aggregator.name!r} is also an agent")
            for name in self.aggregator.required or ():
                if name not in seen:
                    raise ValueError(f"aggregator.required: unknown agent {name!r}")
        sorter = graphlib.TopologicalSorter({a.name: a.depends_on for a in self.agents})
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(str(part) for part in exc.args[1])
            raise ValueError(f"agents: dependency cycle {cycle}") from None
        self._by_name = {agent.name: agent for agent in self.agents}
        self._order = self._sorted()
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> SessionSpec:
        """Read and check a session file.

        Raises:
            ConfigError: the file is missing, not YAML, or not a valid session (the message
                names the file and the field).
        """
        try:
            data = load_yaml_file(Path(path), what="session file")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such session file") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the session file: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_data(data, where=str(path))

    @classmethod
    def from_data(cls, data: Any, *, where: str = "session spec") -> SessionSpec:
        """Check a session given as plain data (a parsed YAML or JSON mapping).

        Raises:
            ConfigError: not a valid session.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping with agents")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ""
            for part in error["loc"]:
                field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else part
            message = str(error["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{where}: {field + ': ' if field else ''}{message}") from None

    # --- derived views --------------------------------------------------------------------

    def agent(self, name: str) -> SessionAgentSpec:
        """The agent of that name."""
        return self._by_name[name]

    def order(self) -> tuple[str, ...]:
        """Agent names in dependency order (an agent after every agent it depends on), ties
        in the order the file lists them."""
        return self._order

    def _sorted(self) -> tuple[str, ...]:
        position = {agent.name: index for index, agent in enumerate(self.agents)}
        sorter = graphlib.TopologicalSorter({a.name: a.depends_on for a in self.agents})
        sorter.prepare()
        out: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            out.extend(ready)
            sorter.done(*ready)
        return tuple(out)

    def tags(self) -> frozenset[str]:
        """Every tag some agent consumes."""
        return frozenset(tag for agent in self.agents for tag in agent.consumes.tags)

    def fingerprint(self) -> str:
        """A short hash of the whole spec (agents, prompts, models, routing)."""
        raw = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(raw, digest_size=8).hexdigest()


def load_route_function(path: str) -> RouteFunction:
    """Import ``module:function`` for ``routing.mode: function``.

    Raises:
        ConfigError: the module or the function cannot be found.
    """
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"routing.function: cannot import {module_name!r}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"routing.function: {module_name!r} has no function {attr!r}")
    return function  # type: ignore[no-any-return]
