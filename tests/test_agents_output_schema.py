"""ReactAgent options: an output schema (validated, one repair round, then a retryable failure),
its own model (a URL or a Model), a description, and Tool objects of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from planweave import Engine, Plan, TaskSpec, tool
from planweave.agents import AgentContext, AgentRegistry, AgentTask, ReactAgent
from planweave.errors import AnswerRejected, ConfigError
from planweave.events import LlmCalled, TaskFailed, TaskRetrying, ToolCalled
from planweave.llm.base import Model
from planweave.llm.scripted import ScriptedModel
from planweave.tools import ToolContext, ToolRegistry
from planweave.tools.builtins import calculator


class Draft(BaseModel):
    title: str
    words: int


DRAFT_JSON = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "approved": {"type": "boolean"}},
    "required": ["title", "approved"],
    "additionalProperties": False,
}

TASK = AgentTask(goal="Write a draft about Go concurrency")


def make_ctx(model: Model, tmp_path: Path, events: list[Any], **kwargs: Any) -> AgentContext:
    async def emit(event: LlmCalled | ToolCalled) -> None:
        events.append(event)

    return AgentContext(
        model=model,
        tools=ToolRegistry([calculator]),
        tool_context=ToolContext(workspace=tmp_path, job_id="job1", task_id="t1"),
        emit=emit,
        job_id="job1",
        task_id="t1",
        **kwargs,
    )


async def test_a_valid_answer_is_the_validated_value_and_the_schema_is_in_the_prompt(
    tmp_path: Path,
) -> None:
    model = ScriptedModel([{"content": '{"title": "Channels", "words": 300}'}])
    agent = ReactAgent("writer", output_schema=Draft)
    result = await agent.run(TASK, make_ctx(model, tmp_path, []))

    assert result.data == {"title": "Channels", "words": 300}
    assert json.loads(result.output) == {"title": "Channels", "words": 300}
    assert result.steps == 1
    system = model.requests[0].messages[0].content
    assert "JSON schema" in system and '"words"' in system


async def test_an_invalid_answer_gets_one_repair_round_that_says_what_failed(
    tmp_path: Path,
) -> None:
    model = ScriptedModel(
        [
            {"content": "Here is my draft: Channels, about 300 words."},
            {"json": {"title": "Channels", "approved": True}},
        ]
    )
    events: list[Any] = []
    agent = ReactAgent("writer", output_schema=DRAFT_JSON)
    result = await agent.run(TASK, make_ctx(model, tmp_path, events))

    assert result.data == {"title": "Channels", "approved": True}
    assert result.steps == 2
    repair = model.requests[1]
    assert repair.response_schema == DRAFT_JSON  # asked as structured output
    assert "not JSON" in repair.messages[-1].content
    assert repair.messages[-2].content == "Here is my draft: Channels, about 300 words."
    assert len([e for e in events if isinstance(e, LlmCalled)]) == 2


async def test_still_invalid_after_the_repair_is_a_retryable_failure_naming_the_error(
    tmp_path: Path,
) -> None:
    model = ScriptedModel(
        [
            {"content": '{"title": "Channels"}'},
            {"json": {"title": "Channels", "words": "many"}},
        ]
    )
    agent = ReactAgent("writer", output_schema=Draft)
    with pytest.raises(AnswerRejected) as caught:
        await agent.run(TASK, make_ctx(model, tmp_path, []))
    assert caught.value.retryable and caught.value.reason == "output_invalid"
    assert "words" in str(caught.value) and "writer" in str(caught.value)
    # the repair round was told which field was missing
    assert "words" in model.requests[1].messages[-1].content


class TextOnlyModel(ScriptedModel):
    """A scripted model without native tool calling, like the local model."""

    supports_tools = False


async def test_without_native_tools_the_final_answer_is_constrained_to_the_schema(
    tmp_path: Path,
) -> None:
    model = TextOnlyModel([{"json": {"final_answer": {"title": "Channels", "approved": False}}}])
    agent = ReactAgent("writer", tools=["calculator"], output_schema=DRAFT_JSON)
    result = await agent.run(TASK, make_ctx(model, tmp_path, []))

    assert result.data == {"title": "Channels", "approved": False}
    assert result.steps == 1
    schema = model.requests[0].response_schema
    assert schema is not None
    final = schema["anyOf"][-1]["properties"]["final_answer"]
    assert final == DRAFT_JSON


def test_an_invalid_json_schema_is_refused_when_the_agent_is_made() -> None:
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        ReactAgent("writer", output_schema={"type": "nonsense"})
    with pytest.raises(ConfigError, match="pydantic model class or a JSON schema"):
        ReactAgent("writer", output_schema=42)  # type: ignore[arg-type]


async def test_an_agent_uses_its_own_model_given_by_url_or_object(tmp_path: Path) -> None:
    script = tmp_path / "writer.yaml"
    script.write_text(
        yaml.safe_dump({"replies": [{"content": "from the writer's model"}]}), encoding="utf-8"
    )
    task_model = ScriptedModel([], name="task-model")
    events: list[Any] = []
    by_url = ReactAgent("writer", model=f"scripted:{script}")
    result = await by_url.run(TASK, make_ctx(task_model, tmp_path, events))
    assert result.output == "from the writer's model"
    assert [e.model for e in events if isinstance(e, LlmCalled)] == ["scripted:writer.yaml"]
    assert task_model.requests == []

    own = ScriptedModel([{"content": "from my own"}], name="own")
    result = await ReactAgent("w2", model=own).run(TASK, make_ctx(task_model, tmp_path, []))
    assert result.output == "from my own" and len(own.requests) == 1


async def test_own_model_urls_are_loaded_through_the_context_loader(tmp_path: Path) -> None:
    loaded: list[str] = []
    own = ScriptedModel([{"content": "loaded"}], name="loaded-model")

    async def load(url: str) -> Model:
        loaded.append(url)
        return own

    agent = ReactAgent("writer", model="openai:gpt-4o-mini")
    ctx = make_ctx(ScriptedModel([]), tmp_path, [], load_model=load)
    assert (await agent.run(TASK, ctx)).output == "loaded"
    assert loaded == ["openai:gpt-4o-mini"]


async def test_tool_objects_of_its_own_are_offered_and_run(tmp_path: Path) -> None:
    ran: list[str] = []

    @tool
    def word_count(text: str) -> int:
        """Count the words of a text.

        Args:
            text: The text.
        """
        ran.append(text)
        return len(text.split())

    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b c"}}]},
            {"content": "3 words"},
        ]
    )
    agent = ReactAgent("counter", tools=[word_count, "calculator"])
    assert agent.tools == ("word_count", "calculator")
    result = await agent.run(TASK, make_ctx(model, tmp_path, []))
    assert result.output == "3 words"
    assert ran == ["a b c"]
    assert [spec.name for spec in model.requests[0].tools] == ["word_count", "calculator"]


def test_the_description_is_one_line_and_reaches_the_registry() -> None:
    agent = ReactAgent("writer", description="Writes  clear\n prose.")
    assert agent.description == "Writes clear prose."
    registry = AgentRegistry([agent, ReactAgent("plain")])
    assert registry.descriptions() == {"plain": "", "writer": "Writes clear prose."}


async def test_a_job_task_whose_answer_never_validates_fails_as_output_invalid(
    tmp_path: Path,
) -> None:
    writer = ReactAgent("writer", output_schema=Draft)
    model = ScriptedModel([{"match": {"role": "writer"}, "content": "no json", "repeat": True}])
    plan = Plan(tasks=(TaskSpec(id="draft", goal="Write a draft", agent="writer"),))
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        data_dir=tmp_path / "data",
        agents=[writer],
    ) as engine:
        result = await engine.run("Write", plan=plan, max_attempts=2, retry_base_s=0)
        assert not result.ok
        events = await engine.events(result.job_id)
    retried = [e for e in events if isinstance(e, TaskRetrying)]
    failed = [e for e in events if isinstance(e, TaskFailed)]
    assert len(retried) == 1 and "output schema" in retried[0].error
    assert [(f.attempt, f.error_type) for f in failed] == [(2, "output_invalid")]
