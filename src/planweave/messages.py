"""Messages between the control plane and workers.

A work item hands one attempt of one task to a worker; the worker answers on the queue the item
names in ``reply_to`` (the outcome queue of the control plane that dispatched it) with reports:
that it started, the calls it made (LLM and tool events), and finally its outcome. Routing by the
item, not by a queue every plane shares, means that a plane receives only its own jobs' reports,
however many planes share the bus; a job taken over by another plane gets that plane's queue on
its next work items, and late reports of the old owner's attempts go to the old queue, where the
attempt number would reject them anyway.
The ``attempt`` number is the fencing token: a report for an attempt that is no longer current is
rejected by the control plane, so a zombie worker cannot overwrite a newer result.

Like the events, their validators are built on first use (``defer_build``), so a process that
only reads jobs does not build them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from planweave._journal import JournalStep
from planweave.constants import (
    DEFAULT_MAX_AGENT_STEPS,
    DEFAULT_MAX_HANDOFFS,
    DEFAULT_MAX_PLAN_DEPTH,
    DEFAULT_MAX_PLAN_TASKS,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MAX_TOOL_CALLS_PER_STEP,
    SCHEMA_VERSION,
)
from planweave.errors import FailureType
from planweave.events import Grant, LlmCalled, PolicyDenied, SpellEvent, ToolCalled, Usage, new_id
from planweave.plan import TaskSpec
from planweave.policy._rules import Policy

__all__ = [
    "ApprovalDecision",
    "CallReport",
    "Message",
    "Outcome",
    "PendingApproval",
    "Report",
    "StartedReport",
    "StepAck",
    "StepReport",
    "WorkItem",
    "message_adapter",
    "parse_message",
]


class PendingApproval(BaseModel):
    """A tool call that waits for a person's approval (an ``awaiting_approval`` outcome).

    Attributes:
        tool: The tool called.
        args: Its arguments, as the agent wrote them.
        call: Fingerprint of the tool and its arguments, which a decision is matched by.
        reason: Why it needs approval.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    call: str
    reason: str


class ApprovalDecision(BaseModel):
    """A decision on a call of a task, carried by its work items: an approved call runs, a
    rejected one comes back to the agent as ``rejected by <by>: <reason>``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    tool: str
    call: str
    approved: bool
    by: str
    reason: str = ""


class WorkItem(BaseModel):
    """One attempt of one task, handed to a worker of kind ``worker``.

    Attributes:
        inputs: Results of the task's dependencies (and its parent plan task's inputs), keyed by
            task id.
        input_goals: The goals of those tasks, keyed alike, so an agent knows what each result is.
        reply_to: Queue the worker sends its reports (started, calls, outcome) to.
        depth: Nesting depth of the task (root tasks are 0).
        model: Model URL to use (``None``: the worker's default).
        max_plan_depth: The job's limit on plan nesting, which a planner is told.
        max_result_bytes: Largest result reported as a value; a larger one is written to the
            workspace and reported as a reference to that file.
        tries: The task's tries left when the item was sent (0: no bound). A delivery past
            them means every try ended with its worker lost: the worker reports the attempt
            failed instead of running it again.
        hooks: The job hooks its job names (``JobOptions.hooks``).
        policy: Its job's own policy (``JobOptions.policy``).
        trace: The W3C ``traceparent`` of the job's trace, so a worker in any process
            continues it (``None``: no tracing hook).
        steps: The task's journal (``planweave._journal``) when the item was sent: the model
            and tool calls an earlier run of it completed, replayed instead of made again.
        grant: The share of the job's budgets this attempt may spend (``None``: none applies);
            the worker checks every model and tool call against it before making it.
        candidate: For a ``critic`` work item: the answer the critic checks.
        approve_tools: Names or glob patterns of tools whose calls need a person's approval
            (besides high-impact tools).
        approvals: The decisions people made on this task's calls.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["work_item"] = "work_item"
    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str
    attempt: int
    worker: str
    reply_to: str
    spec: TaskSpec
    job_goal: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    input_goals: dict[str, str] = Field(default_factory=dict)
    depth: int = 0
    model: str | None = None
    workspace: str | None = None
    max_agent_steps: int = DEFAULT_MAX_AGENT_STEPS
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_tool_calls_per_step: int = DEFAULT_MAX_TOOL_CALLS_PER_STEP
    allow_private_network: bool = False
    max_plan_tasks: int = DEFAULT_MAX_PLAN_TASKS
    max_plan_depth: int = DEFAULT_MAX_PLAN_DEPTH
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    tries: int = 0
    allow_subplans: bool = True
    known_tools: tuple[str, ...] = ()
    max_handoffs: int = DEFAULT_MAX_HANDOFFS
    hooks: tuple[str, ...] = ()
    policy: Policy | None = None
    trace: str | None = None
    steps: tuple[JournalStep, ...] = ()
    grant: Grant | None = None
    candidate: Any = None
    approve_tools: tuple[str, ...] = ()
    approvals: tuple[ApprovalDecision, ...] = ()


class StartedReport(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["started"] = "started"
    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str
    attempt: int
    worker_id: str = ""
    at: float = Field(default_factory=time.time)
    delivery: int = 1
    """How many times the bus delivered the work item, this time included: above 1, an earlier
    holder died or stalled past its lease, and this delivery fences that one's late reports."""


class CallReport(BaseModel):
    """An LLM or tool call a worker made while running a task (``event.seq`` is set later)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["call"] = "call"
    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str
    attempt: int
    event: Annotated[
        LlmCalled | ToolCalled | PolicyDenied | SpellEvent, Field(discriminator="type")
    ]


class Outcome(BaseModel):
    """How an attempt ended.

    Attributes:
        status: ``succeeded``, ``failed``, or ``awaiting_approval`` (a tool call waits for a
            person: ``approval``).
        result: The task's result (JSON-compatible) when it succeeded.
        subtasks: For a ``plan`` task: the plan it produced, with ids local to that plan.
        error: What went wrong when it failed.
        retryable: Whether another attempt may succeed.
        retry_delay_s: Asked-for delay before the next attempt (``None``: the job's backoff).
        artifacts: Names of files the task wrote into the workspace as deliverables.
        calls: Tool calls made by the attempt itself (a ``tool`` task's one call) and policy
            denials of it or of its result, recorded with the outcome instead of in a message
            of their own.
        delivery: The delivery of the work item that ran (``StartedReport.delivery``): the
            outcome of an earlier delivery than one the plane saw start is ignored.
        needs: With ``error_type`` ``budget_needed``: the most the call the attempt stopped
            before may cost, which its grant could not cover.
        critic: For an ``execute`` task: the critic its agent asks for (``ReactAgent(critic=
            ...)``), which checks the answer unless the task or the job says otherwise.
        approval: The call that waits, for an ``awaiting_approval`` outcome.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["outcome"] = "outcome"
    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str
    attempt: int
    status: Literal["succeeded", "failed", "awaiting_approval"]
    result: Any = None
    subtasks: tuple[TaskSpec, ...] | None = None
    error: str | None = None
    error_type: FailureType = "error"
    retryable: bool = False
    retry_delay_s: float | None = None
    artifacts: tuple[tuple[str, int, str], ...] = ()
    calls: tuple[Annotated[ToolCalled | PolicyDenied, Field(discriminator="type")], ...] = ()
    usage: Usage = Field(default_factory=Usage)
    at: float = Field(default_factory=time.time)
    delivery: int = 1
    needs: Grant | None = None
    critic: str | None = None
    approval: PendingApproval | None = None


class StepReport(BaseModel):
    """A model or tool call a running task completed, to be journaled (``step``), or, without
    one, a request for the task's journal (a worker that took over an item another worker
    started). The control plane answers on ``ack_to`` with a ``StepAck``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["step"] = "step"
    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str
    attempt: int
    ack_to: str
    step: JournalStep | None = None


class StepAck(BaseModel):
    """The control plane's answer to a ``StepReport``: the step is durable (``accepted``), or
    refused (its attempt is not the task's current one); for a request, the journal."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["step_ack"] = "step_ack"
    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str
    attempt: int
    step: str | None = None
    accepted: bool = True
    steps: tuple[JournalStep, ...] = ()


Report = Annotated[StartedReport | CallReport | Outcome | StepReport, Field(discriminator="type")]
Message = Annotated[
    WorkItem | StartedReport | CallReport | Outcome | StepReport | StepAck,
    Field(discriminator="type"),
]

message_adapter: TypeAdapter[Message] = TypeAdapter(Message, config=ConfigDict(defer_build=True))


def parse_message(
    data: str | bytes,
) -> WorkItem | StartedReport | CallReport | Outcome | StepReport | StepAck:
    """Parse one bus message from its JSON form."""
    return message_adapter.validate_json(data)
