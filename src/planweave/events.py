"""Events: every state change of a job, in order, as frozen messages.

The event log is the history of the store and its outbox: each event is written in the same
transaction as the state change it records, numbered per job (``seq``), so a client can resume a
stream from the last event it saw and a run can be replayed after the fact. Every event carries a
``type`` discriminator and the wire schema version ``v``; they travel as JSON, never pickled.

Their validators are built on first use (``defer_build``), not at import: a process that only
lists jobs never validates an event and does not pay for some twenty schemas.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, field_validator

from planweave.constants import (
    DEFAULT_MAX_AGENT_STEPS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_COST_USD,
    DEFAULT_MAX_HANDOFFS,
    DEFAULT_MAX_JOB_BYTES,
    DEFAULT_MAX_JOB_EVENTS,
    DEFAULT_MAX_JOB_TASKS,
    DEFAULT_MAX_JOB_TOKENS,
    DEFAULT_MAX_PLAN_DEPTH,
    DEFAULT_MAX_PLAN_TASKS,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_REVISIONS,
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MAX_TOOL_CALLS_PER_STEP,
    DEFAULT_RETRY_BASE_S,
    SCHEMA_VERSION,
)
from planweave.errors import FailureType, JobFailureCode, UsageError
from planweave.plan import OnFailure, TaskSpec
from planweave.policy._rules import Policy

__all__ = [
    "NO_USAGE",
    "ApprovalDecided",
    "ApprovalRequested",
    "ArtifactCreated",
    "CriticVerdict",
    "Event",
    "EventBase",
    "Grant",
    "JobCancelled",
    "JobCompleted",
    "JobFailed",
    "JobOptions",
    "JobReopened",
    "JobSubmitted",
    "LlmCalled",
    "LlmDelta",
    "PolicyDenied",
    "ReplanRequested",
    "SpellEvent",
    "SubtasksPlanned",
    "TaskAssigned",
    "TaskCancelled",
    "TaskCompleted",
    "TaskFailed",
    "TaskNeedsBudget",
    "TaskReady",
    "TaskRetrying",
    "TaskReviewing",
    "TaskStarted",
    "ToolCalled",
    "Usage",
    "VerdictKind",
    "event_adapter",
    "new_id",
    "parse_event",
    "trusted",
    "validated",
]

M = TypeVar("M", bound=BaseModel)


def validated(cls: type[M], data: dict[str, Any]) -> M:
    """``cls(**data)``: the same validation, without ``BaseModel.__init__``'s Python layers.

    The engine builds several messages per task; calling the model's validator directly costs
    about half of what the constructor does.
    """
    return cast(M, cls.__pydantic_validator__.validate_python(data))


class _Fill:
    """What ``trusted`` fills in: every field in declaration order (so the JSON form is the same
    as a validated model's), with its default; factories for fields whose default is made."""

    __slots__ = ("factories", "made", "template")

    def __init__(self, cls: type[BaseModel]) -> None:
        self.template: dict[str, Any] = {}
        self.factories: list[tuple[str, Callable[[], Any]]] = []
        for name, info in cls.model_fields.items():
            factory = info.default_factory
            if factory is not None:
                self.factories.append((name, cast(Callable[[], Any], factory)))
                self.template[name] = _UNSET
            else:
                self.template[name] = _UNSET if info.is_required() else info.default
        # Fields with a made default: when ``data`` names them all, no factory runs.
        self.made = frozenset(name for name, _ in self.factories)


_UNSET: Any = object()
_FILLS: dict[type[BaseModel], _Fill] = {}
_new = object.__new__  # ``BaseModel`` has no ``__new__`` of its own
_set = object.__setattr__  # models are frozen: their own ``__setattr__`` refuses


def trusted(cls: type[M], data: dict[str, Any]) -> M:
    """``cls`` from values that are already valid: ``model_construct`` without its Python layers.

    For messages the engine builds from what it holds validated already (ids and numbers it
    computed, strings and models taken from validated messages), where validating again would
    only cost time. Defaults fill in what ``data`` leaves out; nothing is checked or converted,
    so ``data`` must name every required field with a value of its field's type (a tuple where
    the field is a tuple).
    """
    fill = _FILLS.get(cls)
    if fill is None:
        fill = _FILLS[cls] = _Fill(cls)
    values = {**fill.template, **data}
    if not fill.made <= data.keys():
        for name, factory in fill.factories:
            if values[name] is _UNSET:
                values[name] = factory()
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(data))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def new_id() -> str:
    """A new random id (32 hex characters)."""
    return uuid.uuid4().hex


class Usage(BaseModel):
    """Tokens and dollars spent."""

    model_config = ConfigDict(frozen=True)

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_usd=self.cost_usd + other.cost_usd,
            llm_calls=self.llm_calls + other.llm_calls,
        )


NO_USAGE = Usage()
"""Nothing spent; models are frozen, so messages share this one instance."""


def _duration(value: Any) -> Any:
    """A duration written as text (``"10m"``) in seconds; anything else as it is."""
    if isinstance(value, str):
        from planweave._durations import parse_duration_s

        try:
            return parse_duration_s(value, what="max_time_s")
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return value


class JobOptions(BaseModel):
    """How a job runs. Every field has a sensible default.

    Attributes:
        model: Model URL for this job's LLM calls (the engine's default when ``None``).
        on_failure: ``fail`` ends the job when a task fails for good; ``replan`` asks the
            planner for a new plan for the unfinished part, keeping completed work.
        max_attempts: Attempts per task before it fails for good.
        retry_base_s: First retry delay; it doubles with each failure (capped at 30 s).
        max_plan_depth: How deep ``plan`` tasks may decompose recursively.
        max_plan_tasks: Largest number of tasks one plan may hold.
        max_job_tasks: Most tasks the job may hold in all, its sub-plans' and replans' tasks
            included (default 1,000): a sub-plan that would take it past this fails its plan
            task, with a reason that names this option.
        max_replans: How often a job may replan after failures.
        max_cost_usd: Dollar budget (default $5; ``None``: no dollar limit); the job fails
            with ``budget_exceeded`` past it.
        max_job_tokens: Token budget, tokens in plus out over all the job's model calls
            (default 2,000,000; ``None``: no token limit); the job fails with
            ``budget_exceeded`` past it. Local and scripted models cost $0: this is the
            ceiling that stops their runaway jobs.
        max_time_s: Wall-clock budget in seconds from the job's submission (``None``: no
            limit); past it the job stops with ``budget_exceeded``, whatever its workers do.
        max_job_tool_calls: Tool calls over all the job's tasks (``None``: no limit); a task
            is stopped before the call that would take the job past it.
        max_fanout: Tasks the job's plans may create in all, sub-plans included
            (``None``: no limit beyond ``max_job_tasks``); a plan that would create more stops
            the job with ``budget_exceeded``.
        max_agent_steps: ReAct steps (model calls) per task.
        max_tool_calls: Tool calls one task's agent may make in all (default 64); past it its
            tool calls are refused and it must answer.
        max_tool_calls_per_step: Tool calls of one model reply that run (default 16); the
            rest are refused, and the model is told so.
        max_result_bytes: Largest task result (as JSON) kept in events and rows; a larger
            one is written to ``results/<task id>.txt`` (or ``.json``) in the workspace, and
            the task's result becomes ``{"result_artifact": path, "bytes": n, "preview": ...}``
            (dependent tasks still get the whole value).
        max_job_events: Most events the job may record; past it the job fails with code
            ``job_too_large``.
        max_job_bytes: Most bytes of data the job may record (default 64 MiB): the text of its
            goal, plans, task results, answers, errors and tool calls (arguments and results),
            counted by length as it is recorded, plus a fixed share per event; past it the job
            fails with code ``job_too_large``. Artifact files are not counted here (the
            tenant's storage quota counts them).
        priority: Higher runs first when workers are busy, among the same tenant's jobs (the
            tenants take turns, whatever their jobs' priorities).
        workspace: Folder the file tools may read and write.
        allow_private_network: Let this job's ``http_fetch`` reach private and loopback
            addresses. Only where the process allows it too (``allow_private_network`` of
            the engine or worker); ``None`` takes the engine's setting when the job is
            submitted. API jobs get it only for the tenants the server lists in
            ``private_network_tenants``.
        max_handoffs: Times one task may be passed from agent to agent (default 3); one
            more fails the task for good (``HandoffLimitExceeded``).
        hooks: Names of job hooks (registered with ``Engine(job_hooks=...)`` or the
            ``job_hooks`` setting) that run for this job besides the engine's own hooks.
        policy: Guardrails of this job (``planweave.policy.Policy``), checked besides the
            engine's own policy: a call or a result must pass both. It travels with the
            job's work items, so its output rules are patterns, never Python predicates.
        critic: The critic that checks every ``execute`` task's answer before it is accepted
            (``docs/critic.md``): ``llm`` (a model reviews it), the name of a critic
            registered with ``Engine(critics=...)`` or the ``critics`` setting, or ``None``
            (the default: no critic, unless a task or its agent asks for one).
        critic_model: Model URL the LLM critic uses (``None``: the job's model).
        max_revisions: Times a critic may send one task back for revision (default 2); one
            more ``revise`` verdict fails the task, with a reason naming this option.
        approve_tools: Names or glob patterns (``write_file``, ``mcp_*``) of tools whose
            calls wait for a person's approval, besides the tools that are high impact
            (``delete_file``, ``shell``, ...). The engine's ``approve_tools`` setting is
            added when the job is submitted. See ``docs/approvals.md``.
        approval_timeout_s: How long a call waits for a decision before it is rejected
            (``None``: as long as it takes; the engine's ``approval_timeout_s`` setting is
            taken when the job is submitted).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model: str | None = None
    on_failure: OnFailure = "fail"
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    retry_base_s: float = Field(default=DEFAULT_RETRY_BASE_S, ge=0, le=3600)
    max_plan_depth: int = Field(default=DEFAULT_MAX_PLAN_DEPTH, ge=1, le=5)
    max_plan_tasks: int = Field(default=DEFAULT_MAX_PLAN_TASKS, ge=1, le=10_000)
    max_job_tasks: int = Field(default=DEFAULT_MAX_JOB_TASKS, ge=1, le=100_000)
    max_replans: int = Field(default=2, ge=0, le=20)
    max_cost_usd: float | None = Field(default=DEFAULT_MAX_COST_USD, ge=0)
    max_job_tokens: int | None = Field(default=DEFAULT_MAX_JOB_TOKENS, ge=1)
    max_time_s: Annotated[float | None, BeforeValidator(_duration)] = Field(
        default=None, gt=0, allow_inf_nan=False
    )
    max_job_tool_calls: int | None = Field(default=None, ge=0)
    max_fanout: int | None = Field(default=None, ge=0)
    max_agent_steps: int = Field(default=DEFAULT_MAX_AGENT_STEPS, ge=1, le=100)
    max_result_bytes: int = Field(default=DEFAULT_MAX_RESULT_BYTES, ge=1024, le=64 * 1024 * 1024)
    max_job_events: int = Field(default=DEFAULT_MAX_JOB_EVENTS, ge=100, le=100_000_000)
    max_job_bytes: int = Field(default=DEFAULT_MAX_JOB_BYTES, ge=64 * 1024, le=1 << 40)
    max_tool_calls: int = Field(default=DEFAULT_MAX_TOOL_CALLS, ge=1, le=10_000)
    max_tool_calls_per_step: int = Field(default=DEFAULT_MAX_TOOL_CALLS_PER_STEP, ge=1, le=1_000)
    priority: int = 0
    workspace: str | None = None
    allow_private_network: bool | None = None
    max_handoffs: int = Field(default=DEFAULT_MAX_HANDOFFS, ge=0, le=100)
    hooks: tuple[str, ...] = ()
    critic: str | None = Field(default=None, min_length=1, max_length=200)
    critic_model: str | None = None
    max_revisions: int = Field(default=DEFAULT_MAX_REVISIONS, ge=0, le=20)
    approve_tools: tuple[str, ...] = ()
    approval_timeout_s: float | None = Field(default=None, gt=0)
    policy: Policy | None = None

    @field_validator("policy")
    @classmethod
    def _policy_is_data(cls, value: Policy | None) -> Policy | None:
        if value is not None and value.has_predicates:
            raise ValueError(
                "a job's policy travels as data: give its output rules as patterns "
                "(Python predicates belong in Engine(policy=...))"
            )
        return value or None


class Grant(BaseModel):
    """A share of a job's budgets handed to one attempt of a task before it starts.

    The attempt's worker checks each model call (its prompt and largest reply, priced) and each
    tool call against what is left of it before making the call; a call that does not fit ends
    the attempt with a request for more (``TaskNeedsBudget``). ``None``: no limit of that kind.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    tokens: int | None = None
    cost_usd: float | None = None
    tool_calls: int | None = None


class EventBase(BaseModel):
    """Fields every event has."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    v: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    job_id: str
    task_id: str | None = None
    seq: int = 0
    at: float = Field(default_factory=time.time)
    causation_id: str | None = None


class JobSubmitted(EventBase):
    type: Literal["JobSubmitted"] = "JobSubmitted"
    goal: str
    tenant: str = "default"
    idempotency_key: str | None = None
    plan: tuple[TaskSpec, ...] | None = None
    options: JobOptions = Field(default_factory=JobOptions)


class TaskReady(EventBase):
    type: Literal["TaskReady"] = "TaskReady"


class TaskAssigned(EventBase):
    type: Literal["TaskAssigned"] = "TaskAssigned"
    attempt: int
    worker: str
    grant: Grant | None = None
    """The share of the job's budgets this attempt may spend (``None``: no budget applies)."""


class TaskStarted(EventBase):
    """A worker began an attempt; a later ``TaskStarted`` of the same attempt with a higher
    ``delivery`` means the work item was delivered again (its earlier holder died or stalled).
    ``lost`` counts the deliveries of the attempt that ended so, each a failure of the task."""

    type: Literal["TaskStarted"] = "TaskStarted"
    attempt: int
    worker_id: str = ""
    delivery: int = 1
    lost: int = 0


class SubtasksPlanned(EventBase):
    """A ``plan`` task was decomposed; ``tasks`` carry fully qualified ids."""

    type: Literal["SubtasksPlanned"] = "SubtasksPlanned"
    tasks: tuple[TaskSpec, ...]
    depth: int


class TaskCompleted(EventBase):
    type: Literal["TaskCompleted"] = "TaskCompleted"
    attempt: int
    result: Any = None
    usage: Usage = Field(default_factory=Usage)


VerdictKind = Literal["pass", "revise", "replan", "reject"]
"""What a critic decided about a task's answer (``docs/critic.md``)."""


class TaskReviewing(EventBase):
    """An ``execute`` task produced an answer that a critic checks before it is accepted.

    The answer (``candidate``) is held as the task's result while the critic runs; the task
    goes back to a worker, of the ``critic`` kind, with a new attempt.
    """

    type: Literal["TaskReviewing"] = "TaskReviewing"
    attempt: int
    critic: str
    candidate: Any = None
    revision: int = 0


class CriticVerdict(EventBase):
    """A critic's verdict on a task's answer.

    Attributes:
        verdict: ``pass`` (the answer is accepted), ``revise`` (the task runs again with the
            ``feedback``), ``replan`` (the planner plans the unfinished work anew) or
            ``reject`` (the task fails with the ``feedback`` as its reason).
        feedback: The critic's feedback or reason.
        revision: Revisions of the task before this verdict (0: its first answer).
        critic: The critic's name (``llm`` or a registered one).
        model: The model the critic called (``None`` for a Python critic).
        usage: What the critic's model calls spent.
    """

    type: Literal["CriticVerdict"] = "CriticVerdict"
    attempt: int
    verdict: VerdictKind
    feedback: str = ""
    revision: int = 0
    critic: str = ""
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)


class TaskRetrying(EventBase):
    type: Literal["TaskRetrying"] = "TaskRetrying"
    attempt: int
    error: str
    delay_s: float
    not_before: float


class TaskFailed(EventBase):
    """A task failed for good."""

    type: Literal["TaskFailed"] = "TaskFailed"
    attempt: int
    error: str
    error_type: FailureType = "error"


class TaskNeedsBudget(EventBase):
    """An attempt stopped before a call its grant could not cover (``needs``: what that call
    may cost at most). The task runs again, replaying its recorded calls, once the job has that
    much left unreserved; when the job cannot ever have it, the job stops ``budget_exceeded``."""

    type: Literal["TaskNeedsBudget"] = "TaskNeedsBudget"
    attempt: int
    needs: Grant


class TaskCancelled(EventBase):
    type: Literal["TaskCancelled"] = "TaskCancelled"
    reason: str


class ReplanRequested(EventBase):
    """A task failed for good in a job with ``on_failure: replan``.

    ``task_id`` is the new ``plan`` task; ``superseded`` are the unfinished tasks it replaces.
    """

    type: Literal["ReplanRequested"] = "ReplanRequested"
    failed_task: str
    reason: str
    goal: str
    superseded: tuple[str, ...]
    depends_on: tuple[str, ...]
    depth: int


class JobReopened(EventBase):
    """A finished job runs again: ``tasks`` (failed or cancelled ones) go back to work."""

    type: Literal["JobReopened"] = "JobReopened"
    tasks: tuple[str, ...]
    reason: str


class ApprovalRequested(EventBase):
    """A task's tool call waits for a person's decision; the task is ``awaiting_approval``.

    Only the task's branch waits: other tasks keep running. ``args`` are bounded and redacted
    as a ``ToolCalled`` event's are; ``call`` is the fingerprint (tool and arguments) the
    decision is matched by when the task runs again; ``timeout_at`` is when the call is
    rejected without a decision (``None``: never).
    """

    type: Literal["ApprovalRequested"] = "ApprovalRequested"
    attempt: int
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    call: str
    reason: str
    timeout_at: float | None = None


class ApprovalDecided(EventBase):
    """A person (or the timeout) decided a waiting call: ``approved`` runs it when the task
    runs again; a rejection comes back to the agent as an observation (a ``tool`` task fails).

    ``by`` is who decided: the API token's tenant and name (``tenant/name``), the local user
    for the CLI, or ``timeout``.
    """

    type: Literal["ApprovalDecided"] = "ApprovalDecided"
    tool: str
    call: str
    approved: bool
    by: str
    reason: str = ""


class JobCompleted(EventBase):
    type: Literal["JobCompleted"] = "JobCompleted"
    result: Any = None
    artifacts: tuple[str, ...] = ()
    usage: Usage = Field(default_factory=Usage)


class JobFailed(EventBase):
    type: Literal["JobFailed"] = "JobFailed"
    reason: str
    failed_task: str | None = None
    code: JobFailureCode = "task_failed"


class JobCancelled(EventBase):
    type: Literal["JobCancelled"] = "JobCancelled"
    reason: str = "cancelled"


class LlmCalled(EventBase):
    """One model call: who asked, what it cost, and (truncated) what was said.

    ``agent`` names the agent that made the call (``None`` for a call outside any agent, and in
    events recorded before the field existed).
    """

    type: Literal["LlmCalled"] = "LlmCalled"
    model: str
    role: str
    agent: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    prompt: str = ""
    reply: str = ""
    error: str | None = None


class SpellEvent(EventBase):
    """An event a spell emitted (``events.emit(name, data)`` in the script).

    Attributes:
        spell: The spell that emitted it.
        name: The event's name, as the spell gave it.
        data: What it carries (JSON-like, truncated like a tool call's arguments).
    """

    type: Literal["spell.event"] = "spell.event"
    spell: str
    name: str
    data: Any = None


class ToolCalled(EventBase):
    """One tool call, from an agent or a ``tool`` task: its arguments, outcome and latency.

    ``agent`` names the agent that called the tool (``None`` for a ``tool`` task).
    """

    type: Literal["ToolCalled"] = "ToolCalled"
    name: str
    agent: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    outcome: Literal["ok", "error"]
    result: str = ""
    error: str | None = None
    latency_ms: float = 0.0


class PolicyDenied(EventBase):
    """A policy rule refused a tool call (before it ran, or a connection it tried) or a task's
    result.

    Attributes:
        point: ``tool`` (a call or its connection) or ``output`` (a task's result).
        tool: The tool refused (``None`` for an output).
        agent: The agent that made the call (``None`` for a ``tool`` task or an output).
        rule: The rule's key, such as ``policy.deny`` or ``job.policy.egress``.
        reason: Why, as the agent or the task's error reads it.
        args: The call's arguments, bounded as ``ToolCalled``'s are.
    """

    type: Literal["PolicyDenied"] = "PolicyDenied"
    point: Literal["tool", "output"] = "tool"
    tool: str | None = None
    agent: str | None = None
    rule: str
    reason: str
    args: dict[str, Any] = Field(default_factory=dict)


class ArtifactCreated(EventBase):
    type: Literal["ArtifactCreated"] = "ArtifactCreated"
    name: str
    size: int
    content_type: str = "text/markdown"


class LlmDelta(EventBase):
    """A piece of a model's reply as it is written: live only, never stored.

    Workers publish deltas on the job's live topic while a model call runs; followers that ask
    for them (``deltas=True``) receive them between the job's events. The event log keeps only
    the call's ``LlmCalled`` (with the complete reply), so a delta has no ``seq`` (always 0) and
    is never numbered, stored or replayed.

    A delta is text the model wrote, in order: the ``text`` of a call's deltas, joined by
    ``index``, is the call's reply content (``LlmResponse.content``) as far as it has come.
    Tool-call arguments are never streamed; a structured-output reply streams its JSON text
    (``format`` says which).

    Attributes:
        call: Number of the model call within the task's attempt (1 for the first), so the
            deltas of one call can be told from the next call's.
        index: Order of the delta within its call, from 0.
        text: The new text.
        attempt: The attempt of the task that made the call.
    """

    type: Literal["LlmDelta"] = "LlmDelta"
    model: str
    role: str
    agent: str | None = None
    call: int = 1
    index: int = 0
    text: str = ""
    format: Literal["text", "json"] = "text"
    attempt: int = 1


Event = Annotated[
    JobSubmitted
    | TaskReady
    | TaskAssigned
    | TaskStarted
    | SubtasksPlanned
    | TaskCompleted
    | TaskReviewing
    | CriticVerdict
    | TaskRetrying
    | TaskFailed
    | TaskNeedsBudget
    | TaskCancelled
    | ReplanRequested
    | JobReopened
    | JobCompleted
    | JobFailed
    | JobCancelled
    | LlmCalled
    | ToolCalled
    | PolicyDenied
    | SpellEvent
    | ArtifactCreated
    | ApprovalRequested
    | ApprovalDecided
    | LlmDelta,
    Field(discriminator="type"),
]

event_adapter: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Parse one event from JSON text or a dict."""
    if isinstance(data, dict):
        return event_adapter.validate_python(data)
    return event_adapter.validate_json(data)
