from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from planweave.errors import ConfigError, MissingDependency, ModelResponseError, ModelUnavailable
from planweave.llm import ChatMessage, LlmRequest, Model, ModelOptions, ToolCall, load_model
from planweave.llm.local import LocalModel

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 20},
        "steps": {"type": "integer"},
        "done": {"type": "boolean"},
    },
    "required": ["answer", "steps", "done"],
    "additionalProperties": False,
}


def ask(text: str, **update: object) -> LlmRequest:
    messages = (
        ChatMessage(role="system", content="You are a terse assistant."),
        ChatMessage(role="user", content=text),
    )
    return LlmRequest(messages=messages).model_copy(update=update)


@pytest.fixture
async def local() -> AsyncIterator[Model]:
    model = load_model("local:", ModelOptions(n_threads=1, max_tokens=24), env={})
    yield model
    await model.aclose()


@pytest.mark.local_model
async def test_plain_completion_has_text_and_usage(local: Model) -> None:
    assert local.name == "local:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert not local.supports_tools
    response = await local.complete(ask("Say hello."))
    assert response.content.strip()
    assert response.tokens_in > 0
    assert 0 < response.tokens_out <= 24
    assert response.cost_usd == 0
    assert response.finish_reason in ("stop", "length")


@pytest.mark.local_model
async def test_structured_output_follows_the_schema(local: Model) -> None:
    response = await local.complete(
        ask("Is 2+2 equal to 4? Answer in JSON.", response_schema=SCHEMA, max_tokens=80)
    )
    data = response.data
    assert isinstance(data, dict)
    assert set(data) == {"answer", "steps", "done"}
    assert isinstance(data["answer"], str)
    assert len(data["answer"]) <= 20
    assert isinstance(data["steps"], int)
    assert isinstance(data["done"], bool)


@pytest.mark.local_model
async def test_truncated_json_is_a_clear_response_error(local: Model) -> None:
    with pytest.raises(ModelResponseError, match="stopped at max_tokens=4"):
        await local.complete(ask("Answer in JSON.", response_schema=SCHEMA, max_tokens=4))


@pytest.mark.local_model
async def test_tool_messages_reach_the_prompt_as_text(local: Model) -> None:
    question = ChatMessage(role="user", content="What is 17*23?")
    messages = (
        question,
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="c1", name="calculator", arguments={"expression": "17*23"}),),
        ),
        ChatMessage(role="tool", tool_call_id="c1", name="calculator", content="391"),
    )
    alone = await local.complete(LlmRequest(messages=(question,), max_tokens=1))
    with_tool = await local.complete(LlmRequest(messages=messages, max_tokens=1))
    # the call and its result add about 25 tokens; dropped tool messages would add none
    assert with_tool.tokens_in >= alone.tokens_in + 15


@pytest.mark.local_model
def test_threads_come_from_options_then_env(tmp_path: Path) -> None:
    assert isinstance(load_model("local:", ModelOptions(n_threads=1)), LocalModel)
    model = load_model("local:", ModelOptions(n_threads=1), env={"PLANWEAVE_LOCAL_THREADS": "3"})
    assert isinstance(model, LocalModel)
    assert model.n_threads == 1
    model = load_model("local:", env={"PLANWEAVE_LOCAL_THREADS": "1"})
    assert isinstance(model, LocalModel)
    assert model.n_threads == 1
    with pytest.raises(ConfigError, match="PLANWEAVE_LOCAL_THREADS"):
        load_model("local:", env={"PLANWEAVE_LOCAL_THREADS": "many"})


@pytest.mark.local_model
def test_missing_model_file_says_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelUnavailable, match="make local") as info:
        load_model(f"local:{missing}")
    assert str(missing) in str(info.value)
    assert "PLANWEAVE_LOCAL_MODEL_PATH" in str(info.value)
    assert not info.value.retryable
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_model("local:", env={"PLANWEAVE_LOCAL_MODEL_PATH": str(missing)})


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(MissingDependency, match=r"llama-cpp-python .*planweave\[local\]"):
        load_model("local:")


@pytest.mark.local_model
async def test_cancelling_a_call_stops_its_generation_between_tokens() -> None:
    import asyncio

    max_tokens = 1500
    model = load_model("local:", ModelOptions(n_threads=1, max_tokens=max_tokens), env={})
    assert isinstance(model, LocalModel)
    try:
        call = asyncio.create_task(
            model.complete(ask("Count from 1 to 2000, one number per line, with no other text."))
        )
        # Wait (on progress, not on a clock) until tokens are coming out.
        while model.last_generation is None or model.last_generation.tokens_out < 2:
            assert not call.done(), "the call ended before it could be cancelled"
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        generation = model.last_generation
        assert generation is not None
        # Right after the cancellation completes, the thread is gone and stopped early.
        assert not generation.thread.is_alive()
        assert generation.stopped
        produced = generation.tokens_out
        assert produced < max_tokens
        await asyncio.sleep(0.1)
        assert generation.tokens_out == produced
        # The model still works afterwards.
        response = await model.complete(ask("Say hello.", max_tokens=8))
        assert response.content.strip()
    finally:
        await model.aclose()
