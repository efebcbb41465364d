"""One long-lived connection to an MCP server, restarted with backoff when the server dies.

The MCP client's context (its transport, its subprocess or HTTP session) is entered and left
by one supervising task, as anyio requires; tool calls from any task of the event loop go
through the session it holds. The connection starts on first use, not when the engine is
made, so a job that never calls the server never starts it. When a call finds the server
gone, the call fails as a retryable ``ToolError`` the agent reads as an observation, and the
supervisor starts the server again after a backoff that doubles up to a limit; calls made
while it is down fail the same way, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal, TextIO

from planweave.errors import McpServerUnavailable, ToolError, ToolTimeout
from planweave.mcp._config import McpServerConfig

__all__ = ["ConnectionStatus", "McpConnection"]

log = logging.getLogger("planweave.mcp")

ConnectionStatus = Literal["idle", "starting", "running", "restarting", "closed"]

_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001


class McpConnection:
    """A client session with one configured MCP server.

    Args:
        name: The server's name in the settings.
        config: How to reach it.
        log_file: Where a stdio server's stderr goes (``None``: discarded).
        backoff_s: First wait before restarting a server that died.
        max_backoff_s: Longest wait between restarts.
    """

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        *,
        log_file: Path | None = None,
        backoff_s: float = 0.25,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.name = name
        self.config = config
        self.log_file = log_file
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.status: ConnectionStatus = "idle"
        self.starts = 0
        """How many times the server was connected (1 after the first start)."""
        self.last_error = ""
        self._client: Any = None
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retry_at = 0.0

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self.status == "closed"

    # --- calls ----------------------------------------------------------------------------

    async def list_tools(self) -> list[dict[str, Any]]:
        """The server's tool definitions, as JSON objects (``name``, ``inputSchema``, ...).

        Raises:
            McpServerUnavailable: the server cannot be started or reached.
        """
        client = await self._connected()
        definitions: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            for _ in range(100):
                with _bounded(self.config.connect_timeout_s):
                    page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                definitions += [
                    tool.model_dump(mode="json", by_alias=True, exclude_none=True)
                    for tool in page.tools
                ]
                cursor = page.next_cursor
                if cursor is None:
                    break
        except Exception as exc:
            raise self._failed(exc) from None
        return definitions

    async def call_tool(self, tool: str, args: dict[str, Any], timeout_s: float) -> Any:
        """Call the server's tool ``tool`` and return its ``CallToolResult``.

        Raises:
            McpServerUnavailable: the server is down (being restarted) or stopped answering.
            ToolTimeout: the call took longer than ``timeout_s``.
            ToolError: the server refused the request.
        """
        client = await self._connected()
        try:
            with _bounded(timeout_s):
                return await client.call_tool(tool, args, read_timeout_seconds=timeout_s)
        except TimeoutError:
            raise ToolTimeout(
                f"MCP server {self.name!r}: tool {tool!r} did not answer within {timeout_s:g} s"
            ) from None
        except Exception as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> ToolError:
        from mcp import MCPError

        if isinstance(exc, MCPError) and exc.code == _REQUEST_TIMEOUT:
            return ToolTimeout(f"MCP server {self.name!r}: {exc.error.message}")
        if isinstance(exc, MCPError) and exc.code != _CONNECTION_CLOSED:
            return ToolError(f"MCP server {self.name!r} refused the call: {exc.error.message}")
        if isinstance(exc, TimeoutError):
            return ToolTimeout(f"MCP server {self.name!r} did not answer in time")
        detail = _describe(exc)
        self.last_error = detail
        log.warning("MCP server %r stopped answering (%s): restarting it", self.name, detail)
        self._lost.set()
        return McpServerUnavailable(
            f"MCP server {self.name!r} stopped answering ({detail}); it is being restarted, "
            f"try again shortly"
        )

    async def _connected(self) -> Any:
        if self.status == "closed":
            raise McpServerUnavailable(f"MCP server {self.name!r} is closed")
        if self._task is None:
            self.status = "starting"
            self._task = asyncio.create_task(self._supervise(), name=f"mcp:{self.name}")
        if self.status == "restarting":
            wait_s = max(0.0, self._retry_at - time.monotonic())
            raise McpServerUnavailable(
                f"MCP server {self.name!r} is down ({self.last_error or 'not started'}); "
                f"restarting it in {wait_s:.1f} s, try again shortly"
            )
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                await self._ready.wait()
        except TimeoutError:
            raise McpServerUnavailable(
                f"MCP server {self.name!r} did not start within {self.config.connect_timeout_s:g} s"
            ) from None
        if self._client is None:  # woken by a failed start
            raise McpServerUnavailable(
                f"MCP server {self.name!r} could not be started: {self.last_error}"
            )
        return self._client

    # --- the supervisor -------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self.backoff_s
        while not self.closed:
            started = time.monotonic()
            try:
                async with self._open() as client:
                    self._client = client
                    self.starts += 1
                    self.status = "running"
                    self._ready.set()
                    await self._lost.wait()
            except Exception as exc:
                self.last_error = _describe(exc)
                log.warning("MCP server %r failed: %s", self.name, self.last_error)
            finally:
                self._client = None
                self._lost.clear()
            if self.closed:
                break
            if time.monotonic() - started > 60:
                delay = self.backoff_s  # it ran a good while: this is a fresh failure
            self.status = "restarting"
            self._retry_at = time.monotonic() + delay
            self._ready.set()  # wake waiters of a failed start: they fail as observations
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
            self._ready.clear()
            if not self.closed:
                self.status = "starting"

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        from mcp import Client

        async with contextlib.AsyncExitStack() as stack:
            if self.config.command is not None:
                from mcp import StdioServerParameters
                from mcp.client.stdio import stdio_client

                params = StdioServerParameters(
                    command=self.config.command,
                    args=list(self.config.args),
                    env=dict(self.config.env),
                    cwd=self.config.cwd,
                )
                errlog = stack.enter_context(self._errlog())
                transport: Any = stdio_client(params, errlog=errlog)
            else:
                import httpx2
                from mcp.client.streamable_http import streamable_http_client

                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=dict(self.config.headers),
                        timeout=httpx2.Timeout(self.config.connect_timeout_s, read=300.0),
                    )
                )
                assert self.config.url is not None
                transport = streamable_http_client(self.config.url, http_client=http)
            client = Client(transport, read_timeout_seconds=self.config.timeout_s, cache=None)
            # asyncio's timeout, not anyio's: the client's task groups outlive this block.
            async with asyncio.timeout(self.config.connect_timeout_s):
                await stack.enter_async_context(client)
            yield client

    def _errlog(self) -> TextIO:
        path = os.devnull if self.log_file is None else self.log_file
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        return Path(path).open("a", encoding="utf-8")

    async def aclose(self) -> None:
        """Stop the server (or end the HTTP session); later calls fail as observations."""
        self.status = "closed"
        task, self._task = self._task, None
        if task is None:
            return
        self._lost.set()
        try:
            async with asyncio.timeout(10):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
        except Exception as exc:
            log.debug("MCP server %r stopped with %r", self.name, exc)


def _describe(exc: BaseException) -> str:
    """The exception in a line: the first real error inside the task groups' wrapping."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextlib.contextmanager
def _bounded(timeout_s: float) -> Any:
    """A deadline that anyio's cancel scopes inside the MCP client respect."""
    import anyio

    with anyio.fail_after(timeout_s):
        yield
