"""``planweave serve --mcp``: the job API as MCP tools, streamable HTTP at ``/mcp``.

The endpoint sits behind the same middleware as every route, so a call needs a bearer token
(none in open mode, on loopback) and acts for the token's tenant: it submits jobs as that
tenant, within its quotas, and sees only that tenant's jobs. It runs stateless (each HTTP
request is complete in itself) and answers in JSON, so it holds no session between requests.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from planweave.server._context import AppContext

__all__ = ["MCP_PATH", "mount_mcp"]

MCP_PATH = "/mcp"


def mount_mcp(app: FastAPI, ctx: AppContext) -> Callable[[], AbstractAsyncContextManager[Any]]:
    """Add the ``/mcp`` route to ``app``; return what the app's lifespan must run around it."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import Route

    from planweave.mcp._serve import job_api_server, request_tenant

    server = job_api_server(
        ctx.engine,
        tenant_of=request_tenant,
        submit_options=lambda tenant: {"allow_private_network": ctx.private_network_for(tenant)},
        own_engine=False,
    )
    # In open mode the server listens on loopback only: keep the SDK's DNS-rebinding guard,
    # which admits loopback Host headers only. With tokens, the token is the guard.
    security = (
        None if ctx.open_mode else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    inner = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=security,
        max_request_body_size=ctx.settings.max_body_bytes,
    )
    route = next(r for r in inner.routes if isinstance(r, Route) and r.path == MCP_PATH)
    app.router.routes.append(Route(MCP_PATH, endpoint=route.endpoint, include_in_schema=False))
    return server.session_manager.run
