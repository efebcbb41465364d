"""A job's artifacts: list them, download one.

Only a name the store lists as the job's artifact is served, and the file is opened inside the
job's workspace without following symlinks (``open_in_workspace``), so neither ``..`` in a URL
nor a symlink a tool left behind reaches any other file. Downloads are attachments with
``nosniff`` and a sandboxing CSP: an artifact that holds HTML never runs as a page of the API's
origin.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from planweave.errors import PlanweaveError
from planweave.server._context import Ctx, JobId, Tenant
from planweave.server._errors import ApiError, error_responses
from planweave.server._models import ArtifactInfo, ArtifactList
from planweave.tools._paths import open_in_workspace

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["artifacts"], responses=error_responses(401, 404, 422, 429))

CHUNK_BYTES = 64 * 1024


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactList)
async def list_artifacts(job_id: JobId, ctx: Ctx, tenant: Tenant) -> ArtifactList:
    """The files the job produced."""
    await ctx.job(job_id, tenant)
    rows = await ctx.engine.artifacts(job_id)
    latest = {row.name: row for row in rows}
    return ArtifactList(
        artifacts=[
            ArtifactInfo(
                name=row.name,
                size=row.size,
                content_type=row.content_type,
                url=f"/v1/jobs/{job_id}/artifacts/{quote(row.name)}",
            )
            for row in latest.values()
        ]
    )


def _open(workspace: Path, name: str) -> tuple[int, int]:
    fd = open_in_workspace(workspace, name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise ApiError(404, "no such artifact")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


async def _read(fd: int, size: int) -> AsyncIterator[bytes]:
    with os.fdopen(fd, "rb") as fh:
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.get(
    "/jobs/{job_id}/artifacts/{name:path}",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file, with the content type its artifact entry lists "
            "(application/octet-stream when unknown)",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "attachment, with the file's name",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def download_artifact(job_id: JobId, name: str, ctx: Ctx, tenant: Tenant) -> Any:
    """Download one artifact (as an attachment)."""
    await ctx.job(job_id, tenant)
    rows = {row.name: row for row in await ctx.engine.artifacts(job_id)}
    row = rows.get(name)
    if row is None:
        raise ApiError(404, "no such artifact")
    try:
        fd, size = await asyncio.to_thread(_open, await ctx.engine.workspace(job_id), name)
    except (PlanweaveError, OSError):
        raise ApiError(404, "no such artifact") from None
    filename = quote(Path(name).name)
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-store",
    }
    content_type = row.content_type or "application/octet-stream"
    return StreamingResponse(_read(fd, size), media_type=content_type, headers=headers)
