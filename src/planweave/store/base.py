"""The store protocol: the truth about jobs, tasks, their event log and artifacts.

A store commits one ``Batch`` per transaction: the state rows that changed and the events that
record the change, together (the event log doubles as the outbox). Only the control plane that
owns a job writes it: each job has at most one *claim* (an owner and a lease, timed by the
store's own clock, so machines with skewed clocks agree), and a batch that names an ``owner`` is
written only while that owner holds the claim of every job it touches. An event's
``(job_id, seq)`` is unique: a second event with the same pair is a second writer, an error,
never silently dropped. Rows are the plain dicts ``TaskState.to_row`` and ``JobState.to_row``
produce, so a backend never needs to know the engine's classes beyond them; their encoding to
columns is shared by every SQL store (``planweave.store._rows``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from planweave.events import Event
from planweave.state import JobState

__all__ = [
    "ArtifactRow",
    "Batch",
    "Claim",
    "Command",
    "JobSummary",
    "StepRow",
    "Store",
    "TenantUsage",
]


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
class StepRow:
    """One completed model or tool call of a running task, kept for replay (the step journal).

    Attributes:
        step: The call's place in the task's run: ``"3"`` for its fourth call, ``"3.0"`` for
            the first call made inside call ``"3"`` (a tool that calls the model).
        attempt: The attempt that recorded it.
        kind: ``model`` or ``tool``.
        fingerprint: What was asked (a hash of the request, or of the tool's name and
            arguments): a replayed run whose call differs from it goes on live.
        result: What the call returned, as JSON.
    """

    job_id: str
    task_id: str
    step: str
    attempt: int
    kind: str
    fingerprint: str
    result: Any
    at: float


@dataclass(slots=True)
class Batch:
    """Everything one transaction writes, all of it or nothing.

    Attributes:
        jobs: Job rows (``JobState.to_row``), upserted by ``job_id``.
        tasks: Task rows (``TaskState.to_row``), upserted by ``(job_id, task_id)``.
        events: Events appended to their job's log. An event whose ``(job_id, seq)`` is already
            stored, or appears twice in the batch, fails the batch with ``LogConflict``.
        artifacts: Artifact rows, upserted by ``(job_id, name)``.
        owner: The control plane writing the batch. When set, every job that has a row, a
            task, an event or an artifact in the batch must be claimed by ``owner`` when the
            batch is written (a claim of ``owner`` that expired and that nobody else took
            still counts as held); otherwise the whole batch is rejected with ``ClaimLost``
            naming those jobs, and nothing of it is written. ``None`` writes unfenced (tools
            that repair a store; the engine always sets it).
        new_jobs: Jobs this batch creates. The store records ``owner``'s claim on each (lease
            ``claim_lease_s`` from the store's clock) in the same transaction as their rows, so
            a job is never stored without an owner. A job in ``new_jobs`` already claimed by
            another owner (expired or not) rejects the batch with ``ClaimLost``. Needs
            ``owner``.
        claim_lease_s: The lease of the claims ``new_jobs`` records.
        commands_done: Ids of commands (``Store.read_commands``) deleted in this transaction, so
            a command is forgotten only together with the effect it had. Unknown ids are
            ignored.
        steps: Journal steps (``StepRow``), upserted by ``(job_id, task_id, step)``.
        steps_cleared: ``(job_id, task_id)`` pairs whose journal steps are deleted, before
            the batch's ``steps`` are written (a task whose attempt ended).
    """

    jobs: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)
    owner: str | None = None
    new_jobs: list[str] = field(default_factory=list)
    claim_lease_s: float = 30.0
    commands_done: list[int] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    steps_cleared: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.new_jobs and self.owner is None:
            raise ValueError("a Batch with new_jobs must name its owner")

    def __bool__(self) -> bool:
        return bool(
            self.jobs
            or self.tasks
            or self.events
            or self.artifacts
            or self.new_jobs
            or self.commands_done
            or self.steps
            or self.steps_cleared
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """Who drives a job, as the store records it.

    ``host`` and ``pid`` name the claiming process, so a process on the same host can see that
    the owner is gone and take over at once. ``now`` is the store's clock when the claim was
    read: compare ``expires_at`` with it, never with the local clock.
    """

    job_id: str
    owner: str
    host: str
    pid: int
    expires_at: float
    now: float

    @property
    def expired(self) -> bool:
        """Whether the lease ran out: another owner may take the job without force."""
        return self.expires_at < self.now


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
    owner: str | None = None
    claim_expires_at: float | None = None


@dataclass(slots=True, frozen=True)
class Command:
    """A request from another process for the control plane that owns a job (``cancel``)."""

    id: int
    job_id: str
    name: str
    args: dict[str, Any]
    created_at: float


@dataclass(slots=True, frozen=True)
class TenantUsage:
    """What one tenant's stored jobs hold and spent (``Store.tenant_usage``).

    Attributes:
        active_jobs: The tenant's jobs that have not ended (running or waiting to run).
        stored_bytes: The ``data_bytes`` of all the tenant's jobs plus the sizes of their
            artifact rows.
        spent_usd: The ``cost_usd`` of the tenant's jobs last updated at or after ``since``
            (a job that ran at any time in the window counts with all it spent).
    """

    active_jobs: int = 0
    stored_bytes: int = 0
    spent_usd: float = 0.0


@runtime_checkable
class Store(Protocol):
    """Durable state of jobs. Every method may raise ``StoreUnavailable``.

    Shared by every process that opens the same URL: their claims, commands and batches meet
    in it. Times it records for claims and commands come from the store's own clock (for a
    server database, the server's ``now()``), never from the caller's. A read sees every batch
    and operation this store object accepted before it (queued or durable) and whatever other
    processes committed before it began; a read is one consistent snapshot.
    """

    url: str
    announces_commands: bool
    """Whether ``wait_commands`` hears at once of a command any process leaves (PostgreSQL's
    ``LISTEN``): a control plane on such a store reads commands when told, else it polls."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""

    async def close(self) -> None:
        """Flush pending writes and disconnect."""

    async def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction; return once it is durable.

        Raises:
            ClaimLost: ``batch.owner`` does not hold the claim of a job it touches.
            LogConflict: an event's ``(job_id, seq)`` is already in the log.
            StoreUnavailable: the write failed (disk full, file gone); nothing was written
                and the store stays readable.
        """

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        """Queue ``batch`` behind earlier commits without waiting for it.

        Returns a future that resolves once the batch is durable, or fails with the errors
        ``commit`` raises. Batches become durable in the order they were queued, and a later
        ``commit`` returns only after every batch queued before it is written or failed. Each
        batch succeeds or fails on its own: a store that writes several queued batches in one
        transaction must not let one rejected batch fail or change the others.
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

    async def tenant_usage(self, tenant: str, *, since: float) -> TenantUsage:
        """The tenant's usage, from its job and artifact rows in one read (``TenantUsage``).

        ``since`` is a time on the engine's clock (seconds since the epoch, compared with the
        jobs' ``updated_at``). An unknown tenant has all zeros. Deleted jobs count for nothing.
        """

    async def read_events(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The job's events with ``seq > after_seq``, in order."""

    async def active_job_ids(self) -> list[str]:
        """Ids of jobs that are not yet finished."""

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        """Artifacts of a job, oldest first."""

    async def claim_job(
        self, job_id: str, owner: str, *, lease_s: float, force: bool = False
    ) -> bool:
        """Take or renew ``owner``'s claim on a job, until the store's clock + ``lease_s``.

        The claim records the calling process's host name and pid. Renewing one's own claim
        succeeds even after it expired, as long as nobody else took it. Claims are written in
        queue order with the batches (a claim queued after a batch is taken after it).

        Returns:
            ``False`` for an unknown job, or while another owner's claim is unexpired (unless
            ``force``: then the claim is taken anyway, for a person who knows the other owner
            is gone; that owner's next batch fails with ``ClaimLost``).
        """

    async def read_claim(self, job_id: str) -> Claim | None:
        """The job's claim, expired or not; ``None`` when nobody holds it or there is no job."""

    async def release_job(self, job_id: str, owner: str) -> None:
        """Give up a claim (no-op when ``owner`` does not hold it)."""

    async def add_command(self, job_id: str, name: str, args: dict[str, Any]) -> None:
        """Leave a command for the job's owner (another process may own it), stamped with the
        store's clock. Ids grow: a later command has a greater id."""

    async def read_commands(self, job_ids: list[str]) -> list[Command]:
        """Pending commands for these jobs, oldest (smallest id) first, without removing them.

        A command stays pending until a batch lists its id in ``Batch.commands_done``, so a
        command whose effect was never written is read again (by this owner or the next).
        """

    async def wait_commands(self, timeout_s: float) -> bool:
        """Wait until commands may be waiting for some job, at most ``timeout_s``.

        Returns whether to read them: a store that ``announces_commands`` returns ``True`` as
        soon as one is left (or when it may have missed one, as after a lost connection) and
        ``False`` at the timeout; one that does not returns ``True`` after the timeout.
        """

    async def read_steps(self, job_id: str) -> list[StepRow]:
        """The job's journal steps, ordered by task and then by step (as text)."""

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job with its tasks, events, artifact rows, claim, commands and
        journal steps.

        Returns ``False`` (deleting nothing) when the job is unknown or not finished.
        """
