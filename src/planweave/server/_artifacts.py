"""A job's artifacts: list them, download one.

Only a name the store lists as the job's artifact is served, read from the engine's artifact
store: by default the job's workspace, where the file is opened without following symlinks, so
neither ``..`` in a URL nor a symlink a tool left behind reaches any other file; or an object
store every replica shares. A store that cannot be reached is answered 503 with the code
``artifact_store_unavailable``. Downloads are attachments with
``nosniff`` and a sandboxing CSP: an artifact that holds HTML never runs as a page of the API's
origin.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from planweave.artifacts import ArtifactDownload
from planweave.errors import ArtifactNotFound, ArtifactStoreUnavailable
from planweave.server._context import Ctx, JobId, Tenant
from planweave.server._errors import ApiError, error_responses
from planweave.server._models import ArtifactInfo, ArtifactList

__all__ = ["router"]

log = logging.getLogger("planweave.server")

router = APIRouter(prefix="/v1", tags=["artifacts"], responses=error_responses(401, 404, 422, 429))


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


async def _stream(download: ArtifactDownload, job_id: str, name: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in download.chunks:
            yield chunk
    except ArtifactStoreUnavailable as exc:
        # The status line has gone out: all that is left is to cut the body short.
        log.error("artifact %r of job %s: %s", name, job_id, exc)
        raise
    finally:
        await download.close()


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
        },
        **error_responses(503),
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
        download = await ctx.engine.artifact_store.get(job_id, name)
    except ArtifactNotFound:
        raise ApiError(404, "no such artifact") from None
    except ArtifactStoreUnavailable as exc:
        log.error("artifact %r of job %s: %s", name, job_id, exc)
        raise ApiError(
            503,
            "the artifact store is unavailable; try again later",
            code="artifact_store_unavailable",
        ) from None
    size = download.size_bytes
    filename = quote(Path(name).name)
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-store",
    }
    content_type = row.content_type or "application/octet-stream"
    # The background close also runs when the body was never read (closing twice is harmless).
    return StreamingResponse(
        _stream(download, job_id, name),
        media_type=content_type,
        headers=headers,
        background=BackgroundTask(download.close),
    )
