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
from planweave.control import _decision
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
    monkeypatch.setattr(_decision, "_UNTRUSTED", {})
    _, (bad, good), (bad_log, good_log) = await run_pair(tmp_path, kind)
    assert good.status == "succeeded" and good.result == "fine"
    assert any(isinstance(e, TaskCompleted) for e in good_log)
    assert bad.status == "failed"
    assert bad.error is not None and "cannot be stored" in bad.error
    assert isinstance(bad_log[-1], JobFailed) and bad_log[-1].code == "data_invalid"


# --- oversized results and runaway jobs ---------------------------------------------------------


@tool
def big(size: int) -> str:
    """Give back ``size`` characters."""
    return "x" * size


@tool
def relay(inputs: dict[str, Any]) -> Any:
    """Give back the result of the task this one depends on."""
    return next(iter(inputs.values()))


@tool
def measure(inputs: dict[str, Any]) -> int:
    """The length of the result of the task this one depends on."""
    return len(next(iter(inputs.values())))


async def test_a_result_over_the_cap_becomes_an_artifact_and_dependents_get_the_value(
    tmp_path: Path,
) -> None:
    size = 200_000
    plan = Plan(
        tasks=(
            TaskSpec(id="make", kind="tool", tool="big", args={"size": size}),
            TaskSpec(id="count", kind="tool", tool="measure", depends_on=("make",)),
        )
    )
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model="scripted",
        tools=[big, measure],
        data_dir=tmp_path / "data",
    )
    async with engine:
        result = await engine.run(plan=plan)
        assert result.ok, result.error
        assert result.result == size  # the dependent saw the whole value
        events = await engine.events(result.job_id)
        stored = await engine.store.load_job(result.job_id)
        workspace = await engine.workspace(result.job_id)
    assert stored is not None
    reference = stored.tasks["make"].result
    assert reference["result_artifact"] == "results/make.txt"
    assert reference["bytes"] == size and len(reference["preview"]) <= 1_000
    assert (workspace / "results" / "make.txt").read_text() == "x" * size
    assert "results/make.txt" in stored.artifacts
    assert max(len(e.model_dump_json()) for e in events) < 10_000


async def test_a_job_over_its_event_limit_fails_with_a_clear_code(tmp_path: Path) -> None:
    plan = Plan(
        tasks=tuple(
            TaskSpec(id=f"t{i}", kind="tool", tool="emit", args={"text": "x"}) for i in range(60)
        )
    )
    engine = Engine(store=MemoryStore(), model="scripted", tools=[emit], data_dir=tmp_path / "data")
    async with engine:
        result = await asyncio.wait_for(engine.run(plan=plan, max_job_events=100), 30)
        events = await engine.events(result.job_id)
    assert result.status == "failed"
    assert isinstance(events[-1], JobFailed) and events[-1].code == "job_too_large"
    assert "max_job_events" in (result.error or "")
    assert len(events) < 200


CHILD = r"""
import asyncio, json, resource, sys
from pathlib import Path
from planweave import Engine, Plan, TaskSpec, tool

@tool
def big(size: int) -> str:
    '''Give back size characters.'''
    return "x" * size

@tool
def relay(inputs: dict) -> str:
    '''Give back the dependency's result.'''
    return next(iter(inputs.values()))

async def main(root: Path, size: int, fan: int) -> None:
    tasks = [TaskSpec(id="make", kind="tool", tool="big", args={"size": size})]
    tasks += [
        TaskSpec(id=f"r{i}", kind="tool", tool="relay", depends_on=("make",)) for i in range(fan)
    ]
    engine = Engine(store=f"sqlite:///{root / 'jobs.db'}", model="scripted",
                    tools=[big, relay], data_dir=root / "data")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with engine:
        result = await engine.run(plan=Plan(tasks=tuple(tasks)))
        state = await engine.get(result.job_id)
        row_bytes = sum(len(json.dumps(t.result)) for t in state.tasks.values())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"status": result.status, "rss_growth_kb": after - before,
                      "db_bytes": sum(p.stat().st_size for p in root.glob("jobs.db*")),
                      "row_bytes": row_bytes}))

asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
"""


@pytest.mark.timeout(60)
async def test_a_large_result_read_by_many_tasks_keeps_memory_and_disk_bounded(
    tmp_path: Path,
) -> None:
    import json
    import os
    import sys

    size, fan = 300_000, 40  # 12 MB of results if each were kept whole
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(tmp_path), str(size), str(fan),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(child.communicate(), 50)
    assert child.returncode == 0
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["status"] == "succeeded"
    assert report["row_bytes"] < 200_000, "results kept whole in the job's rows"
    assert report["db_bytes"] < 4_000_000, "results copied into events and rows"
    assert report["rss_growth_kb"] < 300_000


async def test_many_large_results_keep_job_reads_bounded_and_other_tenants_answered(
    tmp_path: Path,
) -> None:
    # 150 reads of a 60 KB file: each result just under the artifact cap, 9 MB in all, and the
    # job's answer holds every one of them. No read of the job may carry that.
    import time

    from tests.test_api_jobs import BOB, client, serving
    from tests.test_hostile_runaway import StallMeter

    write = {"path": "big.txt", "content": "z" * 60_000}
    tasks: list[dict[str, Any]] = [{"id": "w", "kind": "tool", "tool": "write_file", "args": write}]
    tasks += [
        {"id": f"r{i:03d}", "kind": "tool", "tool": "read_file", "args": {"path": "big.txt"}}
        | {"depends_on": ["w"]}
        for i in range(150)
    ]
    async with serving(tmp_path) as api, client(api) as alice, client(api, BOB) as bob:
        theirs = {"plan": {"tasks": [{"id": "t", "kind": "tool", "tool": "current_time"}]}}
        bobs_job = (await bob.post("/v1/jobs", json=theirs)).json()["job_id"]
        slowest_s, largest_read = 0.0, 0
        async with StallMeter() as meter:
            created = await alice.post("/v1/jobs", json={"plan": {"tasks": tasks}})
            assert created.status_code == 201, created.text
            job_id = created.json()["job_id"]
            for _ in range(1000):
                start = time.perf_counter()
                answer = await bob.get(f"/v1/jobs/{bobs_job}")
                slowest_s = max(slowest_s, time.perf_counter() - start)
                assert answer.status_code == 200
                read = await alice.get(f"/v1/jobs/{job_id}")
                largest_read = max(largest_read, len(read.content))
                if read.json()["status"] != "running":
                    break
                await asyncio.sleep(0.05)
        assert largest_read < 400_000, largest_read
        job = read.json()
        assert job["status"] == "succeeded", job["error"]
        assert job["tasks_total"] == 151 and job["result_truncated"]
        page = await alice.get(f"/v1/jobs/{job_id}/tasks", params={"limit": 500})
        listed = await alice.get("/v1/jobs")
        whole = (await alice.get(f"/v1/jobs/{job_id}/tasks/r149")).json()
    assert len(page.content) < 600_000 and len(page.json()["tasks"]) == 151
    assert len(listed.content) < 50_000
    assert whole["result"] == "z" * 60_000
    assert meter.longest_s < 1.0
    assert slowest_s < 3.0
