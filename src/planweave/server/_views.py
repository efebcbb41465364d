"""Views: the API's response bodies built from engine state and events.

A job may hold tens of thousands of tasks, each with a result of up to ``max_result_bytes``, so
no response carries all of them: task listings come in pages (plan order, a cursor that stays
valid because tasks are never removed), and a listed result longer than
``LISTED_RESULT_CHARS`` is cut to a preview. The whole result is one task read away.
"""

from __future__ import annotations

import json
import time
from itertools import islice
from typing import Any, Final

from planweave.events import JobOptions, LlmCalled, ToolCalled
from planweave.server._models import (
    Budget,
    Job,
    JobDetail,
    JobListItem,
    LlmCall,
    Spent,
    ToolCall,
    Usage,
)
from planweave.state import JobState, TaskState
from planweave.store.base import JobSummary

__all__ = [
    "JOB_RESULT_CHARS",
    "JOB_TASKS_PAGE",
    "LISTED_RESULT_CHARS",
    "MAX_TASKS_PAGE",
    "job_detail_view",
    "job_view",
    "listed_task_view",
    "llm_call_view",
    "summary_view",
    "task_page",
    "task_view",
    "tool_call_view",
]

JOB_TASKS_PAGE: Final = 100
"""Tasks in a job read, and in a task listing page when no ``limit`` is given."""
MAX_TASKS_PAGE: Final = 500
"""Largest ``limit`` of a task listing page."""
LISTED_RESULT_CHARS: Final = 2_000
"""Longest result a listed task or job shows whole (characters of the string, or of any other
value's JSON text); a longer one shows its first ``LISTED_RESULT_CHARS`` characters, flagged
``result_truncated``."""
JOB_RESULT_CHARS: Final = 64 * 1024
"""Longest result a job read shows whole; past it, the first ``JOB_RESULT_CHARS`` characters,
flagged ``result_truncated`` (the ``JobCompleted`` event holds it whole)."""


def _options_view(options: JobOptions) -> dict[str, Any]:
    return options.model_dump(mode="json", exclude={"workspace"})


def job_detail_view(state: JobState, *, stalled: bool = False) -> JobDetail:
    """The job with the first ``JOB_TASKS_PAGE`` of its tasks."""
    tasks, next_after = task_page(state)
    return JobDetail.model_validate(
        {
            **job_view(state, stalled=stalled).model_dump(),
            "tasks": tasks,
            "tasks_next_after": next_after,
        }
    )


def job_view(state: JobState, *, stalled: bool = False) -> Job:
    done = sum(1 for t in state.tasks.values() if t.terminal)
    result, truncated = _preview(state.result, JOB_RESULT_CHARS)
    return Job(
        job_id=state.id,
        goal=state.goal,
        status=state.status,
        created_at=state.created_at,
        updated_at=state.updated_at,
        finished_at=state.finished_at,
        result=result,
        result_truncated=truncated,
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
        budget=budget_view(state),
        spent=spent_view(state),
    )


def budget_view(state: JobState) -> Budget:
    """The job's budgets, as its options set them."""
    options = state.options
    return Budget(
        max_cost_usd=options.max_cost_usd,
        max_tokens=options.max_job_tokens,
        max_time_s=options.max_time_s,
        max_tool_calls=options.max_job_tool_calls,
        max_fanout=options.max_fanout,
    )


def spent_view(state: JobState, now: float | None = None) -> Spent:
    """What the job has spent of each budget's kind; its time up to ``now`` while it runs."""
    end = state.finished_at
    if end is None:
        end = time.time() if now is None else now
    return Spent(
        cost_usd=state.cost_usd,
        tokens=state.tokens_in + state.tokens_out,
        elapsed_s=max(0.0, end - state.created_at),
        tool_calls=state.tool_calls,
        fanout=state.fanout,
    )


def summary_view(summary: JobSummary, *, stalled: bool = False) -> JobListItem:
    result, truncated = _preview(summary.result)
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
        result=result,
        result_truncated=truncated,
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
        "waiting_call": _waiting_call(task),
        "approvals": [
            {k: d.get(k) for k in ("tool", "approved", "by", "reason", "at")}
            for d in task.approvals
        ],
    }


def _waiting_call(task: TaskState) -> dict[str, Any] | None:
    pending = task.pending_approval
    if task.status != "awaiting_approval" or pending is None:
        return None
    return {k: pending.get(k) for k in ("tool", "args", "reason", "since", "timeout_at")}


def _preview(result: Any, chars: int = LISTED_RESULT_CHARS) -> tuple[Any, bool]:
    """The result as shown, and whether it was cut to its first ``chars`` characters."""
    if result is None or isinstance(result, bool | int | float):
        return result, False
    if isinstance(result, str):
        text = result
    else:
        text = json.dumps(result, ensure_ascii=False, default=str)
    if len(text) <= chars:
        return result, False
    return text[:chars], True


def listed_task_view(task: TaskState) -> dict[str, Any]:
    """A task as a listing shows it: its result previewed."""
    view = task_view(task)
    view["result"], view["result_truncated"] = _preview(task.result)
    return view


def task_page(
    state: JobState, *, after: str | None = None, limit: int = JOB_TASKS_PAGE
) -> tuple[list[dict[str, Any]], str | None]:
    """The listed tasks that come after task ``after`` in plan order (from the first when
    ``None``), at most ``limit``, and the cursor of the next page (``None`` on the last).

    Raises:
        KeyError: the job has no task ``after``.
    """
    tasks = state.tasks
    if after is not None and after not in tasks:
        raise KeyError(after)
    start = 0 if after is None else list(tasks).index(after) + 1
    page = [listed_task_view(t) for t in islice(tasks.values(), start, start + limit)]
    more = start + len(page) < len(tasks)
    return page, page[-1]["id"] if page and more else None


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
