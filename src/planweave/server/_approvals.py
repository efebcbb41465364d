"""Approvals: the tool calls waiting for a person, and the routes that decide them.

A tenant sees and decides only its own jobs' calls: another tenant's job is 404. The decision
records who made it: the token's tenant and name (``tenant/name``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from planweave.errors import UsageError
from planweave.server._context import Ctx, JobId, Tenant
from planweave.server._errors import ApiError, error_responses
from planweave.server._models import Approval, ApprovalDecisionIn, ApprovalList, Job
from planweave.server._views import job_view

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["approvals"], responses=error_responses(401, 422, 429))


@router.get("/approvals", response_model=ApprovalList)
async def list_approvals(ctx: Ctx, tenant: Tenant) -> ApprovalList:
    """The tool calls of the caller's running jobs that wait for a decision."""
    calls = await ctx.engine.approvals(tenant=tenant)
    calls.sort(key=lambda call: call.since)
    return ApprovalList(
        approvals=[
            Approval(
                job_id=c.job_id,
                task_id=c.task_id,
                tool=c.tool,
                args=c.args,
                reason=c.reason,
                since=c.since,
                timeout_at=c.timeout_at,
                goal=c.goal,
            )
            for c in calls
        ]
    )


def _who(request: Request, tenant: str) -> str:
    name = request.scope.get("state", {}).get("token_name") or ""
    return f"{tenant}/{name}" if name else tenant


async def _decide(
    ctx: Ctx,
    request: Request,
    tenant: str,
    job_id: str,
    task_id: str,
    *,
    approved: bool,
    body: ApprovalDecisionIn | None,
) -> Job:
    state = await ctx.job(job_id, tenant)
    task = state.tasks.get(task_id)
    if task is None:
        raise ApiError(404, "no such task")
    if task.status != "awaiting_approval" or state.terminal:
        raise ApiError(409, f"task {task_id!r} is {task.status}, not awaiting approval")
    reason = body.reason if body is not None else ""
    if not approved and not reason.strip():
        raise ApiError(422, "a rejection needs a reason: the agent reads it")
    try:
        if approved:
            await ctx.engine.approve(job_id, task_id, reason=reason, by=_who(request, tenant))
        else:
            await ctx.engine.reject(job_id, task_id, reason=reason, by=_who(request, tenant))
    except UsageError as exc:
        raise ApiError(409, str(exc)) from None
    return job_view(await ctx.job(job_id, tenant))


@router.post(
    "/jobs/{job_id}/tasks/{task_id}/approve",
    status_code=202,
    response_model=Job,
    responses=error_responses(404, 409),
)
async def approve_task(
    job_id: JobId,
    task_id: str,
    ctx: Ctx,
    tenant: Tenant,
    request: Request,
    body: ApprovalDecisionIn | None = None,
) -> Job:
    """Approve the tool call the task waits on: the task runs again and the call runs."""
    return await _decide(ctx, request, tenant, job_id, task_id, approved=True, body=body)


@router.post(
    "/jobs/{job_id}/tasks/{task_id}/reject",
    status_code=202,
    response_model=Job,
    responses=error_responses(404, 409),
)
async def reject_task(
    job_id: JobId,
    task_id: str,
    ctx: Ctx,
    tenant: Tenant,
    request: Request,
    body: ApprovalDecisionIn | None = None,
) -> Job:
    """Reject the tool call the task waits on (a reason is required): the agent reads it."""
    return await _decide(ctx, request, tenant, job_id, task_id, approved=False, body=body)
