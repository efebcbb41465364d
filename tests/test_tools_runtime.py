"""One tool runtime for every path: tool tasks and agents' tool calls are checked, timed and
recorded alike, and a tool can be any implementation of the ``Tool`` protocol."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec
from planweave.errors import PlanInvalid
from planweave.events import LlmCalled, ToolCalled
from planweave.llm import ScriptedModel
from planweave.llm.base import ChatMessage, LlmRequest
from planweave.tools import Tool, ToolContext, ToolRegistry, run_tool_call

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}},
    "required": ["question"],
    "additionalProperties": False,
}


class AskModel:
    """A tool that is not a Python function: it asks the calling task's model."""

    name = "ask_model"
    description = "Ask the model of the task that calls this tool a question."
    timeout_s = 5.0

    def __init__(self) -> None:
        self.parameters: dict[str, Any] = dict(SCHEMA)
        self.contexts: list[ToolContext] = []

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        self.contexts.append(ctx)
        request = LlmRequest(
            messages=(ChatMessage(role="user", content=f"Nested: {args['question']}"),),
            role="tool",
        )
        response = await ctx.complete(request)
        return response.content


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )


def test_a_class_written_to_the_protocol_is_a_tool() -> None:
    tool = AskModel()
    assert isinstance(tool, Tool)
    registry = ToolRegistry([tool])
    assert registry.get("ask_model") is tool
    (spec,) = registry.specs()
    assert spec.name == "ask_model" and spec.parameters == SCHEMA


async def test_tool_tasks_are_recorded_as_tool_called_events(tmp_path: Path) -> None:
    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="calculator", args={"expression": "6*7"}),
            # After a: b's failure ends the job, and would cut short an a still running.
            TaskSpec(
                id="b",
                kind="tool",
                tool="calculator",
                args={"expression": "1/0"},
                depends_on=("a",),
            ),
        )
    )
    async with engine_for(tmp_path, []) as engine:
        result = await engine.run(plan=plan, max_attempts=1)
        events = await engine.events(result.job_id)
    calls = {e.task_id: e for e in events if isinstance(e, ToolCalled)}
    assert set(calls) == {"a", "b"}
    assert calls["a"].name == "calculator" and calls["a"].outcome == "ok"
    assert calls["a"].result == "42" and calls["a"].args == {"expression": "6*7"}
    assert calls["a"].agent is None
    assert calls["b"].outcome == "error" and "zero" in (calls["b"].error or "")
    # Each is recorded once, before the task's own end.
    kinds = [(e.type, e.task_id) for e in events]
    assert kinds.index(("ToolCalled", "a")) < kinds.index(("TaskCompleted", "a"))
    assert kinds.count(("ToolCalled", "a")) == 1


async def test_a_tool_tasks_arguments_are_checked_before_anything_runs(tmp_path: Path) -> None:
    tool = AskModel()
    plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="ask_model", args={"q": "x"}),))
    async with engine_for(tmp_path, [], tools=[tool]) as engine:
        with pytest.raises(PlanInvalid) as info:
            await engine.submit(plan=plan, max_attempts=1)
        assert await engine.list_jobs() == []
    # Every problem of the arguments at once, checked against the tool's own schema.
    assert "needs argument 'question'" in str(info.value)
    assert "has no parameter 'q'" in str(info.value)
    assert tool.contexts == []  # it never ran


async def test_a_class_tool_in_a_tool_task_reaches_the_jobs_model(tmp_path: Path) -> None:
    tool = AskModel()
    replies = [{"match": {"contains": "Nested: capital"}, "content": "Paris"}]
    plan = Plan(
        tasks=(
            TaskSpec(
                id="a",
                kind="tool",
                tool="ask_model",
                args={"question": "capital of France?"},
                timeout_s=30,
            ),
        )
    )
    async with engine_for(tmp_path, replies, tools=[tool]) as engine:
        result = await engine.run(plan=plan)
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert result.result == "Paris"
    (ctx,) = tool.contexts
    assert ctx.task_id == "a" and ctx.model is not None and ctx.deadline_at is not None
    (llm,) = [e for e in events if isinstance(e, LlmCalled)]
    assert llm.task_id == "a" and llm.role == "tool" and "Nested: capital" in llm.prompt
    (call,) = [e for e in events if isinstance(e, ToolCalled)]
    assert call.outcome == "ok" and call.result == "Paris"


async def test_an_agents_calls_carry_its_name_down_to_a_tools_own_model_calls(
    tmp_path: Path,
) -> None:
    tool = AskModel()
    replies = [
        {
            "match": {"role": "planner"},
            "json": {
                "tasks": [
                    {"id": "t1", "goal": "Find the capital", "depends_on": [], "kind": "execute"}
                ]
            },
        },
        {
            "match": {"role": "executor", "contains": "Find the capital"},
            "tool_calls": [{"name": "ask_model", "arguments": {"question": "capital?"}}],
        },
        {"match": {"contains": "Nested: capital"}, "content": "Paris"},
        {"match": {"role": "executor", "contains": "Find the capital"}, "content": "Paris."},
        {"match": {"role": "composer"}, "content": "# Paris"},
    ]
    async with engine_for(tmp_path, replies, tools=[tool]) as engine:
        result = await engine.run("What is the capital of France?")
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    llm = [e for e in events if isinstance(e, LlmCalled)]
    assert [(e.role, e.agent) for e in llm] == [
        ("planner", "planner"),
        ("executor", "executor"),
        ("tool", "executor"),  # the tool's own call, made for the executor
        ("executor", "executor"),
        ("composer", "composer"),
    ]
    (call,) = [e for e in events if isinstance(e, ToolCalled)]
    assert call.agent == "executor" and call.name == "ask_model" and call.result == "Paris"


async def test_every_path_gets_the_same_checks(tmp_path: Path) -> None:
    recorded: list[ToolCalled] = []
    registry = ToolRegistry([AskModel()])
    ctx = ToolContext(workspace=tmp_path, job_id="j", task_id="t", agent="me")
    not_offered = await run_tool_call(
        registry, "ask_model", {"question": "x"}, ctx, record=recorded.append, allowed=set()
    )
    assert not not_offered.ok and not_offered.error_type == "not_found"
    wrong_type = await run_tool_call(
        registry, "ask_model", {"question": 3}, ctx, record=recorded.append
    )
    assert wrong_type.error_type == "arguments_invalid"
    assert "question: expected string" in (wrong_type.error or "")
    no_model = await run_tool_call(
        registry, "ask_model", {"question": "x"}, ctx, record=recorded.append
    )
    assert not no_model.ok and "no model" in (no_model.error or "")
    assert [(e.name, e.agent, e.outcome) for e in recorded] == [("ask_model", "me", "error")] * 3


async def test_files_an_agent_writes_become_artifacts_of_the_job(tmp_path: Path) -> None:
    replies = [
        {
            "match": {"role": "executor", "contains": "Write the report"},
            "tool_calls": [
                {"name": "write_file", "arguments": {"path": "out/report.md", "content": "# Hi"}}
            ],
        },
        {"match": {"role": "executor"}, "content": "Wrote out/report.md."},
    ]
    plan = Plan(tasks=(TaskSpec(id="w", kind="execute", goal="Write the report"),))
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=plan)
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    created = [e for e in events if e.type == "ArtifactCreated"]
    assert [(e.task_id, e.name, e.size) for e in created] == [("w", "out/report.md", 4)]  # type: ignore[attr-defined]
    (path,) = [p for p in result.artifacts if p.name == "report.md"]
    assert path.is_absolute() and path.read_text() == "# Hi"
    (call,) = [e for e in events if isinstance(e, ToolCalled)]
    assert call.name == "write_file" and call.agent == "executor" and call.outcome == "ok"
