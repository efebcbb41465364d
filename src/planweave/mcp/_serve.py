"""planweave's job API as MCP tools, so other agents can use planweave.

Three tools: ``submit_goal`` (start a job, return its id), ``job_status`` (its state and
per-task progress) and ``job_result`` (its answer, waiting for it if asked). Two ways to reach
them: ``planweave mcp serve`` speaks MCP over stdin/stdout (an MCP client starts it as a
command; its jobs are the local user's, tenant ``default``), and ``planweave serve --mcp``
mounts streamable HTTP at ``/mcp`` on the API server, behind the same bearer tokens: each
call acts for the tenant of the token it came with, and sees only that tenant's jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

# The tools' Context parameter is found through their type hints: it must be a module name.
from mcp.server.mcpserver import Context

from planweave.errors import JobNotFound, PlanweaveError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from planweave.engine import Engine

__all__ = ["DEFAULT_TENANT", "job_api_server", "request_tenant"]

MAX_WAIT_S = 600.0
DEFAULT_TENANT = "default"

TenantOf = Callable[[Any], str]
"""The tenant a call acts for, from the tool's MCP ``Context``."""


def request_tenant(context: Any) -> str:
    """The tenant the API server's auth middleware found for the HTTP request of a call.

    Raises:
        ValueError: the request carries no tenant (it did not pass the auth middleware).
    """
    request = getattr(context.request_context, "request", None)
    scope = getattr(request, "scope", None)
    tenant = scope.get("state", {}).get("tenant") if isinstance(scope, dict) else None
    if not isinstance(tenant, str):
        raise ValueError("a valid API token is required")
    return tenant


def job_api_server(
    engine: Engine,
    *,
    tenant_of: TenantOf | None = None,
    submit_options: Callable[[str], dict[str, Any]] | None = None,
    own_engine: bool = True,
) -> MCPServer:
    """An MCP server whose tools submit goals to ``engine`` and read its jobs.

    Args:
        engine: Where the jobs run.
        tenant_of: The tenant of a call (default: ``default``, the one local user).
        submit_options: Job options for a tenant's submissions (its network permission).
        own_engine: Start ``engine`` with the server and close it after (stdio); ``False``
            when the API server runs it.
    """
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    def tenant(context: Context[Any, Any]) -> str:
        return DEFAULT_TENANT if tenant_of is None else tenant_of(context)

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        if not own_engine:
            yield None
            return
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
    async def submit_goal(goal: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        """Start a planweave job for a goal; returns its job_id at once."""
        if not goal.strip():
            raise ValueError("goal must not be empty")
        who = tenant(ctx)
        options = submit_options(who) if submit_options is not None else {}
        try:
            job_id = await engine.submit(goal, tenant=who, **options)
        except PlanweaveError as exc:
            raise ValueError(str(exc)) from None
        return {"job_id": job_id, "status": "running"}

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def job_status(job_id: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        """A job's status, its tasks and what it has spent so far."""
        state = await _job(engine, job_id, tenant(ctx))
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
    async def job_result(
        job_id: str,
        ctx: Context[Any, Any],
        wait_s: float = 0.0,
    ) -> dict[str, Any]:
        """A job's answer: waits up to wait_s seconds (at most 600) for it to finish."""
        who = tenant(ctx)
        state = await _job(engine, job_id, who)
        if not state.terminal and wait_s > 0 and engine.runs_here(state.id):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait_s, MAX_WAIT_S)):
                    await engine.wait(state.id)
            state = await _job(engine, job_id, who)
        return {
            "job_id": state.id,
            "status": state.status,
            "finished": state.terminal,
            "result": state.result if state.terminal else None,
            "error": state.error,
        }

    return server


async def _job(engine: Engine, job_id: str, tenant: str) -> Any:
    """The tenant's job; another tenant's job is answered like one that does not exist."""
    try:
        state = await engine.get(job_id)
    except JobNotFound:
        state = None
    if state is None or state.tenant != tenant:
        raise ValueError(f"no job {job_id!r}")
    return state
