from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import pytest

import planweave.agents
from planweave.agents import (
    AgentContext,
    AgentRegistry,
    AgentResult,
    AgentTask,
    ReactAgent,
    call_model,
)
from planweave.agents.react import action_schema
from planweave.errors import AnswerRejected, ConfigError, ModelResponseError, ModelUnavailable
from planweave.events import LlmCalled, ToolCalled
from planweave.llm import ModelProfile
from planweave.llm.base import ChatMessage, LlmRequest, LlmResponse, Model, ToolCall
from planweave.llm.scripted import ScriptedModel
from planweave.tools import ToolContext, ToolRegistry
from planweave.tools.builtins import calculator


def shout(text: str) -> str:
    """Return the text in capitals.

    Args:
        text: What to shout.
    """
    return text.upper()


class TextOnlyModel(ScriptedModel):
    """A scripted model without native tool calling, like the local model."""

    supports_tools = False


def make_ctx(
    model: Model, tmp_path: Path, events: list[LlmCalled | ToolCalled], **kwargs: Any
) -> AgentContext:
    async def emit(event: LlmCalled | ToolCalled) -> None:
        events.append(event)

    return AgentContext(
        model=model,
        tools=ToolRegistry([calculator, shout]),
        tool_context=ToolContext(workspace=tmp_path, job_id="job1", task_id="t1"),
        emit=emit,
        job_id="job1",
        task_id="t1",
        **kwargs,
    )


T = TypeVar("T")


def of_type(events: list[LlmCalled | ToolCalled], kind: type[T]) -> list[T]:
    return [event for event in events if isinstance(event, kind)]


TASK = AgentTask(goal="What is (2+3) squared?", job_goal="Do some arithmetic")


async def test_native_tool_use_feeds_the_result_back_and_answers(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"role": "executor", "contains": "squared"},
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "(2+3)**2"}}],
            },
            {"match": {"role": "executor"}, "content": "The answer is 25."},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "The answer is 25."
    assert result.steps == 2
    first, second = model.requests
    assert [spec.name for spec in first.tools] == ["calculator", "shout"]
    assert first.role == "executor" and first.agent == "executor"
    tool_messages = [m for m in second.messages if m.role == "tool"]
    assert len(tool_messages) == 1
    assert tool_messages[0].content == "25"
    assert tool_messages[0].tool_call_id == second.messages[-2].tool_calls[0].id
    assert second.messages[-2].role == "assistant"


async def test_events_report_model_and_tool_calls(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"contains": "squared"},
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "(2+3)**2"}}],
            },
            {"content": "25"},
        ],
        name="scripted:test",
    )
    events: list[LlmCalled | ToolCalled] = []
    await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    llm = of_type(events, LlmCalled)
    tools = of_type(events, ToolCalled)
    assert len(llm) == 2 and len(tools) == 1
    for event in llm:
        assert event.model == "scripted:test"
        assert event.role == "executor"
        assert event.job_id == "job1" and event.task_id == "t1"
        assert event.tokens_in > 0 and event.tokens_out > 0
        assert event.latency_ms > 0
        assert event.error is None
        assert "squared" in event.prompt
    assert "calculator" in llm[0].reply
    assert llm[1].reply == "25"
    call = tools[0]
    assert call.name == "calculator"
    assert call.args == {"expression": "(2+3)**2"}
    assert call.outcome == "ok"
    assert call.result == "25"
    assert call.latency_ms > 0
    assert (call.job_id, call.task_id) == ("job1", "t1")
    # events come in the order the calls happened
    assert [type(e).__name__ for e in events] == ["LlmCalled", "ToolCalled", "LlmCalled"]


async def test_unknown_tool_becomes_an_observation(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "squared"}, "tool_calls": [{"name": "abacus", "arguments": {}}]},
            {"content": "I could not use the abacus; 25."},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "I could not use the abacus; 25."
    observation = model.requests[1].messages[-1]
    assert observation.role == "tool"
    assert observation.content.startswith("error:")
    assert "abacus" in observation.content and "calculator" in observation.content
    (call,) = of_type(events, ToolCalled)
    assert call.outcome == "error" and call.name == "abacus"
    assert call.error is not None and "abacus" in call.error


async def test_bad_arguments_become_an_observation(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"contains": "squared"},
                "tool_calls": [{"name": "calculator", "arguments": {"expr": "2"}}],
            },
            {"content": "25"},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "25"
    observation = model.requests[1].messages[-1].content
    assert observation.startswith("error:") and "expression" in observation
    (call,) = of_type(events, ToolCalled)
    assert call.outcome == "error"


class FakeModel:
    """Answers with the given responses (or raises the given errors), in order."""

    def __init__(
        self, replies: list[LlmResponse | Exception], *, supports_tools: bool = True
    ) -> None:
        self.name = "fake:test"
        self.supports_tools = supports_tools
        self.profile = ModelProfile(small=False, native_tools=supports_tools)
        self.replies = replies
        self.requests: list[LlmRequest] = []

    async def complete(self, request: LlmRequest) -> LlmResponse:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None


async def test_arguments_that_are_not_json_become_an_observation(tmp_path: Path) -> None:
    call = ToolCall(id="c1", name="calculator", raw_arguments="{17} * {23")
    model = FakeModel([LlmResponse(tool_calls=(call,)), LlmResponse(content="unknown")])
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "unknown"
    observation = model.requests[1].messages[-1].content
    assert observation.startswith("error:") and "not a JSON object" in observation
    assert of_type(events, ToolCalled)[0].outcome == "error"


async def test_a_failing_tool_becomes_an_observation(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"contains": "squared"},
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "2 +* 3"}}],
            },
            {"content": "no"},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))
    assert model.requests[1].messages[-1].content.startswith("error:")


async def test_max_steps_then_one_last_call_without_tools(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "used all your steps"}, "content": "Final: 25"},
            {
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}],
                "repeat": True,
            },
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent(max_steps=3).run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "Final: 25"
    assert result.steps == 4
    assert len(model.requests) == 4
    assert all(request.tools for request in model.requests[:3])
    assert model.requests[3].tools == ()
    assert len(of_type(events, ToolCalled)) == 3


async def test_max_steps_comes_from_the_context_by_default(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "used all your steps"}, "content": "done"},
            {
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "1"}}],
                "repeat": True,
            },
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events, max_steps=2))
    assert result.steps == 3


async def test_no_answer_even_after_the_last_call_is_rejected(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "used all your steps"}, "content": ""},
            {"tool_calls": [{"name": "abacus", "arguments": {}}], "repeat": True},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    with pytest.raises(AnswerRejected, match="max_steps=2") as caught:
        await ReactAgent(max_steps=2).run(TASK, make_ctx(model, tmp_path, events))
    assert caught.value.reason == "empty_answer" and caught.value.retryable
    assert len(model.requests) == 3


async def test_empty_answer_falls_back_to_the_last_observation(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"contains": "squared"},
                "tool_calls": [{"name": "calculator", "arguments": {"expression": "(2+3)**2"}}],
            },
            {"content": "   "},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "25"


async def test_empty_answer_without_observation_asks_again(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "squared"}, "content": ""},
            {"match": {"contains": "answer was empty"}, "content": "25"},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "25"
    assert result.steps == 2


async def test_dependency_results_are_labelled_in_the_first_message(tmp_path: Path) -> None:
    model = ScriptedModel([{"content": "ok"}])
    task = AgentTask(
        goal="Summarise the findings",
        job_goal="Write a report",
        inputs={"t1": "Finding one " + "x" * 50_000, "t2": {"count": 3}},
        input_goals={"t1": "Research the topic", "t2": "Count the sources"},
    )
    events: list[LlmCalled | ToolCalled] = []
    await ReactAgent().run(task, make_ctx(model, tmp_path, events))

    first_user = next(m for m in model.requests[0].messages if m.role == "user")
    text = first_user.content
    assert "Summarise the findings" in text and "Write a report" in text
    assert "### Research the topic (task t1)" in text
    assert "### Count the sources (task t2)" in text
    assert '{"count": 3}' in text
    assert len(text) < 30_000


async def test_tool_subset_offers_only_those_tools(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {
                "match": {"contains": "squared"},
                "tool_calls": [{"name": "shout", "arguments": {"text": "a"}}],
            },
            {"content": "done"},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    agent = ReactAgent("mathematician", tools=["calculator"], instructions="Be exact.")
    await agent.run(TASK, make_ctx(model, tmp_path, events))

    assert [spec.name for spec in model.requests[0].tools] == ["calculator"]
    assert model.requests[0].agent == "mathematician"
    assert "Be exact." in model.requests[0].messages[0].content
    assert model.requests[1].messages[-1].content.startswith("error: unknown tool 'shout'")


async def test_unknown_tool_in_the_subset_is_a_config_error(tmp_path: Path) -> None:
    events: list[LlmCalled | ToolCalled] = []
    agent = ReactAgent(tools=["calculator", "teleport"])
    with pytest.raises(ConfigError, match="teleport"):
        await agent.run(TASK, make_ctx(ScriptedModel([]), tmp_path, events))


def test_max_steps_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        ReactAgent(max_steps=0)


# --- the JSON action protocol -----------------------------------------------------------------


async def test_json_action_protocol_uses_observations_as_user_messages(tmp_path: Path) -> None:
    model = TextOnlyModel(
        [
            {
                "match": {"contains": "squared"},
                "json": {"action": "calculator", "action_input": {"expression": "(2+3)**2"}},
            },
            {"match": {"contains": "Observation: 25"}, "json": {"final_answer": "It is 25."}},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "It is 25."
    assert result.steps == 2
    first, second = model.requests
    assert first.tools == () and second.tools == ()
    assert all(m.role != "tool" for m in second.messages)
    assert second.messages[-1].role == "user"
    assert second.messages[-2].role == "assistant"
    assert "calculator" in second.messages[-2].content
    assert "calculator" in first.messages[0].content  # tools described in the system prompt
    (call,) = of_type(events, ToolCalled)
    assert call.outcome == "ok" and call.result == "25"


async def test_json_action_schema_has_a_branch_per_tool_and_a_final_answer(
    tmp_path: Path,
) -> None:
    model = TextOnlyModel([{"json": {"final_answer": "hi"}}])
    events: list[LlmCalled | ToolCalled] = []
    await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    schema = model.requests[0].response_schema
    assert schema is not None
    branches = schema["anyOf"]
    actions = [b["properties"]["action"]["enum"] for b in branches if "action" in b["properties"]]
    assert actions == [["calculator"], ["shout"]]
    calc = branches[0]["properties"]["action_input"]
    assert calc["properties"]["expression"]["type"] == "string"
    assert calc["required"] == ["expression"]
    final = branches[-1]
    assert final["required"] == ["final_answer"]
    assert final["properties"]["final_answer"]["maxLength"] == 1000
    assert final["properties"]["final_answer"]["minLength"] == 1
    assert all(b["additionalProperties"] is False for b in branches)


def test_json_action_schema_without_tools_is_just_the_final_answer() -> None:
    schema = action_schema([])
    assert "anyOf" not in schema
    assert schema["required"] == ["final_answer"]


async def test_json_unknown_action_and_bad_json_become_observations(tmp_path: Path) -> None:
    model = FakeModel(
        [
            LlmResponse(data={"action": "abacus", "action_input": {}}),
            LlmResponse(content='{"action": "calcul'),
            ModelResponseError("stopped at max_tokens", retryable=True),
            LlmResponse(data={"final_answer": "25"}),
        ],
        supports_tools=False,
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))

    assert result.output == "25"
    assert result.steps == 4
    assert "error: unknown tool 'abacus'" in model.requests[1].messages[-1].content
    assert 'error: reply with {"action"' in model.requests[2].messages[-1].content
    assert "Observation: error: stopped at max_tokens" in model.requests[3].messages[-1].content
    assert [c.outcome for c in of_type(events, ToolCalled)] == ["error"]
    assert [e.error is not None for e in of_type(events, LlmCalled)] == [False, False, True, False]


async def test_json_protocol_does_not_hide_other_model_errors(tmp_path: Path) -> None:
    model = FakeModel([ModelResponseError("prompt too long")], supports_tools=False)
    events: list[LlmCalled | ToolCalled] = []
    with pytest.raises(ModelResponseError, match="prompt too long"):
        await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))


async def test_json_bad_action_input_becomes_an_observation(tmp_path: Path) -> None:
    model = TextOnlyModel(
        [
            {
                "match": {"contains": "squared"},
                "json": {"action": "calculator", "action_input": "2+3"},
            },
            {"match": {"contains": "Observation: error"}, "json": {"final_answer": "25"}},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "25"
    assert "not a JSON object" in model.requests[1].messages[-1].content


async def test_json_protocol_max_steps_asks_for_a_final_answer_only(tmp_path: Path) -> None:
    model = TextOnlyModel(
        [
            {"match": {"contains": "used all your steps"}, "json": {"final_answer": "25"}},
            {"json": {"action": "calculator", "action_input": {"expression": "1"}}, "repeat": True},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent(max_steps=2).run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "25"
    last = model.requests[-1].response_schema
    assert last is not None and "anyOf" not in last and last["required"] == ["final_answer"]


async def test_plain_text_reply_is_the_answer_for_models_without_json(tmp_path: Path) -> None:
    model = FakeModel([LlmResponse(content="Twenty-five.")], supports_tools=False)
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "Twenty-five."


async def test_small_models_get_shorter_strings_in_the_action_schema(tmp_path: Path) -> None:
    model = FakeModel([LlmResponse(data={"final_answer": "x"})], supports_tools=False)
    model.profile = ModelProfile(small=True, native_tools=False)
    events: list[LlmCalled | ToolCalled] = []
    await ReactAgent(tools=["calculator"]).run(TASK, make_ctx(model, tmp_path, events))
    schema = model.requests[0].response_schema
    assert schema is not None
    calc, final = schema["anyOf"]
    assert calc["properties"]["action_input"]["properties"]["expression"]["maxLength"] == 200
    assert final["properties"]["final_answer"]["maxLength"] == 300


# --- context, registry, exports ---------------------------------------------------------------


async def test_call_model_reports_errors_then_reraises(tmp_path: Path) -> None:
    model = ScriptedModel([{"error": {"type": "unavailable", "message": "down"}}], name="s:x")
    events: list[LlmCalled | ToolCalled] = []
    ctx = make_ctx(model, tmp_path, events)
    request = LlmRequest(messages=(ChatMessage(role="user", content="hi"),), role="critic")
    with pytest.raises(ModelUnavailable):
        await call_model(ctx, request)
    (event,) = of_type(events, LlmCalled)
    assert event.error is not None and "down" in event.error
    assert event.role == "critic" and event.model == "s:x"
    assert event.prompt == "[user] hi"


async def test_call_model_applies_the_context_token_limit(tmp_path: Path) -> None:
    model = ScriptedModel([{"content": "a"}, {"content": "b"}])
    events: list[LlmCalled | ToolCalled] = []
    ctx = make_ctx(model, tmp_path, events, max_tokens=123)
    message = (ChatMessage(role="user", content="x" * 10_000),)
    await call_model(ctx, LlmRequest(messages=message))
    await call_model(ctx, LlmRequest(messages=message, max_tokens=7))
    assert [r.max_tokens for r in model.requests] == [123, 7]
    assert len(of_type(events, LlmCalled)[0].prompt) <= 4000


def test_agent_registry() -> None:
    registry = AgentRegistry([ReactAgent(), ReactAgent("writer")])
    assert registry.names() == ["executor", "writer"]
    assert registry.get("writer").name == "writer"
    assert "executor" in registry
    with pytest.raises(ConfigError, match=r"unknown agent 'critic'.*executor, writer"):
        registry.get("critic")
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(ReactAgent("writer"))
    replacement = ReactAgent("writer", instructions="new")
    registry.register(replacement, replace=True)
    assert registry.get("writer") is replacement


def test_react_agent_is_an_agent() -> None:
    assert isinstance(ReactAgent(), planweave.agents.Agent)


def test_agent_result_is_frozen() -> None:
    result = AgentResult(output="x", steps=1)
    with pytest.raises(AttributeError):
        result.output = "y"  # type: ignore[misc]


def test_public_names_are_exported() -> None:
    expected = {
        "AgentContext",
        "Agent",
        "AgentTask",
        "AgentResult",
        "AgentRegistry",
        "ReactAgent",
        "plan",
        "compose",
        "call_model",
        "AgentTool",
        "Conditional",
        "Handoff",
        "Loop",
        "Parallel",
        "Sequential",
        "as_tool",
        "run_agent",
    }
    assert set(planweave.agents.__all__) == expected
    for name in expected:
        assert getattr(planweave.agents, name) is not None


# --- the real local model ---------------------------------------------------------------------


@pytest.mark.local_model
async def test_local_model_react_with_calculator_answers(tmp_path: Path) -> None:
    from planweave.llm import ModelOptions, load_model

    model = load_model("local:", ModelOptions(n_threads=1))
    events: list[LlmCalled | ToolCalled] = []
    try:
        agent = ReactAgent(tools=["calculator"], max_steps=4)
        task = AgentTask(goal="Use the calculator to compute (2+3)**2.")
        result = await agent.run(task, make_ctx(model, tmp_path, events))
    finally:
        await model.aclose()
    assert result.output.strip()
    assert 1 <= result.steps <= 5
    llm = of_type(events, LlmCalled)
    assert len(llm) == result.steps
    assert all(e.model.startswith("local:") and e.tokens_out > 0 for e in llm)


async def test_a_model_repeating_one_call_is_asked_for_its_answer_early(tmp_path: Path) -> None:
    model = TextOnlyModel(
        [
            {"match": {"contains": "used all your steps"}, "json": {"final_answer": "1"}},
            {"json": {"action": "calculator", "action_input": {"expression": "1"}}, "repeat": True},
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent(max_steps=8).run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "1"
    assert len(of_type(events, ToolCalled)) == 3  # the first call and two repeats, not eight


async def test_tool_calls_of_one_reply_are_capped_and_the_model_is_told(tmp_path: Path) -> None:
    # 10,000 tool calls in one reply all ran (max_steps counts model calls only).
    calls = tuple(
        ToolCall(id=f"c{i}", name="calculator", arguments={"expression": f"{i}+1"})
        for i in range(10_000)
    )
    model = FakeModel([LlmResponse(tool_calls=calls), LlmResponse(content="The answer is 25.")])
    events: list[LlmCalled | ToolCalled] = []
    result = await ReactAgent().run(TASK, make_ctx(model, tmp_path, events))
    assert result.output == "The answer is 25."
    assert len(of_type(events, ToolCalled)) == 16  # the default max_tool_calls_per_step
    second = model.requests[1]
    assert len(second.messages[2].tool_calls) == 16  # only the calls that ran stay
    assert [m.role for m in second.messages].count("tool") == 16
    note = second.messages[-1].content
    assert "10000 tool calls in one reply; only the first 16 ran" in note
    assert "max_tool_calls_per_step" in note


async def test_a_task_tool_calls_are_capped_then_it_must_answer(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "used all your steps"}, "content": "Done: 25."},
            {
                "tool_calls": [
                    {"name": "calculator", "arguments": {"expression": "1+1"}},
                    {"name": "shout", "arguments": {"text": "a"}},
                    {"name": "calculator", "arguments": {"expression": "2+2"}},
                ],
                "repeat": True,
            },
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    ctx = make_ctx(model, tmp_path, events, max_steps=50, max_tool_calls=5)
    result = await ReactAgent().run(TASK, ctx)
    assert result.output == "Done: 25."
    assert len(of_type(events, ToolCalled)) == 5
    assert len(model.requests) == 3  # 3 + 2 calls ran, then the last call without tools
    assert "(the job option max_tool_calls)" in model.requests[2].messages[-2].content


async def test_json_protocol_refuses_tool_calls_past_the_task_cap(tmp_path: Path) -> None:
    model = TextOnlyModel(
        [
            {"match": {"contains": "used all your steps"}, "json": {"final_answer": "two"}},
            {
                "json": {"action": "calculator", "action_input": {"expression": "1+1"}},
                "repeat": True,
            },
        ]
    )
    events: list[LlmCalled | ToolCalled] = []
    ctx = make_ctx(model, tmp_path, events, max_steps=50, max_tool_calls=2)
    result = await ReactAgent().run(TASK, ctx)
    assert result.output == "two"
    assert len(of_type(events, ToolCalled)) == 2
    assert len(model.requests) == 3


def test_a_small_models_action_schema_bounds_every_string_and_list() -> None:
    from planweave.llm.base import ToolSpec

    nested = ToolSpec(
        name="api",
        description="Call an API.",
        parameters={
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string", "enum": ["GET", "POST"]},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {
                    "type": "object",
                    "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                },
            },
        },
    )
    schema = action_schema([nested], max_answer_chars=300, max_arg_chars=200)
    params = schema["anyOf"][0]["properties"]["action_input"]["properties"]
    assert params["url"]["maxLength"] == 200
    assert "maxLength" not in params["method"]  # an enum is bounded already
    assert params["headers"]["additionalProperties"]["maxLength"] == 200
    tags = params["body"]["properties"]["tags"]
    assert tags["maxItems"] == 16 and tags["items"]["maxLength"] == 200
    # Without a cap (capable models) the tool's own schema is offered as it is.
    plain = action_schema([nested])["anyOf"][0]["properties"]["action_input"]
    assert plain == nested.parameters


@pytest.mark.parametrize("small", [True, False])
def test_every_built_in_tools_action_schema_compiles_to_a_local_models_grammar(
    small: bool,
) -> None:
    # A schema llama.cpp cannot compile leaves a local model's reply unconstrained: it then
    # writes any JSON at all instead of an action.
    grammar = pytest.importorskip(
        "llama_cpp.llama_grammar", reason="llama-cpp-python is absent (make local)"
    )
    from planweave.tools import builtin_tools
    from planweave.tools._tool import spec_of

    caps: dict[str, Any] = {"max_answer_chars": 300, "max_arg_chars": 200} if small else {}
    for each in builtin_tools():
        schema = action_schema([spec_of(each)], **caps)
        grammar.json_schema_to_gbnf(json.dumps(schema))  # raises on a schema it cannot read
