"""The events of a session's own log.

Every change to a session is one of these, numbered by ``seq`` (1, 2, 3, ... with no gap), so
a session's state is the fold of its log (``SessionState.apply``), a client can resume a
stream after the last ``seq`` it saw, and a session can be replayed after the fact. Events are
frozen pydantic models with a ``type`` discriminator, JSON on the wire.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "AgentCompleted",
    "AgentDropped",
    "AgentFailed",
    "AgentRunQueued",
    "AgentRunStarted",
    "AgentRunSuperseded",
    "AggregateUpdated",
    "InputAdded",
    "InputRemoved",
    "ResultFenced",
    "SessionBlocked",
    "SessionCreated",
    "SessionEvent",
    "SessionSettled",
    "parse_session_event",
]

SESSION_SCHEMA_VERSION = 1


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: str
    seq: int = 0
    at: float = 0.0
    v: int = SESSION_SCHEMA_VERSION


class SessionCreated(_Base):
    """A session began, with its spec (as data) and its name."""

    type: Literal["session.created"] = "session.created"
    spec: dict[str, Any]
    tenant: str = "default"


class InputAdded(_Base):
    """A person added an input; ``routes`` are the agents the analyzer sent it to."""

    type: Literal["input.added"] = "input.added"
    input_id: str
    text: str
    tags: tuple[str, ...] = ()
    version: int
    input_rev: int
    routes: tuple[str, ...]
    route_reason: str = ""


class InputRemoved(_Base):
    """A person removed an input (kept as a tombstone)."""

    type: Literal["input.removed"] = "input.removed"
    input_id: str
    input_rev: int


class AgentRunQueued(_Base):
    """An agent's run was decided, for the versions in ``basis``."""

    type: Literal["agent.run.queued"] = "agent.run.queued"
    agent: str
    run: int
    basis: dict[str, str]


class AgentRunStarted(_Base):
    """The run went to the engine as job ``job_id``."""

    type: Literal["agent.run.started"] = "agent.run.started"
    agent: str
    run: int
    job_id: str


class AgentRunSuperseded(_Base):
    """A newer change made the running run's basis out of date: it is cancelled, and its
    result, should it still arrive, is fenced out. ``reason`` is ``changed`` or ``restart``."""

    type: Literal["agent.run.superseded"] = "agent.run.superseded"
    agent: str
    run: int
    reason: Literal["changed", "restart"] = "changed"


class AgentCompleted(_Base):
    """An agent's run ended with a result.

    ``unchanged`` marks an early cutoff: the result equals the previous one on its cutoff
    fields, so its dependents are not woken."""

    type: Literal["agent.completed"] = "agent.completed"
    agent: str
    run: int
    value: Any
    data_version: str
    version: int
    unchanged: bool = False
    tokens: int = 0
    cost_usd: float = 0.0


class AgentFailed(_Base):
    """An agent's run failed (after the engine's retries); it is shown failed until its
    inputs change."""

    type: Literal["agent.failed"] = "agent.failed"
    agent: str
    run: int
    error: str
    tokens: int = 0
    cost_usd: float = 0.0


class AgentDropped(_Base):
    """An agent was left with no input: its result is dropped."""

    type: Literal["agent.dropped"] = "agent.dropped"
    agent: str


class ResultFenced(_Base):
    """A result arrived for a run that is no longer current; it changed nothing."""

    type: Literal["result.fenced"] = "result.fenced"
    agent: str
    run: int
    current_run: int


class AggregateUpdated(_Base):
    """The aggregate was computed again from ``basis`` (the results and inputs it read)."""

    type: Literal["aggregate.updated"] = "aggregate.updated"
    run: int
    value: dict[str, Any]
    version: int
    basis: dict[str, str]
    tokens: int = 0
    cost_usd: float = 0.0


class SessionBlocked(_Base):
    """The session's budget is spent: agents that would run wait instead."""

    type: Literal["session.blocked"] = "session.blocked"
    reason: str


class SessionSettled(_Base):
    """Nothing is left to run for the inputs of ``input_rev``: the board is settled."""

    type: Literal["session.settled"] = "session.settled"
    input_rev: int


SessionEvent = Annotated[
    SessionCreated
    | InputAdded
    | InputRemoved
    | AgentRunQueued
    | AgentRunStarted
    | AgentRunSuperseded
    | AgentCompleted
    | AgentFailed
    | AgentDropped
    | ResultFenced
    | AggregateUpdated
    | SessionBlocked
    | SessionSettled,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[SessionEvent] = TypeAdapter(SessionEvent)


def parse_session_event(data: str | bytes | dict[str, Any]) -> SessionEvent:
    """A session event from its JSON text or its parsed mapping."""
    if isinstance(data, dict):
        return _ADAPTER.validate_python(data)
    return _ADAPTER.validate_json(data)
