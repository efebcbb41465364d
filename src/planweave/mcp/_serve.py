"""planweave's job API as an MCP server (``planweave mcp serve``), so other agents can use it.

It speaks MCP over stdin/stdout: an MCP client (an IDE, another agent framework) starts it as a
command and gets three tools: ``submit_goal`` (start a job, return its id), ``job_status``
(its state and per-task progress) and ``job_result`` (its answer, waiting for it if asked).
Jobs run in this process, on the store and model of its settings, like ``planweave run``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from planweave.errors import JobNotFound, PlanweaveError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from planweave.engine import Engine

__all__ = ["job_api_server"]

MAX_WAIT_S = 600.0


def job_api_server(engine: Engine) -> MCPServer:
    """An MCP server whose tools submit goals to ``engine`` and read its jobs."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield None
        finally:
            await engine.close()

    server: MCPServer = MCPServer(
        "planweave",
        instructions=(
            "planweave turns a goal into a plan of tasks and carries it out. Submit a goal with "
            "submit_goal, then poll job_status or wait with job_result."
        ),
        lifespan=lifespan,
    )

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=True))
    async def submit_goal(goal: str) -> dict[str, Any]:
        """Start a planweave job for a goal; returns its job_id at once."""
        if not goal.strip():
            raise ValueError("goal must not be empty")
        try:
            job_id = await engine.submit(goal)
        except PlanweaveError as exc:
            raise ValueError(str(exc)) from None
        return {"job_id": job_id, "status": "running"}

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def job_status(job_id: str) -> dict[str, Any]:
        """A job's status, its tasks and what it has spent so far."""
        state = await _job(engine, job_id)
        return {
            "job_id": state.id,
            "goal": state.goal,
            "status": state.status,
            "tasks": {task_id: task.status for task_id, task in state.tasks.items()},
            "tokens": state.tokens_in + state.tokens_out,
            "cost_usd": state.cost_usd,
            "error": state.error,
        }

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def job_result(job_id: str, wait_s: float = 0.0) -> dict[str, Any]:
        """A job's answer: waits up to wait_s seconds (at most 600) for it to finish."""
        state = await _job(engine, job_id)
        if not state.terminal and wait_s > 0 and engine.runs_here(state.id):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait_s, MAX_WAIT_S)):
                    await engine.wait(state.id)
            state = await _job(engine, job_id)
        return {
            "job_id": state.id,
            "status": state.status,
            "finished": state.terminal,
            "result": state.result if state.terminal else None,
            "error": state.error,
        }

    return server


async def _job(engine: Engine, job_id: str) -> Any:
    try:
        return await engine.get(job_id)
    except JobNotFound as exc:
        raise ValueError(str(exc)) from None
