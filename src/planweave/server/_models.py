"""The API's request and response bodies.

Response models are plain views of ``JobState``/``TaskState`` and events; request models are
stricter than the engine's own (no server paths, no scripted models, finite numbers only, no lone
surrogates) because their input comes from the network.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from planweave._durations import parse_duration_s
from planweave.errors import UsageError
from planweave.events import Event
from planweave.plan import OnFailure, Plan, TaskKind
from planweave.policy import Policy

__all__ = [
    "ArtifactInfo",
    "ArtifactList",
    "Budget",
    "DeadLetterInfo",
    "DeadLetterList",
    "EventPage",
    "Health",
    "Job",
    "JobCreate",
    "JobDetail",
    "JobList",
    "JobListItem",
    "JobOptionsIn",
    "LlmCall",
    "Spent",
    "Task",
    "TaskDetail",
    "TaskList",
    "ToolCall",
    "Usage",
]

MAX_JSON_DEPTH = 64
JobStatusName = Literal["running", "succeeded", "failed", "cancelled"]


def _check_json(value: Any) -> None:
    """Refuse non-finite numbers, lone surrogates and absurd nesting anywhere in a body."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, depth + 1))
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)


class JobOptionsIn(BaseModel):
    """Job options a client may set (see ``planweave.JobOptions``); unset fields keep the
    engine's defaults.

    ``null`` means the same as leaving a field out: the server's default. So an API client
    cannot lift a budget: every API job has the dollar and token budgets of the server's
    settings unless it sets lower or higher ones within the bounds here, and its dollars are
    held to its tenant's spend quota too."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = Field(default=None, max_length=200)
    on_failure: OnFailure | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    retry_base_s: float | None = Field(default=None, ge=0, le=3600)
    max_plan_depth: int | None = Field(default=None, ge=1, le=5)
    max_plan_tasks: int | None = Field(default=None, ge=1, le=10_000)
    max_job_tasks: int | None = Field(default=None, ge=1, le=100_000)
    max_replans: int | None = Field(default=None, ge=0, le=20)
    max_cost_usd: float | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description=(
            "The job's dollar budget. Omitted or null: the server's max_cost_usd setting. Every "
            "API job has one, and it is never more than what the tenant has left of its spend "
            "quota (max_tenant_spend_usd)."
        ),
    )
    max_job_tokens: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000_000,
        description=(
            "The job's token budget (in + out). Omitted or null: the server's max_job_tokens "
            "setting; every API job has one."
        ),
    )
    max_job_bytes: int | None = Field(
        default=None,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description=(
            "Most bytes of data the job may record (its text, results and tool calls); past it "
            "the job fails with code job_too_large. Omitted or null: 64 MiB."
        ),
    )
    max_time_s: float | str | None = Field(
        default=None,
        description=(
            'The job\'s wall-time budget: seconds, or a duration such as "90s", "10m", '
            '"1h30m"; past it the job stops with budget_exceeded. Omitted or null: none.'
        ),
    )
    max_job_tool_calls: int | None = Field(
        default=None, ge=0, le=10_000_000, description="Tool calls the whole job may make."
    )
    max_fanout: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="Tasks the job's plans may create in all, sub-plans included.",
    )
    max_agent_steps: int | None = Field(default=None, ge=1, le=100)
    max_tool_calls: int | None = Field(default=None, ge=1, le=10_000)
    max_tool_calls_per_step: int | None = Field(default=None, ge=1, le=1_000)
    priority: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    hooks: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Names of the job hooks the server registers (its job_hooks setting) to run for "
            "this job; a name it does not register is refused (422)."
        ),
    )
    policy: Policy | None = Field(
        default=None,
        description=(
            "Guardrails of this job (docs/policy.md), checked besides the server's own policy: "
            "tool allow/deny lists, argument constraints, an egress allowlist, content rules."
        ),
    )

    @field_validator("max_time_s")
    @classmethod
    def _seconds(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return parse_duration_s(value, what="max_time_s")
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        if not value > 0:
            raise ValueError("max_time_s must be above zero")
        return value

    critic: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "The critic that checks every execute task's answer: llm, or a critic the server "
            "registers (its critics setting); an unknown one is refused (400)."
        ),
    )
    critic_model: str | None = Field(
        default=None,
        max_length=200,
        description="The LLM critic's model; held to the same list as model.",
    )
    max_revisions: int | None = Field(default=None, ge=0, le=20)

    approve_tools: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        max_length=64,
        description=(
            "Names or glob patterns (write_file, mcp_*) of tools whose calls wait for a "
            "person's approval in this job, besides high-impact tools and the server's own "
            "approve_tools."
        ),
    )
    approval_timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        description="Seconds a call waits for a decision before it is rejected.",
    )

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


def _job_create_schema(schema: dict[str, Any]) -> None:
    """Say in the schema what the validators check: a goal that is not blank, or a plan, and a
    plan has at least one task."""
    schema["anyOf"] = [
        {"required": ["goal"], "properties": {"goal": {"type": "string", "pattern": r"\S"}}},
        {"required": ["plan"], "properties": {"plan": {"type": "object"}}},
    ]
    plan = schema.get("properties", {}).get("plan", {})
    for option in plan.get("anyOf", ()):
        if "$ref" in option:
            ref = option.pop("$ref")
            option["allOf"] = [{"$ref": ref}, {"properties": {"tasks": {"minItems": 1}}}]


class JobCreate(BaseModel):
    """A new job: a goal to plan, a plan to run, or both."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra=_job_create_schema
    )

    goal: str | None = Field(default=None, max_length=100_000)
    plan: Plan | None = None
    options: JobOptionsIn | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _clean_json(cls, data: Any) -> Any:
        _check_json(data)
        return data

    @model_validator(mode="after")
    def _goal_or_plan(self) -> JobCreate:
        if self.plan is None and (self.goal is None or not self.goal.strip()):
            raise ValueError("give a goal, or a plan to run")
        return self


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0


class Budget(BaseModel):
    """A job's budgets (``null``: no limit of that kind)."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_time_s: float | None = None
    max_tool_calls: int | None = None
    max_fanout: int | None = None


class Spent(BaseModel):
    """What a job has spent so far, of each budget's kind."""

    cost_usd: float = 0.0
    tokens: int = 0
    elapsed_s: float = 0.0
    tool_calls: int = 0
    fanout: int = 0


class Job(BaseModel):
    job_id: str
    goal: str
    status: JobStatusName
    created_at: float
    updated_at: float
    finished_at: float | None
    result: Any = Field(
        default=None,
        description="the job's answer; past 65,536 characters, its first 65,536 (see "
        "result_truncated; the JobCompleted event holds it whole)",
    )
    result_truncated: bool = Field(
        default=False, description="result is the first characters of a longer one"
    )
    error: str | None = None
    usage: Usage
    tasks_total: int
    tasks_done: int
    artifacts: list[str]
    options: dict[str, Any]
    stalled: bool = Field(
        default=False,
        description="running, but no process drives it (it stopped or died): resume it",
    )
    budget: Budget = Field(default_factory=Budget, description="the job's budgets")
    spent: Spent = Field(default_factory=Spent, description="what it has spent of them")


class JobListItem(BaseModel):
    job_id: str
    goal: str
    status: JobStatusName
    created_at: float
    updated_at: float
    finished_at: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    tasks_total: int
    tasks_done: int
    error: str | None = None
    result: Any = Field(
        default=None,
        description="the job's answer; past 2,000 characters, its first 2,000 (see "
        "result_truncated; GET /v1/jobs/{job_id} shows more)",
    )
    result_truncated: bool = False
    stalled: bool = False


class JobList(BaseModel):
    jobs: list[JobListItem]
    limit: int
    offset: int


class WaitingCall(BaseModel):
    """The tool call a task waits on a person for."""

    tool: str
    args: dict[str, Any]
    reason: str = Field(description="why the call needs approval")
    since: float
    timeout_at: float | None = Field(
        default=None, description="when it is rejected without a decision; null: never"
    )


class ApprovalDecisionView(BaseModel):
    """A decision made on one of a task's calls."""

    tool: str
    approved: bool
    by: str = Field(description="who decided: tenant/token, local/user, or timeout")
    reason: str
    at: float | None = None


class Task(BaseModel):
    id: str
    goal: str
    kind: TaskKind
    status: Literal[
        "pending", "ready", "running", "awaiting_approval", "succeeded", "failed", "cancelled"
    ]
    depends_on: list[str]
    parent: str | None
    depth: int
    attempt: int
    failures: int
    result: Any = Field(
        default=None,
        description="the task's result; in a listing, past 2,000 characters (of the text, or "
        "of any other value's JSON), its first 2,000 (see result_truncated)",
    )
    result_truncated: bool = Field(
        default=False,
        description="result is a preview of a longer one: GET /v1/jobs/{job_id}/tasks/{task_id} "
        "has it whole",
    )
    error: str | None = None
    agent: str | None = None
    tool: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    waiting_call: WaitingCall | None = Field(
        default=None, description="while awaiting_approval: the call that waits"
    )
    approvals: list[ApprovalDecisionView] = Field(
        default_factory=list, description="the decisions made on the task's calls"
    )


class TaskList(BaseModel):
    """One page of a job's tasks, in plan order (the order they were added)."""

    tasks: list[Task]
    tasks_total: int = Field(description="how many tasks the job has")
    limit: int = Field(description="the page size asked for")
    next_after: str | None = Field(
        description="pass as after= for the next page; null on the last page"
    )


class JobDetail(Job):
    """A job with the first page of its tasks; ``GET /v1/jobs/{job_id}/tasks`` pages on."""

    tasks: list[Task] = Field(description="the first tasks, in plan order, results previewed")
    tasks_next_after: str | None = Field(
        description="pass as after= to GET /v1/jobs/{job_id}/tasks for the rest; null when "
        "tasks holds all of them"
    )


class LlmCall(BaseModel):
    model: str
    role: str
    prompt: str
    reply: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    cost_usd: float
    error: str | None = None
    at: float
    seq: int


class ToolCall(BaseModel):
    name: str
    args: dict[str, Any]
    outcome: Literal["ok", "error"]
    result: str
    error: str | None = None
    latency_ms: float
    at: float
    seq: int


class CriticVerdictView(BaseModel):
    """A critic's verdict on one of the task's answers (``docs/critic.md``)."""

    verdict: Literal["pass", "revise", "replan", "reject"]
    feedback: str
    revision: int
    critic: str
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    at: float
    seq: int


class TaskDetail(Task):
    inputs: dict[str, Any]
    llm_calls: list[LlmCall]
    tool_calls: list[ToolCall]
    verdicts: list[CriticVerdictView] = []
    history: list[Event]


class EventPage(BaseModel):
    events: list[Event]
    next_after: int


class ArtifactInfo(BaseModel):
    name: str
    size: int
    content_type: str
    url: str


class ArtifactList(BaseModel):
    artifacts: list[ArtifactInfo]


class DeadLetterInfo(BaseModel):
    queue: str
    id: str
    job_id: str
    task_id: str | None
    deliveries: int
    reason: str
    at: float


class DeadLetterDetail(DeadLetterInfo):
    message: dict[str, Any]


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterInfo]


class Health(BaseModel):
    status: Literal["ok"]


class Approval(BaseModel):
    """A tool call waiting for a person's decision."""

    job_id: str
    task_id: str
    tool: str
    args: dict[str, Any]
    reason: str
    since: float
    timeout_at: float | None = None
    goal: str


class ApprovalList(BaseModel):
    """The calls of the caller's jobs that wait for a decision, oldest first."""

    approvals: list[Approval]


class ApprovalDecisionIn(BaseModel):
    """A decision on the call a task waits on."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        default="",
        max_length=2000,
        description="why; required to reject (the agent reads it)",
    )
