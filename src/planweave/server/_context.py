"""What every route needs: the engine, the settings, the caller's tenant, and tenant checks;
and the count of each tenant's open event streams, held to ``max_event_streams_per_tenant``.

A job of another tenant is answered exactly like a job that does not exist (404), so a caller
cannot even learn that an id is in use.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Path, Request
from starlette.requests import HTTPConnection

from planweave.config import Settings
from planweave.engine import Engine
from planweave.errors import JobNotFound
from planweave.server._errors import ApiError
from planweave.state import JobState

if TYPE_CHECKING:
    from planweave.server._metrics import Metrics

__all__ = ["AppContext", "Ctx", "JobId", "Tenant", "context", "owned_job", "tenant"]

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
TENANT_CACHE_SIZE = 50_000
STREAM_RETRY_AFTER_S = 5


@dataclass(slots=True)
class AppContext:
    """Shared by the routes of one app."""

    engine: Engine
    settings: Settings
    metrics: Metrics
    keepalive_s: float = 15.0
    open_mode: bool = False
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _tenants: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _streams: dict[str, int] = field(default_factory=dict)

    def open_stream(self, tenant: str) -> None:
        """Count one more open event stream of ``tenant``.

        Raises:
            ApiError: 429: the tenant holds ``max_event_streams_per_tenant`` streams already.
        """
        limit = self.settings.max_event_streams_per_tenant
        held = self._streams.get(tenant, 0)
        if held >= limit:
            raise ApiError(
                429,
                f"this tenant holds {limit} open event streams already (the server's "
                "max_event_streams_per_tenant): close one first",
                headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
            )
        self._streams[tenant] = held + 1

    def close_stream(self, tenant: str) -> None:
        """Count one event stream of ``tenant`` as closed."""
        held = self._streams.get(tenant, 0) - 1
        if held > 0:
            self._streams[tenant] = held
        else:
            self._streams.pop(tenant, None)

    async def tenant_of(self, job_id: str) -> str | None:
        """The tenant a job belongs to (cached: it never changes), ``None`` if it is unknown."""
        known = self._tenants.get(job_id)
        if known is not None:
            return known
        try:
            state = await self.engine.get(job_id)
        except JobNotFound:
            return None
        self.remember(job_id, state.tenant)
        return state.tenant

    def remember(self, job_id: str, tenant: str) -> None:
        self._tenants[job_id] = tenant
        if len(self._tenants) > TENANT_CACHE_SIZE:
            self._tenants.popitem(last=False)

    def forget(self, job_id: str) -> None:
        self._tenants.pop(job_id, None)

    def private_network_for(self, tenant: str) -> bool:
        """Whether the tenant's jobs may reach private and loopback addresses: only the tenants
        the settings list in ``private_network_tenants`` (and the one local user of open mode,
        when the process allows it), never every tenant because the process does."""
        settings = self.settings
        if tenant in settings.private_network_tenants:
            return True
        return self.open_mode and settings.allow_private_network

    async def job(self, job_id: str, tenant: str) -> JobState:
        """The tenant's job, or 404 (for unknown ids and other tenants' jobs alike)."""
        if not _JOB_ID_RE.match(job_id):
            raise ApiError(404, "no such job")
        try:
            state = await self.engine.get(job_id)
        except JobNotFound:
            raise ApiError(404, "no such job") from None
        if state.tenant != tenant:
            raise ApiError(404, "no such job")
        self.remember(job_id, state.tenant)
        return state


def context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.planweave
    return ctx


def tenant(conn: HTTPConnection) -> str:
    """The caller's tenant, set by the auth middleware."""
    value = conn.scope.get("state", {}).get("tenant")
    if not isinstance(value, str):  # a route the middleware did not guard
        raise ApiError(401, "a valid API token is required")
    return value


Ctx = Annotated[AppContext, Depends(context)]
Tenant = Annotated[str, Depends(tenant)]
JobId = Annotated[str, Path(description="The job's id", max_length=128)]


async def owned_job(request: Request, job_id: JobId) -> JobState:
    """Dependency: the path's job, if it belongs to the caller's tenant."""
    return await context(request).job(job_id, tenant(request))
