"""The decider: what happens next, as a deterministic function of a job's state and an input.

Every input the control plane receives (a submitted goal, a worker's report, a due retry timer, a
cancel request, a dispatch decision) goes through one function here, which returns a
``Decision``: the events that follow from it, and the commands that carry them out (dispatch
these tasks, free these workers, record these artifacts, wake this job's waiters). The plane
records the events and does what the commands say; it never re-derives them from event types.
Each event is applied to the state as it is produced (``state.apply``), so the rest of the
decision sees its effect. Nothing here reads a clock, draws a random number or does I/O: ``now``
is passed in and event ids are derived from the job id and ``seq``. Replaying the same inputs in
the same order gives the same events, which is what the property tests check.
"""

from __future__ import annotations

from typing import Any

from planweave._text import bound
from planweave.constants import (
    COMPOSE_TASK_ID,
    DEFAULT_RETRY_BASE_S,
    DEFAULT_RETRY_MAX_S,
    ROOT_TASK_ID,
    WORKER_COMPOSER,
    WORKER_CRITIC,
    WORKER_EXECUTOR,
    WORKER_LOST,
    WORKER_PLANNER,
    WORKER_TOOL,
)
from planweave.control import _approvals
from planweave.control._budgets import (
    fanout_problem,
    grant_for,
    need_problem,
    over_budget,
    time_deadline,
    time_problem,
)
from planweave.control._critic import critic_for, verdict_of
from planweave.control._decision import _NOTHING, Decision, _Out
from planweave.errors import FailureType, JobFailureCode, UsageError
from planweave.events import (
    ArtifactCreated,
    CriticVerdict,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobOptions,
    JobReopened,
    JobSubmitted,
    ReplanRequested,
    SubtasksPlanned,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskNeedsBudget,
    TaskRetrying,
    TaskReviewing,
    TaskStarted,
    Usage,
)
from planweave.messages import CallReport, Outcome, StartedReport
from planweave.plan import LOOP_ITERATION_ARG, TaskSpec, plan_problems
from planweave.state import JobState, TaskState, apply

__all__ = [
    "WORKER_DIED",
    "Decision",
    "assign",
    "backoff_s",
    "cancel",
    "decide_approval",
    "fail",
    "next_timer",
    "on_call",
    "on_outcome",
    "on_started",
    "on_tick",
    "reopen",
    "resume",
    "submit",
    "worker_for",
    "worker_of",
]


_WORKER_BY_KIND = {
    "plan": WORKER_PLANNER,
    "execute": WORKER_EXECUTOR,
    "compose": WORKER_COMPOSER,
    "tool": WORKER_TOOL,
    "spell": WORKER_EXECUTOR,
}


decide_approval = _approvals.decide
"""A person approved or rejected the call a task waits on (``_approvals.decide``)."""


def worker_for(spec: TaskSpec) -> str:
    """The kind of worker that runs a task."""
    return _WORKER_BY_KIND[spec.kind]


def worker_of(task: TaskState) -> str:
    """The kind of worker a task's next attempt goes to: a critic while its answer is
    reviewed, else the kind of its spec."""
    return WORKER_CRITIC if task.reviewing else _WORKER_BY_KIND[task.spec.kind]


def submit(
    job_id: str,
    *,
    goal: str,
    plan: tuple[TaskSpec, ...] | None,
    options: JobOptions,
    now: float,
    tenant: str = "default",
    idempotency_key: str | None = None,
) -> tuple[JobState, Decision]:
    """Start a job: from a goal (a planner task decomposes it) or from a user-written plan.

    The plan, when given, must already be valid (``validate_plan``).
    """
    event = JobSubmitted(
        job_id=job_id,
        seq=1,
        id=f"{job_id}:1",
        at=now,
        goal=bound(goal),
        plan=bound(plan),
        options=options,
        tenant=tenant,
        idempotency_key=idempotency_key,
    )
    state = apply(None, event)
    out = _Out(state, now, event.id)
    out.events.append(event)
    for task in list(state.tasks.values()):
        if task.waiting == 0 and task.status == "pending":
            out.ready(task.id)
    out.decision.all_changed = True
    out.decision.retry_due = options.max_time_s is not None  # arm the wall-time timer
    return state, out.done()


def assign(state: JobState, task_id: str, *, worker: str, now: float) -> Decision:
    """Hand a ready task to a worker: a new attempt begins (its number fences old reports)."""
    task = state.tasks[task_id]
    if state.terminal or task.status != "ready":
        return _NOTHING
    out = _Out(state, now, None)
    out.emit(
        TaskAssigned,
        task_id,
        attempt=task.attempt + 1,
        worker=worker,
        grant=grant_for(state, task),
    )
    return out.done()


def on_started(state: JobState, report: StartedReport, *, now: float) -> Decision:
    """A worker began an attempt."""
    task = state.tasks.get(report.task_id)
    if (
        state.terminal
        or task is None
        or task.status != "running"
        or task.attempt != report.attempt
        or (task.started and report.delivery <= task.delivery)
    ):
        return _NOTHING
    out = _Out(state, now, report.id)
    lost = _lost_deliveries(task, report.delivery)
    if lost:
        max_attempts = task.spec.max_attempts or state.options.max_attempts
        if task.failures + lost >= max_attempts:
            _fail_task(out, task, WORKER_LOST, "crash")
            if state.open_tasks == 0 and not state.terminal:
                _finish_job(out)
            return out.done()
    out.emit(
        TaskStarted,
        task.id,
        attempt=report.attempt,
        worker_id=report.worker_id,
        delivery=report.delivery,
        lost=lost,
    )
    budget = task.spec.budget
    if budget is not None and budget.max_time_s is not None:
        out.decision.retry_due = True  # arm the task's wall-time timer
    return out.done()


def _lost_deliveries(task: TaskState, delivery: int) -> int:
    """How many deliveries of the task's attempt before ``delivery`` ended without an
    outcome: their worker died, stalled past its lease, or gave the item back as it stopped.
    Each counts as a failed try, as a crash of the whole process does (``resume``)."""
    return max(0, delivery - max(task.delivery, 1))


def on_call(state: JobState, report: CallReport, *, now: float) -> Decision:
    """A worker made an LLM or tool call; record it and enforce the job's budgets."""
    task = state.tasks.get(report.task_id)
    if state.terminal or task is None or task.attempt != report.attempt:
        return _NOTHING
    out = _Out(state, now, report.id)
    out.add(report.event, task.id)
    if not _check_budgets(out, task):
        _check_size(out, task.id)
    return out.done()


def _check_size(out: _Out, task_id: str) -> None:
    """Fail a job that recorded more events than its ``max_job_events`` allows, or more data
    than its ``max_job_bytes`` (``JobState.data_bytes``, counted as its events are applied)."""
    state = out.state
    options = state.options
    if state.terminal:
        return
    if state.seq > options.max_job_events:
        reason = (
            f"the job recorded {state.seq} events, over its limit of {options.max_job_events} "
            "(max_job_events)"
        )
    elif state.data_bytes > options.max_job_bytes:
        reason = (
            f"the job recorded about {state.data_bytes} bytes of data, over its limit of "
            f"{options.max_job_bytes} (raise the job option max_job_bytes to let it keep more)"
        )
    else:
        return
    _fail_job(out, reason, failed_task=task_id, code="job_too_large")


def _check_budgets(out: _Out, task: TaskState) -> bool:
    """Fail the job when what it recorded went over one of its budgets (or the task over its
    own); the reason names the option to raise. Returns whether it did."""
    reason = over_budget(out.state, task)
    if reason is None:
        return False
    _fail_job(out, reason, failed_task=task.id, code="budget_exceeded")
    return True


def _needs_budget(out: _Out, task: TaskState, outcome: Outcome) -> None:
    """An attempt stopped before a call its grant could not cover: run the task again when
    the job has enough unreserved, wait for other grants to come back, or stop the job."""
    needs = outcome.needs
    assert needs is not None
    out.end(TaskNeedsBudget, task.id, attempt=task.attempt, needs=needs)
    _wake_waiting(out)


def _wake_waiting(out: _Out) -> None:
    """Run the tasks waiting for budget that now fit, in the order they asked; stop the job
    when one of them can never fit."""
    state = out.state
    for task_id in list(state.budget_waiting):
        if state.terminal:
            return
        task = state.tasks[task_id]
        fits, reason = need_problem(state, task)
        if reason is not None:
            _fail_job(out, reason, failed_task=task.id, code="budget_exceeded")
            return
        if fits:
            out.ready(task.id)


def on_outcome(state: JobState, outcome: Outcome, *, now: float) -> Decision:
    """A worker finished an attempt. Outcomes of stale attempts are ignored (fencing)."""
    task = state.tasks.get(outcome.task_id)
    if (
        state.terminal
        or task is None
        or task.status != "running"
        or task.attempt != outcome.attempt
        or outcome.delivery < task.delivery
        or task.children
    ):
        return _NOTHING
    out = _Out(state, now, outcome.id)
    if not task.started or outcome.delivery > task.delivery:
        lost = _lost_deliveries(task, outcome.delivery)
        out.emit(
            TaskStarted, task.id, attempt=outcome.attempt, delivery=outcome.delivery, lost=lost
        )
    for call in outcome.calls:
        out.add(call, task.id)
    if outcome.calls and _check_budgets(out, task):
        return out.done()
    if outcome.error_type == "budget_needed" and outcome.needs is not None:
        _needs_budget(out, task, outcome)
        _check_size(out, task.id)
        return out.done()
    if outcome.status == "awaiting_approval" and outcome.approval is not None:
        _approvals.request(out, task, outcome.approval)
        _check_size(out, task.id)
        return out.done()
    if outcome.status == "succeeded":
        for name, size, content_type in outcome.artifacts:
            artifact = out.emit(
                ArtifactCreated, task.id, name=name, size=size, content_type=content_type
            )
            out.decision.artifacts.append(artifact)
        if task.spec.kind == "plan" and outcome.subtasks:
            _expand(out, task, outcome.subtasks)
        elif task.reviewing:
            _reviewed(out, task, outcome)
        else:
            critic = critic_for(state, task, outcome.critic)
            if critic is not None and outcome.result is not None:
                _review(out, task, critic, outcome.result)
            else:
                _complete(out, task, outcome.result, outcome.usage)
    else:
        _failed(out, task, outcome)
    if state.budget_waiting and not state.terminal:  # its grant came back
        _wake_waiting(out)
    _check_size(out, task.id)
    return out.done()


def _review(out: _Out, task: TaskState, critic: str, candidate: Any) -> None:
    """Hold an answer as the task's candidate, and send the task to a critic."""
    out.end(
        TaskReviewing,
        task.id,
        attempt=task.attempt,
        critic=critic,
        candidate=candidate,
        revision=len(task.spec.feedback),
    )
    out.ready(task.id)


def _reviewed(out: _Out, task: TaskState, outcome: Outcome) -> None:
    """A critic's verdict came back: accept the candidate, run the task again with the
    feedback, fail it, or replan."""
    fields, failure = verdict_of(out.state, task, outcome)
    if fields is None:
        _fail_task(out, task, failure or "no verdict", "critic_rejected")
        return
    candidate = task.result
    if failure is not None:
        out.emit(CriticVerdict, task.id, **fields)
        replan = fields["verdict"] == "replan"
        _fail_task(out, task, failure, "critic_rejected", replan=replan)
    elif fields["verdict"] == "pass":
        out.emit(CriticVerdict, task.id, **fields)
        _complete(out, task, candidate, outcome.usage)
    else:  # revise, within max_revisions
        out.end(CriticVerdict, task.id, **fields)
        out.ready(task.id)


def _qualify(parent: TaskState, local_id: str) -> str:
    return local_id if parent.id == ROOT_TASK_ID else f"{parent.id}.{local_id}"


def _expand(out: _Out, task: TaskState, subtasks: tuple[TaskSpec, ...]) -> None:
    """Add a plan task's sub-plan, with ids qualified by the parent's id."""
    state = out.state
    options = state.options
    problems = plan_problems(subtasks, max_tasks=options.max_plan_tasks)
    if problems:
        _fail_task(
            out,
            task,
            "the planner produced an invalid plan: " + "; ".join(problems),
            "plan_invalid",
        )
        return
    depth = task.depth + 1
    specs: list[TaskSpec] = []
    for spec in subtasks:
        kind = spec.kind
        if (
            kind == "plan"
            and depth >= options.max_plan_depth
            and not (spec.agent and LOOP_ITERATION_ARG in spec.args)  # bounded by the loop
        ):
            kind = "execute"
        if kind == "compose":
            kind = "execute"
        specs.append(
            spec.model_copy(
                update={
                    "id": _qualify(task, spec.id),
                    "kind": kind,
                    "depends_on": tuple(_qualify(task, d) for d in spec.depends_on),
                }
            )
        )
    taken = [s.id for s in specs if s.id in state.tasks]
    if taken:
        _fail_task(
            out, task, f"sub-plan ids clash with existing tasks: {', '.join(taken)}", "plan_invalid"
        )
        return
    if task.id == ROOT_TASK_ID and state.planned:
        used = {d for s in specs for d in s.depends_on}
        sinks = tuple(s.id for s in specs if s.id not in used)
        specs.append(
            TaskSpec(id=COMPOSE_TASK_ID, goal=state.goal, kind="compose", depends_on=sinks)
        )
    too_many = fanout_problem(state, task, len(specs))
    if too_many is not None:
        _fail_job(out, too_many, failed_task=task.id, code="budget_exceeded")
        return
    total = len(state.tasks) + len(specs)
    if total > options.max_job_tasks:
        _fail_task(
            out,
            task,
            f"its sub-plan of {len(specs)} tasks would take the job to {total} tasks, over its "
            f"limit of {options.max_job_tasks} (raise the job option max_job_tasks to allow more)",
            "budget_exceeded",
        )
        return
    out.end(SubtasksPlanned, task.id, tasks=tuple(specs), depth=depth)
    # Every new task is written now, not only the ready ones: a job resumed before a waiting
    # child became ready must still find it.
    out.decision.changed.update(spec.id for spec in specs)
    for spec in specs:
        child = state.tasks[spec.id]
        if child.waiting == 0 and child.status == "pending":
            out.ready(child.id)


def _complete(out: _Out, task: TaskState, result: Any, usage: Usage) -> None:
    """Record a success, wake dependents, and close finished parents and the job."""
    state = out.state
    out.end(TaskCompleted, task.id, attempt=task.attempt, result=result, usage=usage)
    tasks = state.tasks
    for dep_id in task.dependents:
        dependent = tasks[dep_id]
        if dependent.waiting == 0 and dependent.status == "pending" and dependent.failures == 0:
            out.ready(dep_id)
    if task.parent is not None:
        parent = tasks[task.parent]
        if parent.open_children == 0 and parent.status == "running":
            _complete(out, parent, _aggregate(state, parent), Usage())
            return
    if state.open_tasks == 0 and not state.terminal:
        _finish_job(out)


def _aggregate(state: JobState, parent: TaskState) -> Any:
    """A plan task's result: its composer's, else its final children's results."""
    tasks = state.tasks
    live = [tasks[c] for c in parent.children if tasks[c].status == "succeeded"]
    if COMPOSE_TASK_ID in parent.children and tasks[COMPOSE_TASK_ID].status == "succeeded":
        return tasks[COMPOSE_TASK_ID].result
    used = {d for child in live for d in child.spec.depends_on}
    sinks = [c for c in live if c.id not in used]
    if len(sinks) == 1:
        return sinks[0].result
    return "\n\n".join(_as_text(c.result) for c in sinks)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _finish_job(out: _Out) -> None:
    state = out.state
    tasks = state.tasks
    if state.planned:
        result = tasks[ROOT_TASK_ID].result
    else:
        top = [t for t in tasks.values() if t.parent is None]
        used = {d for t in top for d in t.spec.depends_on}
        sinks = [t for t in top if t.id not in used and t.status == "succeeded"]
        result = sinks[0].result if len(sinks) == 1 else {t.id: t.result for t in sinks}
    out.decision.finished = out.emit(
        JobCompleted,
        None,
        result=result,
        artifacts=tuple(state.artifacts),
        usage=Usage(
            tokens_in=state.tokens_in,
            tokens_out=state.tokens_out,
            cost_usd=state.cost_usd,
            llm_calls=state.llm_calls,
        ),
    )


def backoff_s(failures: int, base_s: float = DEFAULT_RETRY_BASE_S) -> float:
    """Delay before the next attempt after ``failures`` failures (exponential, capped)."""
    return float(min(DEFAULT_RETRY_MAX_S, base_s * (2 ** max(0, failures - 1))))


def _failed(out: _Out, task: TaskState, outcome: Outcome) -> None:
    state = out.state
    error = outcome.error or "the task failed"
    max_attempts = task.spec.max_attempts or state.options.max_attempts
    if outcome.retryable and task.failures + 1 < max_attempts:
        delay = outcome.retry_delay_s
        if delay is None:
            delay = backoff_s(task.failures + 1, state.options.retry_base_s)
        out.end(
            TaskRetrying,
            task.id,
            attempt=task.attempt,
            error=error,
            delay_s=delay,
            not_before=out.now + delay,
        )
        if delay <= 0:
            out.ready(task.id)
        else:
            out.decision.retry_due = True
        return
    _fail_task(out, task, error, outcome.error_type)


def _fail_task(
    out: _Out, task: TaskState, error: str, error_type: FailureType, *, replan: bool = False
) -> None:
    """A task failed for good: replan when the job (or, with ``replan``, a critic) asks for it
    and the job may, else fail the job."""
    state = out.state
    out.end(TaskFailed, task.id, attempt=task.attempt, error=error, error_type=error_type)
    if (
        (replan or state.options.on_failure == "replan")
        and state.replans < state.options.max_replans
        and task.spec.kind != "compose"
    ):
        _replan(out, task, error)
        return
    _fail_job(out, f"task {task.id!r} failed: {error}", failed_task=task.id, code="task_failed")


def _replan(out: _Out, failed: TaskState, error: str) -> None:
    """Replace the failed task and its unfinished dependents by a new plan task."""
    state = out.state
    tasks = state.tasks
    doomed: list[str] = []
    stack = list(failed.dependents)
    seen: set[str] = set()
    while stack:
        task_id = stack.pop()
        if task_id in seen:
            continue
        seen.add(task_id)
        task = tasks[task_id]
        if task.spec.kind == "compose" or task.terminal:
            continue
        doomed.append(task_id)
        stack.extend(task.dependents)
    doomed.sort(key=lambda t: tasks[t].order)
    for task_id in doomed:
        out.end(
            TaskCancelled, task_id, reason=f"superseded by a new plan after {failed.id!r} failed"
        )
    done = [t for t in tasks.values() if t.status == "succeeded" and t.parent == failed.parent]
    remaining = [failed, *(tasks[t] for t in doomed)]
    lines = [f"Overall goal: {state.goal}"]
    if done:
        lines.append("Already done: " + "; ".join(t.spec.goal for t in done if t.spec.goal))
    lines.append(f"This step failed: {failed.spec.goal} (error: {error})")
    lines.append(
        "Plan the remaining work differently: "
        + "; ".join(t.spec.goal for t in remaining if t.spec.goal)
    )
    base = f"replan{state.replans + 1}"
    replan_id = base if failed.parent in (None, ROOT_TASK_ID) else f"{failed.parent}.{base}"
    deps = tuple(d for d in failed.spec.depends_on if tasks[d].status == "succeeded")
    out.decision.all_changed = True
    out.emit(
        ReplanRequested,
        replan_id,
        failed_task=failed.id,
        reason=error,
        goal="\n".join(lines),
        superseded=tuple(doomed),
        depends_on=deps,
        depth=failed.depth,
    )
    if state.tasks[replan_id].waiting == 0:
        out.ready(replan_id)


def _fail_job(out: _Out, reason: str, *, failed_task: str | None, code: JobFailureCode) -> None:
    state = out.state
    for task in list(state.tasks.values()):
        if not task.terminal:
            out.end(TaskCancelled, task.id, reason="job failed")
    out.decision.abandon = True
    out.decision.finished = out.emit(
        JobFailed, None, reason=reason, failed_task=failed_task, code=code
    )


def on_tick(state: JobState, *, now: float) -> Decision:
    """Timers: tasks whose backoff has passed become ready again; a job (or a task) past its
    wall-time budget stops the job with ``budget_exceeded``; calls that waited past the job's
    ``approval_timeout_s`` are rejected."""
    if state.terminal:
        return _NOTHING
    out = _Out(state, now, None)
    reason, task_id = time_problem(state, now)
    if reason is not None:
        _fail_job(out, reason, failed_task=task_id, code="budget_exceeded")
        return out.done()
    if state.options.approval_timeout_s is not None:
        _approvals.expire(out)
    for task in state.tasks.values():
        if (
            task.status == "pending"
            and task.failures > 0
            and task.waiting == 0
            and task.not_before <= now
        ):
            out.ready(task.id)
    return out.done()


def next_timer(state: JobState) -> float | None:
    """When ``on_tick`` next has something to do for this job (``None``: nothing pending)."""
    due = [
        t.not_before
        for t in state.tasks.values()
        if t.status == "pending" and t.failures > 0 and t.waiting == 0
    ]
    deadline = time_deadline(state)
    if deadline is not None:
        due.append(deadline)
    if state.options.approval_timeout_s is not None:
        expiry = _approvals.next_deadline(state)
        if expiry is not None:
            due.append(expiry)
    return min(due) if due else None


def cancel(state: JobState, *, reason: str, now: float) -> Decision:
    """Cancel the job and every task that has not finished."""
    if state.terminal:
        return _NOTHING
    out = _Out(state, now, None)
    for task in list(state.tasks.values()):
        if not task.terminal:
            out.end(TaskCancelled, task.id, reason=reason)
    out.decision.abandon = True
    out.decision.finished = out.emit(JobCancelled, None, reason=reason)
    return out.done()


def fail(state: JobState, *, reason: str, code: JobFailureCode, now: float) -> Decision:
    """Fail the job for a reason of its own (its data cannot be stored), cancelling every task
    that has not finished."""
    if state.terminal:
        return _NOTHING
    out = _Out(state, now, None)
    _fail_job(out, reason, failed_task=None, code=code)
    return out.done()


WORKER_DIED = "the worker died running it"
"""Why a task whose attempts all ended with their process failed."""


def resume(state: JobState, *, now: float) -> Decision:
    """After a restart: attempts that were running are lost, and each of them counts.

    An attempt counts from the moment its ``TaskAssigned`` is recorded: that is the event the
    control plane records before (or while) the work item goes out, so a task that kills its
    process still has its attempt on record. A task found running had its attempt consumed: it
    is retried with a new, higher attempt number (attempt numbers stay unique fencing tokens),
    or, when that was its last allowed attempt, it fails with the reason ``WORKER_DIED`` and the
    job follows its ``on_failure``. Plan tasks waiting on their children are left alone; tasks
    that had succeeded are kept.
    """
    if state.terminal:
        return _NOTHING
    out = _Out(state, now, None)
    for task in list(state.tasks.values()):
        if state.terminal:
            break
        if task.status != "running" or task.children:
            continue
        max_attempts = task.spec.max_attempts or state.options.max_attempts
        if task.failures + 1 < max_attempts:
            out.end(
                TaskRetrying,
                task.id,
                attempt=task.attempt,
                error=WORKER_DIED,
                delay_s=0.0,
                not_before=now,
            )
            out.ready(task.id)
        else:
            _fail_task(out, task, WORKER_DIED, "crash")
    for task in list(state.tasks.values()):
        # A task that was waiting for budget (nothing else is pending with its dependencies
        # done and no failure): it asks again, with a new grant.
        if (
            not state.terminal
            and task.status == "pending"
            and task.waiting == 0
            and task.failures == 0
            and (task.parent is None or state.tasks[task.parent].status == "running")
        ):
            out.ready(task.id)
    if state.open_tasks == 0 and not state.terminal:
        _finish_job(out)
    return out.done()


def reopen(state: JobState, *, task_ids: list[str] | None, replan: bool, now: float) -> Decision:
    """Run a failed or cancelled job again.

    With ``task_ids`` only those failed tasks are retried (with every task cancelled along the
    way); without, every failed task is. With ``replan`` the failed task is not retried: the
    planner is asked for a new plan for the unfinished work instead.

    Raises:
        UsageError: the job is still running, or the tasks named are not failed.
    """
    if not state.terminal or state.status == "succeeded":
        raise UsageError(
            f"job {state.id} is {state.status}; only a failed or cancelled job "
            "can be retried or replanned"
        )
    tasks = state.tasks
    failed = [t for t in tasks.values() if t.status == "failed" and not t.superseded]
    if task_ids is not None:
        unknown = [t for t in task_ids if t not in tasks]
        if unknown:
            raise UsageError(f"job {state.id} has no task {unknown[0]!r}")
        not_failed = [t for t in task_ids if tasks[t].status != "failed"]
        if not_failed:
            raise UsageError(f"task {not_failed[0]!r} is {tasks[not_failed[0]].status}, not failed")
        others = [t.id for t in failed if t.id not in task_ids]
        if others:
            raise UsageError(f"task {others[0]!r} failed too: retry every failed task instead")
    if replan and not failed:
        raise UsageError(f"job {state.id} has no failed task to replan around")
    cancelled = [t.id for t in tasks.values() if t.status == "cancelled" and not t.superseded]
    retried = [] if replan else [t.id for t in failed]
    out = _Out(state, now, None)
    reason = "replan requested" if replan else "retry requested"
    out.decision.all_changed = True
    out.emit(
        JobReopened,
        None,
        tasks=tuple(sorted(retried + cancelled, key=lambda t: tasks[t].order)),
        reason=reason,
    )
    if replan:
        _replan(out, failed[0], failed[0].error or "failed")
    for task in list(tasks.values()):
        if task.status == "pending" and task.waiting == 0 and task.not_before <= now:
            out.ready(task.id)
    return out.done()
