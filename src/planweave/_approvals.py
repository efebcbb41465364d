"""Approving and rejecting waiting tool calls from anywhere: ``Engine.approve`` and
``Engine.reject``, and the list of what waits (``Engine.approvals``).

A decision reaches the job whichever process owns it, as a cancel does: a job run here is
decided at once; a job another process runs (or nobody runs now: its process died) gets a
command in the store, which its owner carries out within a moment, or whoever resumes it
(``planweave resume``, ``planweave serve``) once it starts. The command stays in the store
until its effect is recorded.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from planweave.control._commands import APPROVE, REJECT
from planweave.errors import JobNotFound, UsageError
from planweave.events import JobOptions
from planweave.state import JobState

if TYPE_CHECKING:
    from planweave.engine import Engine

__all__ = [
    "PendingCall",
    "decide",
    "local_user",
    "pending_calls",
    "with_approval_settings",
]


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A tool call waiting for a person's decision.

    Attributes:
        job_id: The job.
        task_id: The task whose branch waits.
        tool: The tool called.
        args: Its arguments (bounded and redacted as in the ``ToolCalled`` events).
        reason: Why it needs approval.
        since: When it started waiting (epoch seconds).
        timeout_at: When it is rejected without a decision (``None``: never).
        tenant: The job's tenant.
        goal: The task's goal.
    """

    job_id: str
    task_id: str
    tool: str
    args: dict[str, Any]
    reason: str
    since: float
    timeout_at: float | None
    tenant: str
    goal: str

    def to_dict(self) -> dict[str, Any]:
        """The call as JSON-ready data (``planweave approvals --json``, the API)."""
        return {
            "job_id": self.job_id,
            "task_id": self.task_id,
            "tool": self.tool,
            "args": self.args,
            "reason": self.reason,
            "since": self.since,
            "timeout_at": self.timeout_at,
            "tenant": self.tenant,
            "goal": self.goal,
        }


def pending_calls(state: JobState) -> list[PendingCall]:
    """The calls of a job that wait for a decision, in task order."""
    found = []
    for task in state.tasks.values():
        pending = task.pending_approval
        if task.status != "awaiting_approval" or pending is None:
            continue
        found.append(
            PendingCall(
                job_id=state.id,
                task_id=task.id,
                tool=str(pending.get("tool", "")),
                args=dict(pending.get("args") or {}),
                reason=str(pending.get("reason", "")),
                since=float(pending.get("since") or 0.0),
                timeout_at=pending.get("timeout_at"),
                tenant=state.tenant,
                goal=task.spec.goal,
            )
        )
    return found


def local_user() -> str:
    """Who a decision made from this machine's CLI or a Python program is recorded as."""
    try:
        return f"local/{getpass.getuser()}"
    except (KeyError, OSError):  # no user name (a container without a passwd entry)
        return "local/user"


async def decide(
    engine: Engine,
    job_id: str,
    task_id: str,
    *,
    approved: bool,
    by: str | None,
    reason: str,
    tenant: str | None = None,
) -> JobState:
    """Approve or reject the call a task waits on, whichever process runs its job.

    Returns the job's state as this process saw it when the decision was made or left.

    Raises:
        JobNotFound: no such job (or, with ``tenant``, none of that tenant's).
        UsageError: the job ended, it has no such task, or the task is not awaiting approval;
            a rejection without a reason.
    """
    if not approved and not reason.strip():
        raise UsageError("a rejection needs a reason (--reason): the agent reads it")
    who = by or local_user()
    await engine.start()
    state = engine.plane.job(job_id) or await engine.store.load_job(job_id)
    if state is None or (tenant is not None and state.tenant != tenant):
        raise JobNotFound(job_id)
    if await engine.plane.decide_approval(
        job_id, task_id, approved=approved, by=who, reason=reason
    ):
        return state
    _check_waiting(state, task_id)
    name = APPROVE if approved else REJECT
    await engine.store.add_command(job_id, name, {"task": task_id, "by": who, "reason": reason})
    return state


def _check_waiting(state: JobState, task_id: str) -> None:
    task = state.tasks.get(task_id)
    if task is None:
        raise UsageError(f"job {state.id} has no task {task_id!r}")
    if state.terminal:
        raise UsageError(f"job {state.id} is {state.status}: there is nothing to approve")
    if task.status != "awaiting_approval":
        raise UsageError(
            f"task {task_id!r} of job {state.id} is {task.status}, not awaiting approval"
        )


def with_approval_settings(
    options: JobOptions, approve_tools: tuple[str, ...], timeout_s: float | None
) -> JobOptions:
    """A job's options with the engine's approval settings added: its ``approve_tools``
    patterns besides the job's own, its timeout where the job sets none."""
    update: dict[str, Any] = {}
    if approve_tools:
        update["approve_tools"] = tuple(dict.fromkeys((*approve_tools, *options.approve_tools)))
    if timeout_s is not None and options.approval_timeout_s is None:
        update["approval_timeout_s"] = timeout_s
    return options.model_copy(update=update) if update else options
