"""Running the API: uvicorn in the engine's own event loop, and a clean stop.

``serve`` is what ``planweave serve`` runs: it starts the engine (control plane and workers),
adopts active jobs whose owner is gone, serves until SIGTERM or Ctrl-C, then stops uvicorn
(event streams end first, so no connection holds the stop up) and closes the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import signal
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from planweave.config import Settings
from planweave.engine import Engine
from planweave.errors import ConfigError
from planweave.server._auth import TokenRegistry
from planweave.server._context import AppContext
from planweave.server._protocol import ApiConfig
from planweave.server.app import create_app

__all__ = ["ApiServer", "adopt_active_jobs", "is_loopback", "serve"]

log = logging.getLogger("planweave.server")

GRACEFUL_S = 5.0
WS_MAX_MESSAGE_BYTES = 64 * 1024
"""Largest WebSocket message a client may send (the event stream reads none it needs)."""
_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s\"']+")


class ApiServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its caller (it runs inside a larger program)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    @property
    def port(self) -> int:
        """The port it listens on (useful after asking for port 0)."""
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)

    def stop(self, app_ctx: AppContext | None = None) -> None:
        """Begin a graceful stop: end event streams, then stop accepting and drain.

        A second call (a second Ctrl-C) stops without waiting for open connections.
        """
        if app_ctx is not None:
            app_ctx.closing.set()
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


class _RedactTokens(logging.Filter):
    """Keep ``?access_token=`` (WebSocket auth) out of the server's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "access_token=" in record.msg:
            record.msg = _TOKEN_IN_URL.sub(r"\1***", record.msg)
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def uvicorn_config(
    app: Any, settings: Settings, *, host: str, port: int, log_level: str = "warning"
) -> ApiConfig:
    """The server's config: its address, and the connection limits of ``settings``."""
    install_log_redaction()
    return ApiConfig(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(GRACEFUL_S),
        proxy_headers=False,
        server_header=False,
        request_header_timeout_s=settings.request_header_timeout_s,
        request_body_timeout_s=settings.request_body_timeout_s,
        max_connections=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
    )


async def adopt_active_jobs(engine: Engine) -> int:
    """Carry on the store's active jobs whose claim expired; return how many were adopted."""
    return len(await engine.adopt_active())


async def keep_adopting(engine: Engine, *, every_s: float) -> None:
    """Adopt, every ``every_s``, the active jobs whose owner stopped (another replica was
    killed, or its claims ran out); runs until cancelled, and survives a store outage."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await engine.adopt_orphans()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("looking for jobs to take over failed", exc_info=True)


async def serve(
    settings: Settings,
    *,
    engine: Engine | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the API with its engine until SIGTERM or Ctrl-C.

    Raises:
        ConfigError: No token is configured and ``settings.host`` is not a loopback address.
    """
    registry = TokenRegistry.from_settings(settings)
    open_mode = registry.empty
    if open_mode and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host} without API tokens: anyone who can reach "
            "it could run jobs. Create one with 'planweave token create --tenant NAME' (or set "
            "PLANWEAVE_TOKENS), or listen on 127.0.0.1"
        )
    engine = engine or Engine(**settings.engine_kwargs())
    await engine.start()
    try:
        adopted = await adopt_active_jobs(engine)
        adopting = asyncio.create_task(
            keep_adopting(engine, every_s=engine.claim_lease_s / 3), name="planweave-adopt"
        )
        try:
            await _serve_api(engine, settings, registry, adopted, announce)
        finally:
            adopting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await adopting
    finally:
        await engine.close()


async def _serve_api(
    engine: Engine,
    settings: Settings,
    registry: TokenRegistry,
    adopted: int,
    announce: Callable[[str], None],
) -> None:
    open_mode = registry.empty
    app = create_app(engine, settings, tokens=registry)
    ctx: AppContext = app.state.planweave
    host = settings.host
    sock = _bind(host, settings.port)
    server = ApiServer(
        uvicorn_config(app, settings, host=host, port=settings.port, log_level=settings.log_level)
    )
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, server.stop, ctx)
            installed.append(sig)
    try:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_started(server, serving)
        if server.started:
            shown = f"[{host}]" if ":" in host else host
            port = sock.getsockname()[1]
            if open_mode:
                announce(
                    "no API tokens configured: serving without authentication as tenant "
                    "'default', on this machine only"
                )
            if adopted:
                announce(f"resumed {adopted} active job(s)")
            announce(f"planweave API listening on http://{shown}:{port}")
        await serving
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        sock.close()


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Return once ``server`` listens (or its task ended without it)."""
    while True:
        if server.started or task.done():
            return
        await asyncio.sleep(0.01)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
