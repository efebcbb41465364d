"""Choose a model backend from a URL, and hold the options every backend understands.

``openai:gpt-4o-mini``, ``anthropic:claude-sonnet-4-5``, ``local:`` (the bundled SmolLM2 file),
``local:/models/x.gguf`` and ``scripted:replies.yaml`` all go through :func:`load_model`. Backends
are imported only when chosen, so an optional package (llama-cpp-python, anthropic) is needed only
by those who use it. This is also the one place that reads the environment for model settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field

from planweave._backends import BACKENDS as _BACKENDS
from planweave._backends import backend_class

if TYPE_CHECKING:
    from planweave.llm.base import Model

__all__ = ["BACKENDS", "ModelOptions", "load_model"]

BACKENDS: dict[str, str] = _BACKENDS["model"]
"""URL scheme -> ``module:Class`` of the backend; each class has a ``from_url`` classmethod."""


class ModelOptions(BaseModel):
    """Settings for a model backend; each backend uses the ones that concern it.

    Attributes:
        base_url: Server URL for OpenAI-compatible or Anthropic endpoints
            (default ``OPENAI_BASE_URL`` or the provider's own).
        api_key: API key (default ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``).
        timeout_s: Timeout of one HTTP request.
        max_retries: Retries of rate-limited, 5xx and connection failures.
        n_threads: CPU threads of the local model (default ``PLANWEAVE_LOCAL_THREADS``, else
            ``min(2, cpu_count)``).
        n_ctx: Context window of the local model.
        seed: Sampling seed where the backend supports one (``None``: random).
        temperature: Sampling temperature (``None``: the backend's default); a request's own
            temperature wins.
        max_tokens: Completion token limit when the request gives none.
        base_dir: Directory that relative ``scripted:`` file paths are resolved against.
        structured_output: How OpenAI-compatible servers are asked for JSON: ``json_schema``
            (OpenAI structured outputs), ``json_object`` with the schema beside it (llama.cpp,
            vLLM, Ollama), or ``auto`` (``json_schema`` for api.openai.com, else ``json_object``).
        native_tools: Whether to use the provider's tool calling (``None``: yes where supported,
            except for small models).
        small: Whether the model is small (``None``: as its name says, e.g. ``smollm``; every
            ``local:`` model is small unless set to false). Small models get the engine's
            guards: the JSON action protocol, the DAG-encoding planner schema, short prompts and
            a repeat penalty on free text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    n_threads: int | None = Field(default=None, ge=1)
    n_ctx: int = Field(default=4096, ge=256)
    seed: int | None = 0
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int = Field(default=1024, ge=1)
    base_dir: Path | None = None
    structured_output: Literal["auto", "json_schema", "json_object"] = "auto"
    native_tools: bool | None = None
    small: bool | None = None


class _Backend(Protocol):
    @classmethod
    def from_url(cls, target: str, options: ModelOptions, env: Mapping[str, str]) -> Model: ...


def load_model(
    url: str, options: ModelOptions | None = None, *, env: Mapping[str, str] | None = None
) -> Model:
    """Build the model a URL names.

    Args:
        url: ``scheme:target``, e.g. ``openai:gpt-4o-mini``, ``local:``, ``scripted:demo.yaml``.
        options: Backend settings; defaults apply where not given.
        env: Environment to read keys and defaults from (default ``os.environ``).

    Raises:
        UnknownBackend: The scheme is not one of :data:`BACKENDS`.
        MissingDependency: The backend's optional package is not installed.
        ConfigError: The target is malformed (e.g. no model name).
    """
    target = url.partition(":")[2]
    backend = cast(type[_Backend], backend_class("model", url))
    return backend.from_url(
        target.strip(), options or ModelOptions(), os.environ if env is None else env
    )
