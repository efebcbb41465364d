"""A two-agent sequential workflow on the offline local model (SmolLM2), run as a job: it
reaches a valid end state, each agent's step a task of the job that ends once, with the
stored state equal to the replayed log."""

from __future__ import annotations

from pathlib import Path

import pytest

from planweave import Engine
from planweave.agents import ReactAgent, Sequential
from planweave.state import replay


@pytest.mark.local_model
@pytest.mark.timeout(900)
async def test_the_local_model_runs_a_two_agent_sequential_workflow_to_a_valid_end(
    tmp_path: Path,
) -> None:
    from planweave.llm import ModelOptions

    team = Sequential(
        "team",
        [
            ReactAgent("noter", instructions="List two facts about the topic.", tools=[]),
            ReactAgent("writer", instructions="Write one sentence from the notes.", tools=[]),
        ],
    )
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model="local:",
        model_options=ModelOptions(n_threads=1, max_tokens=96),
        data_dir=tmp_path,
        agents=[team],
    )
    async with engine:
        result = await engine.run(agent="team", input="rain", max_agent_steps=1)
        events = await engine.events(result.job_id)
        state = await engine.get(result.job_id)
        stored = await engine.store.load_job(result.job_id)
    assert result.status in ("succeeded", "failed")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type in ("JobCompleted", "JobFailed")
    assert all(task.terminal for task in state.tasks.values())
    steps = {t.spec.agent: t for t in state.tasks.values() if t.spec.agent in ("noter", "writer")}
    assert set(steps) == {"noter", "writer"}  # each agent's step is a task of the job
    ended = [e for e in events if e.type in ("TaskCompleted", "TaskFailed", "TaskCancelled")]
    assert len(ended) == len({e.task_id for e in ended})  # every task ended exactly once
    assert {e.agent for e in events if e.type == "LlmCalled"} >= {"noter"}
    assert stored is not None and replay(events).to_row() == stored.to_row()
    if result.ok:
        assert steps["writer"].status == "succeeded"
        assert isinstance(result.result, str) and result.result.strip()
    else:
        assert result.error
