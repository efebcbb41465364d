"""The pure propagation of sessions, without an event loop: fencing, supersede, debounce,
retraction, early cutoff, and (hypothesis) from-scratch equivalence under any interleaving of
changes and run outcomes."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from planweave.sessions import (
    AgentDropped,
    AgentRunSuperseded,
    CancelRun,
    InputAdded,
    InputRemoved,
    RunAgent,
    RunOutcome,
    SessionCreated,
    SessionSpec,
    SessionState,
    decide,
    on_result,
)
from planweave.sessions._propagate import Decision

SPEC = SessionSpec.from_data(
    {
        "name": "p",
        "debounce_s": 0,
        "agents": [
            {"name": "theme", "instructions": "x", "consumes": {"tags": ["theme"]},
             "cutoff": ["kind"]},
            {"name": "cake", "instructions": "x", "consumes": {"tags": ["cake"]},
             "depends_on": ["theme"]},
            {"name": "venue", "instructions": "x", "consumes": {"tags": ["venue"]},
             "depends_on": ["theme"]},
            {"name": "budget", "instructions": "x", "consumes": {"tags": ["budget"]},
             "depends_on": ["cake", "venue"]},
        ],
        "aggregator": {"name": "plan", "instructions": "y"},
    }
)  # fmt: skip
TAGS = ["theme", "cake", "venue", "budget"]


def answer(agent: str, prompt: str) -> Any:
    """A deterministic stand-in for an agent: a function of exactly what it was shown."""
    lines = sorted(line for line in prompt.splitlines() if line.startswith("- "))
    digest = hashlib.blake2b("\n".join(lines).encode(), digest_size=4).hexdigest()
    if agent == "theme":  # its dependents read only `kind`: a cutoff field
        return {"kind": len(lines) % 2, "digest": digest}
    if agent == "plan":
        return {"recommendations": [digest], "next_steps": []}
    return {"digest": digest}


class Sim:
    """Drives the pure functions the way the runtime does, with runs completing whenever the
    test says."""

    def __init__(self) -> None:
        self.state = SessionState(session_id="s")
        self.now = 0.0
        self.pending: list[RunAgent] = []
        self.next_input = 0
        self.apply(
            Decision(
                state=self.state,
                events=[SessionCreated(session_id="s", spec=SPEC.model_dump(mode="json"))],
            ),
            fold=True,
        )

    def apply(self, decision: Decision, *, fold: bool = False) -> None:
        if fold:
            for event in decision.events:
                event = event.model_copy(update={"seq": self.state.seq + 1, "at": self.now})
                self.state.apply(event)
        else:
            self.state = decision.state
        for command in decision.commands:
            if isinstance(command, RunAgent):
                self.pending.append(command)
            elif isinstance(command, CancelRun):
                self.pending = [
                    p for p in self.pending if (p.agent, p.run) != (command.agent, command.run)
                ]

    def tick(self) -> None:
        self.now += 1
        self.apply(decide(self.state, SPEC, self.now))

    def add(self, tag: str, text: str | None = None) -> str:
        self.next_input += 1
        input_id = f"i{self.next_input}"
        rev = self.state.input_rev + 1
        event = InputAdded(
            session_id="s", input_id=input_id, text=text or f"text {input_id}", tags=(tag,),
            version=rev, input_rev=rev, routes=(tag,),
        )  # fmt: skip
        self.now += 1
        self.apply(Decision(state=self.state, events=[event]), fold=True)
        self.tick()
        return input_id

    def remove(self, input_id: str) -> None:
        event = InputRemoved(session_id="s", input_id=input_id, input_rev=self.state.input_rev + 1)
        self.now += 1
        self.apply(Decision(state=self.state, events=[event]), fold=True)
        self.tick()

    def complete(self, index: int, *, keep: bool = False) -> RunAgent:
        command = self.pending[index] if keep else self.pending.pop(index)
        outcome = RunOutcome(command.agent, command.run, ok=True,
                             value=answer(command.agent, command.prompt))  # fmt: skip
        self.now += 1
        self.apply(on_result(self.state, SPEC, self.now, outcome))
        return command

    def settle(self) -> None:
        for _ in range(200):
            if not self.pending:
                self.tick()
                if not self.pending:
                    return
                continue
            self.complete(0)
        raise AssertionError("did not settle")


def board(state: SessionState) -> dict[str, Any]:
    return {
        "agents": {name: node.value for name, node in state.agents.items()},
        "aggregate": state.aggregate.value,
        "inputs": sorted(node.text for node in state.current_inputs()),
    }


def test_a_late_result_of_a_superseded_run_is_fenced_out() -> None:
    sim = Sim()
    first = sim.add("theme")
    assert [p.agent for p in sim.pending] == ["theme"]
    late = sim.pending[0]
    sim.add("theme")  # theme's basis changes while it runs: superseded
    events_before = sim.state.seq
    assert [p.run for p in sim.pending if p.agent == "theme"] == [late.run + 1]
    sim.apply(
        on_result(
            sim.state, SPEC, sim.now,
            RunOutcome("theme", late.run, ok=True, value={"kind": 9, "digest": "late"}),
        )
    )  # fmt: skip
    assert sim.state.fenced == 1
    assert sim.state.agents["theme"].value is None
    assert sim.state.seq == events_before + 1
    sim.settle()
    assert sim.state.agents["theme"].value != {"kind": 9, "digest": "late"}
    assert sim.state.superseded == 1
    sim.remove(first)
    sim.settle()
    assert sim.state.settled


def test_supersede_emits_an_event_and_cancels_the_run() -> None:
    sim = Sim()
    sim.add("theme")
    run = sim.pending[0]
    sim.now += 1
    state = sim.state.copy_state()
    event = InputAdded(
        session_id="s", input_id="x", text="more", tags=("theme",), version=2, input_rev=2,
        routes=("theme",), seq=state.seq + 1, at=sim.now,
    )  # fmt: skip
    state.apply(event)
    decision = decide(state, SPEC, sim.now + 1)
    superseded = [e for e in decision.events if isinstance(e, AgentRunSuperseded)]
    assert [(e.agent, e.run) for e in superseded] == [("theme", run.run)]
    assert CancelRun("theme", run.run, None) in decision.commands
    assert [c.run for c in decision.commands if isinstance(c, RunAgent)] == [run.run + 1]


def test_nothing_runs_inside_the_debounce_window() -> None:
    spec = SPEC.model_copy(update={"debounce_s": 5.0})
    state = SessionState(session_id="s")
    state.apply(SessionCreated(session_id="s", seq=1, spec=spec.model_dump(mode="json")))
    state.apply(
        InputAdded(
            session_id="s", seq=2, at=100.0, input_id="a", text="t", tags=("theme",),
            version=1, input_rev=1, routes=("theme",),
        )
    )  # fmt: skip
    early = decide(state, spec, 103.0)
    assert early.events == [] and early.commands == [] and early.wake_at == 105.0
    late = decide(state, spec, 105.0)
    assert [c.agent for c in late.commands if isinstance(c, RunAgent)] == ["theme"]


def test_decide_never_changes_the_state_it_is_given() -> None:
    sim = Sim()
    sim.add("theme")
    before = sim.state.model_dump()
    decide(sim.state, SPEC, sim.now + 10)
    on_result(sim.state, SPEC, sim.now, RunOutcome("theme", 1, ok=True, value={"kind": 0}))
    assert sim.state.model_dump() == before


def test_retraction_drops_agents_left_without_input_and_reruns_the_rest() -> None:
    sim = Sim()
    theme = sim.add("theme")
    sim.add("budget")
    sim.settle()
    assert all(node.value is not None for node in sim.state.agents.values())
    event = InputRemoved(session_id="s", input_id=theme, input_rev=sim.state.input_rev + 1)
    sim.apply(Decision(state=sim.state, events=[event]), fold=True)
    decision = decide(sim.state, SPEC, sim.now + 1)
    dropped = {e.agent for e in decision.events if isinstance(e, AgentDropped)}
    assert dropped == {"theme", "cake", "venue"}
    assert [c.agent for c in decision.commands if isinstance(c, RunAgent)] == ["budget"]
    sim.apply(decision)
    sim.settle()
    assert {n for n, node in sim.state.agents.items() if node.value is None} == {
        "theme", "cake", "venue",
    }  # fmt: skip
    assert sim.state.agents["budget"].value is not None
    assert sim.state.aggregate.value is not None
    assert sim.state.aggregate.value["active_agents"] == ["budget"]


def test_early_cutoff_keeps_dependents_asleep() -> None:
    sim = Sim()
    sim.add("theme")
    sim.settle()
    cake_runs = sim.state.agents["cake"].runs
    # Two more theme inputs at once: theme sees 3 lines, `kind` 1 as with 1 line.
    sim.add("theme")
    sim.add("theme")
    sim.settle()
    assert sim.state.cutoffs >= 1
    assert sim.state.agents["cake"].runs == cake_runs


def scratch(texts_and_tags: list[tuple[str, str]]) -> SessionState:
    sim = Sim()
    for text, tag in texts_and_tags:
        sim.add(tag, text)
    sim.settle()
    return sim.state


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(TAGS)),
        st.tuples(st.just("remove"), st.integers(0, 20)),
        st.tuples(st.just("complete"), st.integers(0, 20)),
        st.tuples(st.just("tick"), st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_the_settled_board_equals_a_from_scratch_computation(ops: list[tuple[str, Any]]) -> None:
    sim = Sim()
    tags: dict[str, str] = {}
    for op, arg in ops:
        current = [i for i, node in sim.state.inputs.items() if not node.removed]
        if op == "add":
            tags[sim.add(arg)] = arg
        elif op == "remove" and current:
            sim.remove(current[arg % len(current)])
        elif op == "complete" and sim.pending:
            sim.complete(arg % len(sim.pending))
        else:
            sim.tick()
    sim.settle()
    final = [(node.text, tags[node.input_id]) for node in sim.state.current_inputs()]
    fresh = scratch(final)
    assert sim.state.settled and fresh.settled
    assert board(sim.state) == board(fresh)
