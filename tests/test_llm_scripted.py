from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from planweave.errors import (
    ConfigError,
    ModelResponseError,
    ModelUnavailable,
    ScriptedModelMismatch,
)
from planweave.llm import ChatMessage, LlmRequest, Model, ModelOptions, ScriptedModel, load_model


def ask(text: str = "hello", *, role: str = "executor", agent: str | None = None) -> LlmRequest:
    return LlmRequest(
        messages=(
            ChatMessage(role="system", content="You are helpful."),
            ChatMessage(role="user", content=text),
        ),
        role=role,
        agent=agent,
    )


async def test_replies_are_taken_in_order_and_consumed() -> None:
    model = ScriptedModel([{"content": "first"}, {"content": "second"}])
    assert (await model.complete(ask())).content == "first"
    assert (await model.complete(ask())).content == "second"
    assert model.remaining == 0
    with pytest.raises(ScriptedModelMismatch, match="0 replies remain"):
        await model.complete(ask())


async def test_first_matching_reply_wins_and_others_wait() -> None:
    model = ScriptedModel(
        [
            {"match": {"role": "planner"}, "content": "plan"},
            {"match": {"role": "executor"}, "content": "execute"},
        ]
    )
    assert (await model.complete(ask(role="executor"))).content == "execute"
    assert (await model.complete(ask(role="planner"))).content == "plan"


async def test_role_matches_request_role_or_agent_name() -> None:
    model = ScriptedModel(
        [
            {"match": {"role": "researcher"}, "content": "by agent"},
            {"match": {"role": "critic"}, "content": "by role"},
        ]
    )
    assert (await model.complete(ask(role="executor", agent="researcher"))).content == "by agent"
    assert (await model.complete(ask(role="critic", agent="reviewer"))).content == "by role"


async def test_contains_looks_at_the_last_user_message_only() -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "squared"}, "content": "25"},
            {"match": {"contains": "You are"}, "content": "system text matched"},
            {"content": "fallback"},
        ]
    )
    # "You are" is only in the system message, so the second reply must not match.
    assert (await model.complete(ask("what is 5 squared?"))).content == "25"
    assert (await model.complete(ask("anything else"))).content == "fallback"
    assert model.remaining == 1


async def test_repeat_reply_is_never_consumed() -> None:
    model = ScriptedModel([{"match": {"role": "executor"}, "content": "again", "repeat": True}])
    for _ in range(5):
        assert (await model.complete(ask())).content == "again"
    assert model.remaining == 1


async def test_mismatch_names_the_request_and_what_remains() -> None:
    model = ScriptedModel(
        [
            {"match": {"role": "planner"}, "content": "plan"},
            {"match": {"role": "critic", "contains": "draft"}, "content": "ok"},
        ]
    )
    long_text = "please compute " + "x" * 200
    with pytest.raises(ScriptedModelMismatch) as info:
        await model.complete(ask(long_text, role="executor", agent="calc"))
    message = str(info.value)
    assert "role='executor'" in message
    assert "agent='calc'" in message
    assert "please compute xxx" in message
    assert "x" * 100 not in message  # truncated
    assert "2 replies remain" in message
    assert "role=planner" in message
    assert "contains='draft'" in message


async def test_json_reply_gives_data_and_json_content() -> None:
    plan = {"tasks": [{"id": "a", "goal": "Square 5"}]}
    model = ScriptedModel([{"match": {"role": "planner"}, "json": plan}])
    schema = {"type": "object"}
    request = ask(role="planner").model_copy(update={"response_schema": schema})
    response = await model.complete(request)
    assert response.data == plan
    assert response.content == '{"tasks": [{"id": "a", "goal": "Square 5"}]}'
    response.data["tasks"].clear()  # the script itself must not change
    assert model.remaining == 0


async def test_json_text_content_is_parsed_for_structured_requests() -> None:
    model = ScriptedModel([{"content": '{"answer": 4}'}, {"content": "not json"}])
    request = ask().model_copy(update={"response_schema": {"type": "object"}})
    assert (await model.complete(request)).data == {"answer": 4}
    with pytest.raises(ModelResponseError, match="not JSON"):
        await model.complete(request)


async def test_tool_calls_get_ids_and_usage_is_estimated() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [
                    {"name": "calculator", "arguments": {"expression": "(2+3)**2"}},
                    {"name": "search", "arguments": {"q": "x"}, "id": "mine"},
                ]
            }
        ]
    )
    response = await model.complete(ask("what is (2+3) squared?"))
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_1", "calculator", {"expression": "(2+3)**2"}),
        ("mine", "search", {"q": "x"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.tokens_in > 0
    assert response.tokens_out > 0
    assert response.cost_usd == 0
    assert response.model == "scripted"


async def test_delay_is_awaited_without_blocking_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each call must ask the event loop for its delay (not block the thread), and the three
    # delays must be in flight at once: the fake sleep lets none of them end until all three
    # have started, so a model that slept in turn would never get past the first.
    requested: list[float] = []
    all_waiting = asyncio.Event()
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: object = None) -> object:
        requested.append(delay)
        if len(requested) == 3:
            all_waiting.set()
        await all_waiting.wait()
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    model = ScriptedModel([{"content": "slow", "delay_s": 0.4, "repeat": True}])
    calls = asyncio.gather(*(model.complete(ask()) for _ in range(3)))
    results = await asyncio.wait_for(calls, timeout=60)  # a guard against a hang, not a timing
    assert [r.content for r in results] == ["slow"] * 3
    assert requested == [0.4, 0.4, 0.4]


async def test_error_replies_simulate_failures() -> None:
    model = ScriptedModel(
        [
            {"error": {"type": "unavailable", "message": "outage"}},
            {"error": {"type": "response", "message": "garbage"}},
            {"content": "recovered"},
        ]
    )
    with pytest.raises(ModelUnavailable, match="outage") as unavailable:
        await model.complete(ask())
    assert unavailable.value.retryable
    with pytest.raises(ModelResponseError, match="garbage"):
        await model.complete(ask())
    assert (await model.complete(ask())).content == "recovered"


async def test_concurrent_callers_each_get_a_distinct_reply() -> None:
    model = ScriptedModel([{"content": str(i)} for i in range(20)])
    results = await asyncio.gather(*(model.complete(ask()) for _ in range(20)))
    assert sorted(int(r.content) for r in results) == list(range(20))
    assert len(model.requests) == 20


def test_invalid_replies_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"reply 2 is invalid: .*one of content, json"):
        ScriptedModel([{"content": "ok"}, {"match": {"role": "planner"}}])
    with pytest.raises(ConfigError, match=r"reply 1 is invalid: match\.rol"):
        ScriptedModel([{"match": {"rol": "planner"}, "content": "x"}])
    with pytest.raises(ConfigError, match="cannot also have"):
        ScriptedModel([{"content": "x", "error": {"type": "response"}}])
    with pytest.raises(ConfigError, match=r"error\.type"):
        ScriptedModel([{"error": {"type": "boom"}}])


YAML_SCRIPT = """\
replies:
  - match: {role: planner}
    json: {tasks: [{id: a, goal: "Square 5"}]}
  - match: {role: executor, contains: squared}
    tool_calls: [{name: calculator, arguments: {expression: "(2+3)**2"}}]
  - match: {role: executor}
    content: "The answer is 25."
    repeat: true
"""


async def test_yaml_file_drives_a_whole_run(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(YAML_SCRIPT)
    model = ScriptedModel.from_file(path)
    assert isinstance(model, Model)
    assert model.name == "scripted:demo.yaml"
    assert model.supports_tools
    plan = await model.complete(ask(role="planner"))
    assert plan.data == {"tasks": [{"id": "a", "goal": "Square 5"}]}
    call = await model.complete(ask("what is 5 squared?"))
    assert call.tool_calls[0].arguments == {"expression": "(2+3)**2"}
    assert (await model.complete(ask("and now?"))).content == "The answer is 25."
    assert (await model.complete(ask("5 squared again?"))).content == "The answer is 25."


async def test_scripted_url_resolves_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text(YAML_SCRIPT)
    model = load_model("scripted:demo.yaml", ModelOptions(base_dir=tmp_path))
    assert model.name == "scripted:demo.yaml"
    assert (await model.complete(ask(role="planner"))).data is not None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "does not exist"),
        ("replies: [\n  - {content: 'a'\n", "is not valid YAML"),
        ("- content: a\n", "must be a mapping with a 'replies' list"),
        ("replies: []\nreply: []\n", "unknown keys \\['reply'\\]"),
        ("replies:\n  - just text\n", "reply 1 is not a mapping"),
        ("replies:\n  - {content: a, delay_s: -1}\n", "reply 1 is invalid: delay_s"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as info:
        ScriptedModel.from_file(path)
    assert str(path) in str(info.value)


def test_scripted_url_needs_a_file() -> None:
    with pytest.raises(ConfigError, match="scripted: needs a YAML file"):
        load_model("scripted:")
