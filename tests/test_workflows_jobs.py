"""Workflows run as jobs through the Engine on a SQLite file: each step a task of the DAG."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine
from planweave.agents import (
    Agent,
    AgentContext,
    AgentResult,
    AgentTask,
    Loop,
    Parallel,
    ReactAgent,
    Sequential,
)
from planweave.errors import ConfigError, UsageError
from planweave.events import LlmCalled, TaskFailed
from planweave.llm import ScriptedModel
from planweave.store import open_store


def engine_for(
    tmp_path: Path, agents: list[Agent], replies: list[dict[str, Any]] | None = None
) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies or []),
        data_dir=tmp_path / "data",
        agents=agents,
    )


def answers(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"match": {"role": name}, "content": text, "repeat": True} for name, text in pairs]


def team() -> Sequential:
    research = Parallel("research", [ReactAgent("alpha"), ReactAgent("beta")], merge="dict")
    editor = Loop(
        "editor", ReactAgent("writer"), until=lambda r: "FINAL" in r.output, max_iterations=3
    )
    return Sequential("team", [research, editor], description="Research, then write")


async def test_a_workflow_runs_as_a_job_with_its_steps_as_tasks(tmp_path: Path) -> None:
    replies = [
        *answers(("alpha", "alpha facts"), ("beta", "beta facts")),
        {"match": {"role": "writer"}, "content": "first draft"},
        {"match": {"role": "writer"}, "content": "FINAL report"},
    ]
    async with engine_for(tmp_path, [team()], replies) as engine:
        result = await engine.run(agent="team", input="Go concurrency patterns")
        job_id = result.job_id
        events = await engine.events(job_id)

    assert result.status == "succeeded", result.error
    assert result.result == "FINAL report"

    # The stored DAG, read back by a store of its own: one task per step, nested by parent.
    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.open()
    try:
        state = await store.load_job(job_id)
    finally:
        await store.close()
    assert state is not None and state.status == "succeeded"
    assert state.goal == "Go concurrency patterns"
    tasks = state.tasks
    assert set(tasks) == {
        "team",
        "team.research",
        "team.research.alpha",
        "team.research.beta",
        "team.research.merge",
        "team.editor",
        # The loop runs an iteration at a time: each is a task, and after each one a task
        # checks whether the loop goes on (here "FINAL" ends it after the second).
        "team.editor.writer_1",
        "team.editor.after_1",
        "team.editor.after_1.writer_2",
        "team.editor.after_1.after_2",
    }
    parents = {tid: t.parent for tid, t in tasks.items()}
    assert parents == {
        "team": None,
        "team.research": "team",
        "team.research.alpha": "team.research",
        "team.research.beta": "team.research",
        "team.research.merge": "team.research",
        "team.editor": "team",
        "team.editor.writer_1": "team.editor",
        "team.editor.after_1": "team.editor",
        "team.editor.after_1.writer_2": "team.editor.after_1",
        "team.editor.after_1.after_2": "team.editor.after_1",
    }
    assert {tid: t.spec.agent for tid, t in tasks.items()} == {
        "team": "team",
        "team.research": "research",
        "team.research.alpha": "alpha",
        "team.research.beta": "beta",
        "team.research.merge": "research.merge",
        "team.editor": "editor",
        "team.editor.writer_1": "writer",
        "team.editor.after_1": "editor",
        "team.editor.after_1.writer_2": "writer",
        "team.editor.after_1.after_2": "editor",
    }
    assert all(t.status == "succeeded" for t in tasks.values())
    assert tasks["team.research.merge"].spec.depends_on == (
        "team.research.alpha",
        "team.research.beta",
    )
    assert tasks["team.editor"].spec.depends_on == ("team.research",)
    assert json.loads(tasks["team.research"].result) == {
        "alpha": "alpha facts",
        "beta": "beta facts",
    }
    assert tasks["team.editor"].result == "FINAL report"
    # No planner ran: every model call is one of the workflow's agents, in its own task.
    calls = [e for e in events if isinstance(e, LlmCalled)]
    assert {(e.agent, e.task_id) for e in calls} == {
        ("alpha", "team.research.alpha"),
        ("beta", "team.research.beta"),
        ("writer", "team.editor.writer_1"),
        ("writer", "team.editor.after_1.writer_2"),
    }
    assert [e.reply for e in calls if e.agent == "writer"] == ["first draft", "FINAL report"]
    assert all(e.role != "planner" for e in calls)
    # The loop's task saw the merged research.
    started = [e.type for e in events if e.task_id == "team.editor"]
    assert started.count("TaskCompleted") == 1


async def test_a_single_agent_runs_as_a_one_task_job(tmp_path: Path) -> None:
    async with engine_for(tmp_path, [ReactAgent("solo")], answers(("solo", "done"))) as engine:
        job_id = await engine.submit(agent="solo", input="say done")
        result = await engine.wait(job_id)
        state = await engine.get(job_id)
    assert result.status == "succeeded" and result.result == "done"
    assert [(t.id, t.spec.kind, t.spec.agent) for t in state.tasks.values()] == [
        ("solo", "execute", "solo")
    ]


async def test_running_an_agent_checks_its_arguments(tmp_path: Path) -> None:
    async with engine_for(tmp_path, [team()]) as engine:
        with pytest.raises(ConfigError, match="unknown agent 'nobody'"):
            await engine.submit(agent="nobody", input="x")
        with pytest.raises(UsageError, match="an input"):
            await engine.submit(agent="team", input="  ")
        with pytest.raises(UsageError, match="not both"):
            await engine.submit(agent="team", input="x", plan=[])


async def test_a_step_that_fails_is_retried_like_any_task(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "alpha"}, "error": {"type": "unavailable", "message": "outage"}},
        *answers(("alpha", "alpha facts"), ("beta", "beta facts"), ("writer", "FINAL")),
    ]
    async with engine_for(tmp_path, [team()], replies) as engine:
        result = await engine.run(agent="team", input="topic", retry_base_s=0)
        state = await engine.get(result.job_id)
    assert result.status == "succeeded", result.error
    assert state.tasks["team.research.alpha"].attempt == 2
    assert state.tasks["team.research.beta"].attempt == 1


@pytest.mark.parametrize("max_handoffs", [None, 1])
async def test_endless_handoffs_fail_the_step_for_good(
    tmp_path: Path, max_handoffs: int | None
) -> None:
    replies = [
        {"match": {"role": n}, "tool_calls": [{"name": f"handoff_to_{o}"}], "repeat": True}
        for n, o in (("ping", "pong"), ("pong", "ping"))
    ]
    flow = Sequential(
        "desk", [ReactAgent("ping", handoffs=["pong"]), ReactAgent("pong", handoffs=["ping"])]
    )
    async with engine_for(tmp_path, [flow], replies) as engine:
        options = {} if max_handoffs is None else {"max_handoffs": max_handoffs}
        result = await engine.run(agent="desk", input="help", **options)
        state = await engine.get(result.job_id)
        events = await engine.events(result.job_id)
    assert result.status == "failed"
    (failed,) = [e for e in events if isinstance(e, TaskFailed)]
    assert failed.task_id == "desk.ping" and failed.error_type == "budget_exceeded"
    step = state.tasks["desk.ping"]
    assert step.status == "failed" and step.attempt == 1  # not retried
    limit = 3 if max_handoffs is None else max_handoffs  # the job option, 3 by default
    assert f"handed off more than {limit} times" in (step.error or "")
    llm_calls = [e.agent for e in events if isinstance(e, LlmCalled)]
    assert llm_calls == [("ping", "pong")[n % 2] for n in range(limit + 1)]


class Gate:
    """An agent that waits until it is let through, counting its runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs = 0
        self.entered = asyncio.Event()
        self.open = asyncio.Event()

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        self.runs += 1
        self.entered.set()
        await self.open.wait()
        return AgentResult(output=f"{self.name} passed with {sorted(task.inputs)}")


class Counter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.runs = 0

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        self.runs += 1
        return AgentResult(output=f"{self.name} done")


async def test_a_workflow_job_can_be_cancelled(tmp_path: Path) -> None:
    first, gate, last = Counter("first"), Gate("gate"), Counter("last")
    flow = Sequential("chain", [first, gate, last])
    async with engine_for(tmp_path, [flow]) as engine:
        job_id = await engine.submit(agent="chain", input="go")
        await asyncio.wait_for(gate.entered.wait(), 10)
        assert await engine.cancel(job_id, reason="stop the chain")
        result = await asyncio.wait_for(engine.wait(job_id), 10)
        state = await engine.get(job_id)
    assert result.status == "cancelled" and result.error == "stop the chain"
    assert state.tasks["chain.first"].status == "succeeded"
    assert state.tasks["chain.gate"].status == "cancelled"
    assert state.tasks["chain.last"].status == "cancelled"
    assert last.runs == 0


async def test_a_stopped_workflow_job_resumes_without_rerunning_finished_steps(
    tmp_path: Path,
) -> None:
    first, gate, last = Counter("first"), Gate("gate"), Counter("last")
    flow = Sequential("chain", [first, gate, last])
    engine = engine_for(tmp_path, [flow])
    await engine.start()
    job_id = await engine.submit(agent="chain", input="go")
    await asyncio.wait_for(gate.entered.wait(), 10)
    await engine.close(grace_s=0.1)  # the process stops mid-step

    gate.open.set()
    async with engine_for(tmp_path, [flow]) as again:
        result = await asyncio.wait_for(again.resume(job_id), 20)
        state = await again.get(job_id)

    assert result.status == "succeeded", result.error
    assert result.result == "last done"
    assert first.runs == 1  # finished before the stop: kept, not run again
    assert gate.runs == 2  # the interrupted step ran again
    assert last.runs == 1
    assert state.tasks["chain.gate"].result == "gate passed with ['chain.first']"


TOKEN = "pw_workflow_token_for_tests_000000000"


async def test_the_live_tree_and_the_api_nest_a_workflows_steps(tmp_path: Path) -> None:
    import io

    import httpx
    from rich.console import Console

    from planweave.cli._live import render
    from planweave.config import Settings
    from planweave.server.testing import running_server

    replies = answers(("alpha", "A"), ("beta", "B"), ("writer", "FINAL"))
    engine = engine_for(tmp_path, [team()], replies)
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": f"alice:{TOKEN}", "rate_limit_per_s": 1000}
    )
    try:
        async with running_server(engine, settings) as api:
            job_id = await engine.submit(agent="team", input="topic", tenant="alice")
            await engine.wait(job_id)
            state = await engine.get(job_id)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=api.url, headers=headers) as http:
                response = await http.get(f"/v1/jobs/{job_id}/tasks")
    finally:
        await engine.close()

    assert response.status_code == 200
    listed = {t["id"]: (t["parent"], t["agent"], t["kind"]) for t in response.json()["tasks"]}
    assert listed == {
        "team": (None, "team", "plan"),
        "team.research": ("team", "research", "plan"),
        "team.research.alpha": ("team.research", "alpha", "execute"),
        "team.research.beta": ("team.research", "beta", "execute"),
        "team.research.merge": ("team.research", "research.merge", "execute"),
        "team.editor": ("team", "editor", "plan"),
        "team.editor.writer_1": ("team.editor", "writer", "execute"),
        "team.editor.after_1": ("team.editor", "editor", "plan"),
    }

    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render(state, now=state.finished_at or 0.0, spinners=False))
    lines = console.export_text().splitlines()

    def line(task_id: str) -> str:
        return next(x for x in lines if f" {task_id} " in x)

    assert "[plan team]" in line("team") and "[execute alpha]" in line("team.research.alpha")
    # each step is indented under the workflow it belongs to
    assert line("team.research").index("team.research") > line("team").index("team")
    assert line("team.research.alpha").index("team.research.alpha") > line("team.research").index(
        "team.research"
    )
    assert line("team.editor").index("team.editor") == line("team.research").index("team.research")
    assert line("team.editor.writer_1").index("team.editor.writer_1") > line("team.editor").index(
        "team.editor"
    )


async def test_an_agent_tool_in_a_job_records_the_inner_calls_in_the_calling_task(
    tmp_path: Path,
) -> None:
    from planweave.agents import Conditional, as_tool
    from planweave.events import ToolCalled

    desk = Conditional(
        "desk",
        {"billing": ReactAgent("billing"), "tech": ReactAgent("tech", tools=["calculator"])},
        decide="llm",
    )
    boss = ReactAgent("boss", tools=[as_tool(desk, description="Answers customers")])
    replies = [
        {"match": {"role": "boss"}, "tool_calls": [{"name": "desk", "arguments": {"task": "6*7?"}}]},
        {"match": {"role": "desk"}, "json": {"branch": "tech"}},
        {"match": {"role": "tech"}, "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}]},
        {"match": {"role": "tech"}, "content": "42"},
        {"match": {"role": "boss"}, "content": "The desk says 42."},
    ]  # fmt: skip
    async with engine_for(tmp_path, [boss], replies) as engine:
        result = await engine.run(agent="boss", input="Ask the desk what 6*7 is")
        events = await engine.events(result.job_id)

    assert result.status == "succeeded", result.error
    assert result.result == "The desk says 42."
    calls = [(e.agent, e.task_id) for e in events if isinstance(e, LlmCalled)]
    assert calls == [
        ("boss", "boss"),
        ("desk", "boss"),
        ("tech", "boss"),
        ("tech", "boss"),
        ("boss", "boss"),
    ]
    decision = next(e for e in events if isinstance(e, LlmCalled) and e.agent == "desk")
    assert "tech" in decision.reply  # the branch chosen is in the job's log
    tools = [(e.name, e.agent, e.result) for e in events if isinstance(e, ToolCalled)]
    assert tools == [("calculator", "tech", "42"), ("desk", "boss", "42")]


def test_the_workflow_example_runs_offline(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": f"{root / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "workflow.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "succeeded - 10 tasks, 4 LLM calls"
    assert lines[1].endswith("APPROVED")
    assert "    team.research.merge [research.merge] succeeded" in lines


@pytest.mark.parametrize("max_plan_depth", [2, 3])
async def test_nesting_past_max_plan_depth_runs_as_one_task(
    tmp_path: Path, max_plan_depth: int
) -> None:
    inner = Parallel("inner", [ReactAgent("a"), ReactAgent("b")], merge="dict")
    outer = Sequential("outer", [Sequential("mid", [inner, ReactAgent("c")])])
    replies = answers(("a", "from a"), ("b", "from b"), ("c", "from c"))
    async with engine_for(tmp_path, [outer], replies) as engine:
        result = await engine.run(agent="outer", input="x", max_plan_depth=max_plan_depth)
        state = await engine.get(result.job_id)
        events = await engine.events(result.job_id)

    assert result.status == "succeeded", result.error
    assert result.result == "from c"
    inner_task = state.tasks["outer.mid.inner"]
    assert json.loads(inner_task.result) == {"a": "from a", "b": "from b"}
    calls = {(e.agent, e.task_id) for e in events if isinstance(e, LlmCalled)}
    if max_plan_depth == 2:  # the parallel part is one task, its branches run inside it
        assert inner_task.spec.kind == "execute" and not inner_task.children
        assert ("a", "outer.mid.inner") in calls and ("b", "outer.mid.inner") in calls
    else:
        assert inner_task.spec.kind == "plan"
        assert inner_task.children == [
            "outer.mid.inner.a",
            "outer.mid.inner.b",
            "outer.mid.inner.merge",
        ]
        assert ("a", "outer.mid.inner.a") in calls


async def test_a_conditional_job_records_its_choice_and_runs_the_branch_as_a_child(
    tmp_path: Path,
) -> None:
    from planweave.agents import Conditional
    from planweave.events import SubtasksPlanned

    desk = Conditional(
        "desk", {"billing": ReactAgent("billing"), "tech": ReactAgent("tech")}, decide="llm"
    )
    replies = [
        {"match": {"role": "desk"}, "json": {"branch": "tech"}},
        *answers(("billing", "refund"), ("tech", "rebooted")),
    ]
    async with engine_for(tmp_path, [desk], replies) as engine:
        result = await engine.run(agent="desk", input="my app crashes")
        state = await engine.get(result.job_id)
        events = await engine.events(result.job_id)

    assert result.status == "succeeded", result.error
    assert result.result == "rebooted"
    assert {t.id: (t.parent, t.spec.agent) for t in state.tasks.values()} == {
        "desk": (None, "desk"),
        "desk.tech": ("desk", "tech"),
    }
    decision = next(e for e in events if isinstance(e, LlmCalled) and e.agent == "desk")
    assert decision.task_id == "desk" and "tech" in decision.reply
    (planned,) = [e for e in events if isinstance(e, SubtasksPlanned)]
    assert [t.id for t in planned.tasks] == ["desk.tech"]
    assert not any(isinstance(e, LlmCalled) and e.agent == "billing" for e in events)


async def test_a_plan_task_of_a_user_plan_may_name_a_workflow(tmp_path: Path) -> None:
    from planweave import TaskSpec

    pair = Sequential("pair", [ReactAgent("one"), ReactAgent("two")])
    plan = [
        TaskSpec(id="w", goal="work in two steps", kind="plan", agent="pair"),
        TaskSpec(id="p", goal="plan this yourself", kind="plan", agent="nobody"),
    ]
    replies = [
        *answers(("one", "step one"), ("two", "step two")),
        {"match": {"role": "planner"}, "json": {"tasks": [{"id": "x", "goal": "do x"}]}},
        {"match": {"role": "executor"}, "content": "did x", "repeat": True},
    ]
    async with engine_for(tmp_path, [pair], replies) as engine:
        result = await engine.run(plan=plan)
        state = await engine.get(result.job_id)

    assert result.status == "succeeded", result.error
    assert state.tasks["w"].children == ["w.one", "w.two"]
    assert state.tasks["w"].result == "step two"
    assert state.tasks["p"].children == ["p.x"]  # an agent that is not registered: planned
    assert state.tasks["p"].result == "did x"


async def test_a_loop_job_runs_each_iteration_as_a_task_up_to_its_bound(tmp_path: Path) -> None:
    drafts = [{"match": {"role": "writer"}, "content": f"draft {n}"} for n in (1, 2, 3)]
    loop = Loop("edit", ReactAgent("writer"), until=lambda r: False, max_iterations=3)
    async with engine_for(tmp_path, [loop], drafts) as engine:
        # The iterations nest a level deeper each time; the loop's bound, not
        # max_plan_depth, limits them.
        result = await engine.run(agent="edit", input="x", max_plan_depth=1)
        state = await engine.get(result.job_id)
        events = await engine.events(result.job_id)

    assert result.status == "succeeded", result.error
    assert result.result == "draft 3"
    assert {tid: t.spec.kind for tid, t in state.tasks.items()} == {
        "edit": "plan",
        "edit.writer_1": "execute",
        "edit.after_1": "plan",
        "edit.after_1.writer_2": "execute",
        "edit.after_1.after_2": "plan",
        "edit.after_1.after_2.writer_3": "execute",  # the last one allowed: nothing after it
    }
    writes = [e for e in events if isinstance(e, LlmCalled)]
    assert [(e.task_id, e.reply) for e in writes] == [
        ("edit.writer_1", "draft 1"),
        ("edit.after_1.writer_2", "draft 2"),
        ("edit.after_1.after_2.writer_3", "draft 3"),
    ]
    # Each iteration sees the drafts before it.
    assert "draft 2" in writes[2].prompt and "draft 1" in writes[2].prompt


async def test_a_loop_jobs_predicate_reads_an_iterations_json_result_as_data(
    tmp_path: Path,
) -> None:
    replies = [
        {"match": {"role": "writer"}, "content": '{"approved": false}'},
        {"match": {"role": "writer"}, "content": '{"approved": true}'},
    ]
    loop = Loop(
        "review", ReactAgent("writer"), until=lambda r: r.data["approved"], max_iterations=5
    )
    async with engine_for(tmp_path, [loop], replies) as engine:
        result = await engine.run(agent="review", input="x")
        state = await engine.get(result.job_id)

    assert result.status == "succeeded", result.error
    assert json.loads(result.result) == {"approved": True}
    assert sorted(state.tasks) == [
        "review",
        "review.after_1",
        "review.after_1.after_2",
        "review.after_1.writer_2",
        "review.writer_1",
    ]
