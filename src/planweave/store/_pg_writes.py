"""What one Postgres transaction writes: rows merged by key and sent as one statement, and the
checks a batch needs before it is written (which jobs it touches, which data Postgres cannot
hold)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from planweave.events import Event
from planweave.store import _postgres_sql as q
from planweave.store import _rows as rows
from planweave.store.base import ArtifactRow, Batch, StepRow

__all__ = ["Writes", "invalid_jobs", "jobs_of"]

_Conn = Any  # an asyncpg.Connection (asyncpg ships no type hints)


class Writes:
    """Rows to write, merged by key: one statement for jobs, tasks and events when flushed."""

    __slots__ = (
        "artifacts",
        "claims",
        "commands_done",
        "events",
        "jobs",
        "steps",
        "steps_cleared",
        "tasks",
    )

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[Event] = []
        self.artifacts: dict[tuple[str, str], ArtifactRow] = {}
        self.claims: list[tuple[Any, ...]] = []
        self.commands_done: list[int] = []
        self.steps: dict[tuple[str, str, str], StepRow] = {}
        self.steps_cleared: list[tuple[str, str]] = []

    def add(self, batch: Batch, claims: list[tuple[Any, ...]]) -> None:
        for row in batch.jobs:
            self.jobs[row["job_id"]] = row
        for row in batch.tasks:
            self.tasks[row["job_id"], row["task_id"]] = row
        self.events.extend(batch.events)
        for artifact in batch.artifacts:
            self.artifacts[artifact.job_id, artifact.name] = artifact
        self.claims.extend(claims)
        self.commands_done.extend(batch.commands_done)
        if batch.steps_cleared:
            cleared = set(batch.steps_cleared)
            for key in [k for k in self.steps if k[:2] in cleared]:
                del self.steps[key]  # added earlier in this transaction, cleared now
            self.steps_cleared.extend(batch.steps_cleared)
        for step in batch.steps:
            self.steps[step.job_id, step.task_id, step.step] = step

    async def flush(self, conn: _Conn) -> None:
        if self.jobs or self.tasks or self.events:
            await conn.execute(
                q.WRITE_ROWS.text,
                *_by_column(map(rows.encode_job, self.jobs.values()), len(rows.JOB_COLS)),
                *_by_column(map(rows.encode_task, self.tasks.values()), len(rows.TASK_COLS)),
                *_by_column(map(rows.encode_event, self.events), len(rows.EVENT_COLS)),
            )
            self.jobs.clear()
            self.tasks.clear()
            self.events.clear()
        if self.artifacts:
            await conn.executemany(
                q.UPSERT_ARTIFACT.text, map(rows.encode_artifact, self.artifacts.values())
            )
            self.artifacts.clear()
        if self.claims:
            for sql in (q.NEW_CLAIM, q.FORCE_CLAIM):
                args = [a for s, a in self.claims if s is sql]
                if args:
                    await conn.executemany(sql.text, args)
            self.claims.clear()
        if self.commands_done:
            await conn.execute(q.DELETE_COMMANDS.text, self.commands_done)
            self.commands_done = []
        if self.steps_cleared:
            await conn.executemany(q.DELETE_TASK_STEPS.text, self.steps_cleared)
            self.steps_cleared = []
        if self.steps:
            await conn.executemany(q.UPSERT_STEP.text, map(rows.encode_step, self.steps.values()))
            self.steps.clear()


def _by_column(encoded: Iterable[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column: the arrays ``unnest`` turns back into rows."""
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in encoded:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def jobs_of(batch: Batch) -> list[str]:
    """Every job ``batch`` creates or touches."""
    ids = list(batch.new_jobs)
    ids.extend(row["job_id"] for row in batch.jobs)
    ids.extend(row["job_id"] for row in batch.tasks)
    ids.extend(e.job_id for e in batch.events)
    ids.extend(a.job_id for a in batch.artifacts)
    ids.extend(s.job_id for s in batch.steps)
    ids.extend(job_id for job_id, _ in batch.steps_cleared)
    return ids


def invalid_jobs(batch: Batch) -> dict[str, str]:
    """The jobs of ``batch`` whose data Postgres cannot store, with why: what every SQL store
    refuses (``_rows.invalid_jobs``), and text holding a NUL character, which Postgres text and
    JSON cannot hold."""
    bad = rows.invalid_jobs(batch)

    def check(job_id: str, what: str, encode: Callable[[Any], tuple[Any, ...]], item: Any) -> None:
        if job_id in bad:
            return
        for value in encode(item):
            if isinstance(value, str) and ("\x00" in value or "\\u0000" in value):
                bad[job_id] = f"its {what} holds a NUL character, which PostgreSQL cannot store"
                return

    for row in batch.jobs:
        check(row["job_id"], "job row", rows.encode_job, row)
    for row in batch.tasks:
        check(row["job_id"], f"row of task {row['task_id']!r}", rows.encode_task, row)
    for event in batch.events:
        check(event.job_id, f"{event.type} event", rows.encode_event, event)
    for artifact in batch.artifacts:
        check(artifact.job_id, "artifact", rows.encode_artifact, artifact)
    for step in batch.steps:
        check(step.job_id, "journal step", rows.encode_step, step)
    return bad
