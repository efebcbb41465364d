"""What the engine's methods return: how a job ended, and a queue as the metrics show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planweave.events import Usage

__all__ = ["JobResult", "QueueInfo"]


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job ended.

    Attributes:
        job_id: The job's id.
        status: ``succeeded``, ``failed`` or ``cancelled``.
        result: The final answer (the composer's Markdown for a goal; the final tasks' results
            for a user plan).
        error: Why it failed or was cancelled.
        artifacts: Paths of the files it produced.
        usage: Tokens and dollars spent.
    """

    job_id: str
    status: str
    result: Any = None
    error: str | None = None
    artifacts: tuple[Path, ...] = ()
    usage: Usage = field(default_factory=Usage)
    tasks: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A work or outcome queue as ``/metrics`` and the dead-letter page show it.

    Attributes:
        name: The queue's name on the bus.
        depth: Messages waiting on it.
        dead_letters: Messages it gave up on.
    """

    name: str
    depth: int
    dead_letters: int
