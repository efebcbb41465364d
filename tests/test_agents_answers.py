"""Junk answers (empty, or the engine's own instructions echoed) are failed attempts, never results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec
from planweave.agents import AgentContext, AgentResult, AgentTask
from planweave.agents._answers import answer_problem, echoes_instructions
from planweave.agents.react import _FINAL_CALL, _JSON_GUIDE, _NATIVE_GUIDE
from planweave.llm import ScriptedModel

EXECUTE_ONLY = Plan(tasks=(TaskSpec(id="t1", kind="execute", goal="What is 2+3, then squared?"),))


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        **kwargs,
    )


@pytest.mark.parametrize(
    ("reply", "error_type"),
    [
        (_FINAL_CALL, "echoed_instructions"),
        # What the default model wrote: the instruction cut short.
        ("You have used all your steps. Give your final answer now…", "echoed_instructions"),
        ("", "empty_answer"),
        ("   \n\t ", "empty_answer"),
    ],
)
async def test_a_junk_answer_is_retried_then_fails_the_task(
    tmp_path: Path, reply: str, error_type: str
) -> None:
    replies = [{"match": {"role": "executor"}, "content": reply, "repeat": True}]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=EXECUTE_ONLY, max_attempts=3, retry_base_s=0.01)
        events = await engine.events(result.job_id)
        state = await engine.get(result.job_id)
    assert result.status == "failed"
    assert state.tasks["t1"].status == "failed"
    assert state.tasks["t1"].result is None
    assert [e.type for e in events].count("TaskRetrying") == 2
    assert [e.attempt for e in events if e.type == "TaskAssigned"] == [1, 2, 3]  # type: ignore[union-attr]
    failed = [e for e in events if e.type == "TaskFailed"]
    assert len(failed) == 1 and failed[0].error_type == error_type  # type: ignore[union-attr]
    assert not result.result  # the junk never became the job's answer


async def test_an_echo_then_a_real_answer_succeeds_on_a_later_attempt(tmp_path: Path) -> None:
    replies = [
        # First attempt: every call echoes (the answer, the nudge's reply, the last call).
        {"match": {"role": "executor"}, "content": _FINAL_CALL},
        {"match": {"role": "executor"}, "content": _FINAL_CALL},
        {"match": {"role": "executor"}, "content": _FINAL_CALL},
        {"match": {"role": "executor"}, "content": "5 squared is 25."},
    ]
    async with engine_for(tmp_path, replies) as engine:
        result = await engine.run(plan=EXECUTE_ONLY, max_attempts=2, retry_base_s=0.01)
    assert result.ok, result.error
    assert result.result == "5 squared is 25."


class EchoingAgent:
    """An agent of the user's own that returns the engine's instructions as its answer."""

    name = "echo"

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        return AgentResult(output=_NATIVE_GUIDE.format(name=self.name))


async def test_any_agents_junk_answer_is_rejected_by_the_worker(tmp_path: Path) -> None:
    plan = Plan(tasks=(TaskSpec(id="t1", kind="execute", goal="Answer", agent="echo"),))
    async with engine_for(tmp_path, [], agents=[EchoingAgent()]) as engine:
        result = await engine.run(plan=plan, max_attempts=2, retry_base_s=0.01)
        events = await engine.events(result.job_id)
    assert result.status == "failed"
    failed = [e for e in events if e.type == "TaskFailed"]
    assert failed[0].error_type == "echoed_instructions"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "answer",
    [
        _FINAL_CALL,
        _FINAL_CALL.upper(),
        "Give your final answer now",
        "25. " + _FINAL_CALL,
        _JSON_GUIDE.format(name="executor", tools="- calculator(expression: string)"),
        "Reply with the next action, or with final_answer if you can answer now.",
    ],
)
def test_echoes_are_recognised(answer: str) -> None:
    assert echoes_instructions(answer)
    assert answer_problem(answer) == "echoed_instructions"


@pytest.mark.parametrize(
    "answer",
    [
        "25",
        "2+3 = 5, and 5 squared is 25.",
        "The final answer is 25.",
        "# Paris\n\nParis is the capital of France; it has about two million inhabitants.",
        "I used the calculator tool: (2+3)**2 = 25, so the answer to the task is 25.",
    ],
)
def test_real_answers_pass(answer: str) -> None:
    assert answer_problem(answer) is None
