from __future__ import annotations

import sys

import pydantic
import pytest

import planweave.llm
from planweave.errors import ConfigError, MissingDependency, UnknownBackend
from planweave.llm import Model, ModelOptions, load_model, price_usd
from planweave.llm._registry import BACKENDS


def test_unknown_scheme_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownBackend) as info:
        load_model("gemini:pro")
    message = str(info.value)
    assert "'gemini:pro'" in message
    for scheme in ("anthropic", "local", "openai", "scripted"):
        assert scheme in message
    assert info.value.valid == tuple(sorted(BACKENDS))


def test_missing_anthropic_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    monkeypatch.delitem(sys.modules, "planweave.llm.anthropic", raising=False)
    with pytest.raises(MissingDependency) as info:
        load_model("anthropic:claude-sonnet-4-5")
    assert str(info.value) == "anthropic is not installed: run pip install 'planweave[anthropic]'"


def test_every_backend_class_exists_and_implements_the_protocol() -> None:
    import importlib

    for spec in BACKENDS.values():
        module_name, _, class_name = spec.partition(":")
        backend = getattr(importlib.import_module(module_name), class_name)
        assert callable(backend.from_url)
        for member in ("name", "supports_tools", "complete", "aclose"):
            assert hasattr(backend, member), f"{spec} lacks {member}"


def test_hosted_models_load_without_network_and_keep_their_name() -> None:
    openai_model = load_model("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "sk-x"})
    assert isinstance(openai_model, Model)
    assert openai_model.name == "openai:gpt-4o-mini"
    assert openai_model.supports_tools
    claude = load_model("anthropic:claude-sonnet-4-5", env={})
    assert isinstance(claude, Model)
    assert claude.name == "anthropic:claude-sonnet-4-5"


@pytest.mark.parametrize("url", ["openai:", "anthropic:"])
def test_hosted_urls_need_a_model_name(url: str) -> None:
    with pytest.raises(ConfigError, match="needs a model name"):
        load_model(url)


def test_options_are_frozen_keyword_only_and_checked() -> None:
    options = ModelOptions(max_tokens=10)
    assert options.timeout_s == 120
    assert options.max_retries == 3
    assert options.seed == 0
    assert options.structured_output == "auto"
    with pytest.raises(pydantic.ValidationError):
        options.max_tokens = 5  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        ModelOptions(max_token=5)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        ModelOptions(structured_output="xml")
    with pytest.raises(TypeError):
        ModelOptions("http://x")  # type: ignore[misc]
    assert "sk-secret" not in repr(ModelOptions(api_key="sk-secret"))


def test_prices() -> None:
    assert price_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert price_usd("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert price_usd("openai:gpt-4o", 0, 1_000_000) == pytest.approx(10.0)
    assert price_usd("claude-sonnet-4-5-20250929", 1_000_000, 0) == pytest.approx(3.0)
    assert price_usd("SmolLM2-135M-Instruct", 10_000, 10_000) == 0
    assert price_usd("unknown-model", 10, 10) == 0


def test_public_names_are_exported() -> None:
    assert sorted(planweave.llm.__all__) == planweave.llm.__all__
    assert set(planweave.llm.__all__) == {
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
    }
    for name in planweave.llm.__all__:
        assert getattr(planweave.llm, name) is not None
