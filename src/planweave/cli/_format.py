"""Small, pure formatting helpers shared by the commands and the live view."""

from __future__ import annotations

import json
from typing import Any

from planweave.events import (
    ArtifactCreated,
    CriticVerdict,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    LlmCalled,
    PolicyDenied,
    ReplanRequested,
    SubtasksPlanned,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskRetrying,
    TaskReviewing,
    TaskStarted,
    ToolCalled,
)
from planweave.state import JobState, TaskState

__all__ = [
    "STATUS_STYLE",
    "VERDICT_STYLE",
    "age",
    "cost",
    "duration",
    "event_detail",
    "event_json",
    "job_json",
    "preview",
    "spend_parts",
    "task_json",
    "tokens",
    "truncate",
    "verdict_text",
]

STATUS_STYLE: dict[str, str] = {
    "pending": "dim",
    "ready": "cyan",
    "running": "yellow",
    "awaiting_approval": "bold blue",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "stalled": "red",
}
"""Colour of each task and job status (``stalled``: running, but no process drives it)."""


VERDICT_STYLE: dict[str, str] = {
    "pass": "green",
    "revise": "yellow",
    "replan": "magenta",
    "reject": "red",
}
"""Colour of each critic verdict."""


def verdict_text(task: TaskState, width: int = 60) -> str:
    """The critic's last verdict on a task, on one line: ``critic: pass after 1 revision``,
    ``critic: revise (2): add a source``."""
    if not task.verdicts:
        return ""
    kind, feedback = task.verdicts[-1]
    revisions = sum(1 for each, _ in task.verdicts if each == "revise")
    if kind == "pass":
        text = "critic: pass"
        if revisions:
            text += f" after {revisions} revision{'s' if revisions > 1 else ''}"
    elif kind == "revise":
        text = f"critic: revise ({revisions})"
    else:
        text = f"critic: {kind}"
    if feedback and kind != "pass":
        text += f": {feedback}"
    return truncate(text, width)


def truncate(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: max(width - 1, 0)] + "…"


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.3s``, ``4m05s``, ``2h03m``."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def age(then: float, now: float) -> str:
    """How long ago ``then`` was: ``5s ago``, ``3m ago``, ``2h ago``, ``4d ago``."""
    seconds = max(now - then, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def tokens(count: int) -> str:
    """``950``, ``12.4k``, ``3.1M``."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def cost(usd: float) -> str:
    """``$0``, ``$0.0042``, ``$0.012``, ``$1.23``."""
    if usd == 0:
        return "$0"
    if usd < 0.01:
        return f"${usd:.4f}"
    if usd < 1:
        return f"${usd:.3f}"
    return f"${usd:.2f}"


def preview(value: Any, width: int = 60) -> str:
    """A result on one line: strings as they are, anything else as compact JSON."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return truncate(text, width)


def event_detail(event: Event, width: int = 80) -> str:
    """A short description of what an event says beyond its type."""
    detail: str
    if isinstance(event, JobSubmitted):
        plan = f"{len(event.plan)} tasks" if event.plan is not None else "planned"
        detail = f"{plan}: {event.goal}"
    elif isinstance(event, TaskAssigned):
        detail = f"attempt {event.attempt} to {event.worker}"
    elif isinstance(event, TaskStarted):
        detail = f"attempt {event.attempt}"
    elif isinstance(event, SubtasksPlanned):
        detail = f"{len(event.tasks)} subtasks: " + ", ".join(t.id for t in event.tasks)
    elif isinstance(event, TaskCompleted):
        detail = preview(event.result, width)
    elif isinstance(event, TaskReviewing):
        detail = f"critic {event.critic} checks: {preview(event.candidate, width)}"
    elif isinstance(event, CriticVerdict):
        detail = f"{event.verdict} (revision {event.revision}, {event.critic})"
        if event.feedback:
            detail += f": {event.feedback}"
    elif isinstance(event, TaskRetrying):
        detail = f"attempt {event.attempt} failed, retry in {event.delay_s:.1f}s: {event.error}"
    elif isinstance(event, TaskFailed):
        detail = f"{event.error_type}: {event.error}"
    elif isinstance(event, TaskCancelled | JobCancelled):
        detail = event.reason
    elif isinstance(event, ReplanRequested):
        detail = f"after {event.failed_task} failed: {event.reason}"
    elif isinstance(event, JobCompleted):
        detail = preview(event.result, width)
    elif isinstance(event, JobFailed):
        detail = f"{event.code}: {event.reason}"
    elif isinstance(event, LlmCalled):
        detail = (
            f"{event.role} {event.model} {event.tokens_in}+{event.tokens_out} tokens "
            f"{cost(event.cost_usd)} {event.latency_ms:.0f}ms"
        )
        if event.error:
            detail += f" error: {event.error}"
    elif isinstance(event, ToolCalled):
        outcome = event.result if event.outcome == "ok" else f"error: {event.error}"
        detail = f"{event.name}({json.dumps(event.args, default=str)}) -> {outcome}"
    elif isinstance(event, PolicyDenied):
        what = event.tool if event.point == "tool" else "result"
        detail = f"{what} denied by {event.rule}: {event.reason}"
    elif isinstance(event, ArtifactCreated):
        detail = f"{event.name} ({event.size} bytes)"
    else:
        detail = ""
    return truncate(detail, width)


def event_json(event: Event) -> dict[str, Any]:
    """An event as plain JSON data (its wire form)."""
    data: dict[str, Any] = event.model_dump(mode="json")
    return data


def task_json(task: TaskState) -> dict[str, Any]:
    """A task's state as plain JSON data."""
    return {
        "id": task.id,
        "kind": task.spec.kind,
        "goal": task.spec.goal,
        "status": task.status,
        "parent": task.parent,
        "depends_on": list(task.spec.depends_on),
        "attempts": task.attempt,
        "failures": task.failures,
        "superseded": task.superseded,
        "result": task.result,
        "error": task.error,
        "tokens_in": task.tokens_in,
        "tokens_out": task.tokens_out,
        "cost_usd": task.cost_usd,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "agent": task.spec.agent,
        "critic": task.spec.critic if isinstance(task.spec.critic, str) else None,
        "revisions": len(task.spec.feedback),
    }


def job_json(state: JobState, artifacts: list[str]) -> dict[str, Any]:
    """A job's state as plain JSON data: the object ``run --json`` and ``show --json`` print."""
    options = state.options
    return {
        "job_id": state.id,
        "goal": state.goal,
        "status": state.status,
        "result": state.result,
        "error": state.error,
        "artifacts": artifacts,
        "usage": {
            "tokens_in": state.tokens_in,
            "tokens_out": state.tokens_out,
            "cost_usd": state.cost_usd,
            "llm_calls": state.llm_calls,
        },
        "budget": {
            "max_cost_usd": options.max_cost_usd,
            "max_tokens": options.max_job_tokens,
            "max_time_s": options.max_time_s,
            "max_tool_calls": options.max_job_tool_calls,
            "max_fanout": options.max_fanout,
        },
        "spent": {
            "cost_usd": state.cost_usd,
            "tokens": state.tokens_in + state.tokens_out,
            "elapsed_s": (state.finished_at or state.updated_at) - state.created_at,
            "tool_calls": state.tool_calls,
            "fanout": state.fanout,
        },
        "created_at": state.created_at,
        "finished_at": state.finished_at,
        "tasks": [task_json(task) for task in state.tasks.values()],
    }


def spend_parts(state: JobState, now: float) -> list[str]:
    """What the job spent so far, each against its budget where it has one: ``1m12s/10m``,
    ``12.4k/200.0k tokens``, ``$0.12/$0.50``, ``7/300 tool calls``."""
    options = state.options
    end = state.finished_at if state.finished_at is not None else now
    elapsed = duration(end - state.created_at)
    if options.max_time_s is not None:
        elapsed += "/" + duration(options.max_time_s)
    used = tokens(state.tokens_in + state.tokens_out)
    if options.max_job_tokens is not None:
        used += "/" + tokens(options.max_job_tokens)
    spent = cost(state.cost_usd)
    if options.max_cost_usd is not None:
        spent += "/" + cost(options.max_cost_usd)
    parts = [elapsed, f"{used} tokens", spent]
    if state.tool_calls or options.max_job_tool_calls is not None:
        calls = str(state.tool_calls)
        if options.max_job_tool_calls is not None:
            calls += f"/{options.max_job_tool_calls}"
        parts.append(f"{calls} tool calls")
    return parts
