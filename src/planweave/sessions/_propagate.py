"""Propagation: which agents of a session run next, as pure functions of its state.

``decide(state, spec, now)`` and ``on_result(state, spec, now, outcome)`` return the events
that follow from the state and the commands the runtime carries out (run this agent with this
prompt, cancel that run). They read no clock (``now`` is passed in), do no I/O and never change
the state they are given, so they are tested without an event loop.

The rules:

* an agent's *basis* is the version of every current input routed to it and the data version
  of every dependency that has a result; it runs when its basis differs from the one its
  result was computed from, and only once no agent it depends on is running or about to;
* early cutoff: a result whose data version (a hash of its cutoff fields) equals the previous
  one leaves its dependents' bases unchanged, so they do not run;
* a running run whose basis is out of date is superseded (cancelled); its late result is
  fenced out by its run number;
* nothing runs until the inputs have been quiet for ``debounce_s``: decisions compare
  versions, so any number of quick changes coalesce into one run per agent;
* an agent left with no input and no dependency result drops its result;
* the aggregator runs once every agent is settled, over exactly the current inputs and results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from planweave.sessions._events import (
    AgentCompleted,
    AgentDropped,
    AgentFailed,
    AgentRunQueued,
    AgentRunSuperseded,
    AggregateUpdated,
    ResultFenced,
    SessionBlocked,
    SessionEvent,
    SessionSettled,
)
from planweave.sessions._spec import SessionAgentSpec, SessionSpec
from planweave.sessions._state import SessionState

__all__ = [
    "CancelRun",
    "Decision",
    "RunAgent",
    "RunOutcome",
    "agent_basis",
    "aggregate_basis",
    "data_version",
    "decide",
    "on_result",
    "recover",
    "visible",
]


@dataclass(frozen=True, slots=True)
class RunAgent:
    """Run ``agent`` (or the aggregator) as run number ``run`` with ``prompt`` (for an LLM
    agent) or ``data`` (the same, structured, for a ``reactive`` function)."""

    agent: str
    run: int
    prompt: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelRun:
    """Cancel run ``run`` of ``agent`` (its engine job, when it has one)."""

    agent: str
    run: int
    job_id: str | None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How an agent's run ended, as the runtime reports it."""

    agent: str
    run: int
    ok: bool
    value: Any = None
    error: str = ""
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(slots=True)
class Decision:
    """What follows from a state: events to append, commands to carry out, when to decide
    again at the latest (the end of the debounce window), and the state after the events."""

    state: SessionState
    events: list[SessionEvent] = field(default_factory=list)
    commands: list[RunAgent | CancelRun] = field(default_factory=list)
    wake_at: float | None = None


class _Emitter:
    """Applies each new event to a private copy of the state as it is decided."""

    def __init__(self, state: SessionState, now: float) -> None:
        self.state = state.copy_state()
        self.now = now
        self.decision = Decision(state=self.state)

    def __call__(self, event: SessionEvent) -> None:
        event = event.model_copy(
            update={"seq": self.state.seq + 1, "at": self.now, "session_id": self.state.session_id}
        )
        self.state.apply(event)
        self.decision.events.append(event)


def visible(agent: SessionAgentSpec | None, value: Any) -> Any:
    """A result's cutoff projection: what its dependents and the aggregator read (its
    ``cutoff`` fields, or all of it)."""
    if agent is not None and agent.cutoff and isinstance(value, dict):
        return {key: value.get(key) for key in agent.cutoff}
    return value


def data_version(agent: SessionAgentSpec | None, value: Any) -> str:
    """Hash of a result's cutoff projection (``visible``)."""
    value = visible(agent, value)
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def agent_basis(state: SessionState, spec: SessionSpec, name: str) -> dict[str, str]:
    """What ``name`` would be computed from now."""
    basis = {
        f"input:{node.input_id}": str(node.version)
        for node in state.current_inputs()
        if name in node.routes
    }
    for dep in spec.agent(name).depends_on:
        version = state.agents[dep].data_version
        if version is not None:
            basis[f"agent:{dep}"] = version
    return basis


def aggregate_basis(state: SessionState) -> dict[str, str]:
    """What the aggregate would be computed from now: every input and every result."""
    basis = {f"input:{node.input_id}": str(node.version) for node in state.current_inputs()}
    for name, node in state.agents.items():
        if node.data_version is not None:
            basis[f"agent:{name}"] = node.data_version
    return basis


def recover(state: SessionState, spec: SessionSpec, now: float) -> Decision:
    """After a restart: the runs that were in flight are superseded (their process is gone),
    then ``decide`` runs them again."""
    emit = _Emitter(state, now)
    decision = emit.decision
    for name, node in emit.state.agents.items():
        if node.status == "running":
            emit(AgentRunSuperseded(session_id="", agent=name, run=node.run, reason="restart"))
            decision.commands.append(CancelRun(name, node.run, node.job_id))
    agg = emit.state.aggregate
    if agg.running and spec.aggregator is not None:
        emit(
            AgentRunSuperseded(
                session_id="", agent=spec.aggregator.name, run=agg.run, reason="restart"
            )
        )
        decision.commands.append(CancelRun(spec.aggregator.name, agg.run, agg.job_id))
    return _decide(emit, spec, decision)


def decide(state: SessionState, spec: SessionSpec, now: float) -> Decision:
    """The runs, drops, cancellations and aggregate updates that follow from ``state``."""
    emit = _Emitter(state, now)
    return _decide(emit, spec, emit.decision)


def on_result(state: SessionState, spec: SessionSpec, now: float, outcome: RunOutcome) -> Decision:
    """Record a run's outcome (or fence it out), then ``decide`` what follows."""
    emit = _Emitter(state, now)
    decision = emit.decision
    s = emit.state
    if spec.aggregator is not None and outcome.agent == spec.aggregator.name:
        agg = s.aggregate
        if not agg.running or agg.run != outcome.run:
            emit(_fenced(outcome, agg.run))
        else:
            answer = outcome.value if outcome.ok else {"error": outcome.error}
            emit(
                AggregateUpdated(
                    session_id="",
                    run=outcome.run,
                    value=build_aggregate(s, spec, answer),
                    version=agg.version + 1,
                    basis=agg.running_basis or {},
                    tokens=outcome.tokens,
                    cost_usd=outcome.cost_usd,
                )
            )
        return _decide(emit, spec, decision)
    node = s.agents.get(outcome.agent)
    if node is None or node.status != "running" or node.run != outcome.run:
        emit(_fenced(outcome, 0 if node is None else node.run))
    elif outcome.ok:
        version = data_version(spec.agent(outcome.agent), outcome.value)
        unchanged = version == node.data_version
        emit(
            AgentCompleted(
                session_id="",
                agent=outcome.agent,
                run=outcome.run,
                value=outcome.value,
                data_version=version,
                version=node.version if unchanged else node.version + 1,
                unchanged=unchanged,
                tokens=outcome.tokens,
                cost_usd=outcome.cost_usd,
            )
        )
    else:
        emit(
            AgentFailed(
                session_id="",
                agent=outcome.agent,
                run=outcome.run,
                error=outcome.error,
                tokens=outcome.tokens,
                cost_usd=outcome.cost_usd,
            )
        )
    return _decide(emit, spec, decision)


def _fenced(outcome: RunOutcome, current: int) -> ResultFenced:
    return ResultFenced(session_id="", agent=outcome.agent, run=outcome.run, current_run=current)


def _over_budget(state: SessionState, spec: SessionSpec) -> str | None:
    budget = spec.budget
    if budget.max_tokens is not None and state.tokens >= budget.max_tokens:
        return f"the session spent {state.tokens} tokens of its {budget.max_tokens}"
    if budget.max_cost_usd is not None and state.cost_usd >= budget.max_cost_usd:
        return f"the session spent ${state.cost_usd:.4f} of its ${budget.max_cost_usd:.4f}"
    return None


def _decide(emit: _Emitter, spec: SessionSpec, decision: Decision) -> Decision:
    s = emit.state
    quiet_at = s.changed_at + spec.debounce_s
    if emit.now < quiet_at:
        if not s.settled:
            decision.wake_at = quiet_at
        return decision
    over = _over_budget(s, spec)
    if over is not None and s.blocked is None:
        emit(SessionBlocked(session_id="", reason=over))
    busy: set[str] = set()
    pending = False
    for name in spec.order():
        agent = spec.agent(name)
        node = s.agents[name]
        if any(dep in busy for dep in agent.depends_on):
            busy.add(name)
            continue
        basis = agent_basis(s, spec, name)
        if node.status == "running":
            if node.running_basis == basis:
                busy.add(name)
                continue
            emit(AgentRunSuperseded(session_id="", agent=name, run=node.run))
            decision.commands.append(CancelRun(name, node.run, node.job_id))
        if not basis:
            if node.status in ("fresh", "failed"):
                emit(AgentDropped(session_id="", agent=name))
            continue
        if node.status in ("fresh", "failed") and node.basis == basis:
            continue
        if over is not None:
            pending = True
            continue
        run = node.run + 1
        emit(AgentRunQueued(session_id="", agent=name, run=run, basis=basis))
        decision.commands.append(
            RunAgent(name, run, agent_prompt(s, spec, name), agent_data(s, spec, name))
        )
        busy.add(name)
    if busy or pending:
        return decision
    if spec.aggregator is not None and not _aggregate_settled(emit, spec, decision, over):
        return decision
    if not s.settled:
        emit(SessionSettled(session_id="", input_rev=s.input_rev))
    return decision


def _aggregate_settled(
    emit: _Emitter, spec: SessionSpec, decision: Decision, over: str | None
) -> bool:
    s = emit.state
    assert spec.aggregator is not None
    name = spec.aggregator.name
    agg = s.aggregate
    basis = aggregate_basis(s)
    if agg.running:
        if agg.running_basis == basis:
            return False
        emit(AgentRunSuperseded(session_id="", agent=name, run=agg.run))
        decision.commands.append(CancelRun(name, agg.run, agg.job_id))
    if agg.basis == basis:
        return True
    if not any(key.startswith("agent:") for key in basis):
        # Nothing to aggregate: the empty aggregate needs no run.
        value = build_aggregate(s, spec, {})
        emit(
            AggregateUpdated(
                session_id="", run=agg.run, value=value, version=agg.version + 1, basis=basis
            )
        )
        return True
    if over is not None:
        return False
    run = agg.run + 1
    emit(AgentRunQueued(session_id="", agent=name, run=run, basis=basis))
    decision.commands.append(
        RunAgent(name, run, aggregate_prompt(s, spec), aggregate_data(s, spec))
    )
    return False


def build_aggregate(state: SessionState, spec: SessionSpec, answer: Any) -> dict[str, Any]:
    """The aggregate from the aggregator's answer and the board: ``completion_percent``,
    ``recommendations``, ``next_steps``, ``budget_summary``, ``active_agents`` and
    ``missing_agents``."""
    assert spec.aggregator is not None
    required = spec.aggregator.required or tuple(agent.name for agent in spec.agents)
    active = [name for name in required if state.agents[name].value is not None]
    answer = answer if isinstance(answer, dict) else {"recommendations": [str(answer)]}
    value: dict[str, Any] = {
        "completion_percent": round(100 * len(active) / len(required)) if required else 100,
        "recommendations": _as_list(answer.get("recommendations")),
        "next_steps": _as_list(answer.get("next_steps")),
        "budget_summary": answer.get("budget_summary") or {},
        "active_agents": active,
        "missing_agents": [name for name in required if name not in active],
    }
    if answer.get("error"):
        value["error"] = str(answer["error"])
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def agent_prompt(state: SessionState, spec: SessionSpec, name: str) -> str:
    """What an agent is asked: the inputs routed to it and the results it depends on."""
    lines = [f"Session agent {name}: react to the inputs and results below."]
    inputs = [node for node in state.current_inputs() if name in node.routes]
    if inputs:
        lines.append("Inputs:")
        lines += [_input_line(node.text, node.tags) for node in inputs]
    deps = [dep for dep in spec.agent(name).depends_on if state.agents[dep].value is not None]
    if deps:
        lines.append("Results of the agents it depends on:")
        lines += [
            f"- {dep}: {_text(visible(spec.agent(dep), state.agents[dep].value))}" for dep in deps
        ]
    return "\n".join(lines)


def agent_data(state: SessionState, spec: SessionSpec, name: str) -> dict[str, Any]:
    """``agent_prompt`` as data: ``{"inputs": [{"text", "tags"}], "results": {agent: value}}``."""
    inputs = [node for node in state.current_inputs() if name in node.routes]
    deps = [dep for dep in spec.agent(name).depends_on if state.agents[dep].value is not None]
    return {
        "inputs": [{"text": node.text, "tags": list(node.tags)} for node in inputs],
        "results": {dep: visible(spec.agent(dep), state.agents[dep].value) for dep in deps},
    }


def aggregate_data(state: SessionState, spec: SessionSpec) -> dict[str, Any]:
    """``aggregate_prompt`` as data."""
    return {
        "inputs": [{"text": n.text, "tags": list(n.tags)} for n in state.current_inputs()],
        "results": {
            name: visible(spec.agent(name), node.value)
            for name, node in state.agents.items()
            if node.value is not None
        },
    }


def aggregate_prompt(state: SessionState, spec: SessionSpec) -> str:
    """What the aggregator is asked: every current input and result."""
    lines = ["Aggregate the session: every current input and agent result is below."]
    lines.append("Inputs:")
    lines += [_input_line(node.text, node.tags) for node in state.current_inputs()]
    lines.append("Results:")
    for name, node in state.agents.items():
        if node.value is not None:
            lines.append(f"- {name}: {_text(visible(spec.agent(name), node.value))}")
    lines.append(
        'Answer with JSON: {"recommendations": [...], "next_steps": [...], "budget_summary": {...}}'
    )
    return "\n".join(lines)


def _input_line(text: str, tags: Sequence[str]) -> str:
    suffix = f" (tags: {', '.join(tags)})" if tags else ""
    return f"- {text}{suffix}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
