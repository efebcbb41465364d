"""An in-process store: plain dicts, nothing durable.

It is the default for tests and the benchmark store, so every operation is a few dict and list
operations: rows are kept as shallow copies of the dicts ``to_row`` produced, events in a
per-job list ordered by ``seq``. It follows the same contract as the SQL stores (the contract
suite runs against both), including the idempotence of events: an event whose ``seq`` is
already stored for its job is ignored.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from typing import Any

from planweave.errors import StoreUnavailable
from planweave.events import Event
from planweave.state import TERMINAL_JOB, TERMINAL_TASK, JobState
from planweave.store.base import ArtifactRow, Batch, Command, JobSummary

__all__ = ["MemoryStore"]


def _seq_of(event: Event) -> int:
    return event.seq


class MemoryStore:
    """A store that keeps everything in this process's memory (URL ``memory://``).

    Data lives as long as the object: closing and reopening it keeps everything.
    """

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._jobs: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self._events: dict[str, list[Event]] = {}
        self._artifacts: dict[str, dict[str, ArtifactRow]] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._commands: dict[str, list[Command]] = {}
        self._command_ids = itertools.count(1)
        self._closed = False
        self._done: asyncio.Future[None] | None = None

    async def __aenter__(self) -> MemoryStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Nothing to connect to; marks the store usable again after ``close``."""
        self._closed = False

    async def close(self) -> None:
        """Mark the store closed (the data stays for a later ``open``)."""
        self._closed = True

    # --- writes ----------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        """Apply ``batch`` at once (there is nothing to wait for)."""
        self._apply(batch)

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        """Apply ``batch`` at once; the returned future is already resolved."""
        self._apply(batch)
        # One resolved future per loop serves every call: a done future cannot change.
        loop = asyncio.get_running_loop()
        future = self._done
        if future is None or future.get_loop() is not loop:
            future = self._done = loop.create_future()
            future.set_result(None)
        return future

    def _apply(self, batch: Batch) -> None:
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")
        jobs = self._jobs
        for row in batch.jobs:
            job_id = row["job_id"]
            jobs[job_id] = dict(row)
            if job_id not in self._tasks:
                self._tasks[job_id] = {}
        all_tasks = self._tasks
        for row in batch.tasks:
            job_id = row["job_id"]
            tasks = all_tasks.get(job_id)
            if tasks is None:
                tasks = all_tasks[job_id] = {}
            tasks[row["task_id"]] = dict(row)
        all_events = self._events
        for event in batch.events:
            log = all_events.get(event.job_id)
            if log is None:
                all_events[event.job_id] = [event]
            elif event.seq > log[-1].seq:
                log.append(event)
            else:
                at = bisect.bisect_left(log, event.seq, key=_seq_of)
                if at == len(log) or log[at].seq != event.seq:
                    log.insert(at, event)
        for artifact in batch.artifacts:
            self._artifacts.setdefault(artifact.job_id, {})[artifact.name] = ArtifactRow(
                job_id=artifact.job_id,
                name=artifact.name,
                path=artifact.path,
                size=artifact.size,
                content_type=artifact.content_type,
                created_at=artifact.created_at,
                task_id=artifact.task_id,
            )

    # --- reads -----------------------------------------------------------------------------

    async def load_job(self, job_id: str) -> JobState | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        return JobState.from_rows(job, list(self._tasks.get(job_id, {}).values()))

    async def find_job(self, tenant: str, idempotency_key: str) -> str | None:
        for row in self._jobs.values():
            if row["tenant"] == tenant and row["idempotency_key"] == idempotency_key:
                return str(row["job_id"])
        return None

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobSummary]:
        rows = [
            r
            for r in self._jobs.values()
            if (status is None or r["status"] == status)
            and (tenant is None or r["tenant"] == tenant)
        ]
        rows.sort(key=lambda r: (r["created_at"], r["job_id"]), reverse=True)
        out: list[JobSummary] = []
        for row in rows[offset : offset + limit]:
            tasks = self._tasks.get(row["job_id"], {})
            done = sum(1 for t in tasks.values() if t["status"] in TERMINAL_TASK)
            out.append(
                JobSummary(
                    job_id=row["job_id"],
                    goal=row["goal"],
                    status=row["status"],
                    created_at=row["created_at"],
                    updated_at=row["updated_at"],
                    finished_at=row["finished_at"],
                    tokens_in=row["tokens_in"],
                    tokens_out=row["tokens_out"],
                    cost_usd=row["cost_usd"],
                    tasks_total=len(tasks),
                    tasks_done=done,
                    error=row["error"],
                    result=row["result"],
                    tenant=row["tenant"],
                )
            )
        return out

    async def read_events(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        log = self._events.get(job_id)
        if not log:
            return []
        start = 0 if after_seq <= 0 else bisect.bisect_right(log, after_seq, key=_seq_of)
        end = len(log) if limit is None else min(len(log), start + max(limit, 0))
        return log[start:end]

    async def active_job_ids(self) -> list[str]:
        rows = [r for r in self._jobs.values() if r["status"] not in TERMINAL_JOB]
        rows.sort(key=lambda r: (r["created_at"], r["job_id"]))
        return [r["job_id"] for r in rows]

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        rows = list(self._artifacts.get(job_id, {}).values())
        rows.sort(key=lambda a: (a.created_at, a.name))
        return rows

    # --- claims and commands ---------------------------------------------------------------

    async def claim_job(
        self, job_id: str, owner: str, *, lease_s: float, now: float, force: bool = False
    ) -> bool:
        """Take or renew the claim; ``False`` for an unknown job or another live owner."""
        if job_id not in self._jobs:
            return False
        held = self._claims.get(job_id)
        if not force and held is not None and held[0] != owner and held[1] >= now:
            return False
        self._claims[job_id] = (owner, now + lease_s)
        return True

    async def release_job(self, job_id: str, owner: str) -> None:
        held = self._claims.get(job_id)
        if held is not None and held[0] == owner:
            del self._claims[job_id]

    async def add_command(
        self, job_id: str, name: str, args: dict[str, Any], *, now: float
    ) -> None:
        command = Command(
            id=next(self._command_ids), job_id=job_id, name=name, args=dict(args), created_at=now
        )
        self._commands.setdefault(job_id, []).append(command)

    async def take_commands(self, job_ids: list[str]) -> list[Command]:
        if not self._commands:
            return []
        taken: list[Command] = []
        for job_id in job_ids:
            pending = self._commands.pop(job_id, None)
            if pending:
                taken.extend(pending)
        taken.sort(key=lambda c: c.id)
        return taken

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job; ``False`` when it is unknown or still running."""
        job = self._jobs.get(job_id)
        if job is None or job["status"] not in TERMINAL_JOB:
            return False
        del self._jobs[job_id]
        for table in (self._tasks, self._events, self._artifacts, self._claims, self._commands):
            table.pop(job_id, None)
        return True
