"""A work item delivered again fences its earlier delivery: a stalled worker's late report is
ignored, whichever comes first.

The decider is pure, so the races of a worker that stalls past its lease (SIGSTOP, a long GC, a
partition) are played out here event by event; the cross-process version, with SIGSTOP and
SIGCONT on a real worker, is in the Redis fault tests.
"""

from __future__ import annotations

from planweave.control import decider
from planweave.events import JobOptions, TaskAssigned
from planweave.messages import Outcome, StartedReport
from planweave.plan import TaskSpec
from planweave.state import JobState, apply, replay

PLAN = (TaskSpec(id="t", kind="tool", tool="echo", args={"text": "x"}),)


def _running() -> tuple[JobState, list[object]]:
    state, decision = decider.submit(
        "job1", goal="g", plan=PLAN, options=JobOptions(), now=1.0, tenant="default"
    )
    log = list(decision.events)
    assigned = TaskAssigned(
        job_id="job1", seq=state.seq + 1, at=2.0, task_id="t", attempt=1, worker="tool"
    )
    apply(state, assigned)
    log.append(assigned)
    return state, log


def _feed(state: JobState, log: list[object], message: object) -> int:
    if isinstance(message, StartedReport):
        decision = decider.on_started(state, message, now=3.0)
    else:
        assert isinstance(message, Outcome)
        decision = decider.on_outcome(state, message, now=3.0)
    log.extend(decision.events)
    return len(decision.events)


def _started(delivery: int) -> StartedReport:
    return StartedReport(
        job_id="job1", task_id="t", attempt=1, worker_id=f"w{delivery}", delivery=delivery
    )


def _outcome(delivery: int, result: str) -> Outcome:
    return Outcome(
        job_id="job1", task_id="t", attempt=1, status="succeeded", result=result, delivery=delivery
    )


def test_the_stalled_holders_late_outcome_is_ignored_once_the_redelivery_started() -> None:
    state, log = _running()
    assert _feed(state, log, _started(1)) == 1
    assert _feed(state, log, _started(2)) == 1  # the item was delivered again: recorded
    assert _feed(state, log, _outcome(1, "late")) == 0  # the stalled first holder: ignored
    assert _feed(state, log, _outcome(2, "fresh")) > 0
    assert state.tasks["t"].result == "fresh"
    assert replay(log).to_row() == state.to_row()  # type: ignore[arg-type]


def test_a_redelivery_that_ends_before_its_start_report_still_wins() -> None:
    state, log = _running()
    _feed(state, log, _started(1))
    assert _feed(state, log, _outcome(2, "fresh")) > 0  # a quick item reports no start
    assert _feed(state, log, _outcome(1, "late")) == 0
    assert _feed(state, log, _started(2)) == 0
    assert state.tasks["t"].result == "fresh"


def test_without_a_redelivery_the_first_outcome_counts_and_a_repeat_is_ignored() -> None:
    state, log = _running()
    _feed(state, log, _started(1))
    assert _feed(state, log, _started(1)) == 0  # the same start twice (at-least-once)
    assert _feed(state, log, _outcome(1, "only")) > 0
    assert _feed(state, log, _outcome(1, "again")) == 0
    assert state.tasks["t"].result == "only"
