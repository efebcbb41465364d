"""Models: one protocol, chosen by URL (``openai:``, ``anthropic:``, ``local:``, ``scripted:``)."""

from planweave.llm._registry import ModelOptions, load_model
from planweave.llm.base import (
    ChatMessage,
    LlmRequest,
    LlmResponse,
    Model,
    ModelProfile,
    ToolCall,
    ToolSpec,
    profile_of,
)
from planweave.llm.pricing import price_usd
from planweave.llm.scripted import ScriptedModel

__all__ = [
    "ChatMessage",
    "LlmRequest",
    "LlmResponse",
    "Model",
    "ModelOptions",
    "ModelProfile",
    "ScriptedModel",
    "ToolCall",
    "ToolSpec",
    "load_model",
    "price_usd",
    "profile_of",
]
