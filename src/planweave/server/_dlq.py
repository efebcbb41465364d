"""Dead letters: work that kept failing to be handled, per queue; inspect and redrive.

A tenant sees only dead letters of its own jobs; one of another tenant's jobs is 404.
"""

from __future__ import annotations

from fastapi import APIRouter

from planweave.bus.base import DeadLetter
from planweave.errors import UsageError
from planweave.server._context import AppContext, Ctx, Tenant
from planweave.server._errors import ApiError, error_responses
from planweave.server._models import DeadLetterDetail, DeadLetterInfo, DeadLetterList

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["dlq"], responses=error_responses(401, 404, 422, 429))


def _info(letter: DeadLetter) -> DeadLetterInfo:
    return DeadLetterInfo(
        queue=letter.queue,
        id=letter.id,
        job_id=letter.message.job_id,
        task_id=letter.message.task_id,
        deliveries=letter.deliveries,
        reason=letter.reason,
        at=letter.at,
    )


async def _owned(ctx: AppContext, letter: DeadLetter, tenant: str) -> bool:
    return await ctx.tenant_of(letter.message.job_id) == tenant


async def _find(ctx: AppContext, queue: str, letter_id: str, tenant: str) -> DeadLetter:
    try:
        letters = await ctx.engine.dead_letters(queue)
    except UsageError:
        raise ApiError(404, "no such queue") from None
    for letter in letters:
        if letter.id == letter_id and await _owned(ctx, letter, tenant):
            return letter
    raise ApiError(404, "no such dead letter")


@router.get("/dlq", response_model=DeadLetterList)
async def list_dead_letters(ctx: Ctx, tenant: Tenant) -> DeadLetterList:
    """Dead letters of the tenant's jobs, oldest first per queue."""
    out = []
    for letter in await ctx.engine.dead_letters():
        if await _owned(ctx, letter, tenant):
            out.append(_info(letter))
    return DeadLetterList(dead_letters=out)


@router.get("/dlq/{queue}/{letter_id}", response_model=DeadLetterDetail)
async def get_dead_letter(queue: str, letter_id: str, ctx: Ctx, tenant: Tenant) -> DeadLetterDetail:
    """One dead letter with its message."""
    letter = await _find(ctx, queue, letter_id, tenant)
    return DeadLetterDetail(
        **_info(letter).model_dump(), message=letter.message.model_dump(mode="json")
    )


@router.post("/dlq/{queue}/{letter_id}/redrive", status_code=202, response_model=DeadLetterInfo)
async def redrive_dead_letter(
    queue: str, letter_id: str, ctx: Ctx, tenant: Tenant
) -> DeadLetterInfo:
    """Put a dead letter back on its queue."""
    letter = await _find(ctx, queue, letter_id, tenant)
    if not await ctx.engine.redrive(queue, letter_id):
        raise ApiError(404, "no such dead letter")
    return _info(letter)
