"""Models: one protocol, chosen by URL (``openai:``, ``anthropic:``, ``local:``, ``scripted:``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planweave._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from planweave.llm._registry import ModelOptions, load_model
    from planweave.llm.base import (
        ChatMessage,
        DeltaSink,
        LlmRequest,
        LlmResponse,
        Model,
        ModelProfile,
        StreamingModel,
        ToolCall,
        ToolSpec,
        profile_of,
    )
    from planweave.llm.pricing import price_usd
    from planweave.llm.scripted import ScriptedModel

# Imported on first use, so that reading ``ModelOptions`` (every command's settings do) does not
# load the request and response models, the scripted model and its YAML parser.
_LAZY: dict[str, str] = {
    "ModelOptions": "planweave.llm._registry",
    "load_model": "planweave.llm._registry",
    "ChatMessage": "planweave.llm.base",
    "DeltaSink": "planweave.llm.base",
    "LlmRequest": "planweave.llm.base",
    "LlmResponse": "planweave.llm.base",
    "Model": "planweave.llm.base",
    "ModelProfile": "planweave.llm.base",
    "StreamingModel": "planweave.llm.base",
    "ToolCall": "planweave.llm.base",
    "ToolSpec": "planweave.llm.base",
    "profile_of": "planweave.llm.base",
    "price_usd": "planweave.llm.pricing",
    "ScriptedModel": "planweave.llm.scripted",
}


__getattr__, __dir__ = _lazy_exports("planweave.llm", _LAZY, globals())


__all__ = [
    "ChatMessage",
    "DeltaSink",
    "LlmRequest",
    "LlmResponse",
    "Model",
    "ModelOptions",
    "ModelProfile",
    "ScriptedModel",
    "StreamingModel",
    "ToolCall",
    "ToolSpec",
    "load_model",
    "price_usd",
    "profile_of",
]
