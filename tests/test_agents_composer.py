from __future__ import annotations

from pathlib import Path

import pytest

from planweave.agents import AgentContext, compose
from planweave.events import LlmCalled, ToolCalled
from planweave.llm import ModelProfile
from planweave.llm.base import Model
from planweave.llm.scripted import ScriptedModel
from planweave.tools import ToolContext, ToolRegistry

INPUTS = {"t1": "Goroutines are cheap threads.", "t2": {"patterns": ["fan-out", "pipeline"]}}
GOALS = {"t1": "Explain goroutines", "t2": "List concurrency patterns"}
GOAL = "Write a short blog post about Go concurrency"


def make_ctx(model: Model, tmp_path: Path, events: list[LlmCalled | ToolCalled]) -> AgentContext:
    async def emit(event: LlmCalled | ToolCalled) -> None:
        events.append(event)

    return AgentContext(
        model=model,
        tools=ToolRegistry(),
        tool_context=ToolContext(workspace=tmp_path),
        emit=emit,
        job_id="job1",
        task_id="compose",
    )


async def test_compose_returns_the_model_markdown(tmp_path: Path) -> None:
    model = ScriptedModel(
        [{"match": {"role": "composer"}, "content": "# Go concurrency\n\nGoroutines and channels."}]
    )
    events: list[LlmCalled | ToolCalled] = []
    text = await compose(
        make_ctx(model, tmp_path, events), goal=GOAL, inputs=INPUTS, input_goals=GOALS
    )

    assert text == "# Go concurrency\n\nGoroutines and channels."
    (request,) = model.requests
    assert request.role == "composer"
    user = request.messages[-1].content
    assert GOAL in user
    assert "### Explain goroutines" in user and "Goroutines are cheap threads." in user
    assert "### List concurrency patterns" in user and "fan-out" in user
    (event,) = events
    assert isinstance(event, LlmCalled) and event.role == "composer"


async def test_empty_reply_falls_back_to_the_results_under_headings(tmp_path: Path) -> None:
    model = ScriptedModel([{"content": "  \n"}])
    events: list[LlmCalled | ToolCalled] = []
    text = await compose(
        make_ctx(model, tmp_path, events), goal=GOAL, inputs=INPUTS, input_goals=GOALS
    )

    assert text.startswith(f"# {GOAL}\n")
    assert "## Explain goroutines\n\nGoroutines are cheap threads." in text
    assert "## List concurrency patterns\n\n" in text and "pipeline" in text


async def test_fallback_without_inputs_is_still_not_empty(tmp_path: Path) -> None:
    model = ScriptedModel([{"content": ""}])
    events: list[LlmCalled | ToolCalled] = []
    text = await compose(make_ctx(model, tmp_path, events), goal=GOAL, inputs={}, input_goals={})
    assert text.strip() and GOAL in text
    assert "No task results" in model.requests[0].messages[-1].content


async def test_a_fenced_reply_is_unwrapped(tmp_path: Path) -> None:
    model = ScriptedModel([{"content": "```markdown\n# Title\n\nBody\n```"}])
    events: list[LlmCalled | ToolCalled] = []
    text = await compose(
        make_ctx(model, tmp_path, events), goal=GOAL, inputs=INPUTS, input_goals=GOALS
    )
    assert text == "# Title\n\nBody"


async def test_small_models_get_a_token_limit(tmp_path: Path) -> None:
    model = ScriptedModel([{"content": "# A"}], name="tiny", profile=ModelProfile(small=True))
    events: list[LlmCalled | ToolCalled] = []
    await compose(make_ctx(model, tmp_path, events), goal=GOAL, inputs=INPUTS, input_goals=GOALS)
    assert model.requests[0].max_tokens is not None


@pytest.mark.local_model
async def test_local_model_composes_non_empty_text(tmp_path: Path) -> None:
    from planweave.llm import ModelOptions, load_model

    model = load_model("local:", ModelOptions(n_threads=1))
    events: list[LlmCalled | ToolCalled] = []
    try:
        text = await compose(
            make_ctx(model, tmp_path, events), goal=GOAL, inputs=INPUTS, input_goals=GOALS
        )
    finally:
        await model.aclose()
    assert text.strip()
    (event,) = events
    assert isinstance(event, LlmCalled)
    assert event.model.startswith("local:") and event.tokens_out > 0 and event.error is None
