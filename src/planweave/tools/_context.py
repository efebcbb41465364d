"""The context a tool runs in: where its files live and which limits apply.

It is passed by the engine on every call rather than read from globals or the environment, so
one process can run tools for many jobs with different workspaces and policies side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    """

    workspace: Path
    job_id: str = ""
    task_id: str = ""
    allow_private_network: bool = False
    http_timeout_s: float = 20.0
    max_fetch_bytes: int = 1_000_000
    max_file_bytes: int = 5_000_000
