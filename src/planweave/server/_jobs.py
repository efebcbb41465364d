"""Jobs and their tasks: submit, list, inspect, cancel, retry, replan, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from planweave.errors import JobBusy, JobNotFound, QuotaCode, QuotaExceeded, UsageError
from planweave.events import CriticVerdict, LlmCalled, ToolCalled
from planweave.server._context import Ctx, JobId, Tenant
from planweave.server._errors import ApiError, SafeJSONResponse, error_responses
from planweave.server._models import (
    Job,
    JobCreate,
    JobDetail,
    JobList,
    JobStatusName,
    TaskDetail,
    TaskList,
)
from planweave.server._views import (
    JOB_TASKS_PAGE,
    MAX_TASKS_PAGE,
    job_detail_view,
    job_view,
    llm_call_view,
    summary_view,
    task_page,
    task_view,
    tool_call_view,
)
from planweave.state import JobState

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["jobs"], responses=error_responses(401, 404, 422, 429))

_HISTORY_TYPES = frozenset(
    {
        "TaskReady",
        "TaskAssigned",
        "TaskStarted",
        "TaskRetrying",
        "TaskReviewing",
        "CriticVerdict",
        "TaskFailed",
        "TaskCompleted",
        "TaskCancelled",
        "SubtasksPlanned",
    }
)


_QUOTA_RETRY_AFTER_S: dict[QuotaCode, int] = {
    "tenant_job_limit": 5,
    "tenant_storage_limit": 60,
    "tenant_spend_limit": 300,
}
"""A hint for ``Retry-After`` by quota: a job may end any moment, storage frees only when the
client deletes jobs, spend only as the window moves on."""


@router.post(
    "/jobs",
    status_code=201,
    response_model=Job,
    responses={
        200: {"model": Job, "description": "An earlier job with the same key"},
        **error_responses(400, 413),
    },
)
async def create_job(
    body: JobCreate,
    ctx: Ctx,
    tenant: Tenant,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> Any:
    """Submit a goal to plan or a plan to run; returns the new job (201), or the earlier job
    submitted with the same idempotency key (200).

    A tenant at one of its quotas is answered 429 with the code ``tenant_job_limit`` (too
    many unfinished jobs), ``tenant_storage_limit`` (its stored jobs hold too much: delete
    some) or ``tenant_spend_limit`` (its jobs spent its dollars for the window). A job past
    the tenant's running-job limit is accepted and waits until an earlier one ends."""
    key = body.idempotency_key or idempotency_key
    engine = ctx.engine
    fields = body.options.fields() if body.options is not None else {}
    fields["allow_private_network"] = ctx.private_network_for(tenant)
    for name in ("model", "critic_model"):
        model = fields.get(name)
        if model is None:
            continue
        allowed = engine.allowed_models(ctx.settings.api_models)
        if model not in allowed:
            raise ApiError(
                422,
                f"options.{name}: this server lets jobs use {', '.join(sorted(allowed))}",
                details=[{"loc": ["body", "options", name], "msg": "model not allowed"}],
            )
    try:
        job_id, created = await engine.submit_once(
            body.goal, plan=body.plan, tenant=tenant, idempotency_key=key, **fields
        )
    except JobBusy as exc:
        raise ApiError(409, str(exc)) from None
    except QuotaExceeded as exc:
        retry_after_s = _QUOTA_RETRY_AFTER_S[exc.code]
        raise ApiError(
            429, str(exc), code=exc.code, headers={"Retry-After": str(retry_after_s)}
        ) from None
    ctx.remember(job_id, tenant)
    state = await ctx.job(job_id, tenant)
    if not created:
        return SafeJSONResponse(job_view(state).model_dump(mode="json"), status_code=200)
    return job_view(state)


@router.get("/jobs", response_model=JobList)
async def list_jobs(
    ctx: Ctx,
    tenant: Tenant,
    status: JobStatusName | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JobList:
    """The tenant's jobs, newest first."""
    engine = ctx.engine
    summaries = await engine.list_jobs(status=status, tenant=tenant, limit=limit, offset=offset)
    jobs = [
        summary_view(s, stalled=s.status == "running" and await engine.stalled(s.job_id))
        for s in summaries
    ]
    return JobList(jobs=jobs, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobDetail)
async def get_job(job_id: JobId, ctx: Ctx, tenant: Tenant) -> JobDetail:
    """The job, with its first tasks (results previewed); ``tasks_next_after`` pages on."""
    state = await ctx.job(job_id, tenant)
    return job_detail_view(state, stalled=await ctx.engine.stalled(state.id))


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=Job)
async def cancel_job(job_id: JobId, ctx: Ctx, tenant: Tenant) -> Job:
    """Cancel the job (a no-op for a job that already ended)."""
    await ctx.job(job_id, tenant)
    await ctx.engine.cancel(job_id)
    return job_view(await ctx.job(job_id, tenant))


async def _reopen(ctx: Ctx, job_id: str, tenant: str, **how: Any) -> Job:
    state = await ctx.job(job_id, tenant)
    if not state.terminal:
        raise ApiError(409, "the job is still running; cancel it first")
    try:
        if how.get("replan"):
            await ctx.engine.replan(job_id)
        else:
            await ctx.engine.retry(job_id, task_id=how.get("task_id"))
    except (UsageError, JobBusy) as exc:
        raise ApiError(409, str(exc)) from None
    return job_view(await ctx.job(job_id, tenant))


@router.post(
    "/jobs/{job_id}/retry", status_code=202, response_model=Job, responses=error_responses(409)
)
async def retry_job(job_id: JobId, ctx: Ctx, tenant: Tenant) -> Job:
    """Run a failed or cancelled job again: its failed tasks and everything cancelled."""
    return await _reopen(ctx, job_id, tenant)


@router.post(
    "/jobs/{job_id}/replan", status_code=202, response_model=Job, responses=error_responses(409)
)
async def replan_job(job_id: JobId, ctx: Ctx, tenant: Tenant) -> Job:
    """Ask the planner for a new plan around a failed job's failed task, keeping the rest."""
    return await _reopen(ctx, job_id, tenant, replan=True)


@router.post(
    "/jobs/{job_id}/tasks/{task_id}/retry",
    status_code=202,
    response_model=Job,
    responses=error_responses(409),
)
async def retry_task(job_id: JobId, task_id: str, ctx: Ctx, tenant: Tenant) -> Job:
    """Run one failed task of a finished job again (and what depends on it)."""
    state = await ctx.job(job_id, tenant)
    if task_id not in state.tasks:
        raise ApiError(404, "no such task")
    return await _reopen(ctx, job_id, tenant, task_id=task_id)


@router.delete(
    "/jobs/{job_id}", status_code=204, response_class=Response, responses=error_responses(409)
)
async def delete_job(job_id: JobId, ctx: Ctx, tenant: Tenant) -> Response:
    """Delete a finished job with its tasks, events and artifacts."""
    await ctx.job(job_id, tenant)
    try:
        await ctx.engine.delete(job_id)
    except JobBusy as exc:
        raise ApiError(409, str(exc)) from None
    except JobNotFound:
        raise ApiError(404, "no such job") from None
    ctx.forget(job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/tasks", response_model=TaskList)
async def list_tasks(
    job_id: JobId,
    ctx: Ctx,
    tenant: Tenant,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=1_000,
            description="the next_after of the page before: this page starts after that task",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TASKS_PAGE)] = JOB_TASKS_PAGE,
) -> dict[str, Any]:
    """A page of the job's tasks, in the order they were added (plan order); results longer
    than a preview are cut (``result_truncated``), the task's own read has them whole."""
    state = await ctx.job(job_id, tenant)
    try:
        tasks, next_after = task_page(state, after=after, limit=limit)
    except KeyError:
        raise ApiError(404, "after: the job has no such task") from None
    return {
        "tasks": tasks,
        "tasks_total": len(state.tasks),
        "limit": limit,
        "next_after": next_after,
    }


def _verdict_view(event: CriticVerdict) -> dict[str, Any]:
    return {
        "verdict": event.verdict,
        "feedback": event.feedback,
        "revision": event.revision,
        "critic": event.critic,
        "model": event.model,
        "tokens_in": event.usage.tokens_in,
        "tokens_out": event.usage.tokens_out,
        "cost_usd": event.usage.cost_usd,
        "at": event.at,
        "seq": event.seq,
    }


def _inputs(state: JobState, task_id: str) -> dict[str, Any]:
    tasks = state.tasks
    inputs: dict[str, Any] = {}
    node = tasks[task_id]
    while True:
        for dep in node.spec.depends_on:
            if dep in tasks:
                inputs[dep] = tasks[dep].result
        if node.parent is None or node.parent not in tasks:
            return inputs
        node = tasks[node.parent]


@router.get("/jobs/{job_id}/tasks/{task_id}", response_model=TaskDetail)
async def get_task(job_id: JobId, task_id: str, ctx: Ctx, tenant: Tenant) -> Any:
    """One task with its inputs, LLM calls, tool calls and history."""
    state = await ctx.job(job_id, tenant)
    task = state.tasks.get(task_id)
    if task is None:
        raise ApiError(404, "no such task")
    view = task_view(task)
    view["inputs"] = _inputs(state, task_id)
    events = [e for e in await ctx.engine.events(job_id) if e.task_id == task_id]
    view["llm_calls"] = [llm_call_view(e) for e in events if isinstance(e, LlmCalled)]
    view["tool_calls"] = [tool_call_view(e) for e in events if isinstance(e, ToolCalled)]
    view["verdicts"] = [_verdict_view(e) for e in events if isinstance(e, CriticVerdict)]
    view["history"] = [e for e in events if e.type in _HISTORY_TYPES]
    return view
