"""The model protocol: one async call from a request to a response, whatever the provider.

A model may also have a ``profile`` (:class:`ModelProfile`: is it small, should agents use its
native tool calling); :func:`profile_of` reads it, with a default for models that have none.

A model is chosen by URL (``openai:gpt-4o-mini``, ``local:``, ``scripted:demo.yaml``); the engine
only ever sees this protocol. ``role`` says which part of the engine is asking (planner, executor,
composer, critic), and ``agent`` names the agent, so test doubles can answer by role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SMALL_MODEL_MARKERS",
    "ChatMessage",
    "DeltaSink",
    "LlmRequest",
    "LlmResponse",
    "Model",
    "ModelProfile",
    "StreamingModel",
    "ToolCall",
    "ToolSpec",
    "looks_small",
    "profile_of",
]


class ToolCall(BaseModel):
    """A call the model asked for."""

    model_config = ConfigDict(frozen=True)

    id: str = ""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str | None = None
    """The arguments as the model wrote them, when they were not a JSON object."""


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(BaseModel):
    """What a model is told about a tool: its name, description and JSON-schema parameters."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class LlmRequest(BaseModel):
    """One model call.

    Attributes:
        role: Which part of the engine asks: ``planner``, ``executor``, ``composer``, ``critic``.
        agent: Name of the agent asking, when there is one.
        tools: Tools offered for native tool calling (ignored by models without it).
        response_schema: JSON schema the reply must follow (structured output); the parsed value
            is returned in ``LlmResponse.data``.
    """

    model_config = ConfigDict(frozen=True)

    messages: tuple[ChatMessage, ...]
    role: str = "executor"
    agent: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    response_schema: dict[str, Any] | None = None
    schema_name: str = "response"
    max_tokens: int | None = None
    temperature: float | None = None


class LlmResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str = ""
    data: Any = None
    tool_calls: tuple[ToolCall, ...] = ()
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    finish_reason: str | None = None


class ModelProfile(BaseModel):
    """What a model can do, as far as agents must adapt to it.

    Agents read the profile, never the model's URL, so a small model gets the same guards
    however it is served (in-process ``local:``, or an OpenAI-compatible server).

    Attributes:
        small: A small model (a few hundred million parameters, a context of a few thousand
            tokens, weak instruction following): agents use the JSON action protocol, the
            planner the DAG-encoding schema, prompts get smaller budgets and free text a repeat
            penalty where the backend allows.
        native_tools: Whether agents should use the provider's native tool calling.
    """

    model_config = ConfigDict(frozen=True)

    small: bool = False
    native_tools: bool = True


SMALL_MODEL_MARKERS = (
    "smollm",
    "tinyllama",
    "qwen2.5-0.5b",
    "qwen2-0.5b",
    "gemma-3-270m",
    "135m",
    "270m",
    "360m",
)
"""Substrings of a model's name that mark it as small (matched case-insensitively)."""


def looks_small(model_name: str) -> bool:
    """Whether a model's own name says it is small (e.g. ``SmolLM2-135M-Instruct``)."""
    name = model_name.lower()
    return any(marker in name for marker in SMALL_MODEL_MARKERS)


@runtime_checkable
class Model(Protocol):
    """A configured model. Implementations translate provider errors into ``ModelError``."""

    @property
    def name(self) -> str:
        """The model's URL-like name, e.g. ``openai:gpt-4o-mini`` (shown in events)."""

    @property
    def supports_tools(self) -> bool:
        """Whether the model does native tool calling (else agents use a JSON action protocol)."""

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Run one call. Raises ``ModelUnavailable`` or ``ModelResponseError``."""

    async def aclose(self) -> None:
        """Release clients, threads and loaded weights."""


DeltaSink = Callable[[str], None]
"""Receives a model's reply text as it is written, a piece at a time, on the event loop."""


@runtime_checkable
class StreamingModel(Model, Protocol):
    """A model that can hand out its reply while it writes it.

    A model without ``stream`` still streams through the engine: its whole reply arrives as
    one delta once the call is done (``planweave.llm.stream_reply``).
    """

    async def stream(self, request: LlmRequest, on_delta: DeltaSink) -> LlmResponse:
        """Run one call like ``complete``, calling ``on_delta`` with each new piece of the
        reply's text content, in order, on the event loop. Tool-call arguments are not
        streamed; a structured-output reply streams its JSON text. The pieces joined are the
        returned ``content`` (a provider that rewrites its text at the end may differ).
        """


def profile_of(model: Model) -> ModelProfile:
    """The model's profile: its ``profile`` attribute where it has one (every built-in backend
    does), else a capable model with the tool calling it says it supports."""
    profile = getattr(model, "profile", None)
    if isinstance(profile, ModelProfile):
        return profile
    return ModelProfile(small=False, native_tools=model.supports_tools)
