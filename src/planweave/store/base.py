"""The store protocol: the truth about jobs, tasks, their event log and artifacts.

A store commits one ``Batch`` per transaction: the state rows that changed and the events that
record the change, together (the event log doubles as the outbox). Only the control plane writes.
Rows are the plain dicts ``TaskState.to_row`` and ``JobState.to_row`` produce, so a backend never
needs to know the engine's classes beyond them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from planweave.events import Event
from planweave.state import JobState

__all__ = ["ArtifactRow", "Batch", "Command", "JobSummary", "Store"]


@dataclass(slots=True)
class ArtifactRow:
    """A file a job produced, stored in its workspace."""

    job_id: str
    name: str
    path: str
    size: int
    content_type: str
    created_at: float
    task_id: str | None = None


@dataclass(slots=True)
class Batch:
    """Everything one transaction writes."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.tasks or self.events or self.artifacts)


@dataclass(slots=True, frozen=True)
class JobSummary:
    """A job as listed: no tasks, no events."""

    job_id: str
    goal: str
    status: str
    created_at: float
    updated_at: float
    finished_at: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    tasks_total: int
    tasks_done: int
    error: str | None
    result: Any
    tenant: str = "default"


@dataclass(slots=True, frozen=True)
class Command:
    """A request from another process for the control plane that owns a job (``cancel``)."""

    id: int
    job_id: str
    name: str
    args: dict[str, Any]
    created_at: float


@runtime_checkable
class Store(Protocol):
    """Durable state of jobs. Every method may raise ``StoreUnavailable``."""

    url: str

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction; return once it is durable."""

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        """Queue ``batch`` behind earlier commits without waiting for it.

        Returns a future that resolves once the batch is durable (or fails with
        ``StoreUnavailable``). Batches become durable in the order they were queued, and a later
        ``commit`` returns only after every batch queued before it is durable.
        """

    async def load_job(self, job_id: str) -> JobState | None:
        """The job's current state (with its tasks), or ``None``."""

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobSummary]:
        """Jobs, newest first, optionally only those of one status and one tenant."""

    async def find_job(self, tenant: str, idempotency_key: str) -> str | None:
        """The id of the tenant's job submitted with this idempotency key, if any."""

    async def read_events(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The job's events with ``seq > after_seq``, in order."""

    async def active_job_ids(self) -> list[str]:
        """Ids of jobs that are not yet finished."""

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        """Artifacts of a job, oldest first."""

    async def claim_job(
        self, job_id: str, owner: str, *, lease_s: float, now: float, force: bool = False
    ) -> bool:
        """Take (or renew) ownership of a job's control for ``lease_s``.

        Returns ``False`` when another owner holds an unexpired claim (unless ``force``: then
        the claim is taken anyway, for a person who knows the other owner is gone).
        """

    async def release_job(self, job_id: str, owner: str) -> None:
        """Give up a claim (no-op when ``owner`` does not hold it)."""

    async def add_command(
        self, job_id: str, name: str, args: dict[str, Any], *, now: float
    ) -> None:
        """Leave a command for the job's owner (another process may own it)."""

    async def take_commands(self, job_ids: list[str]) -> list[Command]:
        """Remove and return pending commands for these jobs, oldest first."""

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job with its tasks, events and artifact rows."""
