"""The context a tool runs in: where its files live, which limits apply, and whom it serves.

It is passed by the engine on every call rather than read from globals or the environment, so
one process can run tools for many jobs with different workspaces and policies side by side. A
tool built from something other than a Python function (an MCP tool, an agent, a script) finds
here what it needs to act for the calling task: that task's model and event sink (so its own
model calls are recorded like the agent's) and the task's deadline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from planweave.constants import DEFAULT_MAX_WORKSPACE_DEPTH
from planweave.errors import ConfigError
from planweave.llm._record import Emit, recorded_call
from planweave.llm.base import LlmRequest, LlmResponse, Model

if TYPE_CHECKING:
    from planweave.agents import AgentRegistry
    from planweave.llm._stream import LiveReplies
    from planweave.tools._approval import ApprovalGate
    from planweave.tools._isolation import ToolProcesses
    from planweave.tools._registry import ToolRegistry
    from planweave.tools._search import WebSearchConfig

__all__ = ["ToolContext"]


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """What a tool call may touch, injected into any tool parameter annotated ``ToolContext``.

    Attributes:
        workspace: Directory that file tools are confined to.
        job_id: Id of the job the call belongs to ("" outside a job).
        task_id: Id of the task the call belongs to ("" outside a task).
        allow_private_network: Let ``http_fetch`` reach loopback, private and link-local
            addresses (off by default: it guards against SSRF).
        http_timeout_s: Overall time limit of one ``http_fetch`` call, redirects included.
        max_fetch_bytes: Most bytes of a response body ``http_fetch`` reads.
        max_file_bytes: Largest file ``read_file`` reads and ``write_file`` writes.
        max_dir_depth: Deepest folder ``write_file`` creates (folders below the workspace).
        max_extract_bytes: Most bytes ``archive_extract`` unpacks from one archive (and
            ``archive_create`` packs into one).
        max_archive_members: Most members an archive may have for ``archive_list`` and
            ``archive_extract`` (and files ``archive_create`` packs).
        shell_commands: The executables the ``shell`` tool may run (empty: the tool is off).
        model: The calling task's model (``None`` outside a task).
        emit: The calling task's event sink (``None`` outside a task): receives the
            ``LlmCalled`` events of :meth:`complete`.
        agent: The agent making the call (``None`` for a ``tool`` task).
        deadline_at: When the calling task's timeout ends, in ``time.monotonic()`` seconds
            (``None``: no timeout).
        processes: The worker processes isolated tools run in (the engine's pool; ``None``:
            the process-wide shared pool).
        tools: The registered tools (``None`` outside a task): an agent wrapped as a tool
            runs with them.
        agents: The registered agents (``None`` outside a task): handoffs name them.
        live: Where the replies of :meth:`complete` stream while they are written, to whoever
            watches the task live (``None``: not streamed).
        web_search: The search service ``web_search`` asks (``None``: one found from
            ``BRAVE_API_KEY`` or ``TAVILY_API_KEY``, else none).
        egress: The hosts network tools may connect to, by the policy rule that allows them
            (``None``: no allowlist); the tool runtime holds every URL check of the call to
            it (``planweave.tools._net.check_url``), redirects included.
        approval: The task's approval gate: which calls wait for a person, and the decisions
            made on its calls (``None`` outside a job: nothing waits).
    """

    workspace: Path
    job_id: str = ""
    task_id: str = ""
    allow_private_network: bool = False
    http_timeout_s: float = 20.0
    max_fetch_bytes: int = 1_000_000
    max_file_bytes: int = 5_000_000
    max_dir_depth: int = DEFAULT_MAX_WORKSPACE_DEPTH
    max_extract_bytes: int = 100_000_000
    max_archive_members: int = 10_000
    shell_commands: tuple[str, ...] = ()
    model: Model | None = None
    emit: Emit | None = None
    agent: str | None = None
    deadline_at: float | None = None
    processes: ToolProcesses | None = None
    tools: ToolRegistry | None = None
    agents: AgentRegistry | None = None
    live: LiveReplies | None = None
    web_search: WebSearchConfig | None = None
    egress: Mapping[str, Sequence[str]] | None = None
    approval: ApprovalGate | None = None

    def remaining_s(self) -> float | None:
        """Seconds left before the task's deadline (never negative), or ``None`` without one."""
        if self.deadline_at is None:
            return None
        return max(0.0, self.deadline_at - time.monotonic())

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Call the task's model, recorded as an ``LlmCalled`` event in the task's log.

        A request that names no agent is recorded under :attr:`agent`.

        Raises:
            ConfigError: the call runs outside a task, with no model.
            ModelError: the model call failed.
        """
        if self.model is None:
            raise ConfigError(
                "this tool call has no model: tools reach the task's model only when the "
                "engine runs them for a task"
            )
        if request.agent is None and self.agent is not None:
            request = request.model_copy(update={"agent": self.agent})
        if self.emit is None:
            return await self.model.complete(request)
        return await recorded_call(
            self.model,
            request,
            emit=self.emit,
            job_id=self.job_id,
            task_id=self.task_id,
            live=self.live,
        )
