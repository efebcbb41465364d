"""Workflow agents, agents as tools and handoffs, run as agents on the scripted model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import pytest

from planweave.agents import (
    Agent,
    AgentContext,
    AgentRegistry,
    AgentResult,
    AgentTask,
    Conditional,
    Loop,
    Parallel,
    ReactAgent,
    Sequential,
    as_tool,
    run_agent,
)
from planweave.errors import ConfigError, HandoffLimitExceeded
from planweave.events import LlmCalled, ToolCalled
from planweave.llm.base import LlmRequest, Model
from planweave.llm.scripted import ScriptedModel
from planweave.tools import ToolContext, ToolRegistry
from planweave.tools.builtins import calculator

T = TypeVar("T")
TASK = AgentTask(goal="Write about Go concurrency")


def make_ctx(
    model: Model,
    tmp_path: Path,
    events: list[LlmCalled | ToolCalled],
    agents: AgentRegistry | None = None,
    **kwargs: Any,
) -> AgentContext:
    async def emit(event: LlmCalled | ToolCalled) -> None:
        events.append(event)

    tools = ToolRegistry([calculator])
    return AgentContext(
        model=model,
        tools=tools,
        tool_context=ToolContext(
            workspace=tmp_path,
            job_id="job1",
            task_id="t1",
            model=model,
            emit=emit,
            tools=tools,
            agents=agents,
        ),
        emit=emit,
        job_id="job1",
        task_id="t1",
        agents=agents,
        **kwargs,
    )


def of_type(events: list[LlmCalled | ToolCalled], kind: type[T]) -> list[T]:
    return [event for event in events if isinstance(event, kind)]


def answers(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """Replies by agent name: each agent answers its text."""
    return [{"match": {"role": name}, "content": text, "repeat": True} for name, text in pairs]


def requests_of(model: ScriptedModel, agent: str) -> list[LlmRequest]:
    return [r for r in model.requests if r.agent == agent]


def user_text(request: LlmRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


async def test_sequential_gives_each_step_the_previous_output(tmp_path: Path) -> None:
    model = ScriptedModel(answers(("writer", "DRAFT-1"), ("reviewer", "REVIEWED-1")))
    events: list[LlmCalled | ToolCalled] = []
    flow = Sequential("draft_review", [ReactAgent("writer"), ReactAgent("reviewer")])

    result = await flow.run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "REVIEWED-1"
    assert [e.agent for e in of_type(events, LlmCalled)] == ["writer", "reviewer"]
    (review,) = requests_of(model, "reviewer")
    assert "DRAFT-1" in user_text(review)
    assert "Write about Go concurrency" in user_text(review)
    assert [s["output"] for s in result.data["steps"]] == ["DRAFT-1", "REVIEWED-1"]


@pytest.mark.parametrize("merge", ["concat", "dict", "function"])
async def test_parallel_runs_every_branch_and_merges(tmp_path: Path, merge: str) -> None:
    model = ScriptedModel(answers(("alpha", "from alpha"), ("beta", "from beta")))
    events: list[LlmCalled | ToolCalled] = []

    def shortest(outputs: dict[str, str]) -> str:
        return " | ".join(f"{name}={len(text)}" for name, text in sorted(outputs.items()))

    flow = Parallel(
        "research",
        [ReactAgent("alpha"), ReactAgent("beta")],
        merge=shortest if merge == "function" else merge,  # type: ignore[arg-type]
    )

    result = await flow.run(TASK, make_ctx(model, tmp_path, events))

    assert sorted(e.agent or "" for e in of_type(events, LlmCalled)) == ["alpha", "beta"]
    if merge == "concat":
        assert "## alpha\n\nfrom alpha" in result.output
        assert "## beta\n\nfrom beta" in result.output
    elif merge == "dict":
        assert json.loads(result.output) == {"alpha": "from alpha", "beta": "from beta"}
        assert result.data == {"alpha": "from alpha", "beta": "from beta"}
    else:
        assert result.output == "alpha=10 | beta=9"


async def test_parallel_names_repeated_agents_apart(tmp_path: Path) -> None:
    model = ScriptedModel(answers(("alpha", "same")))
    alpha = ReactAgent("alpha")
    flow = Parallel("twice", [alpha, alpha], merge="dict")
    result = await flow.run(TASK, make_ctx(model, tmp_path, []))
    assert json.loads(result.output) == {"alpha": "same", "alpha_2": "same"}


async def test_conditional_follows_its_predicate(tmp_path: Path) -> None:
    model = ScriptedModel(answers(("billing", "refund issued"), ("tech", "rebooted")))
    events: list[LlmCalled | ToolCalled] = []
    flow = Conditional(
        "desk",
        {"billing": ReactAgent("billing"), "tech": ReactAgent("tech")},
        predicate=lambda task: "tech" if "crash" in task.goal else "billing",
    )

    result = await flow.run(AgentTask(goal="my app crashes"), make_ctx(model, tmp_path, events))

    assert result.output == "rebooted"
    assert result.data["branch"] == "tech"
    assert [e.agent for e in of_type(events, LlmCalled)] == ["tech"]


async def test_conditional_on_an_llm_decision_is_recorded(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"role": "desk"}, "json": {"branch": "billing"}},
            *answers(("billing", "refund issued"), ("tech", "rebooted")),
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    billing = ReactAgent("billing")
    flow = Conditional("desk", {"billing": billing, "tech": ReactAgent("tech")}, decide="llm")

    result = await flow.run(
        AgentTask(goal="I was charged twice"), make_ctx(model, tmp_path, events)
    )

    assert result.output == "refund issued"
    decision, answer = of_type(events, LlmCalled)
    assert decision.agent == "desk"
    assert "billing" in decision.reply
    assert "I was charged twice" in decision.prompt
    assert answer.agent == "billing"
    (ask,) = requests_of(model, "desk")
    assert ask.response_schema is not None
    assert ask.response_schema["properties"]["branch"]["enum"] == ["billing", "tech"]


async def test_conditional_llm_choice_outside_the_branches_takes_the_default(
    tmp_path: Path,
) -> None:
    model = ScriptedModel(
        [{"match": {"role": "desk"}, "json": {"branch": "sales"}}, *answers(("tech", "ok"))]
    )
    flow = Conditional(
        "desk", {"billing": ReactAgent("billing"), "tech": ReactAgent("tech")}, decide="llm",
        default="tech",
    )  # fmt: skip
    result = await flow.run(TASK, make_ctx(model, tmp_path, []))
    assert result.data["branch"] == "tech"


def test_conditional_needs_exactly_one_way_to_choose() -> None:
    branches: dict[str, Agent] = {"a": ReactAgent("a")}
    with pytest.raises(ConfigError, match="predicate"):
        Conditional("c", branches)
    with pytest.raises(ConfigError, match="predicate"):
        Conditional("c", branches, predicate=lambda t: "a", decide="llm")
    with pytest.raises(ConfigError, match="default 'b' is not a branch"):
        Conditional("c", branches, decide="llm", default="b")


async def test_loop_runs_until_its_predicate_holds(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"role": "editor"}, "content": "draft v1"},
            {"match": {"role": "editor"}, "content": "draft v2 APPROVED"},
            {"match": {"role": "editor"}, "content": "never reached", "repeat": True},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    flow = Loop(
        "edit",
        ReactAgent("editor"),
        until=lambda r: "APPROVED" in r.output,
        max_iterations=5,
    )

    result = await flow.run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "draft v2 APPROVED"
    assert result.data["iterations"] == 2 and result.data["stopped"] == "until"
    second = requests_of(model, "editor")[1]
    assert "draft v1" in user_text(second)  # each iteration sees the previous output


async def test_loop_stops_at_its_bound(tmp_path: Path) -> None:
    model = ScriptedModel(answers(("editor", "not yet")))
    flow = Loop("edit", ReactAgent("editor"), until=lambda r: False, max_iterations=3)
    result = await flow.run(TASK, make_ctx(model, tmp_path, []))
    assert result.data == {
        "iterations": 3,
        "stopped": "max_iterations",
        "result": result.data["result"],
    }
    assert len(requests_of(model, "editor")) == 3


def test_a_loop_without_a_bound_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="has no bound"):
        Loop("edit", ReactAgent("editor"), until=lambda r: True)
    with pytest.raises(ConfigError, match="at least 1"):
        Loop("edit", ReactAgent("editor"), max_iterations=0)


async def test_workflows_nest(tmp_path: Path) -> None:
    model = ScriptedModel(answers(("alpha", "A"), ("beta", "B"), ("writer", "report from A and B")))
    team = Sequential(
        "team",
        [Parallel("research", [ReactAgent("alpha"), ReactAgent("beta")]), ReactAgent("writer")],
    )
    result = await team.run(TASK, make_ctx(model, tmp_path, []))
    assert result.output == "report from A and B"
    (write,) = requests_of(model, "writer")
    assert "## alpha\n\nA" in user_text(write) and "## beta\n\nB" in user_text(write)


async def test_an_agent_as_a_tool_is_recorded_under_its_own_name(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"role": "boss"},
                "tool_calls": [{"name": "researcher", "arguments": {"task": "find 6*7"}}],
            },
            {
                "match": {"role": "researcher"},
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}],
            },
            {"match": {"role": "researcher"}, "content": "It is 42."},
            {"match": {"role": "boss"}, "content": "The researcher says 42."},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    researcher = ReactAgent("researcher", tools=["calculator"])
    boss = ReactAgent("boss", tools=[as_tool(researcher, description="Finds facts")])

    result = await boss.run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "The researcher says 42."
    llm = of_type(events, LlmCalled)
    assert [e.agent for e in llm] == ["boss", "researcher", "researcher", "boss"]
    assert all((e.job_id, e.task_id) == ("job1", "t1") for e in llm)
    inner_call, outer_call = of_type(events, ToolCalled)
    assert (inner_call.name, inner_call.agent, inner_call.result) == (
        "calculator",
        "researcher",
        "42",
    )
    assert (outer_call.name, outer_call.agent) == ("researcher", "boss")
    assert outer_call.result == "It is 42."
    (first_boss, _) = requests_of(model, "boss")
    (spec,) = first_boss.tools
    assert spec.name == "researcher" and spec.description == "Finds facts"
    assert "find 6*7" in user_text(requests_of(model, "researcher")[0])


async def test_a_handoff_passes_the_task_with_its_context(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"role": "triage"},
                "tool_calls": [
                    {
                        "name": "handoff_to_billing",
                        "arguments": {"note": "customer #7, charged twice"},
                    }
                ],
            },
            {"match": {"role": "billing"}, "content": "Refunded customer #7."},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    triage = ReactAgent("triage", handoffs=["billing"])
    billing = ReactAgent("billing")
    agents = AgentRegistry([triage, billing])
    task = AgentTask(goal="I was charged twice", inputs={"ticket": "T-99"})

    result = await run_agent(triage, task, make_ctx(model, tmp_path, events, agents))

    assert result.output == "Refunded customer #7."
    assert [e.agent for e in of_type(events, LlmCalled)] == ["triage", "billing"]
    (spec,) = requests_of(model, "triage")[0].tools[-1:]
    assert spec.name == "handoff_to_billing"
    seen = user_text(requests_of(model, "billing")[0])
    assert "I was charged twice" in seen and "T-99" in seen
    assert "customer #7, charged twice" in seen


async def test_handoffs_are_bounded(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"role": "ping"},
                "tool_calls": [{"name": "handoff_to_pong", "arguments": {}}],
                "repeat": True,
            },
            {
                "match": {"role": "pong"},
                "tool_calls": [{"name": "handoff_to_ping", "arguments": {}}],
                "repeat": True,
            },
        ]
    )
    ping = ReactAgent("ping", handoffs=["pong"])
    pong = ReactAgent("pong", handoffs=["ping"])
    ctx = make_ctx(model, tmp_path, [], AgentRegistry([ping, pong]), max_handoffs=2)

    with pytest.raises(HandoffLimitExceeded, match="more than 2 times") as caught:
        await run_agent(ping, TASK, ctx)

    assert "ping -> pong -> ping -> pong" in str(caught.value)
    assert [r.agent for r in model.requests] == ["ping", "pong", "ping"]


async def test_a_handoff_to_an_unknown_agent_is_a_config_error(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"role": "triage"},
                "tool_calls": [{"name": "handoff_to_nobody", "arguments": {}}],
            }
        ]
    )
    triage = ReactAgent("triage", handoffs=["nobody"])
    ctx = make_ctx(model, tmp_path, [], AgentRegistry([triage]))
    with pytest.raises(ConfigError, match="unknown agent 'nobody'"):
        await run_agent(triage, TASK, ctx)


def test_registering_a_workflow_registers_its_members() -> None:
    alpha, beta, writer = ReactAgent("alpha"), ReactAgent("beta"), ReactAgent("writer")
    team = Sequential("team", [Parallel("research", [alpha, beta]), writer])
    registry = AgentRegistry([team, writer])  # a member listed again is the same agent
    # the merge agent runs the merge task, but is not offered to a planner
    assert registry.names() == ["alpha", "beta", "research", "team", "writer"]
    assert "research.merge" in registry
    assert registry.get("writer") is writer
    with pytest.raises(ConfigError, match="'writer' is already registered"):
        registry.register(Sequential("other", [ReactAgent("writer")]))


def test_workflows_check_their_parts() -> None:
    with pytest.raises(ConfigError, match="has no agents"):
        Sequential("empty", [])
    with pytest.raises(ConfigError, match="is not an agent"):
        Parallel("bad", ["writer"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="merge must be"):
        Parallel("bad", [ReactAgent("a")], merge="sum")  # type: ignore[arg-type]


class Echo:
    """A custom agent: anything with a name and an async run is one."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        return AgentResult(output=f"{self.name}: {task.goal} {sorted(task.inputs)}")


async def test_custom_agents_compose_with_the_rest(tmp_path: Path) -> None:
    flow = Sequential("pair", [Echo("one"), Echo("two")])
    result = await flow.run(TASK, make_ctx(ScriptedModel(), tmp_path, []))
    assert result.output == "two: Write about Go concurrency ['one']"
