"""Each model backend streams its reply: the pieces, joined, are the reply it returns.

OpenAI and Anthropic speak to real HTTP servers sending their providers' stream formats (and,
for OpenAI, to a real llama.cpp server running the bundled model); the local model generates in
its thread and its tokens reach the event loop; a model without ``stream`` sends one delta.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from planweave.errors import ModelUnavailable
from planweave.llm import (
    ChatMessage,
    LlmRequest,
    LlmResponse,
    ModelOptions,
    ScriptedModel,
    StreamingModel,
)
from planweave.llm._stream import stream_reply
from planweave.llm.anthropic import AnthropicModel
from planweave.llm.openai import OpenAIModel


def ask(text: str = "Hi", **update: Any) -> LlmRequest:
    return LlmRequest(messages=(ChatMessage(role="user", content=text),)).model_copy(update=update)


# --- a real HTTP server answering with queued event streams ------------------------------------


BREAK = "<break the connection>"


@dataclass
class StreamServer:
    """Answers each POST with the next queued stream (a list of SSE frames) or error."""

    url: str = ""
    queue: list[tuple[int, list[str] | dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.requests.append(await request.json())
        if not self.queue:
            return JSONResponse({"error": {"message": "nothing queued"}}, status_code=599)
        status, frames = self.queue.pop(0)
        if status != 200:
            return JSONResponse({"error": {"message": "down", "type": "x"}}, status_code=status)
        if isinstance(frames, dict):  # a server that does not stream
            return JSONResponse(frames)

        async def body() -> AsyncIterator[bytes]:
            for frame in frames:
                if frame == BREAK:
                    raise ConnectionAbortedError("the server went away mid-stream")
                yield frame.encode()

        return StreamingResponse(body(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def stream_server() -> Iterator[StreamServer]:
    fake = StreamServer()
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", fake.handle, methods=["POST"]),
            Route("/v1/messages", fake.handle, methods=["POST"]),
        ]
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the stream server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def fake(stream_server: StreamServer) -> StreamServer:
    stream_server.queue.clear()
    stream_server.requests.clear()
    return stream_server


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


OPENAI_STREAM = [
    openai_chunk({"role": "assistant", "content": "Let "}),
    openai_chunk({"content": "me "}),
    openai_chunk({"content": "compute."}),
    openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "calc", "arguments": '{"e": '},
                }
            ]
        }
    ),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"17*23"}'}}]}),
    openai_chunk({}, finish="tool_calls"),
    "data: "
    + json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "fake-model",
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
        }
    )
    + "\n\n",
    "data: [DONE]\n\n",
]


async def test_openai_streams_text_and_gathers_tool_calls_and_usage(fake: StreamServer) -> None:
    fake.queue.append((200, OPENAI_STREAM))
    model = OpenAIModel("fake-model", ModelOptions(base_url=f"{fake.url}/v1", max_retries=0))
    deltas: list[str] = []
    try:
        response = await model.stream(ask("17*23?"), deltas.append)
    finally:
        await model.aclose()
    assert deltas == ["Let ", "me ", "compute."]
    assert response.content == "Let me compute."
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_a", "calc", {"e": "17*23"})
    assert (response.tokens_in, response.tokens_out) == (9, 7)
    assert response.finish_reason == "tool_calls"
    sent = fake.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_openai_stream_failing_before_any_text_is_retried(fake: StreamServer) -> None:
    fake.queue.extend([(503, []), (200, OPENAI_STREAM)])
    model = OpenAIModel("fake-model", ModelOptions(base_url=f"{fake.url}/v1", max_retries=1))
    deltas: list[str] = []
    try:
        response = await model.stream(ask(), deltas.append)
    finally:
        await model.aclose()
    assert len(fake.requests) == 2
    assert "".join(deltas) == response.content == "Let me compute."


async def test_openai_stream_errors_are_model_errors(fake: StreamServer) -> None:
    fake.queue.append((503, []))
    model = OpenAIModel("fake-model", ModelOptions(base_url=f"{fake.url}/v1", max_retries=0))
    try:
        with pytest.raises(ModelUnavailable, match="503"):
            await model.stream(ask(), lambda text: None)
    finally:
        await model.aclose()


async def test_openai_stream_broken_after_text_fails_without_a_retry(fake: StreamServer) -> None:
    fake.queue.extend([(200, [*OPENAI_STREAM[:2], BREAK]), (200, OPENAI_STREAM)])
    model = OpenAIModel("fake-model", ModelOptions(base_url=f"{fake.url}/v1", max_retries=3))
    deltas: list[str] = []
    try:
        with pytest.raises(ModelUnavailable):
            await model.stream(ask(), deltas.append)
    finally:
        await model.aclose()
    # Retrying would have streamed "Let me " a second time.
    assert deltas == ["Let ", "me "]
    assert len(fake.requests) == 1


async def test_openai_server_that_does_not_stream_gives_one_delta(fake: StreamServer) -> None:
    whole = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "All at once."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
    }
    fake.queue.append((200, whole))
    model = OpenAIModel("fake-model", ModelOptions(base_url=f"{fake.url}/v1", max_retries=0))
    deltas: list[str] = []
    try:
        response = await model.stream(ask(), deltas.append)
    finally:
        await model.aclose()
    assert deltas == ["All at once."]
    assert (response.content, response.tokens_in, response.tokens_out) == ("All at once.", 4, 3)


def anthropic_frame(kind: str, **data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


ANTHROPIC_STREAM = [
    anthropic_frame(
        "message_start",
        message={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 11, "output_tokens": 1},
        },
    ),
    anthropic_frame("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    anthropic_frame("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"}),
    anthropic_frame("content_block_delta", index=0, delta={"type": "text_delta", "text": ", "}),
    anthropic_frame("content_block_delta", index=0, delta={"type": "text_delta", "text": "world"}),
    anthropic_frame("content_block_stop", index=0),
    anthropic_frame(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"output_tokens": 6},
    ),
    anthropic_frame("message_stop"),
]


async def test_anthropic_streams_text_blocks(fake: StreamServer) -> None:
    fake.queue.append((200, ANTHROPIC_STREAM))
    model = AnthropicModel(
        "claude-test", ModelOptions(api_key="k", base_url=fake.url, max_retries=0)
    )
    deltas: list[str] = []
    try:
        response = await model.stream(ask("Greet"), deltas.append)
    finally:
        await model.aclose()
    assert deltas == ["Hello", ", ", "world"]
    assert response.content == "Hello, world"
    assert (response.tokens_in, response.tokens_out) == (11, 6)
    assert response.finish_reason == "end_turn"
    assert fake.requests[0]["stream"] is True


async def test_anthropic_stream_broken_after_text_fails_without_a_retry(
    fake: StreamServer,
) -> None:
    fake.queue.extend([(200, [*ANTHROPIC_STREAM[:3], BREAK]), (200, ANTHROPIC_STREAM)])
    model = AnthropicModel(
        "claude-test", ModelOptions(api_key="k", base_url=fake.url, max_retries=3)
    )
    deltas: list[str] = []
    try:
        with pytest.raises(ModelUnavailable):
            await model.stream(ask(), deltas.append)
    finally:
        await model.aclose()
    assert deltas == ["Hello"]
    assert len(fake.requests) == 1


# --- the scripted model, and models that cannot stream -----------------------------------------


async def test_scripted_model_streams_word_by_word() -> None:
    model = ScriptedModel(
        [
            {"content": "One two  three, four."},
            {"match": {"role": "planner"}, "json": {"tasks": []}},
        ]
    )
    assert isinstance(model, StreamingModel)
    deltas: list[str] = []
    response = await model.stream(ask(), deltas.append)
    assert deltas == ["One ", "two  ", "three, ", "four."]
    assert response.content == "One two  three, four."
    structured: list[str] = []
    reply = await model.stream(
        ask(role="planner", response_schema={"type": "object"}), structured.append
    )
    assert reply.data == {"tasks": []}
    assert "".join(structured) == reply.content == '{"tasks": []}'


class Plain:
    """A user's model with ``complete`` only."""

    name = "plain"
    supports_tools = False

    async def complete(self, request: LlmRequest) -> LlmResponse:
        return LlmResponse(content="the whole reply at once", model=self.name)

    async def aclose(self) -> None:
        return None


async def test_a_model_without_stream_sends_its_reply_as_one_delta() -> None:
    assert not isinstance(Plain(), StreamingModel)
    deltas: list[str] = []
    response = await stream_reply(Plain(), ask(), deltas.append)
    assert deltas == ["the whole reply at once"]
    assert response.content == "the whole reply at once"


# --- real models ----------------------------------------------------------------------------------


@pytest.mark.local_model
async def test_real_llama_cpp_server_streams_tokens(llama_server: str) -> None:
    model = OpenAIModel("smollm2", ModelOptions(base_url=llama_server, max_retries=0, seed=0))
    deltas: list[str] = []
    try:
        response = await model.stream(ask("Say hello.", max_tokens=16), deltas.append)
    finally:
        await model.aclose()
    assert len(deltas) > 1
    assert "".join(deltas) == response.content
    assert response.content.strip()
    assert response.tokens_out > 0


@pytest.mark.local_model
async def test_local_model_streams_its_tokens_to_the_loop() -> None:
    from planweave.llm import load_model

    model = load_model("local:", ModelOptions(n_threads=1, max_tokens=16), env={})
    assert isinstance(model, StreamingModel)
    deltas: list[str] = []
    threads: set[int] = set()

    def on_delta(text: str) -> None:
        threads.add(threading.get_ident())
        deltas.append(text)

    try:
        response = await model.stream(ask("Say hello."), on_delta)
    finally:
        await model.aclose()
    assert len(deltas) == response.tokens_out > 1
    assert "".join(deltas) == response.content
    assert threads == {threading.get_ident()}  # handed to the event loop's thread
