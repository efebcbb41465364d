"""The HTTP API: ``create_app(engine, settings)`` builds the FastAPI app around a started engine.

Routes live in small private modules (jobs, events, artifacts, dead letters, metrics); this module
wires them to the middleware that every request passes first: security headers (outermost, with
the last-resort 500), the body limit, then auth and the rate limit. The web UI is served from
``static/`` by the same app, so it shares the API's origin and its CSP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from planweave.config import Settings
from planweave.engine import Engine
from planweave.server import (
    _approvals,
    _artifacts,
    _dlq,
    _events,
    _jobs,
    _metrics,
    _sessions,
)
from planweave.server._auth import TokenRegistry
from planweave.server._context import AppContext
from planweave.server._errors import (
    SafeJSONResponse,
    error_payload,
    error_responses,
    install_error_handlers,
)
from planweave.server._metrics import Metrics
from planweave.server._middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    TokenBucketLimiter,
)
from planweave.server._models import Health

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
READY_TIMEOUT_S = 2.0

_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>planweave</title></head>
<body><h1>planweave</h1><p>The web UI is not installed. The API is at <code>/v1</code>;
its description at <code>/openapi.json</code>.</p></body></html>
"""


def create_app(
    engine: Engine,
    settings: Settings | None = None,
    *,
    tokens: TokenRegistry | None = None,
    keepalive_s: float = 15.0,
) -> FastAPI:
    """Build the API around ``engine`` (started by the caller, closed by the caller).

    Args:
        engine: The engine whose jobs the API serves.
        settings: Server settings (tokens, body limit, rate limit); defaults when ``None``.
        tokens: The token registry (default: from ``settings`` and ``data_dir/tokens.json``).
            When it holds no token at all, the app runs without auth as tenant ``default``
            (``planweave serve`` then listens on loopback only).
        keepalive_s: Seconds between keep-alive comments on idle event streams.
    """
    settings = settings or Settings()
    registry = tokens or TokenRegistry.from_settings(settings)
    ctx = AppContext(
        engine=engine,
        settings=settings,
        metrics=Metrics(),
        keepalive_s=keepalive_s,
        open_mode=registry.empty,
    )

    mcp_run: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.closing.clear()
        ctx.metrics.start(ctx)
        try:
            async with mcp_run() if mcp_run is not None else contextlib.nullcontext():
                yield
        finally:
            ctx.closing.set()
            await ctx.metrics.stop()

    app = FastAPI(
        title="planweave",
        version="1",
        summary="Turn a goal into a plan DAG and run it durably.",
        docs_url=None,
        redoc_url=None,
        default_response_class=SafeJSONResponse,
        lifespan=lifespan,
    )
    app.state.planweave = ctx
    install_error_handlers(app)
    for module in (_jobs, _approvals, _events, _artifacts, _dlq, _metrics, _sessions):
        app.include_router(module.router)
    _add_public_routes(app, ctx)
    if settings.serve_mcp:
        from planweave.server._mcp import mount_mcp

        mcp_run = mount_mcp(app, ctx)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    # Added innermost first: the last one added sees a request first.
    app.add_middleware(
        AuthMiddleware,
        registry=registry,
        limiter=TokenBucketLimiter(
            rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst
        ),
        failures=TokenBucketLimiter(
            rate_per_s=settings.auth_failure_rate_per_s, burst=settings.auth_failure_burst
        ),
        open_mode=ctx.open_mode,
        metrics_hash=settings.metrics_token,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _add_public_routes(app: FastAPI, ctx: AppContext) -> None:
    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["health"],
        responses=error_responses(503),
    )
    async def readyz() -> Any:
        """Readiness: the store answers."""
        try:
            await asyncio.wait_for(ctx.engine.list_jobs(limit=1), READY_TIMEOUT_S)
        except Exception:
            return SafeJSONResponse(
                error_payload("unavailable", "the store is not reachable"), status_code=503
            )
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        return HTMLResponse(_PLACEHOLDER)
