"""The decider, without I/O: DAG order, retries, fencing, planning, replanning, cancel, resume."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from planweave.control import decider
from planweave.events import (
    Event,
    JobFailed,
    JobOptions,
    TaskAssigned,
    TaskCompleted,
    TaskRetrying,
    parse_event,
    validated,
)
from planweave.messages import Outcome, StartedReport
from planweave.plan import TaskSpec
from planweave.state import JobState, replay


def spec(task_id: str, *deps: str, kind: str = "tool", goal: str = "g") -> TaskSpec:
    if kind == "tool":
        return TaskSpec(id=task_id, kind="tool", tool="noop", depends_on=deps, goal=goal)
    return TaskSpec(id=task_id, kind=kind, depends_on=deps, goal=goal)  # type: ignore[arg-type]


def submit(*specs: TaskSpec, goal: str = "goal", **options: Any) -> tuple[JobState, list[Event]]:
    state, decision = decider.submit(
        "job1",
        goal=goal,
        plan=specs or None,
        options=JobOptions(**options),
        now=100.0,
    )
    return state, decision.events


def assign_all(state: JobState, log: list[Event], now: float = 100.0) -> list[str]:
    ready = [t.id for t in state.tasks.values() if t.status == "ready"]
    for task_id in ready:
        worker = decider.worker_for(state.tasks[task_id].spec)
        log += decider.assign(state, task_id, worker=worker, now=now).events
    return ready


def succeed(state: JobState, task_id: str, result: Any = None, **fields: Any) -> list[Event]:
    task = state.tasks[task_id]
    outcome = Outcome(
        job_id=state.id,
        task_id=task_id,
        attempt=task.attempt,
        status="succeeded",
        result=result,
        **fields,
    )
    return decider.on_outcome(state, outcome, now=101.0).events


def fail(state: JobState, task_id: str, *, retryable: bool, now: float = 101.0) -> list[Event]:
    task = state.tasks[task_id]
    outcome = Outcome(
        job_id=state.id,
        task_id=task_id,
        attempt=task.attempt,
        status="failed",
        error="boom",
        retryable=retryable,
    )
    return decider.on_outcome(state, outcome, now=now).events


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def test_diamond_runs_in_dependency_order_and_completes_with_the_sink_result() -> None:
    state, log = submit(spec("a"), spec("b", "a"), spec("c", "a"), spec("d", "b", "c"))
    assert assign_all(state, log) == ["a"]
    log += succeed(state, "a", 1)
    assert assign_all(state, log) == ["b", "c"]
    log += succeed(state, "b", 2)
    assert assign_all(state, log) == []
    log += succeed(state, "c", 3)
    assert assign_all(state, log) == ["d"]
    log += succeed(state, "d", 4)
    assert state.status == "succeeded"
    assert state.result == 4
    assert log[-1].type == "JobCompleted"
    assert [e.seq for e in log] == list(range(1, len(log) + 1))


def test_several_sinks_give_a_result_per_sink() -> None:
    state, log = submit(spec("a"), spec("b"))
    assign_all(state, log)
    log += succeed(state, "a", "x")
    log += succeed(state, "b", "y")
    assert state.result == {"a": "x", "b": "y"}


def test_stale_and_duplicate_outcomes_are_rejected() -> None:
    state, log = submit(spec("a"), spec("b", "a"))
    assign_all(state, log)
    stale = Outcome(job_id="job1", task_id="a", attempt=0, status="succeeded", result="old")
    assert decider.on_outcome(state, stale, now=101.0).events == []
    first = succeed(state, "a", "new")
    assert "TaskCompleted" in types(first)
    duplicate = Outcome(job_id="job1", task_id="a", attempt=1, status="succeeded", result="dup")
    assert decider.on_outcome(state, duplicate, now=101.0).events == []
    assert state.tasks["a"].result == "new"


def test_retryable_failure_backs_off_then_runs_again_then_fails_the_job() -> None:
    state, log = submit(spec("a"), spec("b", "a"), max_attempts=2)
    assign_all(state, log)
    events = fail(state, "a", retryable=True, now=200.0)
    assert types(events) == ["TaskStarted", "TaskRetrying"]
    retry = events[-1]
    assert state.tasks["a"].status == "pending"
    assert decider.on_tick(state, now=200.0).events == []
    assert decider.next_timer(state) == retry.not_before  # type: ignore[union-attr]
    due = decider.on_tick(state, now=retry.not_before).events  # type: ignore[union-attr]
    assert types(due) == ["TaskReady"]
    assign_all(state, log)
    assert state.tasks["a"].attempt == 2
    events = fail(state, "a", retryable=True)
    assert types(events) == ["TaskStarted", "TaskFailed", "TaskCancelled", "JobFailed"]
    assert state.status == "failed"
    assert state.tasks["b"].status == "cancelled"
    assert "boom" in (state.error or "")


def test_non_retryable_failure_fails_at_once() -> None:
    state, log = submit(spec("a"))
    assign_all(state, log)
    events = fail(state, "a", retryable=False)
    assert types(events)[-1] == "JobFailed"


def test_goal_is_planned_then_composed() -> None:
    state, log = submit(goal="write a post")
    assert state.planned
    assert assign_all(state, log) == ["root"]
    plan = (
        TaskSpec(id="t1", goal="research"),
        TaskSpec(id="t2", goal="draft", depends_on=("t1",)),
        TaskSpec(id="t3", goal="links"),
    )
    events = succeed(state, "root", subtasks=plan)
    assert types(events)[:2] == ["TaskStarted", "SubtasksPlanned"]
    assert state.tasks["compose"].spec.depends_on == ("t2", "t3")
    assert sorted(assign_all(state, log)) == ["t1", "t3"]
    log += succeed(state, "t1", "r1")
    log += succeed(state, "t3", "r3")
    assign_all(state, log)
    log += succeed(state, "t2", "r2")
    assert assign_all(state, log) == ["compose"]
    log += succeed(state, "compose", "# Post")
    assert state.tasks["root"].status == "succeeded"
    assert state.status == "succeeded"
    assert state.result == "# Post"


def test_nested_plan_tasks_decompose_until_the_depth_limit() -> None:
    state, log = submit(goal="big", max_plan_depth=2)
    assign_all(state, log)
    succeed(state, "root", subtasks=(TaskSpec(id="p", goal="part", kind="plan"),))
    assert state.tasks["p"].spec.kind == "plan"
    assign_all(state, log)
    succeed(
        state,
        "p",
        subtasks=(
            TaskSpec(id="q", goal="deeper", kind="plan"),
            TaskSpec(id="r", goal="x", depends_on=("q",)),
        ),
    )
    assert state.tasks["p.q"].spec.kind == "execute"
    assert state.tasks["p.r"].spec.depends_on == ("p.q",)
    assign_all(state, log)
    succeed(state, "p.q", "Q")
    assign_all(state, log)
    succeed(state, "p.r", "R")
    assert state.tasks["p"].status == "succeeded"
    assert state.tasks["p"].result == "R"
    assign_all(state, log)
    succeed(state, "compose", "done")
    assert state.status == "succeeded"


def test_invalid_subplan_fails_the_plan_task() -> None:
    state, log = submit(goal="g")
    assign_all(state, log)
    events = succeed(state, "root", subtasks=(TaskSpec(id="a", goal="x", depends_on=("a",)),))
    assert "TaskFailed" in types(events)
    assert state.status == "failed"


def test_nested_subplans_stop_at_the_job_task_limit() -> None:
    # 100 x 100 nested sub-plans made 10,102 tasks: the job's total is capped.
    state, log = submit(goal="g", max_plan_tasks=100, max_job_tasks=150, max_plan_depth=3)
    assign_all(state, log)
    parts = tuple(TaskSpec(id=f"p{i}", goal=f"part {i}", kind="plan") for i in range(100))
    succeed(state, "root", subtasks=parts)
    assert len(state.tasks) == 102  # root, 100 parts and the composer
    assign_all(state, log)
    events = succeed(
        state, "p0", subtasks=tuple(TaskSpec(id=f"s{i}", goal=f"step {i}") for i in range(100))
    )
    failed = [e for e in events if e.type == "TaskFailed"]
    assert failed and failed[0].task_id == "p0"
    assert failed[0].error_type == "budget_exceeded"  # type: ignore[union-attr]
    assert "over its limit of 150" in failed[0].error  # type: ignore[union-attr]
    assert "max_job_tasks" in failed[0].error  # type: ignore[union-attr]
    assert len(state.tasks) == 102
    assert state.status == "failed"


def test_default_token_budget_stops_free_models_and_names_the_option() -> None:
    from planweave.events import LlmCalled
    from planweave.messages import CallReport

    state, log = submit(spec("a"), max_job_tokens=1_000)
    assign_all(state, log)
    call = LlmCalled(job_id="job1", model="scripted", role="executor", tokens_in=600)
    report = CallReport(job_id="job1", task_id="a", attempt=1, event=call)
    assert not [
        e for e in decider.on_call(state, report, now=101.0).events if e.type == "JobFailed"
    ]
    call = LlmCalled(job_id="job1", model="scripted", role="executor", tokens_out=401)
    report = CallReport(job_id="job1", task_id="a", attempt=1, event=call)
    events = decider.on_call(state, report, now=102.0).events
    assert state.status == "failed"
    assert events[-1].code == "budget_exceeded"  # type: ignore[union-attr]
    assert "1001 tokens, over its limit of 1000" in events[-1].reason  # type: ignore[union-attr]
    assert "max_job_tokens" in events[-1].reason  # type: ignore[union-attr]
    assert JobOptions().max_job_tokens == 2_000_000 and JobOptions().max_cost_usd == 5.0


def test_replan_supersedes_unfinished_work_and_keeps_completed_work() -> None:
    state, log = submit(goal="g", on_failure="replan")
    assign_all(state, log)
    succeed(
        state,
        "root",
        subtasks=(
            TaskSpec(id="a", goal="A"),
            TaskSpec(id="b", goal="B", depends_on=("a",)),
            TaskSpec(id="c", goal="C", depends_on=("b",)),
        ),
    )
    assign_all(state, log)
    succeed(state, "a", "ra")
    assign_all(state, log)
    events = fail(state, "b", retryable=False)
    assert types(events) == [
        "TaskStarted",
        "TaskFailed",
        "TaskCancelled",
        "ReplanRequested",
        "TaskReady",
    ]
    assert state.tasks["c"].status == "cancelled"
    assert state.tasks["replan1"].spec.kind == "plan"
    assert state.tasks["replan1"].spec.depends_on == ("a",)
    assert state.tasks["compose"].spec.depends_on == ("replan1",)
    assign_all(state, log)
    succeed(state, "replan1", subtasks=(TaskSpec(id="b2", goal="B again"),))
    assign_all(state, log)
    succeed(state, "replan1.b2", "rb2")
    assert state.tasks["replan1"].status == "succeeded"
    assign_all(state, log)
    succeed(state, "compose", "final")
    assert state.status == "succeeded"
    assert state.tasks["a"].attempt == 1


def test_cancel_ends_every_open_task_and_later_outcomes_are_ignored() -> None:
    state, log = submit(spec("a"), spec("b", "a"))
    assign_all(state, log)
    events = decider.cancel(state, reason="stop", now=102.0).events
    assert types(events) == ["TaskCancelled", "TaskCancelled", "JobCancelled"]
    late = Outcome(job_id="job1", task_id="a", attempt=1, status="succeeded")
    assert decider.on_outcome(state, late, now=103.0).events == []
    assert decider.cancel(state, reason="again", now=104.0).events == []


def test_resume_counts_lost_attempts_and_retries_with_a_new_attempt_number() -> None:
    state, log = submit(spec("a"), spec("b", "a"))
    assign_all(state, log)
    log += succeed(state, "a", 1)
    assign_all(state, log)
    started = StartedReport(job_id="job1", task_id="b", attempt=1)
    log += decider.on_started(state, started, now=101.0).events
    events = decider.resume(state, now=500.0).events
    assert types(events) == ["TaskRetrying", "TaskReady"]
    assert state.tasks["b"].failures == 1
    assert state.tasks["b"].error == decider.WORKER_DIED
    assign_all(state, log)
    assert state.tasks["b"].attempt == 2
    assert state.tasks["a"].attempt == 1


def test_each_delivery_lost_to_a_dead_worker_counts_as_a_failed_try() -> None:
    from planweave.constants import WORKER_LOST

    state, log = submit(spec("a"), max_attempts=3)
    assign_all(state, log)

    def start(delivery: int) -> list[Event]:
        report = StartedReport(job_id="job1", task_id="a", attempt=1, delivery=delivery)
        return decider.on_started(state, report, now=101.0 + delivery).events

    log += start(1)
    assert state.tasks["a"].failures == 0
    log += start(3)  # deliveries 1 and 2 ended with their workers dead (2 was never seen)
    assert [getattr(e, "lost", None) for e in log[-1:]] == [2]
    assert state.tasks["a"].failures == 2 and state.tasks["a"].attempt == 1
    assert start(3) == []  # the same delivery again: nothing more counted
    log += start(4)  # the third try was lost too: no try left
    assert types(log[-2:]) == ["TaskFailed", "JobFailed"]
    assert state.tasks["a"].error == WORKER_LOST
    rebuilt = replay(log)
    assert rebuilt.tasks["a"].failures == state.tasks["a"].failures
    assert rebuilt.to_row() == state.to_row()


def test_a_task_whose_every_attempt_killed_its_process_fails_the_job() -> None:
    state, log = submit(spec("a"), spec("b", "a"), max_attempts=3)
    assign_all(state, log)
    log += succeed(state, "a", 1)
    attempts = []
    for restart in range(3):
        assign_all(state, log)
        attempts.append(state.tasks["b"].attempt)
        log += decider.resume(state, now=500.0 + restart).events  # the process died running b
    assert attempts == [1, 2, 3]
    assert state.tasks["b"].status == "failed"
    assert state.tasks["b"].error == decider.WORKER_DIED
    assert state.status == "failed"
    assert types(log)[-2:] == ["TaskFailed", "JobFailed"]
    assert decider.resume(state, now=600.0).events == []
    assert replay(log).to_row() == state.to_row()


def test_an_attempt_lost_on_its_last_try_replans_when_the_job_asks() -> None:
    state, log = submit(spec("a"), max_attempts=1, on_failure="replan")
    assign_all(state, log)
    log += decider.resume(state, now=500.0).events
    assert types(log)[-3:] == ["TaskFailed", "ReplanRequested", "TaskReady"]
    assert state.status == "running"


def test_replaying_the_log_rebuilds_the_state() -> None:
    state, log = submit(goal="g", on_failure="replan")
    log += decider.assign(state, "root", worker="planner", now=100.0).events
    log += succeed(
        state,
        "root",
        subtasks=(TaskSpec(id="a", goal="A"), TaskSpec(id="b", goal="B", depends_on=("a",))),
    )
    assign_all(state, log)
    log += succeed(state, "a", "ra")
    assign_all(state, log)
    log += fail(state, "b", retryable=False)
    rebuilt = replay(log)
    assert rebuilt.to_row() == state.to_row()
    assert {k: t.to_row("job1") for k, t in rebuilt.tasks.items()} == {
        k: t.to_row("job1") for k, t in state.tasks.items()
    }


def test_budget_is_enforced_on_llm_calls() -> None:
    from planweave.events import LlmCalled
    from planweave.messages import CallReport

    state, log = submit(spec("a"), max_cost_usd=0.01)
    assign_all(state, log)
    call = LlmCalled(job_id="job1", model="m", role="executor", cost_usd=0.02)
    events = decider.on_call(
        state, CallReport(job_id="job1", task_id="a", attempt=1, event=call), now=101.0
    ).events
    assert types(events)[0] == "LlmCalled"
    assert state.status == "failed"
    assert events[-1].code == "budget_exceeded"  # type: ignore[union-attr]
    assert "max_cost_usd" in events[-1].reason  # type: ignore[union-attr]


def test_tool_calls_and_answers_count_toward_max_job_bytes() -> None:
    from planweave.events import LlmCalled, ToolCalled
    from planweave.messages import CallReport

    state, log = submit(spec("a"), max_job_bytes=64 * 1024)
    assign_all(state, log)
    before = state.data_bytes
    # Each call is within the event limits (4,000 characters a tool argument, 8,000 a reply).
    tool_call = ToolCalled(
        job_id="job1",
        name="write_file",
        outcome="ok",
        args={"path": "a.txt", "text": "t" * 4_000},
        result="r" * 8_000,
    )
    reply = LlmCalled(job_id="job1", model="m", role="executor", reply="w" * 8_000)
    report = CallReport(job_id="job1", task_id="a", attempt=1, event=tool_call)
    log += decider.on_call(state, report, now=101.0).events
    assert 12_000 < state.data_bytes - before < 13_000  # the arguments and the result
    calls = 1
    while not state.terminal:
        call = tool_call if calls % 2 == 0 else reply
        report = CallReport(job_id="job1", task_id="a", attempt=1, event=call)
        log += decider.on_call(state, report, now=101.0 + calls).events
        calls += 1
    assert 6 <= calls <= 8  # about 64 KiB of calls, not one more
    failed = log[-1]
    assert isinstance(failed, JobFailed) and failed.code == "job_too_large"
    assert "max_job_bytes" in failed.reason
    assert replay(log).data_bytes == state.data_bytes


def test_text_from_models_and_tools_is_scrubbed_and_cut_to_the_event_limits() -> None:
    from planweave.constants import (
        MAX_EVENT_ARG_CHARS,
        MAX_EVENT_ARG_ITEMS,
        MAX_EVENT_ERROR_CHARS,
        MAX_EVENT_NAME_CHARS,
    )
    from planweave.events import ToolCalled
    from planweave.messages import CallReport

    state, log = submit(spec("a"))
    assign_all(state, log)
    huge = "x" * 1_000_000
    call = ToolCalled(
        job_id="job1",
        name=huge,
        outcome="error",
        args={"url": huge, "half": "a\ud83db", "many": list(range(10_000)), "deep": [[[[[[[]]]]]]]},
        error=huge,
    )
    (event,) = decider.on_call(
        state, CallReport(job_id="job1", task_id="a", attempt=1, event=call), now=101.0
    ).events
    assert isinstance(event, ToolCalled)
    assert len(event.name) == MAX_EVENT_NAME_CHARS and event.name.endswith("…")
    assert event.error is not None and len(event.error) == MAX_EVENT_ERROR_CHARS
    assert len(event.args["url"]) == MAX_EVENT_ARG_CHARS
    assert event.args["half"] == "a\ufffdb"
    assert len(event.args["many"]) == MAX_EVENT_ARG_ITEMS + 1  # and a marker of what was left
    assert len(event.model_dump_json()) < 50_000


def test_text_at_its_limit_is_kept_and_one_character_more_is_cut() -> None:
    from planweave.constants import MAX_EVENT_NAME_CHARS
    from planweave.events import ToolCalled
    from planweave.messages import CallReport

    state, log = submit(spec("a"))
    assign_all(state, log)
    names = ["n" * MAX_EVENT_NAME_CHARS, "n" * (MAX_EVENT_NAME_CHARS + 1), "caf\u00e9", "x\udc00"]
    recorded = []
    for name in names:
        call = ToolCalled(job_id="job1", name=name, outcome="ok", args={}, result="r\ud83d")
        report = CallReport(job_id="job1", task_id="a", attempt=1, event=call)
        (event,) = decider.on_call(state, report, now=101.0).events
        assert isinstance(event, ToolCalled)
        assert event.args == {} and event.result == "r\ufffd"
        recorded.append(event.name)
    assert recorded[0] == names[0]
    assert len(recorded[1]) == MAX_EVENT_NAME_CHARS and recorded[1].endswith("…")
    assert recorded[2] == "caf\u00e9"
    assert recorded[3] == "x\ufffd"


def test_a_planned_goal_and_a_result_with_half_an_emoji_are_stored_replaced() -> None:
    state, log = submit(spec("p", kind="plan"))
    assign_all(state, log)
    planned = (TaskSpec(id="x", goal="do \ud83d this", kind="execute"),)
    events = succeed(state, "p", subtasks=planned)
    assert state.tasks["p.x"].spec.goal == "do \ufffd this"
    assign_all(state, events)
    done = succeed(state, "p.x", result={"k\udc00": ["v\ud83d"]})
    completed = next(e for e in done if isinstance(e, TaskCompleted))
    assert completed.result == {"k\ufffd": ["v\ufffd"]}
    for event in [*events, *done]:
        event.model_dump_json()  # every event can be encoded


# --- properties over random DAGs and random delivery orders -------------------------------


@st.composite
def dags(draw: st.DrawFn) -> list[TaskSpec]:
    n = draw(st.integers(min_value=1, max_value=12))
    specs = []
    for i in range(n):
        deps = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        specs.append(spec(f"t{i}", *(f"t{d}" for d in sorted(deps))))
    return specs


_ENDS_ATTEMPT = {"TaskCompleted", "TaskFailed", "TaskRetrying", "TaskCancelled", "SubtasksPlanned"}


class Slots:
    """Carries out decisions' commands the way the control plane does (without looking at the
    events' types), and checks that the commands say exactly what the events record."""

    def __init__(self, state: JobState) -> None:
        self.state = state
        self.out: set[str] = set()  # tasks handed to a worker whose attempt has not ended

    def take(self, decision: decider.Decision) -> list[Event]:
        events = decision.events
        ready = [e.task_id for e in events if e.type == "TaskReady"]
        assert decision.dispatch == ready, "dispatch commands differ from the TaskReady events"
        ended = {e.task_id for e in events if e.type in _ENDS_ATTEMPT}
        assert set(decision.ended) == ended, "ended commands differ from the events"
        assert decision.artifacts == [e for e in events if e.type == "ArtifactCreated"]
        touched = {e.task_id for e in events if e.task_id is not None}
        assert decision.all_changed or touched <= decision.changed, "a changed row not written"
        endings = [e for e in events if e.type in ("JobCompleted", "JobFailed", "JobCancelled")]
        assert decision.finished is (endings[0] if endings else None)
        assert decision.abandon == bool(endings and endings[0].type != "JobCompleted")
        retries = [e for e in events if isinstance(e, TaskRetrying) and e.delay_s > 0]
        assert decision.retry_due == bool(retries)
        self.out.difference_update(decision.ended)
        self.out.update(e.task_id for e in events if e.type == "TaskAssigned" and e.task_id)
        return events

    def check(self) -> None:
        running = {t.id for t in self.state.tasks.values() if t.status == "running"}
        assert self.out == running, "a worker slot leaked or was freed early"


@settings(max_examples=300, deadline=None)
@given(dags(), st.randoms(use_true_random=False), st.integers(min_value=1, max_value=3))
def test_random_orders_keep_the_invariants(
    specs: list[TaskSpec], rnd: Any, max_attempts: int
) -> None:
    state, decision = decider.submit(
        "job1",
        goal="goal",
        plan=tuple(specs),
        options=JobOptions(max_attempts=max_attempts),
        now=100.0,
    )
    slots = Slots(state)
    log = slots.take(decision)
    now = 100.0
    delivered: list[Outcome] = []
    sent: dict[str, Outcome] = {}
    for _ in range(400):
        if state.terminal:
            break
        running = [t for t in state.tasks.values() if t.status == "running"]
        ready = [t for t in state.tasks.values() if t.status == "ready"]
        choice = rnd.random()
        if ready and (choice < 0.4 or not running):
            task = rnd.choice(ready)
            for dep in task.spec.depends_on:
                assert state.tasks[dep].status == "succeeded", "assigned before its dependencies"
            log += slots.take(decider.assign(state, task.id, worker="tool", now=now))
        elif running and choice < 0.8:
            task = rnd.choice(running)
            ok = rnd.random() < 0.75
            outcome = Outcome(
                job_id="job1",
                task_id=task.id,
                attempt=task.attempt,
                status="succeeded" if ok else "failed",
                result=task.id,
                error="x",
                retryable=True,
                retry_delay_s=0.0 if rnd.random() < 0.5 else 1.0,
            )
            delivered.append(outcome)
            sent[outcome.id] = outcome
            log += slots.take(decider.on_outcome(state, outcome, now=now))
        elif delivered and choice < 0.85:
            log += slots.take(
                decider.on_outcome(state, rnd.choice(delivered), now=now)
            )  # redelivery
        elif running and choice < 0.88:
            # A late success of an earlier attempt, delivered after the task moved on.
            task = rnd.choice(running)
            stale = Outcome(
                job_id="job1",
                task_id=task.id,
                attempt=task.attempt - 1,
                status="succeeded",
                result="stale",
            )
            sent[stale.id] = stale
            log += slots.take(decider.on_outcome(state, stale, now=now))
        elif running and choice < 0.9:
            log += slots.take(
                decider.resume(state, now=now)
            )  # the process died and a new one took over
        else:
            now += 1.0
            log += slots.take(decider.on_tick(state, now=now))
        slots.check()
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    completed = [e.task_id for e in log if e.type == "TaskCompleted"]
    assert len(completed) == len(set(completed)), "a task completed twice"
    current: dict[str | None, int] = {}
    for event in log:
        if isinstance(event, TaskAssigned):
            assert event.attempt > current.get(event.task_id, 0), "an attempt number was reused"
            current[event.task_id] = event.attempt
        elif isinstance(event, TaskCompleted):
            cause = sent[event.causation_id or ""]
            assert cause.attempt == current[event.task_id] == event.attempt, (
                "a task completed by an attempt other than its current one"
            )
    rebuilt = replay(log)
    assert rebuilt.to_row() == state.to_row()
    for event in log:  # built without validation: each must be what validation would give
        assert validated(type(event), dict(event.__dict__)) == event
        assert parse_event(event.model_dump_json()).model_dump_json() == event.model_dump_json()
    if state.status == "succeeded":
        assert all(t.status == "succeeded" for t in state.tasks.values())
    if state.terminal:
        assert all(t.terminal for t in state.tasks.values())
