"""The critic: each verdict on the scripted model, Python critics, per-task and per-agent
critics, the verdict events, and what the CLI shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, TaskSpec
from planweave.agents import ReactAgent
from planweave.critic import CriticTask, Verdict
from planweave.errors import UsageError
from planweave.llm import ScriptedModel
from planweave.state import replay


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )


def verdict(kind: str, feedback: str = "") -> dict[str, Any]:
    return {"match": {"role": "critic"}, "json": {"verdict": kind, "feedback": feedback}}


ONE_TASK = [TaskSpec(id="poem", goal="Write a haiku about rain")]


async def stored_equals_replayed(engine: Engine, job_id: str) -> list[Any]:
    events = await engine.events(job_id)
    stored = await engine.get(job_id)
    assert stored is not None
    assert replay(events).to_row() == stored.to_row()
    rebuilt = replay(events)
    for task_id, task in rebuilt.tasks.items():
        assert task.to_row(job_id) == stored.tasks[task_id].to_row(job_id)
    return events


async def test_pass_accepts_the_answer(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Rain on the roof"},
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert result.ok, result.error
        assert result.result == "Rain on the roof"
        events = await stored_equals_replayed(engine, result.job_id)
        verdicts = [e for e in events if e.type == "CriticVerdict"]
        assert [(v.verdict, v.revision, v.critic) for v in verdicts] == [("pass", 0, "llm")]
        assert verdicts[0].model is not None and verdicts[0].usage.llm_calls == 1
        types = [e.type for e in events if e.task_id == "poem"]
        assert types.index("TaskReviewing") < types.index("CriticVerdict")
        assert types.index("CriticVerdict") < types.index("TaskCompleted")
        assigned = [e.worker for e in events if e.type == "TaskAssigned"]
        assert assigned == ["executor", "critic"]


async def test_revise_runs_the_task_again_with_the_feedback(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor", "contains": "mention thunder"}, "content": "Thunder, rain"},
        {"match": {"role": "executor"}, "content": "Rain on the roof"},
        verdict("revise", "mention thunder"),
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert result.ok, result.error
        assert result.result == "Thunder, rain"
        events = await stored_equals_replayed(engine, result.job_id)
        prompts = [e.prompt for e in events if e.type == "LlmCalled" and e.role == "executor"]
        assert len(prompts) == 2
        assert "mention thunder" not in prompts[0] and "mention thunder" in prompts[1]
        verdicts = [(e.verdict, e.revision) for e in events if e.type == "CriticVerdict"]
        assert verdicts == [("revise", 0), ("pass", 1)]
        state = await engine.get(result.job_id)
        assert state is not None
        assert state.tasks["poem"].failures == 0  # a revision is not a failure


async def test_revise_past_max_revisions_fails_the_task(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Rain", "repeat": True},
        {**verdict("revise", "more rain"), "repeat": True},
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm", max_revisions=1)
        assert not result.ok
        assert result.error is not None and "max_revisions" in result.error
        events = await stored_equals_replayed(engine, result.job_id)
        verdicts = [(e.verdict, e.revision) for e in events if e.type == "CriticVerdict"]
        assert verdicts == [("revise", 0), ("revise", 1)]
        failed = [e for e in events if e.type == "TaskFailed"]
        assert failed[0].error_type == "critic_rejected"


async def test_reject_fails_the_task_with_the_reason(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor"}, "content": "Sunshine"},
        verdict("reject", "it is about the sun, not rain"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert not result.ok
        assert result.error is not None and "it is about the sun, not rain" in result.error
        events = await stored_equals_replayed(engine, result.job_id)
        assert [e.verdict for e in events if e.type == "CriticVerdict"] == ["reject"]
        state = await engine.get(result.job_id)
        assert state is not None and state.tasks["poem"].status == "failed"


async def test_replan_goes_through_the_replan_path(tmp_path: Path) -> None:
    replies = [
        {"match": {"role": "executor", "contains": "Write a haiku"}, "content": "Sunshine"},
        verdict("replan", "a haiku needs three lines: split the work"),
        {
            "match": {"role": "planner"},
            "json": {"tasks": [{"id": "t1", "goal": "Write three lines about rain"}]},
        },
        {"match": {"role": "executor", "contains": "three lines"}, "content": "Rain\nfalls\nsoft"},
        verdict("pass"),
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=ONE_TASK, critic="llm")
        assert result.ok, result.error
        events = await stored_equals_replayed(engine, result.job_id)
        replans = [e for e in events if e.type == "ReplanRequested"]
        assert len(replans) == 1 and replans[0].failed_task == "poem"
        assert "split the work" in replans[0].reason
        assert [e.verdict for e in events if e.type == "CriticVerdict"] == ["replan", "pass"]
        assert result.result == "Rain\nfalls\nsoft"
