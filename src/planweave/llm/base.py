"""The model protocol: one async call from a request to a response, whatever the provider.

A model is chosen by URL (``openai:gpt-4o-mini``, ``local:``, ``scripted:demo.yaml``); the engine
only ever sees this protocol. ``role`` says which part of the engine is asking (planner, executor,
composer, critic), and ``agent`` names the agent, so test doubles can answer by role.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "LlmRequest",
    "LlmResponse",
    "Model",
    "ToolCall",
    "ToolSpec",
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
