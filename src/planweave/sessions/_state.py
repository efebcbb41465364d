"""A session's state: the fold of its event log.

``SessionState.apply`` is the only way the state changes, so the state a store keeps and the
state a replay of the log builds are the same by construction (a test checks it). Inputs,
agent results and the aggregate are versioned nodes; each result records the ``basis`` it was
computed from: the version of every input and the data version of every result it read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from planweave.sessions._events import (
    AgentCompleted,
    AgentDropped,
    AgentFailed,
    AgentRunQueued,
    AgentRunStarted,
    AgentRunSuperseded,
    AggregateUpdated,
    InputAdded,
    InputRemoved,
    ResultFenced,
    SessionBlocked,
    SessionCreated,
    SessionEvent,
    SessionSettled,
)

__all__ = ["AgentNode", "AgentStatus", "AggregateNode", "InputNode", "SessionState"]

AgentStatus = Literal["idle", "running", "fresh", "failed", "dropped"]


class InputNode(BaseModel):
    """One input on the board; a removed one stays as a tombstone (``removed``)."""

    model_config = ConfigDict(extra="forbid")

    input_id: str
    text: str
    tags: tuple[str, ...] = ()
    version: int
    routes: tuple[str, ...] = ()
    route_reason: str = ""
    removed: bool = False
    added_at: float = 0.0


class AgentNode(BaseModel):
    """One agent's latest result and where it stands.

    Attributes:
        status: ``idle`` (never needed), ``running``, ``fresh`` (its result is current),
            ``failed``, ``dropped`` (no input left).
        value: Its latest result (``None`` when it has none).
        data_version: Hash of the result's cutoff fields; what its dependents record.
        version: Bumps each time its result changes.
        basis: What its result was computed from (``input:<id>`` -> version, ``agent:<name>``
            -> data version).
        run: The number of its current (or last) run: results of other runs are fenced out.
        running_basis: The basis of the run in flight.
        job_id: The engine job of its current (or last) run.
        runs: Runs started so far.
    """

    model_config = ConfigDict(extra="forbid")

    status: AgentStatus = "idle"
    value: Any = None
    data_version: str | None = None
    version: int = 0
    basis: dict[str, str] | None = None
    run: int = 0
    running_basis: dict[str, str] | None = None
    job_id: str | None = None
    error: str | None = None
    runs: int = 0


class AggregateNode(BaseModel):
    """The aggregate: the aggregator's latest structured answer and its basis."""

    model_config = ConfigDict(extra="forbid")

    value: dict[str, Any] | None = None
    version: int = 0
    basis: dict[str, str] | None = None
    run: int = 0
    running: bool = False
    running_basis: dict[str, str] | None = None
    job_id: str | None = None
    runs: int = 0


class SessionState(BaseModel):
    """Everything a session holds, as its log built it.

    Attributes:
        seq: The ``seq`` of the last event applied (the session's version).
        input_rev: Bumps on each input added or removed: what a change is based on.
        changed_at: When the inputs last changed (starts the debounce window).
        settled: Whether nothing is left to run for the current inputs.
        cutoffs: Runs whose result equalled the previous one (early cutoffs).
        fenced: Late results of superseded runs that were rejected.
        superseded: Runs cancelled because a newer change made them out of date.
    """

    model_config = ConfigDict(extra="forbid")

    session_id: str
    spec: dict[str, Any] = Field(default_factory=dict)
    tenant: str = "default"
    created_at: float = 0.0
    seq: int = 0
    input_rev: int = 0
    changed_at: float = 0.0
    settled: bool = False
    blocked: str | None = None
    inputs: dict[str, InputNode] = Field(default_factory=dict)
    agents: dict[str, AgentNode] = Field(default_factory=dict)
    aggregate: AggregateNode = Field(default_factory=AggregateNode)
    tokens: int = 0
    cost_usd: float = 0.0
    cutoffs: int = 0
    fenced: int = 0
    superseded: int = 0

    def current_inputs(self) -> list[InputNode]:
        """The inputs not removed, oldest first."""
        return [node for node in self.inputs.values() if not node.removed]

    def copy_state(self) -> SessionState:
        """An independent copy (the propagation works on one).

        Nodes are copied; the values inside them are shared, which is safe because ``apply``
        replaces values and never changes one in place."""
        copy = self.model_copy()
        copy.inputs = {key: node.model_copy() for key, node in self.inputs.items()}
        copy.agents = {key: node.model_copy() for key, node in self.agents.items()}
        copy.aggregate = self.aggregate.model_copy()
        return copy

    def apply(self, event: SessionEvent) -> None:
        """Fold one event into the state (the log is the only writer)."""
        self.seq = event.seq
        if isinstance(event, SessionCreated):
            self.spec = event.spec
            self.tenant = event.tenant
            self.created_at = event.at
            names = [agent["name"] for agent in event.spec.get("agents", [])]
            self.agents = {name: AgentNode() for name in names}
        elif isinstance(event, InputAdded):
            self.inputs[event.input_id] = InputNode(
                input_id=event.input_id,
                text=event.text,
                tags=event.tags,
                version=event.version,
                routes=event.routes,
                route_reason=event.route_reason,
                added_at=event.at,
            )
            self._input_changed(event.input_rev, event.at)
        elif isinstance(event, InputRemoved):
            self.inputs[event.input_id].removed = True
            self._input_changed(event.input_rev, event.at)
        elif isinstance(event, AgentRunQueued):
            self._queued(event)
        elif isinstance(event, AgentRunStarted):
            self._started(event)
        elif isinstance(event, AgentRunSuperseded):
            self._superseded(event)
        elif isinstance(event, AgentCompleted):
            node = self.agents[event.agent]
            node.status, node.value, node.error = "fresh", event.value, None
            node.data_version, node.version = event.data_version, event.version
            node.basis, node.running_basis = node.running_basis, None
            self.cutoffs += event.unchanged
            self._charge(event.tokens, event.cost_usd)
        elif isinstance(event, AgentFailed):
            node = self.agents[event.agent]
            node.status, node.value, node.data_version = "failed", None, None
            node.error = event.error
            node.basis, node.running_basis = node.running_basis, None
            self._charge(event.tokens, event.cost_usd)
        elif isinstance(event, AgentDropped):
            node = self.agents[event.agent]
            if node.value is not None:
                node.version += 1
            node.status, node.value, node.data_version = "dropped", None, None
            node.basis, node.running_basis, node.error = None, None, None
        elif isinstance(event, ResultFenced):
            self.fenced += 1
        elif isinstance(event, AggregateUpdated):
            agg = self.aggregate
            agg.value, agg.version, agg.basis = event.value, event.version, event.basis
            agg.running, agg.running_basis = False, None
            self._charge(event.tokens, event.cost_usd)
        elif isinstance(event, SessionBlocked):
            self.blocked = event.reason
        elif isinstance(event, SessionSettled):
            self.settled = True

    def _input_changed(self, input_rev: int, at: float) -> None:
        self.input_rev = input_rev
        self.changed_at = at
        self.settled = False

    def _queued(self, event: AgentRunQueued) -> None:
        self.settled = False
        if event.agent == self._aggregator_name():
            agg = self.aggregate
            agg.run, agg.running, agg.running_basis = event.run, True, event.basis
            agg.runs += 1
            return
        node = self.agents[event.agent]
        node.status, node.run, node.running_basis = "running", event.run, event.basis
        node.runs += 1

    def _started(self, event: AgentRunStarted) -> None:
        if event.agent == self._aggregator_name():
            self.aggregate.job_id = event.job_id
        else:
            self.agents[event.agent].job_id = event.job_id

    def _superseded(self, event: AgentRunSuperseded) -> None:
        self.superseded += 1
        if event.agent == self._aggregator_name():
            self.aggregate.running, self.aggregate.running_basis = False, None
            return
        node = self.agents[event.agent]
        node.running_basis = None
        # Back to what it showed before the run; the next decision queues a new run.
        if node.error is not None:
            node.status = "failed"
        else:
            node.status = "fresh" if node.value is not None else "idle"

    def _charge(self, tokens: int, cost_usd: float) -> None:
        self.tokens += tokens
        self.cost_usd += cost_usd

    def _aggregator_name(self) -> str | None:
        aggregator = self.spec.get("aggregator")
        return None if aggregator is None else str(aggregator.get("name", "aggregate"))
