"""OpenAI and OpenAI-compatible servers (llama.cpp server, vLLM, Ollama) through the official SDK.

The SDK's own retries are off: ours retry 429, 5xx, timeouts and connection failures with
exponential backoff and jitter, honour Retry-After, and translate every SDK error into a
``ModelError``. Structured output uses OpenAI's ``json_schema`` format on api.openai.com and
``json_object`` with the schema beside it elsewhere, because llama-cpp-python's server rejects
``json_schema`` (with a 500, so it would otherwise be retried).

Streamed (``stream``), the request asks for ``stream=True`` with usage in the final chunk
(``stream_options.include_usage``); text content goes to the delta sink as it arrives, tool-call
arguments are gathered silently. A server that answers with the whole completion as JSON instead
(it does not stream) is read as such, its reply one delta. A failure before the first delta is retried like any other;
once text has gone out, the call fails instead (a retry would send it twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import httpx
import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from planweave._json import loads_bounded
from planweave.errors import ConfigError, ModelError, ModelResponseError, ModelUnavailable
from planweave.llm._common import (
    SMALL_MODEL_REPEAT_PENALTY,
    estimate_tokens,
    flatten_tool_messages,
    parse_json_reply,
    parse_retry_after,
    with_retries,
)
from planweave.llm._registry import ModelOptions
from planweave.llm.base import (
    ChatMessage,
    DeltaSink,
    LlmRequest,
    LlmResponse,
    ModelProfile,
    ToolCall,
    ToolSpec,
    looks_small,
)
from planweave.llm.pricing import price_usd

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAIModel"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
MISSING_KEY = (
    "OPENAI_API_KEY is not set: export it, or point planweave at an OpenAI-compatible server "
    "(Ollama, vLLM, llama.cpp) with OPENAI_BASE_URL=http://HOST:PORT/v1"
)


def _is_openai(base_url: str) -> bool:
    return (urlparse(base_url).hostname or "").endswith("api.openai.com")


def message_to_openai(message: ChatMessage) -> dict[str, Any]:
    """One chat message in the chat-completions wire format."""
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name and message.role != "assistant":
        out["name"] = message.name
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.raw_arguments
                    if call.raw_arguments is not None
                    else json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    return out


def tool_to_openai(tool: ToolSpec) -> dict[str, Any]:
    """One tool in the chat-completions ``tools`` format."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def parse_tool_call(index: int, call_id: str | None, name: str, arguments: str) -> ToolCall:
    """A tool call from the wire; arguments that are not a JSON object stay in ``raw_arguments``."""
    try:
        parsed = loads_bounded(arguments or "{}")
    except json.JSONDecodeError:  # JsonTooDeep included: the runtime says why
        parsed = None
    if isinstance(parsed, dict):
        return ToolCall(id=call_id or f"call_{index + 1}", name=name, arguments=parsed)
    return ToolCall(id=call_id or f"call_{index + 1}", name=name, raw_arguments=arguments)


class _Gathered:
    """A streamed completion put back together from its chunks."""

    def __init__(self) -> None:
        self.chunks = 0
        self.content: list[str] = []
        # Tool calls by index: (id, name, argument pieces).
        self.calls: dict[int, tuple[str | None, str, list[str]]] = {}
        self.finish_reason: str | None = None
        self.tokens: tuple[int, int] | None = None
        self.model = ""

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take one chunk; returns its new text content."""
        if chunk.model:
            self.model = chunk.model
        if chunk.usage is not None:
            self.tokens = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            return ""
        self.chunks += 1
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = choice.delta
        for call in delta.tool_calls or ():
            call_id, name, arguments = self.calls.get(call.index, (None, "", []))
            function = call.function
            if function is not None:
                name = name or (function.name or "")
                if function.arguments:
                    arguments.append(function.arguments)
            self.calls[call.index] = (call_id or call.id, name, arguments)
        text = delta.content or ""
        if text:
            self.content.append(text)
        return text


class OpenAIModel:
    """A chat-completions model on OpenAI or any OpenAI-compatible server.

    Args:
        model: The server's model name, e.g. ``gpt-4o-mini``.
        options: ``base_url``, ``api_key``, ``timeout_s``, ``max_retries``, ``structured_output``,
            ``native_tools``, ``seed``, ``temperature`` and ``max_tokens`` apply.
    """

    def __init__(self, model: str, options: ModelOptions | None = None) -> None:
        self._model = model
        self._options = options or ModelOptions()
        self._base_url = (self._options.base_url or DEFAULT_OPENAI_BASE_URL).rstrip("/")
        self._openai = _is_openai(self._base_url)
        mode = self._options.structured_output
        if mode == "auto":
            mode = "json_schema" if self._openai else "json_object"
        self._structured_output = mode
        self._client: AsyncOpenAI | None = None

    @classmethod
    def from_url(cls, target: str, options: ModelOptions, env: Mapping[str, str]) -> OpenAIModel:
        """Build from ``openai:MODEL``; key and base URL default to ``OPENAI_API_KEY`` and
        ``OPENAI_BASE_URL``."""
        if not target:
            raise ConfigError("openai: needs a model name, e.g. openai:gpt-4o-mini")
        update: dict[str, Any] = {}
        if options.api_key is None and env.get("OPENAI_API_KEY"):
            update["api_key"] = env["OPENAI_API_KEY"]
        if options.base_url is None and env.get("OPENAI_BASE_URL"):
            update["base_url"] = env["OPENAI_BASE_URL"]
        return cls(target, options.model_copy(update=update) if update else options)

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    @property
    def profile(self) -> ModelProfile:
        """Small when ``ModelOptions.small`` says so, else when the model's name does (a small
        model served by llama.cpp, vLLM or Ollama gets the same guards as ``local:``)."""
        options = self._options
        small = options.small if options.small is not None else looks_small(self._model)
        native = options.native_tools if options.native_tools is not None else not small
        return ModelProfile(small=small, native_tools=native)

    @property
    def supports_tools(self) -> bool:
        return self.profile.native_tools

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            api_key = self._options.api_key
            if not api_key:
                if self._openai:
                    raise ModelUnavailable(MISSING_KEY, retryable=False)
                api_key = "not-needed"  # local servers accept any key, the SDK insists on one
            self._client = AsyncOpenAI(
                base_url=self._base_url,
                api_key=api_key,
                timeout=self._options.timeout_s,
                max_retries=0,
            )
        return self._client

    def body(self, request: LlmRequest) -> dict[str, Any]:
        """The chat-completions request body for a request (what goes on the wire)."""
        messages = request.messages
        if not self.supports_tools:
            messages = tuple(flatten_tool_messages(messages))
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [message_to_openai(message) for message in messages],
        }
        max_tokens = request.max_tokens or self._options.max_tokens
        # api.openai.com wants max_completion_tokens (reasoning models reject max_tokens);
        # compatible servers know only max_tokens.
        body["max_completion_tokens" if self._openai else "max_tokens"] = max_tokens
        temperature = (
            request.temperature if request.temperature is not None else self._options.temperature
        )
        if temperature is not None:
            body["temperature"] = temperature
        if self._options.seed is not None:
            body["seed"] = self._options.seed
        if request.response_schema is None and not self._openai and self.profile.small:
            # Small models repeat one sentence until max_tokens; llama.cpp's server (and others
            # that follow it) take a repeat penalty beside the standard fields.
            body["extra_body"] = {"repeat_penalty": SMALL_MODEL_REPEAT_PENALTY}
        if request.tools and self.supports_tools:
            body["tools"] = [tool_to_openai(tool) for tool in request.tools]
        if request.response_schema is not None:
            if self._structured_output == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": request.schema_name,
                        "schema": request.response_schema,
                        "strict": False,
                    },
                }
            else:
                body["response_format"] = {
                    "type": "json_object",
                    "schema": request.response_schema,
                }
        return body

    def _translate(self, exc: Exception) -> tuple[ModelError, float | None] | None:
        where = f"{self.name} at {self._base_url}"
        if isinstance(exc, openai.APITimeoutError):
            return ModelUnavailable(f"{where} timed out after {self._options.timeout_s} s"), None
        if isinstance(exc, openai.APIConnectionError):
            return ModelUnavailable(f"cannot reach {self._base_url} for {self.name}: {exc}"), None
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = " ".join(str(exc.message).split())
            detail = detail.removeprefix(f"Error code: {status} - ")[:300]
            retry_after = parse_retry_after(exc.response.headers)
            if status == 429:
                return ModelUnavailable(f"{where} is rate limiting (429): {detail}"), retry_after
            if status >= 500:
                return ModelUnavailable(f"{where} failed ({status}): {detail}"), retry_after
            if status in (401, 403):
                return ModelUnavailable(
                    f"{where} refused the API key ({status}): check OPENAI_API_KEY",
                    retryable=False,
                ), None
            if status == 404:
                return ModelUnavailable(
                    f"{where} does not know this model or endpoint (404): {detail}",
                    retryable=False,
                ), None
            return ModelResponseError(f"{where} rejected the request ({status}): {detail}"), None
        if isinstance(exc, openai.OpenAIError):
            return ModelResponseError(f"{where}: {exc}"), None
        return None

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Run one chat completion.

        Raises:
            ModelUnavailable: No key, server unreachable, rate limited or failing after retries.
            ModelResponseError: The request was rejected or the reply is unusable.
        """
        client = self._get_client()
        body = self.body(request)
        started = time.perf_counter()

        async def call() -> ChatCompletion:
            result: ChatCompletion = await client.chat.completions.create(**body)
            return result

        completion = await with_retries(
            call,
            translate=self._translate,
            catch=(openai.OpenAIError,),
            max_retries=self._options.max_retries,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        return self._response(request, completion, latency_ms, body)

    async def stream(self, request: LlmRequest, on_delta: DeltaSink) -> LlmResponse:
        """Run one chat completion streamed: text content goes to ``on_delta`` as it arrives.

        Usage comes from the stream's final chunk; a server that sends none gets an estimate
        (four characters a token).

        Raises:
            ModelUnavailable: As ``complete``; also a connection lost once text was sent.
            ModelResponseError: As ``complete``.
        """
        client = self._get_client()
        body = {**self.body(request), "stream": True, "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        streamed = False

        async def call() -> _Gathered | ChatCompletion:
            nonlocal streamed
            gathered = _Gathered()
            raw = await client.chat.completions.with_raw_response.create(**body)
            if "text/event-stream" not in raw.headers.get("content-type", ""):
                return await self._whole(raw.http_response)
            chunks: AsyncStream[ChatCompletionChunk] = raw.parse()
            try:
                async for chunk in chunks:
                    text = gathered.add(chunk)
                    if text:
                        streamed = True
                        on_delta(text)
            except openai.OpenAIError as exc:
                translated = self._translate(exc) if streamed else None
                if translated is None:
                    raise
                raise translated[0] from exc
            except httpx.HTTPError as exc:
                raise ModelUnavailable(
                    f"{self.name} at {self._base_url}: the stream broke off: {exc}"
                ) from exc
            finally:
                await chunks.close()
            return gathered

        gathered = await with_retries(
            call,
            translate=self._translate,
            catch=(openai.OpenAIError,),
            max_retries=self._options.max_retries,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        if isinstance(gathered, ChatCompletion):
            response = self._response(request, gathered, latency_ms, body)
            if response.content:
                on_delta(response.content)
            return response
        if not gathered.chunks:
            raise ModelResponseError(f"{self.name} returned no choices", retryable=True)
        content = "".join(gathered.content)
        tokens = gathered.tokens
        if tokens is None:
            prompt = sum(estimate_tokens(message.content) for message in request.messages)
            tokens = (prompt, estimate_tokens(content))
        calls = [gathered.calls[index] for index in sorted(gathered.calls)]
        return self._assemble(
            request,
            content=content,
            tool_calls=tuple(
                parse_tool_call(index, call_id, name, "".join(arguments))
                for index, (call_id, name, arguments) in enumerate(calls)
            ),
            finish_reason=gathered.finish_reason,
            tokens=tokens,
            model=gathered.model,
            latency_ms=latency_ms,
            body=body,
        )

    async def _whole(self, http_response: httpx.Response) -> ChatCompletion:
        """The completion a server sent whole, as JSON, to a streamed request (one that does not
        stream, or a proxy that buffers it)."""
        try:
            data = loads_bounded((await http_response.aread()).decode("utf-8", "replace"))
        except httpx.HTTPError as exc:
            raise ModelUnavailable(f"{self.name} at {self._base_url}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ModelResponseError(
                f"{self.name} at {self._base_url} answered a streamed request with neither "
                "an event stream nor JSON",
                retryable=True,
            ) from exc
        if not isinstance(data, dict):
            raise ModelResponseError(f"{self.name} returned no choices", retryable=True)
        return ChatCompletion.construct(**data)

    def _response(
        self,
        request: LlmRequest,
        completion: ChatCompletion,
        latency_ms: float,
        body: dict[str, Any],
    ) -> LlmResponse:
        if not completion.choices:
            raise ModelResponseError(f"{self.name} returned no choices", retryable=True)
        choice = completion.choices[0]
        message = choice.message
        usage = completion.usage
        return self._assemble(
            request,
            content=message.content or "",
            tool_calls=tuple(
                parse_tool_call(index, call.id, call.function.name, call.function.arguments)
                for index, call in enumerate(message.tool_calls or ())
                if call.type == "function"
            ),
            finish_reason=choice.finish_reason,
            tokens=(usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0),
            model=completion.model,
            latency_ms=latency_ms,
            body=body,
        )

    def _assemble(
        self,
        request: LlmRequest,
        *,
        content: str,
        tool_calls: tuple[ToolCall, ...],
        finish_reason: str | None,
        tokens: tuple[int, int],
        model: str,
        latency_ms: float,
        body: dict[str, Any],
    ) -> LlmResponse:
        data: Any = None
        if request.response_schema is not None and not tool_calls:
            data = parse_json_reply(
                content,
                model=self.name,
                finish_reason=finish_reason,
                max_tokens=body.get("max_tokens") or body.get("max_completion_tokens") or 0,
            )
        tokens_in, tokens_out = tokens
        return LlmResponse(
            content=content,
            data=data,
            tool_calls=tool_calls,
            model=model or self._model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=price_usd(self._model, tokens_in, tokens_out),
            latency_ms=latency_ms,
            finish_reason=finish_reason,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
