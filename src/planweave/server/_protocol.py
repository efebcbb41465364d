"""Connection limits that uvicorn lacks: deadlines on reading a request, and a connection cap.

uvicorn times out only idle keep-alive connections, and only after a first response: a client
that opens a connection and sends half a request line (or one header byte a second, or a body a
byte at a time) holds its connection for as long as it likes, and a few thousand such clients
hold the server. ASGI middleware cannot help, since the app is called only once the head has
been read. So the limits live in the HTTP protocol itself, a small subclass of uvicorn's h11
protocol (pinned, so that ``max_header_bytes`` applies whichever parsers are installed):

* from the moment a connection opens, or its previous response ends, it has
  ``request_header_timeout_s`` to deliver a complete request line and headers;
* once the headers are in, the request has ``request_body_timeout_s`` to deliver its body;
* the server keeps at most ``max_connections`` connections: requests past it are answered 503
  (uvicorn's ``limit_concurrency``), connections past it are closed as soon as they open.

A deadline that passes closes the connection (logged at INFO, without a traceback). Nothing
limits how long a response takes: event streams stay open as long as their job runs.

The WebSocket protocol is uvicorn's sans-I/O one, with one repair: a handshake the app refuses
with an HTTP response (a bad token, an unknown job) is an expected answer, not an error, so it is
no longer logged as "ASGI callable returned without completing handshake".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["ApiConfig", "GuardedH11Protocol", "QuietDenialWebSocketProtocol"]

log = logging.getLogger("planweave.server")


class ApiConfig(uvicorn.Config):
    """uvicorn's config plus the request-reading deadlines and the connection cap."""

    def __init__(
        self,
        app: Any,
        *,
        request_header_timeout_s: float,
        request_body_timeout_s: float,
        max_connections: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            app,
            http=GuardedH11Protocol,
            ws=QuietDenialWebSocketProtocol,
            limit_concurrency=max_connections,
            **kwargs,
        )
        self.request_header_timeout_s = request_header_timeout_s
        self.request_body_timeout_s = request_body_timeout_s
        self.max_connections = max_connections


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines on the request head and body, and a hard cap."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if isinstance(config, ApiConfig):
            self._header_timeout_s: float | None = config.request_header_timeout_s
            self._body_timeout_s: float | None = config.request_body_timeout_s
            self._max_connections: int | None = config.max_connections
        else:  # a plain uvicorn config: uvicorn's own behaviour
            self._header_timeout_s = self._body_timeout_s = None
            self._max_connections = None
        self._deadline: asyncio.TimerHandle | None = None

    # The head: from the connection's start, or from the end of the previous response.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if self._max_connections is not None and len(self.connections) > self._max_connections:
            log.info("closing a connection: the server holds %d already", self._max_connections)
            self.transport.close()
            return
        self._arm(self._header_timeout_s, "its request head")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no pipelined request started
            self._arm(self._header_timeout_s, "its request head")

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        cycle = self.cycle
        if cycle is None or self.transport.is_closing():
            return
        if cycle is not before:  # a new request's head is in
            self._disarm()
            if cycle.more_body:
                self._arm(self._body_timeout_s, "its request body")
        elif not cycle.more_body and not cycle.response_complete:
            self._disarm()  # the body is in

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, timeout_s: float | None, what: str) -> None:
        self._disarm()
        if timeout_s is not None:
            self._deadline = self.loop.call_later(timeout_s, self._expire, timeout_s, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, timeout_s: float, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info(
            "closing the connection of %s: %s did not arrive within %gs", client, what, timeout_s
        )
        self.transport.close()


class QuietDenialWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, for which a refused handshake ends the handshake."""

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            # The denial response is sent and the connection closed: the handshake is over.
            self.handshake_complete = True
