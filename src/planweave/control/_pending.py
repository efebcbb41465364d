"""What a control plane's next flush writes, its settings, and the work items it hands out.

Kept apart from ``plane`` so that the plane module is about deciding, writing and its loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planweave.bus.base import Delivery
from planweave.constants import DEFAULT_CONCURRENCY
from planweave.events import Event, trusted
from planweave.messages import ApprovalDecision, StepAck, WorkItem
from planweave.state import JobState
from planweave.store.base import ArtifactRow, StepRow

__all__ = ["Pending", "PlaneSettings", "work_item"]


@dataclass(slots=True, kw_only=True)
class PlaneSettings:
    """Tuning of a control plane.

    Attributes:
        max_inflight: Most work items out at once per worker kind.
        claim_lease_s: How long a claim on a job lasts without renewal (another process may
            take over a job whose owner stopped renewing). Renewed every third of it.
        poll_s: How often to look for commands left by other processes (cancel).
        workspace_root: Folder under which each job gets its own workspace.
        default_model: Model URL put on work items whose job names none.
        known_tools: Names of registered tools (told to planners).
        reconcile_s: On a bus that can lose messages (``Bus.loses_messages``), how often to
            check that the work items out are still on it (see ``_reconcile``).
        max_running_jobs_per_tenant: Most jobs of one tenant that run at once here (``None``:
            no limit); the tenant's further jobs wait until one of them ends.
    """

    max_inflight: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CONCURRENCY))
    claim_lease_s: float = 30.0
    poll_s: float = 0.25
    workspace_root: Path = Path(".planweave/workspaces")
    default_model: str | None = None
    known_tools: tuple[str, ...] = ()
    reconcile_s: float = 10.0
    max_running_jobs_per_tenant: int | None = None


class Pending:
    """What the next flush writes and, once written, does."""

    __slots__ = (
        "abandoned",
        "acks",
        "artifacts",
        "commands_done",
        "dirty_jobs",
        "dirty_tasks",
        "events",
        "finished",
        "items",
        "late_items",
        "new_jobs",
        "step_acks",
        "steps",
        "steps_cleared",
    )

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dirty_jobs: set[str] = set()
        self.dirty_tasks: dict[str, set[str]] = {}  # job id -> ids of its changed tasks
        self.items: list[WorkItem] = []
        # Work items that go out only once this batch is durable.
        self.late_items: list[WorkItem] = []
        self.acks: list[Delivery] = []
        self.artifacts: list[ArtifactRow] = []
        self.new_jobs: list[str] = []
        self.commands_done: list[tuple[str, int]] = []
        # Jobs that ended (wake their waiters once durable), and the events that ended those
        # whose running work the workers must drop.
        self.finished: list[str] = []
        self.abandoned: list[Event] = []
        # The step journal: steps to write, tasks whose steps go, answers sent once durable.
        self.steps: list[StepRow] = []
        self.steps_cleared: list[tuple[str, str]] = []
        self.step_acks: list[tuple[str, StepAck]] = []

    def without(self, job_ids: set[str]) -> Pending:
        """The part of this batch that concerns other jobs than ``job_ids``."""
        rest = Pending()
        rest.events = [e for e in self.events if e.job_id not in job_ids]
        rest.dirty_jobs = self.dirty_jobs - job_ids
        rest.dirty_tasks = {j: t for j, t in self.dirty_tasks.items() if j not in job_ids}
        rest.late_items = [i for i in self.late_items if i.job_id not in job_ids]
        rest.acks = self.acks
        rest.artifacts = [a for a in self.artifacts if a.job_id not in job_ids]
        rest.new_jobs = [j for j in self.new_jobs if j not in job_ids]
        rest.commands_done = [c for c in self.commands_done if c[0] not in job_ids]
        rest.finished = [j for j in self.finished if j not in job_ids]
        rest.abandoned = [e for e in self.abandoned if e.job_id not in job_ids]
        rest.steps = [s for s in self.steps if s.job_id not in job_ids]
        rest.steps_cleared = [c for c in self.steps_cleared if c[0] not in job_ids]
        rest.step_acks = [a for a in self.step_acks if a[1].job_id not in job_ids]
        return rest


def work_item(
    state: JobState,
    task_id: str,
    worker: str,
    *,
    reply_to: str,
    workspace: str,
    settings: PlaneSettings,
) -> WorkItem:
    """The work item of a task's current attempt: its spec, and its inputs (the results of the
    tasks it depends on, and of those its parent plan task depends on, keyed by task id); for
    a task a critic checks, its candidate answer and the job's ``critic_model``."""
    tasks = state.tasks
    task = tasks[task_id]
    inputs: dict[str, Any] = {}
    goals: dict[str, str] = {}
    node = task
    while True:
        for dep in node.spec.depends_on:
            dep_task = tasks[dep]
            inputs[dep] = dep_task.result
            goals[dep] = dep_task.spec.goal
        if node.parent is None:
            break
        node = tasks[node.parent]
    options = state.options
    model = options.model or settings.default_model
    reviewing = task.reviewing
    if reviewing and options.critic_model:
        model = options.critic_model
    return trusted(
        WorkItem,
        {
            "id": f"{state.id}:{task_id}:{task.attempt}",
            "job_id": state.id,
            "task_id": task_id,
            "attempt": task.attempt,
            "worker": worker,
            "reply_to": reply_to,
            "spec": task.spec,
            "job_goal": state.goal,
            "inputs": inputs,
            "input_goals": goals,
            "depth": task.depth,
            "model": model,
            "workspace": workspace,
            "max_agent_steps": options.max_agent_steps,
            "max_tool_calls": options.max_tool_calls,
            "max_tool_calls_per_step": options.max_tool_calls_per_step,
            "allow_private_network": bool(options.allow_private_network),
            "max_plan_tasks": options.max_plan_tasks,
            "tries": (task.spec.max_attempts or options.max_attempts) - task.failures,
            "max_plan_depth": options.max_plan_depth,
            "max_result_bytes": options.max_result_bytes,
            "allow_subplans": task.depth + 1 < options.max_plan_depth,
            "known_tools": settings.known_tools,
            "max_handoffs": options.max_handoffs,
            "hooks": options.hooks,
            "policy": options.policy,
            "grant": task.grant,
            "candidate": task.result if reviewing else None,
            "approve_tools": options.approve_tools,
            "approvals": tuple(
                ApprovalDecision(
                    tool=d["tool"],
                    call=d["call"],
                    approved=d["approved"],
                    by=d["by"],
                    reason=d.get("reason", ""),
                )
                for d in task.approvals
            )
            if task.approvals
            else (),
        },
    )
