"""The step journal: recorded model and tool calls are replayed in order, a call that differs
from its record goes on live, and a step reported by a stale attempt is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from planweave import Engine, Plan, RetryTask, TaskSpec, tool
from planweave._journal import Journal, JournalStep, activated
from planweave.llm import ScriptedModel
from planweave.llm._record import recorded_call
from planweave.llm.base import ChatMessage, LlmRequest
from planweave.messages import StepAck, StepReport
from planweave.tools import ToolContext, ToolRegistry, run_tool_call


def _request(text: str) -> LlmRequest:
    return LlmRequest(messages=(ChatMessage(role="user", content=text),))


async def _run_once(
    model: ScriptedModel, registry: ToolRegistry, ctx: ToolContext, steps: list[JournalStep]
) -> tuple[list[JournalStep], list[Any], list[str]]:
    """One run of a fixed sequence of calls (model, tool, model, tool) under a journal."""
    recorded: list[JournalStep] = []
    events: list[str] = []

    async def record(step: JournalStep) -> None:
        recorded.append(step)

    async def emit(event: Any) -> None:
        events.append(event.type)

    outputs: list[Any] = []
    with activated(Journal(steps, record)):
        first = await recorded_call(model, _request("first"), emit=emit, job_id="j", task_id="t")
        outputs.append(first.content)
        tool_result = await run_tool_call(registry, "note", {"text": "a"}, ctx, record=emit)
        outputs.append(tool_result.value)
        second = await recorded_call(model, _request("second"), emit=emit, job_id="j", task_id="t")
        outputs.append(second.content)
        tool_result = await run_tool_call(registry, "note", {"text": "b"}, ctx, record=emit)
        outputs.append(tool_result.value)
    return recorded, outputs, events


def _notes() -> tuple[ToolRegistry, list[str]]:
    ledger: list[str] = []

    @tool
    def note(text: str) -> str:
        """Note a text down."""
        ledger.append(text)
        return f"noted {text}"

    registry = ToolRegistry()
    registry.register(note)
    return registry, ledger


async def test_recorded_model_and_tool_calls_are_replayed_without_calling_again(
    tmp_path: Path,
) -> None:
    registry, ledger = _notes()
    ctx = ToolContext(workspace=tmp_path, job_id="j", task_id="t")
    first_model = ScriptedModel(replies=[{"content": "one"}, {"content": "two"}])
    steps, outputs, events = await _run_once(first_model, registry, ctx, [])
    assert [s.step for s in steps] == ["0", "1", "2", "3"]
    assert [s.kind for s in steps] == ["model", "tool", "model", "tool"]
    assert outputs == ["one", "noted a", "two", "noted b"]
    assert ledger == ["a", "b"]
    assert events == ["LlmCalled", "ToolCalled", "LlmCalled", "ToolCalled"]

    # Run again with the first three steps on record: only the fourth call is made.
    again_model = ScriptedModel(replies=[{"content": "never asked"}])
    new_steps, outputs, events = await _run_once(again_model, registry, ctx, steps[:3])
    assert outputs == ["one", "noted a", "two", "noted b"]
    assert again_model.requests == []  # both model calls came from the journal
    assert ledger == ["a", "b", "b"]  # only the unrecorded tool call ran again
    assert [s.step for s in new_steps] == ["3"]
    assert events == ["ToolCalled"]  # replayed calls are not reported twice


async def test_a_call_that_differs_from_its_record_stops_replay_and_goes_on_live(
    tmp_path: Path,
) -> None:
    registry, ledger = _notes()
    ctx = ToolContext(workspace=tmp_path, job_id="j", task_id="t")
    model = ScriptedModel(replies=[{"content": "one"}, {"content": "two"}])
    steps, _, _ = await _run_once(model, registry, ctx, [])
    # The first tool call was recorded with other arguments: that call, and every later one
    # (the second model call too, though its record matches), run live.
    changed = steps[1].model_copy(update={"fingerprint": "something else"})
    live_model = ScriptedModel(replies=[{"content": "live two"}])
    journal_steps = [steps[0], changed, steps[2], steps[3]]
    new_steps, outputs, _ = await _run_once(live_model, registry, ctx, journal_steps)
    assert outputs == ["one", "noted a", "live two", "noted b"]
    assert len(live_model.requests) == 1
    assert ledger == ["a", "b", "a", "b"]
    assert [s.step for s in new_steps] == ["1", "2", "3"]


async def test_calls_made_inside_a_tool_are_journaled_below_it_and_skipped_with_it(
    tmp_path: Path,
) -> None:
    model = ScriptedModel(replies=[{"content": "inner", "repeat": True}])
    runs: list[str] = []

    @tool
    async def ask(question: str, ctx: ToolContext) -> str:
        """Ask the task's model."""
        runs.append(question)
        reply = await ctx.complete(_request(question))
        return reply.content

    registry = ToolRegistry()
    registry.register(ask)
    recorded: list[JournalStep] = []

    async def record(step: JournalStep) -> None:
        recorded.append(step)

    async def emit(event: Any) -> None:
        pass

    ctx = ToolContext(workspace=tmp_path, job_id="j", task_id="t", model=model, emit=emit)
    with activated(Journal([], record)):
        result = await run_tool_call(registry, "ask", {"question": "q"}, ctx, record=emit)
    assert result.value == "inner"
    assert [(s.step, s.kind) for s in recorded] == [("0.0", "model"), ("0", "tool")]

    with activated(Journal(recorded, record)):
        again = await run_tool_call(registry, "ask", {"question": "q"}, ctx, record=emit)
    assert again.value == "inner"
    assert runs == ["q"] and len(model.requests) == 1


async def test_a_step_from_an_attempt_that_is_not_current_is_refused(tmp_path: Path) -> None:
    release = asyncio.Event()

    @tool
    async def wait_here() -> str:
        """Wait until released."""
        await release.wait()
        return "released"

    model = ScriptedModel(
        replies=[
            {"tool_calls": [{"name": "wait_here", "arguments": {}}]},
            {"content": "done"},
        ]
    )
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        tools=[wait_here],
        data_dir=tmp_path / "data",
    )
    plan = Plan(tasks=(TaskSpec(id="work", kind="execute", goal="Wait"),))
    answers = "pw:journal:test"
    async with engine:
        job_id = await engine.submit(plan=plan)
        for _ in range(400):  # until the task's first model call is journaled
            if await engine.store.read_steps(job_id):
                break
            await asyncio.sleep(0.01)
        state = engine.plane.job(job_id)
        assert state is not None
        attempt = state.tasks["work"].attempt

        async def report(attempt: int, step: str) -> StepAck:
            journal_step = JournalStep(step=step, kind="tool", fingerprint="f", result="x")
            message = StepReport(
                job_id=job_id, task_id="work", attempt=attempt, ack_to=answers, step=journal_step
            )
            await engine.bus.enqueue(engine.plane.reply_queue, message)
            (delivery,) = await engine.bus.receive(answers, "test", timeout_s=10)
            await engine.bus.ack(delivery)
            assert isinstance(delivery.message, StepAck)
            return delivery.message

        rejected = engine.plane.rejected_reports
        stale = await report(attempt - 1, "7")
        assert stale.accepted is False
        assert engine.plane.rejected_reports == rejected + 1
        assert "7" not in {s.step for s in await engine.store.read_steps(job_id)}

        current = await report(attempt, "8")
        assert current.accepted is True
        # Answered once durable: the store already holds it.
        assert "8" in {s.step for s in await engine.store.read_steps(job_id)}

        release.set()
        result = await engine.wait(job_id)
        assert result.status == "succeeded"
        assert await engine.store.read_steps(job_id) == []


async def test_an_attempt_that_reports_a_failure_leaves_no_journal_so_its_retry_runs_live(
    tmp_path: Path,
) -> None:
    tries: list[int] = []

    @tool
    def flaky() -> str:
        """Fail the attempt the first time."""
        tries.append(1)
        if len(tries) == 1:
            raise RetryTask("not yet", delay_s=0.0)
        return "fine"

    call = {"tool_calls": [{"name": "flaky", "arguments": {}}]}
    model = ScriptedModel(replies=[call, call, {"content": "done"}])
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        tools=[flaky],
        data_dir=tmp_path / "data",
    )
    plan = Plan(tasks=(TaskSpec(id="work", kind="execute", goal="Try"),))
    async with engine:
        result = await engine.run(plan=plan, max_attempts=2)
        steps = await engine.store.read_steps(result.job_id)
    assert result.ok, result.error
    assert result.result == "done"
    # The second attempt asked the model again from the start: nothing of the first replayed.
    assert len(model.requests) == 3
    assert len(tries) == 2
    assert steps == []


async def test_a_step_the_plane_never_answers_retries_the_task_after_two_work_leases() -> None:
    import pytest

    from planweave.bus.memory import MemoryBus
    from planweave.messages import WorkItem
    from planweave.workers.pool import WorkerPool

    bus = MemoryBus()

    async def handler(item: WorkItem, reporter: Any) -> Any:
        raise AssertionError("not run")

    pool = WorkerPool(bus=bus, kind="executor", handler=handler, lease_s=0.1)
    item = WorkItem(
        job_id="j",
        task_id="t",
        attempt=1,
        worker="executor",
        reply_to="pw:nobody-listens",
        spec=TaskSpec(id="t", goal="g"),
    )
    channel = pool._steps
    try:
        journal = await channel.journal(item, redelivered=False)
        step = JournalStep(step="0", kind="model", fingerprint="f", result="x")
        with pytest.raises(RetryTask, match=r"did not answer within 0\.2 s"):
            await asyncio.wait_for(journal.record(step), 10)
    finally:
        await channel.stop()
        await bus.close()


async def test_parallel_branches_in_one_task_replay_however_their_calls_interleave(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from planweave.agents import AgentResult, AgentTask, Parallel

    registry, ledger = _notes()
    tool_ctx = ToolContext(workspace=tmp_path, job_id="j", task_id="t")
    delays: dict[str, tuple[float, float]] = {}

    class Noter:
        def __init__(self, name: str) -> None:
            self.name = name

        async def run(self, task: AgentTask, ctx: Any) -> AgentResult:
            first, second = delays[self.name]
            await asyncio.sleep(first)
            await run_tool_call(registry, "note", {"text": f"{self.name}1"}, tool_ctx)
            await asyncio.sleep(second)
            await run_tool_call(registry, "note", {"text": f"{self.name}2"}, tool_ctx)
            return AgentResult(output=self.name)

    flow = Parallel("both", [Noter("a"), Noter("b")], merge="dict")
    task = AgentTask(goal="g")
    ctx: Any = SimpleNamespace(job_id="j", task_id="t", max_handoffs=3)

    async def run(steps: list[JournalStep]) -> tuple[list[JournalStep], Journal]:
        recorded: list[JournalStep] = []

        async def record(step: JournalStep) -> None:
            recorded.append(step)

        journal = Journal(steps, record)
        with activated(journal):
            await flow.run(task, ctx)
        return recorded, journal

    delays.update(a=(0.0, 0.05), b=(0.02, 0.0))  # a1, b1, b2, a2
    steps, _ = await run([])
    assert ledger == ["a1", "b1", "b2", "a2"]
    # The other interleaving on the re-run: a1, a2, b1, b2. Every call is replayed.
    delays.update(a=(0.0, 0.0), b=(0.05, 0.0))
    again, journal = await run(steps)
    assert journal.mismatch is None and journal.replayed == 4
    assert again == [] and ledger == ["a1", "b1", "b2", "a2"]
