from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from planweave.errors import ModelResponseError, ModelUnavailable
from planweave.llm import (
    ChatMessage,
    LlmRequest,
    Model,
    ModelOptions,
    ToolCall,
    ToolSpec,
    load_model,
    price_usd,
)
from planweave.llm.openai import OpenAIModel

# --- a real HTTP server speaking the chat-completions wire format ------------------------------


@dataclass
class FakeOpenAI:
    """Answers each POST /v1/chat/completions with the next queued (status, body, headers)."""

    url: str = ""
    queue: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def reply(self, status: int = 200, body: dict[str, Any] | None = None, **headers: str) -> None:
        self.queue.append(
            (status, body or {}, {k.replace("_", "-"): v for k, v in headers.items()})
        )

    async def handle(self, request: Request) -> JSONResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if not self.queue:
            return JSONResponse({"error": {"message": "nothing queued"}}, status_code=599)
        status, body, headers = self.queue.pop(0)
        return JSONResponse(body, status_code=status, headers=headers)


def completion(
    content: str | None = "",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    tokens: tuple[int, int] = (12, 5),
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
    }


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "test", "code": None}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.handle, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", lifespan="off", ws="none"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "fake OpenAI server did not start"
        time.sleep(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}/v1"
    yield fake
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.queue.clear()
    server.requests.clear()
    server.headers.clear()
    return server


_OPEN: list[Model] = []


@pytest.fixture(autouse=True)
async def close_models() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def opened(model: Model) -> Model:
    """Close the model's HTTP client after the test (unclosed sockets fail the run)."""
    _OPEN.append(model)
    return model


def model_for(fake: FakeOpenAI, name: str = "fake-model", **options: Any) -> OpenAIModel:
    options.setdefault("api_key", "test-key")
    model = OpenAIModel(name, ModelOptions(base_url=fake.url, **options))
    opened(model)
    return model


def ask(text: str = "Hi", **update: Any) -> LlmRequest:
    return LlmRequest(messages=(ChatMessage(role="user", content=text),)).model_copy(update=update)


# --- tests -------------------------------------------------------------------------------------


async def test_plain_reply(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("Hello!", tokens=(12, 5)))
    model = model_for(fake, max_tokens=77, seed=3)
    response = await model.complete(ask("Say hello", temperature=0.2))
    await model.aclose()
    assert response.content == "Hello!"
    assert response.data is None
    assert (response.tokens_in, response.tokens_out) == (12, 5)
    assert response.finish_reason == "stop"
    assert response.cost_usd == 0
    assert response.latency_ms > 0
    sent = fake.requests[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    assert sent["max_tokens"] == 77
    assert sent["temperature"] == 0.2
    assert sent["seed"] == 3
    assert "response_format" not in sent
    assert fake.headers[0]["authorization"] == "Bearer test-key"


async def test_known_model_names_carry_a_cost(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("ok", tokens=(1000, 500)))
    response = await model_for(fake, name="gpt-4o-mini").complete(ask())
    assert response.cost_usd == pytest.approx(price_usd("gpt-4o-mini", 1000, 500))
    assert response.cost_usd > 0


async def test_tool_calls_are_sent_and_parsed(fake: FakeOpenAI) -> None:
    fake.reply(
        body=completion(
            None,
            finish_reason="tool_calls",
            tool_calls=[
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "17*23"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": "{17} * {23"},
                },
            ],
        )
    )
    tool = ToolSpec(
        name="calculator",
        description="Evaluate arithmetic",
        parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
    )
    model = model_for(fake)
    assert model.supports_tools
    response = await model.complete(ask("17 times 23?", tools=(tool,)))
    assert response.content == ""
    assert response.finish_reason == "tool_calls"
    good, bad = response.tool_calls
    assert (good.id, good.name, good.arguments, good.raw_arguments) == (
        "call_a",
        "calculator",
        {"expression": "17*23"},
        None,
    )
    assert (bad.name, bad.arguments, bad.raw_arguments) == ("calculator", {}, "{17} * {23")
    assert fake.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate arithmetic",
                "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
            },
        }
    ]


async def test_tool_conversation_is_mapped_to_the_wire_format(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("391"))
    messages = (
        ChatMessage(role="system", content="Use tools."),
        ChatMessage(role="user", content="17*23?"),
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="c1", name="calculator", arguments={"expression": "17*23"}),),
        ),
        ChatMessage(role="tool", tool_call_id="c1", name="calculator", content="391"),
    )
    await model_for(fake).complete(LlmRequest(messages=messages))
    assert fake.requests[0]["messages"] == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "17*23?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "17*23"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "391"},
    ]


async def test_without_native_tools_tool_traffic_becomes_text(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("391"))
    model = model_for(fake, native_tools=False)
    assert not model.supports_tools
    messages = (
        ChatMessage(role="user", content="17*23?"),
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="c1", name="calculator", arguments={"expression": "17*23"}),),
        ),
        ChatMessage(role="tool", tool_call_id="c1", name="calculator", content="391"),
    )
    await model.complete(LlmRequest(messages=messages, tools=(ToolSpec(name="calculator"),)))
    sent = fake.requests[0]
    assert "tools" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert 'calculator({"expression": "17*23"})' in sent["messages"][1]["content"]
    assert "391" in sent["messages"][2]["content"]


SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["answer", "n"],
}


async def test_structured_output_uses_json_object_on_compatible_servers(fake: FakeOpenAI) -> None:
    # a raw newline inside a string, as llama.cpp grammars allow
    fake.reply(body=completion('{"answer": "four\nlines", "n": 4}'))
    response = await model_for(fake).complete(
        ask("2+2?", response_schema=SCHEMA, schema_name="sum")
    )
    assert response.data == {"answer": "four\nlines", "n": 4}
    assert fake.requests[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}


async def test_structured_output_json_schema_mode(fake: FakeOpenAI) -> None:
    fake.reply(body=completion('```json\n{"answer": "4", "n": 4}\n```'))
    model = model_for(fake, structured_output="json_schema")
    response = await model.complete(ask("2+2?", response_schema=SCHEMA, schema_name="sum"))
    assert response.data == {"answer": "4", "n": 4}
    assert fake.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "sum", "schema": SCHEMA, "strict": False},
    }


def test_real_openai_gets_json_schema_and_max_completion_tokens() -> None:
    model = OpenAIModel("gpt-4o-mini", ModelOptions(api_key="sk-x", max_tokens=50))
    body = model.body(ask("2+2?", response_schema=SCHEMA, schema_name="sum"))
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body


async def test_invalid_and_truncated_json_are_response_errors(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("I think the answer is 4"))
    fake.reply(body=completion('{"answer": "4", "n', finish_reason="length"))
    model = model_for(fake)
    with pytest.raises(ModelResponseError, match="did not reply with valid JSON"):
        await model.complete(ask(response_schema=SCHEMA))
    with pytest.raises(ModelResponseError, match="max_tokens=9") as info:
        await model.complete(ask(response_schema=SCHEMA, max_tokens=9))
    assert not info.value.retryable
    assert len(fake.requests) == 2  # response errors are not retried here


async def test_server_errors_are_retried(fake: FakeOpenAI) -> None:
    fake.reply(500, error_body("boom"))
    fake.reply(503, error_body("busy"))
    fake.reply(body=completion("finally"))
    response = await model_for(fake, max_retries=3).complete(ask())
    assert response.content == "finally"
    assert len(fake.requests) == 3


async def test_retries_run_out(fake: FakeOpenAI) -> None:
    for _ in range(3):
        fake.reply(500, error_body("still broken"))
    with pytest.raises(ModelUnavailable, match=r"failed \(500\): still broken"):
        await model_for(fake, max_retries=1).complete(ask())
    assert len(fake.requests) == 2


async def test_bad_request_is_not_retried(fake: FakeOpenAI) -> None:
    fake.reply(400, error_body("unknown parameter foo"))
    fake.reply(body=completion("never sent"))
    with pytest.raises(ModelResponseError, match=r"rejected the request \(400\)") as info:
        await model_for(fake, max_retries=3).complete(ask())
    assert "unknown parameter foo" in str(info.value)
    assert len(fake.requests) == 1


async def test_bad_key_is_not_retried(fake: FakeOpenAI) -> None:
    fake.reply(401, error_body("invalid key"))
    with pytest.raises(ModelUnavailable, match="refused the API key") as info:
        await model_for(fake, max_retries=3).complete(ask())
    assert not info.value.retryable
    assert len(fake.requests) == 1


async def test_rate_limit_honours_retry_after(fake: FakeOpenAI) -> None:
    fake.reply(429, error_body("slow down"), retry_after="1")
    fake.reply(body=completion("ok"))
    started = time.monotonic()
    response = await model_for(fake).complete(ask())
    assert response.content == "ok"
    assert time.monotonic() - started >= 1.0
    assert len(fake.requests) == 2


async def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    model = opened(OpenAIModel("m", ModelOptions(base_url=url, max_retries=1)))
    with pytest.raises(ModelUnavailable, match=f"cannot reach {url}"):
        await model.complete(ask())


async def test_missing_key_says_what_to_set() -> None:
    model = load_model("openai:gpt-4o-mini", env={})
    with pytest.raises(ModelUnavailable) as info:
        await model.complete(ask())
    message = str(info.value)
    assert message.startswith("OPENAI_API_KEY is not set: export it")
    assert "OPENAI_BASE_URL" in message
    assert "\n" not in message
    assert not info.value.retryable


async def test_env_points_at_a_compatible_server_without_a_key(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("from env"))
    model = opened(load_model("openai:fake-model", env={"OPENAI_BASE_URL": fake.url}))
    assert model.name == "openai:fake-model"
    assert (await model.complete(ask())).content == "from env"
    assert fake.headers[0]["authorization"] == "Bearer not-needed"


async def test_env_key_is_sent(fake: FakeOpenAI) -> None:
    fake.reply(body=completion("ok"))
    model = opened(
        load_model(
            "openai:fake-model",
            env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-env"},
        )
    )
    await model.complete(ask())
    assert fake.headers[0]["authorization"] == "Bearer sk-env"


# --- the real llama-cpp-python server ------------------------------------------------------------


@pytest.mark.local_model
async def test_real_llama_cpp_server_plain_and_structured(llama_server: str) -> None:
    model = opened(
        OpenAIModel("smollm2", ModelOptions(base_url=llama_server, max_retries=0, seed=0))
    )
    plain = await model.complete(ask("Say hello.", max_tokens=16))
    assert plain.content.strip()
    assert plain.tokens_in > 0
    assert 0 < plain.tokens_out <= 16
    assert plain.cost_usd == 0

    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": 20},
            "confidence": {"type": "integer"},
        },
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }
    structured = await model.complete(
        ask("What is 2+2? Answer in JSON.", response_schema=schema, max_tokens=64)
    )
    assert isinstance(structured.data, dict)
    assert set(structured.data) == {"answer", "confidence"}
    assert isinstance(structured.data["answer"], str)
    assert isinstance(structured.data["confidence"], int)


# --- small models over the OpenAI-compatible API --------------------------------------------


async def test_a_small_model_on_a_compatible_server_gets_the_small_model_guards(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    from planweave.agents import AgentContext, AgentTask, ReactAgent, plan
    from planweave.llm import ModelProfile, profile_of
    from planweave.tools import ToolContext, ToolRegistry
    from planweave.tools.builtins import calculator

    model = model_for(fake, "SmolLM2-135M-Instruct")
    assert profile_of(model) == ModelProfile(small=True, native_tools=False)
    assert not model.supports_tools
    # The name decides, not the URL scheme; an option overrides it either way.
    assert not profile_of(model_for(fake, "llama-3.1-70b")).small
    assert not profile_of(model_for(fake, "SmolLM2-135M-Instruct", small=False)).small
    assert profile_of(model_for(fake, "my-finetune", small=True)).small

    async def emit(event: object) -> None:
        return None

    ctx = AgentContext(
        model=model,
        tools=ToolRegistry([calculator]),
        tool_context=ToolContext(workspace=tmp_path),
        emit=emit,
        job_id="j",
        task_id="t",
    )
    fake.reply(body=completion('{"final_answer": "25"}'))
    result = await ReactAgent().run(AgentTask(goal="What is 5 squared?"), ctx)
    assert result.output == "25"
    sent = fake.requests[-1]
    assert "tools" not in sent  # the JSON action protocol, not native tool calling
    schema = sent["response_format"]["schema"]
    assert schema["anyOf"][-1]["properties"]["final_answer"]["maxLength"] == 300

    tasks = '{"tasks": [{"goal": "Square five", "id": "t1", "depends_on": [], "kind": "execute"}, '
    tasks += '{"goal": "Say the result", "id": "t2", "depends_on": ["t1"], "kind": "execute"}]}'
    fake.reply(body=completion(tasks))
    await plan(ctx, goal="What is 5 squared?", max_tasks=5)
    plan_schema = fake.requests[-1]["response_format"]["schema"]
    assert "prefixItems" in plan_schema["properties"]["tasks"]["anyOf"][0]  # the DAG schema

    body = model.body(ask("Tell me a story"))
    assert body["extra_body"] == {"repeat_penalty": 1.3}
    assert "extra_body" not in model_for(fake, "llama-3.1-70b").body(ask("Tell me a story"))
