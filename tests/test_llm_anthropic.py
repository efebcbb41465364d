from __future__ import annotations

from types import SimpleNamespace

import pytest

from planweave.errors import ModelUnavailable
from planweave.llm import ChatMessage, LlmRequest, ModelOptions, ToolCall, ToolSpec
from planweave.llm.anthropic import AnthropicModel, message_from_anthropic, messages_to_anthropic


def test_system_is_separated_and_tool_turns_are_blocks() -> None:
    system, turns = messages_to_anthropic(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="system", content="Use tools."),
            ChatMessage(role="user", content="17*23?"),
            ChatMessage(
                role="assistant",
                content="Let me compute.",
                tool_calls=(ToolCall(id="t1", name="calc", arguments={"e": "17*23"}),),
            ),
            ChatMessage(role="tool", tool_call_id="t1", content="391"),
            ChatMessage(role="user", content="Thanks"),
        ]
    )
    assert system == "Be brief.\n\nUse tools."
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "17*23?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me compute."},
                {"type": "tool_use", "id": "t1", "name": "calc", "input": {"e": "17*23"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "391"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


def test_structured_output_is_a_forced_tool() -> None:
    model = AnthropicModel("claude-sonnet-4-5", ModelOptions(api_key="k", max_tokens=50))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    body = model.body(
        LlmRequest(
            messages=(ChatMessage(role="user", content="2+2?"),),
            response_schema=schema,
            schema_name="sum",
            tools=(ToolSpec(name="calc"),),
        )
    )
    assert body["max_tokens"] == 50
    assert [tool["name"] for tool in body["tools"]] == ["calc", "sum"]
    assert body["tools"][1]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": "sum"}
    assert "system" not in body


def test_reply_blocks_become_content_data_and_calls() -> None:
    blocks = [
        SimpleNamespace(type="text", text="Computing."),
        SimpleNamespace(type="tool_use", id="t1", name="calc", input={"e": "1+1"}),
    ]
    content, data, calls = message_from_anthropic(blocks, None)
    assert (content, data) == ("Computing.", None)
    assert calls == (ToolCall(id="t1", name="calc", arguments={"e": "1+1"}),)

    structured = [SimpleNamespace(type="tool_use", id="t2", name="sum", input={"n": 4})]
    content, data, calls = message_from_anthropic(structured, "sum")
    assert (content, data, calls) == ('{"n": 4}', {"n": 4}, ())


async def test_missing_key_says_what_to_set() -> None:
    model = AnthropicModel("claude-sonnet-4-5")
    with pytest.raises(ModelUnavailable, match="ANTHROPIC_API_KEY is not set"):
        await model.complete(LlmRequest(messages=(ChatMessage(role="user", content="hi"),)))
