"""Views: the API's response bodies built from engine state and events."""

from __future__ import annotations

from typing import Any

from planweave.events import JobOptions, LlmCalled, ToolCalled
from planweave.server._models import Job, JobListItem, LlmCall, ToolCall, Usage
from planweave.state import JobState, TaskState
from planweave.store.base import JobSummary

__all__ = ["job_view", "llm_call_view", "summary_view", "task_view", "tool_call_view"]


def _options_view(options: JobOptions) -> dict[str, Any]:
    return options.model_dump(mode="json", exclude={"workspace"})


def job_view(state: JobState, *, stalled: bool = False) -> Job:
    done = sum(1 for t in state.tasks.values() if t.terminal)
    return Job(
        job_id=state.id,
        goal=state.goal,
        status=state.status,
        created_at=state.created_at,
        updated_at=state.updated_at,
        finished_at=state.finished_at,
        result=state.result,
        error=state.error,
        usage=Usage(
            tokens_in=state.tokens_in,
            tokens_out=state.tokens_out,
            cost_usd=state.cost_usd,
            llm_calls=state.llm_calls,
        ),
        tasks_total=len(state.tasks),
        tasks_done=done,
        artifacts=list(state.artifacts),
        options=_options_view(state.options),
        stalled=stalled,
    )


def summary_view(summary: JobSummary, *, stalled: bool = False) -> JobListItem:
    return JobListItem(
        job_id=summary.job_id,
        goal=summary.goal,
        status=summary.status,
        created_at=summary.created_at,
        updated_at=summary.updated_at,
        finished_at=summary.finished_at,
        tokens_in=summary.tokens_in,
        tokens_out=summary.tokens_out,
        cost_usd=summary.cost_usd,
        tasks_total=summary.tasks_total,
        tasks_done=summary.tasks_done,
        error=summary.error,
        result=summary.result,
        stalled=stalled,
    )


def task_view(task: TaskState) -> dict[str, Any]:
    spec = task.spec
    return {
        "id": task.id,
        "goal": spec.goal,
        "kind": spec.kind,
        "status": task.status,
        "depends_on": list(spec.depends_on),
        "parent": task.parent,
        "depth": task.depth,
        "attempt": task.attempt,
        "failures": task.failures,
        "result": task.result,
        "error": task.error,
        "agent": spec.agent,
        "tool": spec.tool,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "tokens_in": task.tokens_in,
        "tokens_out": task.tokens_out,
        "cost_usd": task.cost_usd,
    }


def llm_call_view(event: LlmCalled) -> LlmCall:
    return LlmCall(
        model=event.model,
        role=event.role,
        prompt=event.prompt,
        reply=event.reply,
        tokens_in=event.tokens_in,
        tokens_out=event.tokens_out,
        latency_ms=event.latency_ms,
        cost_usd=event.cost_usd,
        error=event.error,
        at=event.at,
        seq=event.seq,
    )


def tool_call_view(event: ToolCalled) -> ToolCall:
    return ToolCall(
        name=event.name,
        args=event.args,
        outcome=event.outcome,
        result=event.result,
        error=event.error,
        latency_ms=event.latency_ms,
        at=event.at,
        seq=event.seq,
    )
