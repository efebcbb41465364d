"""The typed context each hook point passes to its hooks.

Contexts are frozen: a hook that changes something returns a new context
(``dataclasses.replace(ctx, request=...)``) and the next hook, then the engine, carries on with
it. Observing hooks return ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from planweave.events import JobOptions
    from planweave.llm.base import LlmRequest, LlmResponse
    from planweave.messages import Outcome, WorkItem
    from planweave.tools._runtime import ToolResult

__all__ = [
    "AfterModelCall",
    "AfterStep",
    "AfterTask",
    "AfterToolCall",
    "BeforeModelCall",
    "BeforeStep",
    "BeforeTask",
    "BeforeToolCall",
    "HookContext",
    "HookPoint",
    "JobEnd",
    "JobStart",
]

HookPoint = Literal[
    "before_model_call",
    "after_model_call",
    "before_tool_call",
    "after_tool_call",
    "before_task",
    "after_task",
    "before_step",
    "after_step",
    "job_start",
    "job_end",
]
"""Where a hook runs; also the name of the :class:`~planweave.hooks.Hook` method for it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BeforeModelCall:
    """A model call about to be made. Return a copy with another ``request`` to rewrite it.

    Attributes:
        job_id: The job the call belongs to.
        task_id: The task the call belongs to (``None`` outside a task).
        agent: The agent asking (``None`` outside an agent).
        model: The model's URL.
        request: What will be sent.
    """

    job_id: str
    task_id: str | None
    agent: str | None
    model: str
    request: LlmRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class AfterModelCall:
    """A model call that ended. Return a copy with another ``response`` to change what the
    caller and the event log see (``response`` is ``None`` and ``error`` set when it failed;
    a change is then ignored)."""

    job_id: str
    task_id: str | None
    agent: str | None
    model: str
    request: LlmRequest
    response: LlmResponse | None
    error: str | None
    latency_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BeforeToolCall:
    """A tool call about to run. Return a copy with other ``args`` to change its arguments."""

    job_id: str
    task_id: str | None
    agent: str | None
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AfterToolCall:
    """A tool call that ended. Return a copy with another ``result`` to change what the caller
    and the event log see."""

    job_id: str
    task_id: str | None
    agent: str | None
    name: str
    args: dict[str, Any]
    result: ToolResult


@dataclass(frozen=True, slots=True, kw_only=True)
class BeforeTask:
    """An attempt of a task about to run on a worker. Return a copy with another ``item`` (a
    rewritten goal, say) to change what runs."""

    item: WorkItem

    @property
    def job_id(self) -> str:
        return self.item.job_id

    @property
    def task_id(self) -> str:
        return self.item.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class AfterTask:
    """An attempt that ended. Return a copy with another ``outcome`` (a changed result) to
    change what is reported."""

    item: WorkItem
    outcome: Outcome

    @property
    def job_id(self) -> str:
        return self.item.job_id

    @property
    def task_id(self) -> str:
        return self.item.task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class BeforeStep:
    """A step of a workflow agent about to run. Return a copy with another ``input``."""

    job_id: str
    task_id: str | None
    workflow: str
    step: str
    input: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class AfterStep:
    """A workflow step that ended. Return a copy with another ``output``."""

    job_id: str
    task_id: str | None
    workflow: str
    step: str
    input: Any
    output: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStart:
    """A job starts (or is resumed) in the process that drives it. Observe only."""

    job_id: str
    goal: str
    options: JobOptions
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEnd:
    """A job ended: ``status`` is ``succeeded``, ``failed`` or ``cancelled``. Observe only."""

    job_id: str
    goal: str
    status: str
    error: str | None = None


HookContext = (
    BeforeModelCall
    | AfterModelCall
    | BeforeToolCall
    | AfterToolCall
    | BeforeTask
    | AfterTask
    | BeforeStep
    | AfterStep
    | JobStart
    | JobEnd
)
