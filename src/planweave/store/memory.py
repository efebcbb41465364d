"""An in-process store: plain dicts, nothing durable.

It is the default for tests and the benchmark store, so every operation is a few dict and list
operations: rows are kept as shallow copies of the dicts ``to_row`` produced, events in a
per-job list ordered by ``seq``. It follows the same contract as the SQL stores (the contract
suite runs against both): a batch is checked whole (owner fence, jobs refused for bad data,
``seq`` conflicts, events that have no JSON form) before any of it is applied, so a rejected
batch leaves nothing behind, and claims and commands are timed by the store's clock. Rows are
not encoded (they follow from the events), so that check costs one JSON encoding per event.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from planweave.errors import ClaimLost, JobDataInvalid, LogConflict, StoreUnavailable
from planweave.events import Event, Usage
from planweave.state import TERMINAL_JOB, TERMINAL_TASK, JobState
from planweave.store import _rows
from planweave.store._fence import Refusals, unheld_jobs
from planweave.store.base import (
    ArtifactRow,
    Batch,
    Claim,
    Command,
    JobSummary,
    StepRow,
    TenantUsage,
)

__all__ = ["MemoryStore"]


_PLAIN = frozenset({type(None), int, float, bool, Usage})
"""Types of event fields that always encode."""


def _encodes(event: Event) -> bool:
    """Whether ``event`` plainly has a JSON form (scalars, valid text, an empty dict); when it
    holds anything else, only encoding it tells."""
    for value in event.__dict__.values():
        kind = type(value)
        if kind is str:
            if not value.isascii():
                value.encode("utf-8")  # a lone surrogate raises (a ValueError)
        elif kind not in _PLAIN and not (kind is dict and not value):
            return False
    return True


def _seq_of(event: Event) -> int:
    return event.seq


def _has_seq(log: list[Event], seq: int) -> bool:
    if seq > log[-1].seq:
        return False
    at = bisect.bisect_left(log, seq, key=_seq_of)
    return at < len(log) and log[at].seq == seq


class MemoryStore:
    """A store that keeps everything in this process's memory (URL ``memory://``).

    Data lives as long as the object: closing and reopening it keeps everything.

    Args:
        url: ``memory://``.
        clock: The store's clock (seconds since the epoch) for claims and commands; injectable
            for tests.
    """

    announces_commands = False

    def __init__(self, url: str = "memory://", *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.clock = clock
        self._jobs: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self._events: dict[str, list[Event]] = {}
        self._artifacts: dict[str, dict[str, ArtifactRow]] = {}
        self._steps: dict[str, dict[tuple[str, str], StepRow]] = {}
        self._claims: dict[str, Claim] = {}  # ``now`` unused: set when read
        self._commands: dict[str, list[Command]] = {}
        self._command_ids = itertools.count(1)
        self._closed = False
        self._done: asyncio.Future[None] | None = None
        self._refusals = Refusals()

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
        """Apply ``batch`` at once; the returned future is already done.

        A rejected batch (``ClaimLost``, ``LogConflict``, ``JobDataInvalid``) fails its future,
        as a queued batch of a SQL store would; a closed store raises at once, as theirs do.
        """
        loop = asyncio.get_running_loop()
        try:
            self._apply(batch)
        except (ClaimLost, JobDataInvalid) as exc:
            failed: asyncio.Future[None] = loop.create_future()
            failed.set_exception(exc)
            return failed
        # One resolved future per loop serves every call: a done future cannot change.
        future = self._done
        if future is None or future.get_loop() is not loop:
            future = self._done = loop.create_future()
            future.set_result(None)
        return future

    def _apply(self, batch: Batch) -> None:
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")
        if batch.owner is not None:
            self._fence(batch, batch.owner)
        if self._refusals:
            refused = self._refusals.check(batch)
            if refused:
                raise JobDataInvalid(refused)
        if batch.events:
            self._check_events(batch)
            self._check_seqs(batch.events)
        # Checked: from here on nothing fails, so the batch is applied whole.
        if batch.new_jobs:
            assert batch.owner is not None
            expires_at = self.clock() + batch.claim_lease_s
            for job_id in batch.new_jobs:
                self._claims[job_id] = self._claim(job_id, batch.owner, expires_at)
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
                log.insert(bisect.bisect_left(log, event.seq, key=_seq_of), event)
        for artifact in batch.artifacts:
            self._artifacts.setdefault(artifact.job_id, {})[artifact.name] = replace(artifact)
        for job_id, task_id in batch.steps_cleared:
            kept_steps = self._steps.get(job_id)
            if kept_steps:
                for key in [k for k in kept_steps if k[0] == task_id]:
                    del kept_steps[key]
        for step in batch.steps:
            self._steps.setdefault(step.job_id, {})[step.task_id, step.step] = replace(step)
        if batch.commands_done and self._commands:
            done = set(batch.commands_done)
            for job_id in list(self._commands):
                kept = [c for c in self._commands[job_id] if c.id not in done]
                if kept:
                    self._commands[job_id] = kept
                else:
                    del self._commands[job_id]

    def _fence(self, batch: Batch, owner: str) -> None:
        """Raise ``ClaimLost`` unless ``owner`` holds (or may create) every job of ``batch``."""
        claims = self._claims

        def owner_of(job_id: str) -> str | None:
            held = claims.get(job_id)
            return None if held is None else held.owner

        lost = unheld_jobs(batch, owner, owner_of)
        if lost:
            raise ClaimLost(lost)

    def _check_events(self, batch: Batch) -> None:
        """Raise ``JobDataInvalid`` naming the jobs whose events have no JSON form.

        An event of scalars and text is checked field by field; one holding anything more (a
        result, a plan, a tool call's arguments) is encoded as a SQL store would.
        """
        encode = _rows.encode_event
        try:
            for event in batch.events:
                if not _encodes(event):
                    encode(event)
        except ValueError:
            bad = _rows.invalid_jobs(Batch(events=batch.events))
            self._refusals.refuse(batch, tuple(bad))
            raise JobDataInvalid(bad) from None

    def _check_seqs(self, events: list[Event]) -> None:
        """Raise ``LogConflict`` for an event whose ``(job_id, seq)`` is stored or repeated."""
        all_events = self._events
        # Fast path: each job's events come after everything stored for it, in order.
        top: dict[str, int] = {}
        for event in events:
            job_id = event.job_id
            high = top.get(job_id)
            if high is None:
                log = all_events.get(job_id)
                high = log[-1].seq if log else 0
            if event.seq <= high:
                break
            top[job_id] = event.seq
        else:
            return
        seen: set[tuple[str, int]] = set()
        for event in events:
            key = (event.job_id, event.seq)
            log = all_events.get(event.job_id)
            if key in seen or (log and _has_seq(log, event.seq)):
                raise LogConflict(event.job_id, event.seq)
            seen.add(key)

    @staticmethod
    def _claim(job_id: str, owner: str, expires_at: float) -> Claim:
        return Claim(job_id, owner, socket.gethostname(), os.getpid(), expires_at, 0.0)

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

    async def tenant_usage(self, tenant: str, *, since: float) -> TenantUsage:
        active = stored = 0
        spent = 0.0
        for row in self._jobs.values():
            if row["tenant"] != tenant:
                continue
            if row["status"] not in TERMINAL_JOB:
                active += 1
            if row["updated_at"] >= since:
                spent += row["cost_usd"]
            stored += row["data_bytes"]
            stored += sum(a.size for a in self._artifacts.get(row["job_id"], {}).values())
        return TenantUsage(active_jobs=active, stored_bytes=stored, spent_usd=spent)

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobSummary]:
        rows_ = [
            r
            for r in self._jobs.values()
            if (status is None or r["status"] == status)
            and (tenant is None or r["tenant"] == tenant)
        ]
        rows_.sort(key=lambda r: (r["created_at"], r["job_id"]), reverse=True)
        out: list[JobSummary] = []
        for row in rows_[offset : offset + limit]:
            tasks = self._tasks.get(row["job_id"], {})
            claim = self._claims.get(row["job_id"])
            out.append(
                _rows.decode_summary(
                    row,
                    tasks_total=len(tasks),
                    tasks_done=sum(1 for t in tasks.values() if t["status"] in TERMINAL_TASK),
                    owner=None if claim is None else claim.owner,
                    claim_expires_at=None if claim is None else claim.expires_at,
                    result_is_json=False,
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
        self, job_id: str, owner: str, *, lease_s: float, force: bool = False
    ) -> bool:
        """Take or renew the claim; ``False`` for an unknown job or another live owner."""
        self._check_open()
        if job_id not in self._jobs:
            return False
        now = self.clock()
        held = self._claims.get(job_id)
        if not force and held is not None and held.owner != owner and held.expires_at >= now:
            return False
        self._claims[job_id] = self._claim(job_id, owner, now + lease_s)
        return True

    async def read_claim(self, job_id: str) -> Claim | None:
        held = self._claims.get(job_id)
        return None if held is None else replace(held, now=self.clock())

    async def release_job(self, job_id: str, owner: str) -> None:
        held = self._claims.get(job_id)
        if held is not None and held.owner == owner:
            del self._claims[job_id]

    async def add_command(self, job_id: str, name: str, args: dict[str, Any]) -> None:
        self._check_open()
        command = Command(
            id=next(self._command_ids),
            job_id=job_id,
            name=name,
            args=_rows.load(_rows.dump(args)),  # a copy, as a SQL store would give back
            created_at=self.clock(),
        )
        self._commands.setdefault(job_id, []).append(command)

    async def wait_commands(self, timeout_s: float) -> bool:
        """Sleep ``timeout_s``: this store does not announce commands; they are polled."""
        await asyncio.sleep(timeout_s)
        return True

    async def read_commands(self, job_ids: list[str]) -> list[Command]:
        if not self._commands:
            return []
        found: list[Command] = []
        for job_id in set(job_ids):
            found.extend(self._commands.get(job_id, ()))
        found.sort(key=lambda c: c.id)
        return found

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")

    async def read_steps(self, job_id: str) -> list[StepRow]:
        self._check_open()
        found = self._steps.get(job_id, {})
        return [replace(found[key]) for key in sorted(found)]

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job; ``False`` when it is unknown or still running."""
        job = self._jobs.get(job_id)
        if job is None or job["status"] not in TERMINAL_JOB:
            return False
        del self._jobs[job_id]
        for table in (
            self._tasks,
            self._events,
            self._artifacts,
            self._claims,
            self._commands,
            self._steps,
        ):
            table.pop(job_id, None)
        return True
