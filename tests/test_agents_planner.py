from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planweave.agents import AgentContext, plan
from planweave.agents.planner import dag_plan_schema
from planweave.errors import PlanInvalid
from planweave.events import LlmCalled, ToolCalled
from planweave.llm import ModelProfile
from planweave.llm.base import Model
from planweave.llm.scripted import ScriptedModel
from planweave.plan import plan_problems
from planweave.tools import ToolContext, ToolRegistry
from planweave.tools.builtins import calculator


def make_ctx(model: Model, tmp_path: Path, events: list[LlmCalled | ToolCalled]) -> AgentContext:
    async def emit(event: LlmCalled | ToolCalled) -> None:
        events.append(event)

    return AgentContext(
        model=model,
        tools=ToolRegistry([calculator]),
        tool_context=ToolContext(workspace=tmp_path),
        emit=emit,
        job_id="job1",
        task_id="root",
    )


async def run_plan(model: Model, tmp_path: Path, **overrides: Any) -> tuple[Any, ...]:
    events: list[LlmCalled | ToolCalled] = []
    kwargs: dict[str, Any] = {
        "goal": "Write a short blog post about Go concurrency",
        "job_goal": "Write a short blog post about Go concurrency",
        "inputs": {},
        "input_goals": {},
        "depth": 0,
        "max_depth": 2,
        "max_tasks": 10,
        "known_tools": ["calculator"],
        "known_agents": ["executor"],
        "allow_subplans": True,
    }
    kwargs.update(overrides)
    return await plan(make_ctx(model, tmp_path, events), **kwargs)


GOOD = {
    "tasks": [
        {"id": "t1", "goal": "Research goroutines", "depends_on": [], "kind": "execute"},
        {"id": "t2", "goal": "Research channels", "depends_on": [], "kind": "execute"},
        {"id": "t3", "goal": "Draft the post", "depends_on": ["t1", "t2"], "kind": "plan"},
    ]
}


async def test_valid_plan_is_returned_as_task_specs(tmp_path: Path) -> None:
    model = ScriptedModel([{"match": {"role": "planner"}, "json": GOOD}])
    tasks = await run_plan(model, tmp_path)

    assert [t.id for t in tasks] == ["t1", "t2", "t3"]
    assert tasks[2].depends_on == ("t1", "t2")
    assert tasks[2].kind == "plan"
    assert plan_problems(tasks) == []
    (request,) = model.requests
    assert request.role == "planner"
    schema = request.response_schema
    assert schema is not None
    item = schema["properties"]["tasks"]["items"]
    assert item["properties"]["kind"]["enum"] == ["execute", "plan"]
    assert set(item["required"]) == {"id", "goal", "depends_on", "kind"}
    assert "agent" not in item["properties"]
    assert schema["properties"]["tasks"]["maxItems"] == 10
    system, user = request.messages
    assert "3 to 5" in system.content and "calculator" in system.content
    assert "Go concurrency" in user.content


async def test_prompt_carries_job_goal_inputs_and_depth(tmp_path: Path) -> None:
    model = ScriptedModel([{"json": GOOD}])
    events: list[LlmCalled | ToolCalled] = []
    await plan(
        make_ctx(model, tmp_path, events),
        goal="Draft the post",
        job_goal="Write a short blog post about Go concurrency",
        inputs={"t1": "Goroutines are cheap."},
        input_goals={"t1": "Research goroutines"},
        depth=1,
        max_depth=2,
        max_tasks=10,
        known_tools=[],
        known_agents=[],
        allow_subplans=True,
    )
    user = model.requests[0].messages[1].content
    assert "Draft the post" in user
    assert "Write a short blog post about Go concurrency" in user
    assert "Research goroutines" in user and "Goroutines are cheap." in user
    assert "depth 1 of at most 2" in user
    (event,) = events
    assert isinstance(event, LlmCalled) and event.role == "planner" and event.task_id == "root"


async def test_invalid_plan_is_repaired_in_one_round(tmp_path: Path) -> None:
    bad = {
        "tasks": [
            {"id": "t1", "goal": "Research", "depends_on": ["t2"], "kind": "execute"},
            {"id": "t2", "goal": "Write", "depends_on": ["t1", "t9"], "kind": "execute"},
        ]
    }
    fixed = {
        "tasks": [
            {"id": "t1", "goal": "Research", "depends_on": [], "kind": "execute"},
            {"id": "t2", "goal": "Write", "depends_on": ["t1"], "kind": "execute"},
        ]
    }
    model = ScriptedModel(
        [
            {"match": {"contains": "Go concurrency"}, "json": bad},
            {"match": {"contains": "not valid"}, "json": fixed},
        ]
    )
    tasks = await run_plan(model, tmp_path)

    assert [t.depends_on for t in tasks] == [(), ("t1",)]
    assert len(model.requests) == 2
    repair = model.requests[1]
    assert repair.role == "planner"
    assert repair.messages[-2].role == "assistant"
    assert "unknown task 't9'" in repair.messages[-1].content
    assert "cycle" in repair.messages[-1].content
    assert repair.response_schema == model.requests[0].response_schema


async def test_still_invalid_after_repair_raises_plan_invalid(tmp_path: Path) -> None:
    bad = {"tasks": [{"id": "t1", "goal": "Loop", "depends_on": ["t1"], "kind": "execute"}]}
    model = ScriptedModel([{"json": bad}, {"json": bad}, {"json": GOOD}])
    with pytest.raises(PlanInvalid) as info:
        await run_plan(model, tmp_path)
    assert any("depends on itself" in error for error in info.value.errors)
    assert len(model.requests) == 2


async def test_reply_that_is_not_a_plan_gets_a_repair_round(tmp_path: Path) -> None:
    model = ScriptedModel([{"json": {"steps": ["a", "b"]}}, {"json": GOOD}])
    tasks = await run_plan(model, tmp_path)
    assert len(tasks) == 3
    assert '"tasks" list' in model.requests[1].messages[-1].content


async def test_light_cleanup_trims_dedupes_and_drops_empty_goals(tmp_path: Path) -> None:
    messy = {
        "tasks": [
            {"id": " t1 ", "goal": "  Research\n goroutines ", "depends_on": [], "kind": "execute"},
            {"id": "t2", "goal": "   ", "depends_on": ["t1"], "kind": "execute"},
            {
                "id": "t3",
                "goal": "Write",
                "depends_on": ["t1", "t1", "t2"],
                "kind": "Execute",
                "notes": "extra",
            },
        ]
    }
    model = ScriptedModel([{"json": messy}])
    tasks = await run_plan(model, tmp_path)

    assert [(t.id, t.goal, t.depends_on, t.kind) for t in tasks] == [
        ("t1", "Research goroutines", (), "execute"),
        ("t3", "Write", ("t1",), "execute"),
    ]
    assert len(model.requests) == 1


async def test_sub_plans_not_allowed(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            {"match": {"contains": "Go concurrency"}, "json": GOOD},
            {
                "match": {"contains": "not valid"},
                "json": {
                    "tasks": [
                        {"id": "t1", "goal": "All of it", "depends_on": [], "kind": "execute"}
                    ]
                },
            },
        ]
    )
    tasks = await run_plan(model, tmp_path, allow_subplans=False)

    assert [t.kind for t in tasks] == ["execute"]
    schema = model.requests[0].response_schema
    assert schema is not None
    assert schema["properties"]["tasks"]["items"]["properties"]["kind"]["enum"] == ["execute"]
    assert "kind 'plan'" in model.requests[1].messages[-1].content
    assert '"plan" only' not in model.requests[0].messages[0].content


async def test_agents_offered_and_checked(tmp_path: Path) -> None:
    with_agents = {
        "tasks": [
            {
                "id": "t1",
                "goal": "Research",
                "depends_on": [],
                "kind": "execute",
                "agent": "wizard",
            },
            {"id": "t2", "goal": "Write", "depends_on": ["t1"], "kind": "execute", "agent": None},
        ]
    }
    fixed = {
        "tasks": [
            {
                "id": "t1",
                "goal": "Research",
                "depends_on": [],
                "kind": "execute",
                "agent": "writer",
            },
        ]
    }
    model = ScriptedModel([{"json": with_agents}, {"json": fixed}])
    tasks = await run_plan(model, tmp_path, known_agents=["executor", "writer"])

    assert tasks[0].agent == "writer"
    schema = model.requests[0].response_schema
    assert schema is not None
    item = schema["properties"]["tasks"]["items"]
    assert item["properties"]["agent"]["anyOf"][0]["enum"] == ["executor", "writer"]
    assert "unknown agent 'wizard'" in model.requests[1].messages[-1].content


async def test_too_many_tasks_is_a_problem(tmp_path: Path) -> None:
    many = {
        "tasks": [
            {"id": f"t{i}", "goal": f"Step {i}", "depends_on": [], "kind": "execute"}
            for i in range(1, 5)
        ]
    }
    model = ScriptedModel([{"json": many}, {"json": many}])
    with pytest.raises(PlanInvalid, match="at most 3"):
        await run_plan(model, tmp_path, max_tasks=3)


# --- small local models: the DAG is in the schema ---------------------------------------------


def test_dag_schema_encodes_ids_and_earlier_dependencies() -> None:
    schema = dag_plan_schema(max_tasks=50, allow_subplans=True)
    tuples = schema["properties"]["tasks"]["anyOf"]
    assert [t["minItems"] for t in tuples] == [2, 3, 4, 5]
    for shape in tuples:
        assert shape["type"] == "array"
        assert shape["items"] is False
        assert shape["minItems"] == shape["maxItems"] == len(shape["prefixItems"])
        for index, item in enumerate(shape["prefixItems"], start=1):
            props = item["properties"]
            assert props["id"]["enum"] == [f"t{index}"]
            assert props["goal"]["maxLength"] == 120
            assert props["kind"]["enum"] == ["execute", "plan"]
            deps = props["depends_on"]
            if index == 1:
                assert deps["const"] == []
            else:
                assert deps["items"]["enum"] == [f"t{j}" for j in range(1, index)]
                assert deps["maxItems"] == index - 1
            assert item["additionalProperties"] is False
            assert set(item["required"]) == {"id", "goal", "depends_on", "kind"}


def test_dag_schema_respects_small_limits() -> None:
    schema = dag_plan_schema(max_tasks=3, allow_subplans=False)
    tuples = schema["properties"]["tasks"]["anyOf"]
    assert [len(t["prefixItems"]) for t in tuples] == [2, 3]
    kinds = {tuple(item["properties"]["kind"]["enum"]) for t in tuples for item in t["prefixItems"]}
    assert kinds == {("execute",)}


async def test_local_models_get_the_dag_schema(tmp_path: Path) -> None:
    model = ScriptedModel([{"json": GOOD}], name="tiny", profile=ModelProfile(small=True))
    await run_plan(model, tmp_path)
    schema = model.requests[0].response_schema
    assert schema is not None
    assert "anyOf" in schema["properties"]["tasks"]
    assert "prefixItems" in schema["properties"]["tasks"]["anyOf"][0]


# --- the real local model ---------------------------------------------------------------------


@pytest.mark.local_model
async def test_local_model_plans_a_valid_dag(tmp_path: Path) -> None:
    from planweave.llm import ModelOptions, load_model

    model = load_model("local:", ModelOptions(n_threads=1))
    try:
        tasks = await run_plan(model, tmp_path)
    finally:
        await model.aclose()
    assert 1 <= len(tasks) <= 5
    assert plan_problems(tasks) == []
    assert all(t.kind in ("execute", "plan") and t.goal for t in tasks)
    assert [t.id for t in tasks] == [f"t{i}" for i in range(1, len(tasks) + 1)]


async def test_the_jobs_max_plan_depth_reaches_the_planner(tmp_path: Path) -> None:
    from planweave import Engine

    replies = [
        {
            "match": {"role": "planner", "contains": "Write a guide"},
            "json": {
                "tasks": [
                    {"id": "body", "goal": "Write the body", "depends_on": [], "kind": "plan"}
                ]
            },
        },
        {
            "match": {"role": "planner", "contains": "Write the body"},
            "json": {
                "tasks": [{"id": "s1", "goal": "Section one", "depends_on": [], "kind": "execute"}]
            },
        },
        {"match": {"role": "executor"}, "content": "text", "repeat": True},
        {"match": {"role": "composer"}, "content": "# Guide"},
    ]
    model = ScriptedModel(replies)
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}", model=model, data_dir=tmp_path / "data"
    ) as engine:
        result = await engine.run("Write a guide", max_plan_depth=4)
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    prompts = [e.prompt for e in events if isinstance(e, LlmCalled) and e.role == "planner"]
    assert len(prompts) == 2
    assert "depth 1 of at most 4" in prompts[1]
    sub_request = [r for r in model.requests if r.role == "planner"][1]
    assert "depth 1 of at most 4" in sub_request.messages[-1].content


async def test_a_plan_with_huge_dependency_lists_is_checked_fast_and_repaired_briefly(
    tmp_path: Path,
) -> None:
    # 60,000 dependencies took 82 s (a quadratic dedupe on the event loop) and came back as a
    # 2.6 MB error and repair prompt: now the sizes are capped first and the prompt stays short.
    import time

    deps = [f"ghost{i}" for i in range(60_000)]
    bad = {"tasks": [{"id": "t1", "goal": "Research", "depends_on": deps, "kind": "execute"}]}
    model = ScriptedModel([{"json": bad}, {"json": bad}])
    started = time.monotonic()
    with pytest.raises(PlanInvalid) as info:
        await run_plan(model, tmp_path)
    assert time.monotonic() - started < 20  # a hang guard: the quadratic dedupe took minutes
    assert len(model.requests) == 2
    repair = model.requests[1]
    prompt = repair.messages[-1].content
    assert "at most 1000 are allowed" in prompt
    assert "more problems" in prompt
    assert len(prompt) < 5_000
    assert sum(len(m.content) for m in repair.messages) < 30_000
    assert len(str(info.value)) < 5_000
    assert len(info.value.errors) <= 11
