"""The decider's part of human approval: a task waits, a person decides, the timeout rejects.

A tool call that needs approval ends its task's attempt with an ``awaiting_approval`` outcome.
The task then waits (``ApprovalRequested``), holding no worker, while every other ready task
keeps running; the job cannot finish while it waits. A decision (``ApprovalDecided``) makes the
task ready again: its next attempt carries the decision, replays its earlier calls from the
journal and either runs the approved call or reads the rejection. Like the rest of the decider,
these are pure functions of the job's state, the input and ``now``.
"""

from __future__ import annotations

from planweave.control._decision import Decision, _Out
from planweave.errors import UsageError
from planweave.events import ApprovalDecided, ApprovalRequested
from planweave.messages import PendingApproval
from planweave.state import JobState, TaskState

__all__ = ["decide", "expire", "next_deadline", "request"]

TIMEOUT_BY = "timeout"
"""Who ``ApprovalDecided`` names when the timeout rejected the call."""


def request(out: _Out, task: TaskState, pending: PendingApproval) -> None:
    """The task's attempt stopped at a call that needs approval: the task waits."""
    timeout_s = out.state.options.approval_timeout_s
    out.end(
        ApprovalRequested,
        task.id,
        attempt=task.attempt,
        tool=pending.tool,
        args=pending.args,
        call=pending.call,
        reason=pending.reason,
        timeout_at=None if timeout_s is None else out.now + timeout_s,
    )
    if timeout_s is not None:
        out.decision.retry_due = True  # the plane's timer rejects it when no one decides


def decide(
    state: JobState, task_id: str, *, approved: bool, by: str, reason: str, now: float
) -> Decision:
    """A person approved or rejected the call a task waits on; the task runs again.

    Raises:
        UsageError: the job has ended, it has no such task, or the task is not waiting.
    """
    task = state.tasks.get(task_id)
    if task is None:
        raise UsageError(f"job {state.id} has no task {task_id!r}")
    if state.terminal:
        raise UsageError(f"job {state.id} is {state.status}: there is nothing to approve")
    if task.status != "awaiting_approval" or task.pending_approval is None:
        raise UsageError(
            f"task {task_id!r} of job {state.id} is {task.status}, not awaiting approval"
        )
    out = _Out(state, now, None)
    _decided(out, task, approved=approved, by=by, reason=reason)
    return out.done()


def _decided(out: _Out, task: TaskState, *, approved: bool, by: str, reason: str) -> None:
    pending = task.pending_approval or {}
    out.emit(
        ApprovalDecided,
        task.id,
        tool=str(pending.get("tool", "")),
        call=str(pending.get("call", "")),
        approved=approved,
        by=by,
        reason=reason,
    )
    out.ready(task.id)


def expire(out: _Out) -> None:
    """Reject the calls whose wait for a decision outlasted the job's ``approval_timeout_s``."""
    now = out.now
    timeout_s = out.state.options.approval_timeout_s
    for task in list(out.state.tasks.values()):
        if task.status != "awaiting_approval" or task.pending_approval is None:
            continue
        due = task.pending_approval.get("timeout_at")
        if due is not None and due <= now:
            waited = f"{timeout_s:g} s" if timeout_s is not None else "its time limit"
            _decided(
                out,
                task,
                approved=False,
                by=TIMEOUT_BY,
                reason=f"no decision within {waited} (approval_timeout_s)",
            )


def next_deadline(state: JobState) -> float | None:
    """When the first waiting call of the job times out (``None``: none does)."""
    due: float | None = None
    for task in state.tasks.values():
        if task.status == "awaiting_approval" and task.pending_approval is not None:
            when = task.pending_approval.get("timeout_at")
            if when is not None and (due is None or when < due):
                due = when
    return due
