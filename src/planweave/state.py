"""A job's state, and ``apply``: the one function that changes it.

The control plane keeps each active job's state in memory and changes it only by applying events
the decider produced, so replaying a job's event log through ``apply`` rebuilds exactly the state
the store holds. State objects are plain mutable slotted classes (not pydantic models): the engine
touches them on every step, and their cost is the engine's overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from planweave.constants import EVENT_BASE_BYTES, TERMINAL_STATUSES
from planweave.events import (
    ApprovalDecided,
    ApprovalRequested,
    ArtifactCreated,
    CriticVerdict,
    Event,
    EventBase,
    Grant,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobOptions,
    JobReopened,
    JobSubmitted,
    LlmCalled,
    PolicyDenied,
    ReplanRequested,
    SpellEvent,
    SubtasksPlanned,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskNeedsBudget,
    TaskReady,
    TaskRetrying,
    TaskReviewing,
    TaskStarted,
    ToolCalled,
)
from planweave.plan import TaskSpec

__all__ = [
    "JobState",
    "JobStatus",
    "TaskState",
    "TaskStatus",
    "apply",
    "data_size",
    "replay",
]

TaskStatus = Literal[
    "pending", "ready", "running", "awaiting_approval", "succeeded", "failed", "cancelled"
]
JobStatus = Literal["running", "succeeded", "failed", "cancelled"]

TERMINAL_TASK: frozenset[str] = TERMINAL_STATUSES
TERMINAL_JOB: frozenset[str] = TERMINAL_STATUSES


@dataclass(slots=True, eq=False)
class TaskState:
    """One task of a job, as the control plane sees it."""

    id: str
    spec: TaskSpec
    status: TaskStatus = "pending"
    parent: str | None = None
    depth: int = 0
    attempt: int = 0
    failures: int = 0
    started: bool = False
    result: Any = None
    error: str | None = None
    not_before: float = 0.0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    order: int = 0
    superseded: bool = False
    pending_approval: dict[str, Any] | None = None
    """The call that waits for a person while the task is ``awaiting_approval``: its
    ``tool``, ``args``, ``call`` (fingerprint), ``reason``, ``since`` and ``timeout_at``."""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """The decisions made on the task's calls (``tool``, ``call``, ``approved``, ``by``,
    ``reason``), handed to each of its attempts."""
    # The latest delivery of the current attempt's work item seen starting: reports of earlier
    # deliveries are stale. Not stored: a new owner starts a new attempt of every unfinished
    # task, which fences all older ones.
    delivery: int = 0
    # Derived indices, rebuilt from the specs on load (never stored).
    waiting: int = 0
    open_children: int = 0
    dependents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    # Budget bookkeeping (never stored: a new owner starts a new attempt of every unfinished
    # task, with a new grant). ``grant`` is the running attempt's share of the job's budgets,
    # ``grant_base`` the task's spend (tokens, dollars, tool calls) when it was granted;
    # ``needs`` what the call it stopped before may cost, while it waits for budget.
    grant: Grant | None = None
    grant_base: tuple[int, float, int] = (0, 0.0, 0)
    needs: Grant | None = None
    tool_calls: int = 0
    fanout: int = 0
    """Tasks created below this one by its sub-plans (derived)."""
    # The critic's verdicts on the task's answers, (verdict, feedback) in order: what the live
    # views show. Not stored: the event log has them (``CriticVerdict``).
    verdicts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.spec.depends_on

    @property
    def reviewing(self) -> bool:
        """Whether a critic is checking the task's answer: an ``execute`` task that is not
        finished but holds a result (its candidate answer, ``TaskReviewing``)."""
        return (
            self.result is not None
            and self.status not in TERMINAL_TASK
            and self.spec.kind == "execute"
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_TASK

    def to_row(self, job_id: str) -> dict[str, Any]:
        """The task as a flat row for a store."""
        return {
            "job_id": job_id,
            "task_id": self.id,
            "spec": self.spec,
            "status": self.status,
            "parent": self.parent,
            "depth": self.depth,
            "attempt": self.attempt,
            "failures": self.failures,
            "started": self.started,
            "result": self.result,
            "error": self.error,
            "not_before": self.not_before,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "ord": self.order,
            "superseded": self.superseded,
            "approval": (
                None
                if self.pending_approval is None and not self.approvals
                else {"pending": self.pending_approval, "decisions": list(self.approvals)}
            ),
        }


@dataclass(slots=True, eq=False)
class JobState:
    """One job: its goal, options, tasks and progress."""

    id: str
    goal: str
    options: JobOptions
    status: JobStatus = "running"
    tasks: dict[str, TaskState] = field(default_factory=dict)
    seq: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    result: Any = None
    error: str | None = None
    artifacts: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    tool_calls: int = 0
    replans: int = 0
    planned: bool = False
    """True when the job's root is a planner task (a goal), False for a user-written plan."""
    tenant: str = "default"
    idempotency_key: str | None = None
    data_bytes: int = 0
    """What the job's events recorded, about: their text by length and ``EVENT_BASE_BYTES``
    each (held to the job option ``max_job_bytes``; counted in its tenant's storage)."""
    open_tasks: int = 0
    """Tasks not yet terminal (derived, never stored)."""
    ready_count: int = 0
    """Tasks ready and not yet handed out (derived): a new grant is a share among them."""
    holders: set[str] = field(default_factory=set)
    """Tasks whose running attempt holds a grant (derived)."""
    budget_waiting: list[str] = field(default_factory=list)
    """Tasks waiting for budget to come back, in the order they asked (derived)."""
    fanout: int = 0
    """Tasks the job's plans created (derived from the tasks that have a parent)."""
    task_budgets: bool = False
    """Whether any of its tasks has a ``budget`` of its own (derived)."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB

    def to_row(self) -> dict[str, Any]:
        """The job as a flat row for a store."""
        return {
            "job_id": self.id,
            "goal": self.goal,
            "options": self.options,
            "status": self.status,
            "seq": self.seq,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "error": self.error,
            "artifacts": list(self.artifacts),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "llm_calls": self.llm_calls,
            "tool_calls": self.tool_calls,
            "replans": self.replans,
            "planned": self.planned,
            "tenant": self.tenant,
            "idempotency_key": self.idempotency_key,
            "data_bytes": self.data_bytes,
        }

    @classmethod
    def from_rows(cls, job: dict[str, Any], tasks: list[dict[str, Any]]) -> JobState:
        """Rebuild a job from the rows ``to_row`` produced (and its derived indices)."""
        state = cls(
            id=job["job_id"],
            goal=job["goal"],
            options=job["options"],
            status=job["status"],
            seq=job["seq"],
            created_at=job["created_at"],
            updated_at=job["updated_at"],
            finished_at=job["finished_at"],
            result=job["result"],
            error=job["error"],
            artifacts=list(job["artifacts"]),
            tokens_in=job["tokens_in"],
            tokens_out=job["tokens_out"],
            cost_usd=job["cost_usd"],
            llm_calls=job["llm_calls"],
            tool_calls=job["tool_calls"],
            replans=job["replans"],
            planned=job["planned"],
            tenant=job["tenant"],
            idempotency_key=job["idempotency_key"],
            data_bytes=job["data_bytes"],
        )
        for row in sorted(tasks, key=lambda r: r["ord"]):
            approval = row.get("approval") or {}
            state.tasks[row["task_id"]] = TaskState(
                id=row["task_id"],
                spec=row["spec"],
                status=row["status"],
                parent=row["parent"],
                depth=row["depth"],
                attempt=row["attempt"],
                failures=row["failures"],
                started=row["started"],
                result=row["result"],
                error=row["error"],
                not_before=row["not_before"],
                created_at=row["created_at"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                tokens_in=row["tokens_in"],
                tokens_out=row["tokens_out"],
                cost_usd=row["cost_usd"],
                order=row["ord"],
                superseded=row["superseded"],
                pending_approval=approval.get("pending"),
                approvals=list(approval.get("decisions") or ()),
            )
        _reindex(state)
        return state


def _reindex(state: JobState) -> None:
    tasks = state.tasks
    state.open_tasks = 0
    state.ready_count = 0
    state.fanout = 0
    for task in tasks.values():
        task.dependents.clear()
        task.children.clear()
        task.open_children = 0
        task.fanout = 0
        if task.status not in TERMINAL_TASK:
            state.open_tasks += 1
        if task.status == "ready":
            state.ready_count += 1
        if task.spec.budget is not None:
            state.task_budgets = True
    for task in tasks.values():
        node = task
        while node.parent is not None and node.parent in tasks:
            node = tasks[node.parent]
            node.fanout += 1
        if task.parent is not None:
            state.fanout += 1
    for task in tasks.values():
        waiting = 0
        for dep in task.spec.depends_on:
            dep_task = tasks.get(dep)
            if dep_task is None:
                continue
            dep_task.dependents.append(task.id)
            if dep_task.status != "succeeded":
                waiting += 1
        task.waiting = waiting
        if task.parent is not None and task.parent in tasks:
            parent = tasks[task.parent]
            parent.children.append(task.id)
            if task.status not in TERMINAL_TASK:
                parent.open_children += 1


def _add_task(
    state: JobState, spec: TaskSpec, *, parent: str | None, depth: int, at: float
) -> TaskState:
    task = TaskState(
        id=spec.id, spec=spec, parent=parent, depth=depth, created_at=at, order=len(state.tasks)
    )
    tasks = state.tasks
    tasks[spec.id] = task
    if spec.budget is not None:
        state.task_budgets = True
    waiting = 0
    for dep in spec.depends_on:
        dep_task = tasks.get(dep)
        if dep_task is None:
            continue
        dep_task.dependents.append(spec.id)
        if dep_task.status != "succeeded":
            waiting += 1
    task.waiting = waiting
    state.open_tasks += 1
    if parent is not None and parent in tasks:
        parent_task = tasks[parent]
        parent_task.children.append(spec.id)
        parent_task.open_children += 1
    return task


def _settle(state: JobState, task: TaskState) -> None:
    """Count a task that just became terminal."""
    state.open_tasks -= 1
    if task.parent is not None:
        parent = state.tasks.get(task.parent)
        if parent is not None:
            parent.open_children -= 1


def apply(state: JobState | None, event: Event) -> JobState:
    """Apply one event to a job's state (creating it on ``JobSubmitted``) and return it.

    Deterministic: the same events in the same order always give the same state. Each event
    type has one handler (``_APPLY``); an event type without one only advances ``seq`` and
    counts its ``EVENT_BASE_BYTES`` in ``data_bytes`` (a handler adds the size of its text).
    """
    if state is None:
        if not isinstance(event, JobSubmitted):
            raise ValueError(f"event {event.type} for job {event.job_id} before JobSubmitted")
        return _submitted(event)
    state.seq = event.seq
    state.updated_at = event.at
    state.data_bytes += EVENT_BASE_BYTES
    handler = _APPLY.get(type(event))
    if handler is not None:
        handler(state, event)
    return state


def data_size(value: Any) -> int:
    """About the length of ``value`` as JSON, from the lengths of its text, without encoding it.

    Text counts its characters (a character outside ASCII is more bytes in UTF-8: this is an
    estimate, a fraction of the cost of encoding), numbers and other scalars 8 each, models
    (task specs) their fields. Walked without recursion, so any nesting is safe.
    """
    if isinstance(value, str):  # the common case: a result, an answer, a goal
        return len(value) + 2
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, TaskSpec):
            total += _spec_size(item)
        else:
            total += 8
    return total


def _spec_size(spec: TaskSpec) -> int:
    size = 48 + len(spec.id) + len(spec.goal)
    for dep in spec.depends_on:
        size += len(dep) + 3
    for text in spec.feedback:
        size += len(text) + 3
    return size + data_size(spec.args) if spec.args else size


def _plan_size(specs: tuple[TaskSpec, ...] | None) -> int:
    """``data_size`` of a plan, without the general walk: plans can hold thousands of tasks."""
    return 0 if specs is None else 2 + sum(_spec_size(spec) + 1 for spec in specs)


_Handler = Callable[[JobState, Any], None]
_APPLY: dict[type[EventBase], _Handler] = {}


def _on(cls: type[EventBase]) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        _APPLY[cls] = handler
        return handler

    return register


def _task(state: JobState, event: Event) -> TaskState:
    task_id = event.task_id
    if task_id is None or task_id not in state.tasks:
        raise ValueError(f"event {event.type} of job {event.job_id} names no task of it")
    return state.tasks[task_id]


def _submitted(event: JobSubmitted) -> JobState:
    state = JobState(
        id=event.job_id,
        goal=event.goal,
        options=event.options,
        created_at=event.at,
        updated_at=event.at,
        planned=event.plan is None,
        tenant=event.tenant,
        idempotency_key=event.idempotency_key,
        data_bytes=EVENT_BASE_BYTES + data_size(event.goal) + _plan_size(event.plan),
    )
    if event.plan is None:
        root = TaskSpec(id="root", goal=event.goal, kind="plan")
        _add_task(state, root, parent=None, depth=0, at=event.at)
    else:
        for spec in event.plan:
            _add_task(state, spec, parent=None, depth=0, at=event.at)
    state.seq = event.seq
    return state


@_on(JobSubmitted)
def _resubmitted(state: JobState, event: JobSubmitted) -> None:
    raise ValueError(f"job {event.job_id} was submitted twice")


def _release(state: JobState, task: TaskState) -> None:
    """The task's attempt ended: what is left of its grant goes back to the job."""
    if task.grant is not None:
        task.grant = None
        state.holders.discard(task.id)


@_on(TaskReady)
def _ready(state: JobState, event: TaskReady) -> None:
    task = _task(state, event)
    if task.status != "ready":
        state.ready_count += 1
    task.status = "ready"
    if task.needs is not None and task.id in state.budget_waiting:
        state.budget_waiting.remove(task.id)  # ``needs`` stays until its grant is made


@_on(TaskAssigned)
def _assigned(state: JobState, event: TaskAssigned) -> None:
    task = _task(state, event)
    if task.status == "ready":
        state.ready_count -= 1
    grant = event.grant
    task.grant = grant
    task.needs = None
    if grant is not None:
        state.holders.add(task.id)
        task.grant_base = (task.tokens_in + task.tokens_out, task.cost_usd, task.tool_calls)
    task.status = "running"
    task.attempt = event.attempt
    task.started = False
    task.delivery = 0


@_on(TaskStarted)
def _started(state: JobState, event: TaskStarted) -> None:
    task = _task(state, event)
    task.started = True
    task.failures += event.lost
    if event.delivery > task.delivery:
        task.delivery = event.delivery
    if task.started_at is None:
        task.started_at = event.at


@_on(TaskCompleted)
def _completed(state: JobState, event: TaskCompleted) -> None:
    task = _task(state, event)
    _release(state, task)
    task.status = "succeeded"
    task.result = event.result
    state.data_bytes += data_size(event.result)
    task.error = None
    task.finished_at = event.at
    _settle(state, task)
    tasks = state.tasks
    for dep_id in task.dependents:
        tasks[dep_id].waiting -= 1


@_on(SubtasksPlanned)
def _planned(state: JobState, event: SubtasksPlanned) -> None:
    task = _task(state, event)
    _release(state, task)
    state.data_bytes += _plan_size(event.tasks)
    for spec in event.tasks:
        _add_task(state, spec, parent=task.id, depth=event.depth, at=event.at)
    created = len(event.tasks)
    state.fanout += created
    node: TaskState | None = task
    while node is not None:
        node.fanout += created
        node = state.tasks.get(node.parent) if node.parent is not None else None


@_on(TaskRetrying)
def _retrying(state: JobState, event: TaskRetrying) -> None:
    task = _task(state, event)
    _release(state, task)
    task.status = "pending"
    task.failures += 1
    task.error = event.error
    state.data_bytes += len(event.error)
    task.not_before = event.not_before


@_on(TaskReviewing)
def _reviewing(state: JobState, event: TaskReviewing) -> None:
    task = _task(state, event)
    _release(state, task)  # the answer's attempt ended; the critic's gets a grant of its own
    task.status = "pending"
    task.result = event.candidate
    state.data_bytes += data_size(event.candidate)
    if task.spec.critic != event.critic:  # the critic chosen is kept with the task
        task.spec = task.spec.model_copy(update={"critic": event.critic})


@_on(CriticVerdict)
def _verdict(state: JobState, event: CriticVerdict) -> None:
    task = _task(state, event)
    _release(state, task)  # the critic's attempt ended
    task.verdicts.append((event.verdict, event.feedback))
    state.data_bytes += len(event.feedback)
    if event.verdict == "pass":
        return  # its ``TaskCompleted`` follows, with the candidate as the result
    task.result = None
    if event.verdict == "revise":
        task.status = "pending"
        feedback = (*task.spec.feedback, event.feedback)
        task.spec = task.spec.model_copy(update={"feedback": feedback})


@_on(TaskFailed)
def _failed(state: JobState, event: TaskFailed) -> None:
    task = _task(state, event)
    _release(state, task)
    task.status = "failed"
    task.failures += 1
    task.error = event.error
    state.data_bytes += len(event.error)
    task.finished_at = event.at
    _settle(state, task)


@_on(TaskCancelled)
def _cancelled(state: JobState, event: TaskCancelled) -> None:
    task = _task(state, event)
    _release(state, task)
    if task.status == "ready":
        state.ready_count -= 1
    if task.needs is not None:
        task.needs = None
        if task.id in state.budget_waiting:
            state.budget_waiting.remove(task.id)
    task.status = "cancelled"
    task.error = task.error or event.reason
    state.data_bytes += len(event.reason)
    task.finished_at = event.at
    _settle(state, task)


@_on(TaskNeedsBudget)
def _needs_budget(state: JobState, event: TaskNeedsBudget) -> None:
    task = _task(state, event)
    _release(state, task)
    task.status = "pending"
    if task.id not in state.budget_waiting:
        state.budget_waiting.append(task.id)
    task.needs = event.needs


@_on(JobReopened)
def _reopened(state: JobState, event: JobReopened) -> None:
    state.status = "running"
    state.error = None
    state.result = None
    state.finished_at = None
    tasks = state.tasks
    for task_id in event.tasks:
        reopened = tasks[task_id]
        reopened.status = "running" if reopened.children else "pending"
        if reopened.status == "pending":
            reopened.failures = 0
        reopened.error = None
        reopened.finished_at = None
        reopened.not_before = 0.0
        if reopened.spec.feedback:  # a task retried by hand starts its revisions afresh
            reopened.spec = reopened.spec.model_copy(update={"feedback": ()})
    _reindex(state)


@_on(LlmCalled)
def _llm_called(state: JobState, event: LlmCalled) -> None:
    state.llm_calls += 1
    state.data_bytes += len(event.prompt) + len(event.reply) + len(event.error or "")
    state.tokens_in += event.tokens_in
    state.tokens_out += event.tokens_out
    state.cost_usd += event.cost_usd
    task = state.tasks.get(event.task_id) if event.task_id is not None else None
    if task is not None:
        task.tokens_in += event.tokens_in
        task.tokens_out += event.tokens_out
        task.cost_usd += event.cost_usd


@_on(ToolCalled)
def _tool_called(state: JobState, event: ToolCalled) -> None:
    state.tool_calls += 1
    task = state.tasks.get(event.task_id) if event.task_id is not None else None
    if task is not None:
        task.tool_calls += 1
    state.data_bytes += (
        len(event.name) + data_size(event.args) + len(event.result) + len(event.error or "")
    )


@_on(SpellEvent)
def _spell_event(state: JobState, event: SpellEvent) -> None:
    state.data_bytes += len(event.spell) + len(event.name) + data_size(event.data)


@_on(PolicyDenied)
def _policy_denied(state: JobState, event: PolicyDenied) -> None:
    state.data_bytes += len(event.rule) + len(event.reason) + data_size(event.args)


@_on(ApprovalRequested)
def _approval_requested(state: JobState, event: ApprovalRequested) -> None:
    task = _task(state, event)
    task.status = "awaiting_approval"
    task.pending_approval = {
        "tool": event.tool,
        "args": event.args,
        "call": event.call,
        "reason": event.reason,
        "since": event.at,
        "timeout_at": event.timeout_at,
    }
    state.data_bytes += len(event.tool) + data_size(event.args) + len(event.reason)


@_on(ApprovalDecided)
def _approval_decided(state: JobState, event: ApprovalDecided) -> None:
    task = _task(state, event)
    task.pending_approval = None
    task.approvals.append(
        {
            "tool": event.tool,
            "call": event.call,
            "approved": event.approved,
            "by": event.by,
            "reason": event.reason,
            "at": event.at,
        }
    )
    state.data_bytes += len(event.by) + len(event.reason)


@_on(ArtifactCreated)
def _artifact(state: JobState, event: ArtifactCreated) -> None:
    state.data_bytes += len(event.name)
    if event.name not in state.artifacts:
        state.artifacts.append(event.name)


@_on(JobCompleted)
def _job_completed(state: JobState, event: JobCompleted) -> None:
    state.status = "succeeded"
    state.result = event.result
    state.data_bytes += data_size(event.result)
    state.finished_at = event.at


@_on(JobFailed)
def _job_failed(state: JobState, event: JobFailed) -> None:
    state.status = "failed"
    state.error = event.reason
    state.data_bytes += len(event.reason)
    state.finished_at = event.at


@_on(JobCancelled)
def _job_cancelled(state: JobState, event: JobCancelled) -> None:
    state.status = "cancelled"
    state.error = event.reason
    state.data_bytes += len(event.reason)
    state.finished_at = event.at


@_on(ReplanRequested)
def _replan_requested(state: JobState, event: ReplanRequested) -> None:
    """Add the replanning task and re-point the survivors that depended on superseded work."""
    tasks = state.tasks
    state.data_bytes += len(event.goal) + len(event.reason)
    superseded = set(event.superseded)
    for task_id in (*event.superseded, event.failed_task):
        tasks[task_id].superseded = True
    parent = tasks[event.failed_task].parent
    spec = TaskSpec(
        id=event.task_id or "replan", goal=event.goal, kind="plan", depends_on=event.depends_on
    )
    _add_task(state, spec, parent=parent, depth=event.depth, at=event.at)
    state.replans += 1
    for other in tasks.values():
        if other.terminal or other.id in superseded or other.id == spec.id:
            continue
        if any(dep in superseded or dep == event.failed_task for dep in other.spec.depends_on):
            deps = [
                d for d in other.spec.depends_on if d not in superseded and d != event.failed_task
            ]
            deps.append(spec.id)
            other.spec = other.spec.model_copy(update={"depends_on": tuple(deps)})
    _reindex(state)


def replay(events: list[Event]) -> JobState:
    """Rebuild a job's state from its whole event log."""
    state: JobState | None = None
    for event in events:
        state = apply(state, event)
    if state is None:
        raise ValueError("no events to replay")
    return state
