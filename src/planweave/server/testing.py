"""Run the API on a free loopback port inside a test's event loop.

Shipped with the server so that users (and the project's own tests) exercise the real HTTP
stack, not an in-process transport::

    async with running_server(engine, settings) as api:
        async with httpx.AsyncClient(base_url=api.url) as client:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

from planweave.config import Settings
from planweave.engine import Engine
from planweave.server._auth import TokenRegistry
from planweave.server._context import AppContext
from planweave.server._serve import ApiServer, uvicorn_config, wait_started
from planweave.server.app import create_app

__all__ = ["RunningServer", "running_server"]


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A served app: its base URL (``http://127.0.0.1:PORT``), the app and the server."""

    url: str
    app: FastAPI
    server: ApiServer

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def context(self) -> AppContext:
        ctx: AppContext = self.app.state.planweave
        return ctx


@contextlib.asynccontextmanager
async def running_server(
    engine: Engine,
    settings: Settings | None = None,
    *,
    tokens: TokenRegistry | None = None,
    keepalive_s: float = 15.0,
) -> AsyncIterator[RunningServer]:
    """Start ``engine`` and serve it with uvicorn on 127.0.0.1 (a free port) until exit."""
    await engine.start()
    settings = settings or Settings()
    app = create_app(engine, settings, tokens=tokens, keepalive_s=keepalive_s)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = ApiServer(uvicorn_config(app, settings, host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server, task)
        if not server.started:
            task.result()
            raise RuntimeError("the server stopped before it started")
        yield RunningServer(url=f"http://127.0.0.1:{port}", app=app, server=server)
    finally:
        server.stop(app.state.planweave)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
