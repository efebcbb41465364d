"""Anthropic's Messages API through the official SDK.

System messages travel apart from the conversation, tool results go back as ``tool_result``
blocks in a user turn, and structured output is a forced tool whose ``input_schema`` is the
requested schema (the tool's input is the data). Retries and error translation match the OpenAI
backend.

Streamed (``stream``), the call runs through ``messages.stream``: text blocks go to the delta sink
as they arrive; tool input (a structured reply included) is gathered silently. As with OpenAI, a
failure before the first delta is retried, one after it fails the call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import Message

from planweave._json import TOO_DEEP_TEXT, too_deep
from planweave.errors import ConfigError, ModelError, ModelResponseError, ModelUnavailable
from planweave.llm._common import parse_retry_after, with_retries
from planweave.llm._registry import ModelOptions
from planweave.llm.base import (
    ChatMessage,
    DeltaSink,
    LlmRequest,
    LlmResponse,
    ModelProfile,
    ToolCall,
)
from planweave.llm.pricing import price_usd

__all__ = ["AnthropicModel", "messages_to_anthropic"]

MISSING_KEY = "ANTHROPIC_API_KEY is not set: export it, or pass api_key in the model options"


def messages_to_anthropic(
    messages: Sequence[ChatMessage],
) -> tuple[str, list[dict[str, Any]]]:
    """Split chat messages into Anthropic's system prompt and alternating message list.

    Consecutive messages of the same role are merged into one turn, as the API requires
    tool results to sit together in the user turn after the assistant's tool use.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
            continue
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            role = "user"
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id or "",
                    "content": message.content,
                }
            )
        else:
            role = message.role
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                blocks.append(
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def message_from_anthropic(
    blocks: Sequence[Any], structured_tool: str | None
) -> tuple[str, Any, tuple[ToolCall, ...]]:
    """Text, structured data and tool calls from a reply's content blocks."""
    texts: list[str] = []
    data: Any = None
    calls: list[ToolCall] = []
    for block in blocks:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            if structured_tool is not None and block.name == structured_tool:
                data = block.input
            elif too_deep(block.input):
                # Kept out of the conversation: it could not be encoded into the next request.
                calls.append(ToolCall(id=block.id, name=block.name, raw_arguments=TOO_DEEP_TEXT))
            elif isinstance(block.input, dict):
                calls.append(ToolCall(id=block.id, name=block.name, arguments=block.input))
            else:
                calls.append(
                    ToolCall(id=block.id, name=block.name, raw_arguments=json.dumps(block.input))
                )
    content = "".join(texts)
    if data is not None and not content:
        content = json.dumps(data, ensure_ascii=False)
    return content, data, tuple(calls)


def _is_transport_error(exc: Exception) -> bool:
    """Whether ``exc`` comes from the HTTP client under the SDK (httpx, or the fork it ships)."""
    return type(exc).__module__.split(".")[0].startswith(("httpx", "httpcore"))


class AnthropicModel:
    """A Claude model.

    Args:
        model: The model name, e.g. ``claude-sonnet-4-5``.
        options: ``api_key``, ``base_url``, ``timeout_s``, ``max_retries``, ``native_tools``,
            ``temperature`` and ``max_tokens`` apply.
    """

    def __init__(self, model: str, options: ModelOptions | None = None) -> None:
        self._model = model
        self._options = options or ModelOptions()
        self._client: AsyncAnthropic | None = None

    @classmethod
    def from_url(cls, target: str, options: ModelOptions, env: Mapping[str, str]) -> AnthropicModel:
        """Build from ``anthropic:MODEL``; the key defaults to ``ANTHROPIC_API_KEY``."""
        if not target:
            raise ConfigError("anthropic: needs a model name, e.g. anthropic:claude-sonnet-4-5")
        if options.api_key is None and env.get("ANTHROPIC_API_KEY"):
            options = options.model_copy(update={"api_key": env["ANTHROPIC_API_KEY"]})
        return cls(target, options)

    @property
    def name(self) -> str:
        return f"anthropic:{self._model}"

    @property
    def supports_tools(self) -> bool:
        return self._options.native_tools is not False

    @property
    def profile(self) -> ModelProfile:
        return ModelProfile(small=bool(self._options.small), native_tools=self.supports_tools)

    def _get_client(self) -> AsyncAnthropic:
        if self._client is None:
            if not self._options.api_key:
                raise ModelUnavailable(MISSING_KEY, retryable=False)
            self._client = AsyncAnthropic(
                api_key=self._options.api_key,
                base_url=self._options.base_url,
                timeout=self._options.timeout_s,
                max_retries=0,
            )
        return self._client

    def body(self, request: LlmRequest) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for a request."""
        system, turns = messages_to_anthropic(request.messages)
        body: dict[str, Any] = {
            "model": self._model,
            "messages": turns,
            "max_tokens": request.max_tokens or self._options.max_tokens,
        }
        if system:
            body["system"] = system
        temperature = (
            request.temperature if request.temperature is not None else self._options.temperature
        )
        if temperature is not None:
            body["temperature"] = temperature
        tools: list[dict[str, Any]] = []
        if request.tools and self.supports_tools:
            tools = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if request.response_schema is not None:
            tools.append(
                {
                    "name": request.schema_name,
                    "description": "Give the final answer in this structure.",
                    "input_schema": request.response_schema,
                }
            )
            body["tool_choice"] = {"type": "tool", "name": request.schema_name}
        if tools:
            body["tools"] = tools
        return body

    def _translate(self, exc: Exception) -> tuple[ModelError, float | None] | None:
        if isinstance(exc, anthropic.APITimeoutError):
            return ModelUnavailable(
                f"{self.name} timed out after {self._options.timeout_s} s"
            ), None
        if isinstance(exc, anthropic.APIConnectionError):
            return ModelUnavailable(f"cannot reach Anthropic for {self.name}: {exc}"), None
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            detail = " ".join(str(exc.message).split())
            detail = detail.removeprefix(f"Error code: {status} - ")[:300]
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(exc.response.headers)
                return ModelUnavailable(f"{self.name} failed ({status}): {detail}"), retry_after
            if status in (401, 403):
                return ModelUnavailable(
                    f"{self.name} refused the API key ({status}): check ANTHROPIC_API_KEY",
                    retryable=False,
                ), None
            return ModelResponseError(
                f"{self.name} rejected the request ({status}): {detail}"
            ), None
        if isinstance(exc, anthropic.AnthropicError):
            return ModelResponseError(f"{self.name}: {exc}"), None
        return None

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Run one Messages API call.

        Raises:
            ModelUnavailable: No key, unreachable, rate limited or failing after retries.
            ModelResponseError: The request was rejected or the reply is unusable.
        """
        client = self._get_client()
        body = self.body(request)
        started = time.perf_counter()

        async def call() -> Message:
            result: Message = await client.messages.create(**body)
            return result

        message = await with_retries(
            call,
            translate=self._translate,
            catch=(anthropic.AnthropicError,),
            max_retries=self._options.max_retries,
        )
        return self._response(request, message, started)

    async def stream(self, request: LlmRequest, on_delta: DeltaSink) -> LlmResponse:
        """Run one Messages API call streamed: text goes to ``on_delta`` as it arrives.

        Raises:
            ModelUnavailable: As ``complete``.
            ModelResponseError: As ``complete``.
        """
        client = self._get_client()
        body = self.body(request)
        started = time.perf_counter()
        streamed = False

        async def call() -> Message:
            nonlocal streamed
            try:
                async with client.messages.stream(**body) as events:
                    async for text in events.text_stream:
                        if text:
                            streamed = True
                            on_delta(text)
                    return await events.get_final_message()
            except anthropic.AnthropicError as exc:
                translated = self._translate(exc) if streamed else None
                if translated is None:
                    raise
                raise translated[0] from exc
            except Exception as exc:
                if not _is_transport_error(exc):
                    raise
                # The SDK leaves a connection lost mid-stream to its HTTP client's own error.
                raise ModelUnavailable(
                    f"{self.name}: the stream broke off: {type(exc).__name__}: {exc}",
                    retryable=not streamed,
                ) from exc

        message = await with_retries(
            call,
            translate=self._translate,
            catch=(anthropic.AnthropicError,),
            max_retries=self._options.max_retries,
        )
        return self._response(request, message, started)

    def _response(self, request: LlmRequest, message: Message, started: float) -> LlmResponse:
        structured = request.schema_name if request.response_schema is not None else None
        content, data, tool_calls = message_from_anthropic(message.content, structured)
        if structured is not None and data is None:
            raise ModelResponseError(
                f"{self.name} did not answer with the {structured!r} structure "
                f"(stop reason {message.stop_reason})",
                retryable=message.stop_reason != "max_tokens",
            )
        tokens_in = message.usage.input_tokens
        tokens_out = message.usage.output_tokens
        return LlmResponse(
            content=content,
            data=data,
            tool_calls=tool_calls,
            model=message.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=price_usd(self._model, tokens_in, tokens_out),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=message.stop_reason,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
