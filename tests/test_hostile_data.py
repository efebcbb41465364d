"""Hostile data through the whole engine: half an emoji, oversized fields and results.

A model or a tool can hand the engine anything JSON can say, including half of a surrogate pair
(``"\\ud83d"``) that no UTF-8 encoder accepts, and sizes no one planned for. None of it may stop
a job from ending, take another job down with it, or grow memory and disk without bound.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine, Plan, TaskSpec, tool
from planweave.bus.memory import MemoryBus
from planweave.control import decider
from planweave.events import JobFailed, TaskCompleted, ToolCalled
from planweave.messages import Outcome
from planweave.state import replay
from planweave.store import MemoryStore

LONE = "\ud83d"


class BunchingBus(MemoryBus):
    """A memory bus that holds workers' outcomes until ``bunch`` of them wait, then hands them
    to the control plane all at once, so that they are decided and written in one batch."""

    def __init__(self, bunch: int) -> None:
        super().__init__()
        self.bunch = bunch
        self._held: list[tuple[str, Any]] = []

    async def enqueue(self, queue: str, message: Any) -> None:
        if not isinstance(message, Outcome) or self.bunch <= 1:
            await super().enqueue(queue, message)
            return
        self._held.append((queue, message))
        if len(self._held) >= self.bunch:
            held, self._held = self._held, []
            for each_queue, each in held:  # no await yields in between: one receive gets all
                await super().enqueue(each_queue, each)


@tool
def emit(text: str) -> str:
    """Give back the text; ``half`` gives back half of an emoji."""
    return f"{text} {LONE} end" if text == "half" else text


def store_url(kind: str, tmp_path: Path) -> Any:
    return MemoryStore() if kind == "memory" else f"sqlite:///{tmp_path / 'jobs.db'}"


def one_tool_plan(text: str) -> Plan:
    return Plan(tasks=(TaskSpec(id="say", kind="tool", tool="emit", args={"text": text}),))


async def run_pair(tmp_path: Path, kind: str) -> tuple[Engine, list[Any], list[list[Any]]]:
    engine = Engine(
        store=store_url(kind, tmp_path),
        bus=BunchingBus(2),
        model="scripted",
        tools=[emit],
        data_dir=tmp_path / "data",
    )
    async with engine:
        bad = await engine.submit(plan=one_tool_plan("half"))
        good = await engine.submit(plan=one_tool_plan("fine"))
        results = [await asyncio.wait_for(engine.wait(job_id), 10) for job_id in (bad, good)]
        logs = [await engine.events(job_id) for job_id in (bad, good)]
        for job_id, events in zip((bad, good), logs, strict=True):
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), "a seq gap"
            stored = await engine.store.load_job(job_id)
            assert stored is not None
            rebuilt = replay(events)
            assert rebuilt.to_row() == stored.to_row()
            assert {k: t.to_row(job_id) for k, t in rebuilt.tasks.items()} == {
                k: t.to_row(job_id) for k, t in stored.tasks.items()
            }
    return engine, results, logs


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_half_an_emoji_from_a_tool_is_replaced_and_both_jobs_finish(
    tmp_path: Path, kind: str
) -> None:
    _, (bad, good), (bad_log, _) = await run_pair(tmp_path, kind)
    assert good.status == "succeeded" and good.result == "fine"
    assert bad.status == "succeeded", bad.error
    assert bad.result == "half \ufffd end"
    (called,) = [e for e in bad_log if isinstance(e, ToolCalled)]
    assert LONE not in called.result and "\ufffd" in called.result


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_job_whose_data_cannot_be_stored_fails_alone(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the scrubbing the event cannot be encoded: the store must name the job at fault,
    # which fails with the reason, and the other job of the same batch must carry on.
    monkeypatch.setattr(decider, "_UNTRUSTED", {})
    _, (bad, good), (bad_log, good_log) = await run_pair(tmp_path, kind)
    assert good.status == "succeeded" and good.result == "fine"
    assert any(isinstance(e, TaskCompleted) for e in good_log)
    assert bad.status == "failed"
    assert bad.error is not None and "cannot be stored" in bad.error
    assert isinstance(bad_log[-1], JobFailed) and bad_log[-1].code == "data_invalid"
