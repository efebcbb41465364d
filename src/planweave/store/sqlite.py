"""The embedded default store: one SQLite file in WAL mode, written by one thread.

Why a writer thread and not an async driver: a durable step costs one commit, and a commit of
a few rows costs about 27 µs in SQLite itself (WAL, ``synchronous=NORMAL``) but 200 to 400 µs when
every statement makes its own thread round trip (aiosqlite). So one thread owns the write
connection, drains a queue of batches and writes everything queued in one transaction (group
commit) with ``executemany`` upserts, then wakes each waiter through its event loop. The queue is
FIFO, so when an awaited ``commit`` returns, every batch queued before it is durable too.

Reads run on a second connection in a second thread. WAL lets them proceed while the writer
writes, and every read starts a fresh snapshot, so it sees what other processes committed (the
CLI follows a job's events from another process this way). The SQL comes from the SQLAlchemy Core
tables of ``_schema``, rendered ahead of time to SQLite text (``_sqlite_sql``, written by
``_sqlgen`` and checked by a test): the store runs plain ``sqlite3`` and never imports
SQLAlchemy, so a command that only reads a job starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast, get_args
from urllib.parse import parse_qsl

from planweave.constants import STORE_SCHEMA_VERSION, STORE_SCHEMA_VERSION_KEY, TABLE_META
from planweave.errors import (
    ClaimLost,
    ConfigError,
    JobDataInvalid,
    LogConflict,
    PlanweaveError,
    StoreUnavailable,
)
from planweave.events import Event, parse_event
from planweave.state import JobState
from planweave.store import _rows as rows
from planweave.store import _sqlite_sql as q
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

__all__ = ["SqliteStore", "Synchronous"]

log = logging.getLogger(__name__)

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
T = TypeVar("T")

# --- the store ------------------------------------------------------------------------------------

_Op = Callable[[sqlite3.Connection], Any]
_STOP: Final = object()


@dataclass(slots=True)
class _Work:
    """One queued write: a batch or an operation, and who waits for it (if anyone)."""

    number: int
    batch: Batch | None
    op: _Op | None
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None
    soon: bool = False  # queued by ``commit_soon``: nobody is blocked on it


_Outcome = tuple[Any, BaseException | None]
_WRITTEN: Final[_Outcome] = (None, None)


def _settle(outcomes: Sequence[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _Checkpointer:
    """Copies the WAL back into the database file on its own thread.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold, and it
    fsyncs twice: that commit (and whoever awaits it) would wait milliseconds. Here the writer
    only pokes this thread every ``_CHECKPOINT_EVERY`` transactions; a PASSIVE checkpoint runs
    beside the writer without blocking it.

    That alone does not keep the WAL small. SQLite starts the WAL over from its beginning only
    when a transaction begins after a checkpoint copied *every* frame, and under a steady stream
    of commits the writer appends frames while this thread copies, so its checkpoint never
    quite completes and the WAL grows for as long as the stream lasts. So the writer also looks
    at the WAL's size between two of its transactions, and once it passes the store's limit it
    runs a PASSIVE checkpoint itself: with no transaction beside it, that one completes (it
    copies only what this thread has not copied yet), the next transaction starts the WAL
    over, and ``journal_size_limit`` truncates the file back to the limit.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], url: str) -> None:
        self._connect = connect
        self._url = url
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="planweave-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next poke tries again; the WAL keeps the data
                    log.warning("checkpoint of %s failed: %s", self._url, exc)
        finally:
            if conn is not None:
                conn.close()


_LINGER_S: Final = 0.001
"""How long the writer waits for more batches before a transaction of ``commit_soon`` batches
while they stream in (it wrote one less than this ago). A commit costs more than the rows in it
(WAL frames for every page it touched, a wake-up of the event loop), so ten steps of a chain
in one transaction cost a fraction of ten transactions; an isolated commit, or any caller
blocked in ``commit`` or an operation, is written at once."""

_CHECKPOINT_EVERY: Final = 64
"""Transactions between two pokes of the checkpointer, and two looks at the WAL's size."""


class SqliteStore:
    """A store in one SQLite file (URL ``sqlite:///relative.db`` or ``sqlite:////abs.db``).

    Args:
        url: The file's URL; its parent folders are created. ``?synchronous=FULL`` in the URL
            sets the option below.
        synchronous: SQLite's ``synchronous`` setting. ``NORMAL`` (the default) survives a crash
            of the application, as a ``kill -9``; ``FULL`` also survives a power cut, at the cost
            of an fsync per commit.
        busy_timeout_ms: How long a statement waits for a lock another process holds.
        clock: The store's clock (seconds since the epoch) for claims and commands; every
            process sharing the file should use the real one. Injectable for tests.
        wal_max_pages: Once the write-ahead log holds more than this many pages, the writer
            checkpoints it and starts it over, so the ``-wal`` file stays about this size
            (4096 pages of 4 KiB: 16 MiB) however long a run lasts.
    """

    announces_commands = False

    def __init__(
        self,
        url: str,
        *,
        synchronous: Synchronous | None = None,
        busy_timeout_ms: int = 5000,
        clock: Callable[[], float] = time.time,
        wal_max_pages: int = 4096,
    ) -> None:
        self.url = url
        self.clock = clock
        self.wal_max_pages = wal_max_pages
        self.path, query = _parse_url(url)
        level = (synchronous or query.get("synchronous") or "NORMAL").upper()
        if level not in get_args(Synchronous):
            raise ConfigError(
                f"synchronous={level!r} is not valid for {url!r}: use one of "
                + ", ".join(get_args(Synchronous))
            )
        self.synchronous = cast(Synchronous, level)
        self.busy_timeout_ms = int(query.get("busy_timeout_ms", busy_timeout_ms))
        self._queue: queue.SimpleQueue[_Work | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._queued = 0  # numbers handed out (event loop side)
        self._written = 0  # highest number written (writer side)
        self._checkpointer: _Checkpointer | None = None
        self._transactions = 0
        self._refusals = Refusals()  # writer side
        # Jobs one of whose batches failed to write (touched by the writer thread only): until
        # one of their batches follows on from the stored log, a batch decided on top of the
        # lost one is refused (``_gap``), so the log never has a gap.
        self._broken: set[str] = set()
        self._closed = True

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it and its folders), bring the schema up to date, and start
        the writer thread. Idempotent.

        Raises:
            ConfigError: the file was written by a newer planweave.
            StoreUnavailable: the file cannot be opened or is not a database.
        """
        if not self._closed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder of {self.url}: {exc}") from exc
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._queue = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, args=(loop, ready), name="planweave-sqlite-writer", daemon=True
        )
        self._writer.start()
        try:
            await ready
        except BaseException:
            await asyncio.to_thread(self._writer.join)
            self._writer = None
            raise
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="planweave-sqlite-reader")
        self._closed = False

    async def close(self) -> None:
        """Write everything queued, then stop the threads and close the connections.

        Raises:
            StoreUnavailable: a batch queued with ``commit_soon`` could not be written.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await asyncio.get_running_loop().run_in_executor(reader, self._close_reader)
            reader.shutdown(wait=False)

    # --- writes ----------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        """Write ``batch`` (with everything queued before it) and wait until it is durable."""
        await self._submit(batch, None)

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        """Queue ``batch`` for the writer and return a future that resolves once it is durable."""
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queued += 1
        self._queue.put(_Work(self._queued, batch, None, future, loop, True))
        return future

    async def _submit(self, batch: Batch | None, op: _Op | None) -> Any:
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued += 1
        self._queue.put(_Work(self._queued, batch, op, future, loop))
        return await future

    # --- the writer thread -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False,
            timeout=self.busy_timeout_ms / 1000,
        )  # fmt: skip
        conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms:d}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see _Checkpointer
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute(f"PRAGMA journal_size_limit={self.wal_max_pages * page_size:d}")
        return conn

    def _write_loop(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
            try:
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        except BaseException as exc:
            error = self._translate(exc, "open")
            loop.call_soon_threadsafe(_settle, [(ready, None, error)])
            return
        loop.call_soon_threadsafe(_settle, [(ready, None, None)])
        checkpointer = self._checkpointer = _Checkpointer(self._connect, self.url)
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        wal, wal_limit = f"{self.path}-wal", self.wal_max_pages * page_size
        get, get_nowait = self._queue.get, self._queue.get_nowait
        clock = time.monotonic
        last_commit = -math.inf

        def drain(group: list[_Work | object]) -> None:
            while True:
                try:
                    group.append(get_nowait())
                except queue.Empty:
                    return

        try:
            while True:
                group = [get()]
                drain(group)
                if clock() - last_commit < _LINGER_S and all(
                    isinstance(w, _Work) and w.soon for w in group
                ):
                    time.sleep(_LINGER_S)
                    drain(group)
                stop = _STOP in group
                work = [w for w in group if isinstance(w, _Work)]
                if work:
                    self._write_group(conn, work)
                    last_commit = clock()
                    if self._transactions % _CHECKPOINT_EVERY == 0:
                        if _file_size(wal) > wal_limit:
                            self._checkpoint(conn)
                        checkpointer.poke()
                if stop:
                    return
        finally:
            checkpointer.stop()
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed: %s", self.url, exc)

    def _write_group(self, conn: sqlite3.Connection, group: list[_Work]) -> None:
        """Write ``group`` in one transaction; when that fails, write its items one by one so
        that one bad batch fails alone. A batch the owner fence rejects is left out of the
        transaction and fails alone without failing it."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes = self._apply(conn, group)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            if len(group) > 1:
                for work in group:
                    self._write_group(conn, [work])
                return
            self._finish(group, [(None, self._failure(conn, group[0], exc))])
            return
        self._transactions += 1  # counted before anyone hears of it
        self._finish(group, outcomes)

    def _failure(self, conn: sqlite3.Connection, work: _Work, exc: Exception) -> BaseException:
        """The error of a write that failed alone: ``LogConflict`` when one of its events is a
        second writer's (in the log already, or twice in the batch), ``JobDataInvalid`` when
        some of its jobs' data cannot be encoded, else ``StoreUnavailable``."""
        if isinstance(exc, sqlite3.IntegrityError) and work.batch is not None:
            seen: set[tuple[str, int]] = set()
            for event in work.batch.events:
                key = (event.job_id, event.seq)
                try:
                    stored = conn.execute(q.EVENT_EXISTS.text, key).fetchone() is not None
                except sqlite3.Error:
                    break
                if key in seen or stored:
                    conflict = LogConflict(event.job_id, event.seq)
                    conflict.__cause__ = exc
                    return conflict
                seen.add(key)
        if work.batch is not None and not isinstance(exc, sqlite3.OperationalError):
            # A value that cannot be encoded or bound: name the jobs whose data it was, so
            # that they fail alone and the rest of the batch can be written without them.
            bad = rows.invalid_jobs(work.batch)
            if bad:
                self._refusals.refuse(work.batch, tuple(bad))
                invalid = JobDataInvalid(bad)
                invalid.__cause__ = exc
                return invalid
        error = self._translate(exc, "write")
        if isinstance(error, StoreUnavailable):
            error.args = (f"{error}; nothing of this batch was written",)
            if work.batch is not None:
                self._broken.update(e.job_id for e in work.batch.events)
        return error

    def _gap(self, conn: sqlite3.Connection, batch: Batch) -> LogConflict | None:
        """``LogConflict`` for a batch whose events of a job that failed to write would not
        follow on from the stored log; a job whose batch does follow on is whole again."""
        firsts: dict[str, int] = {}
        for event in batch.events:
            firsts.setdefault(event.job_id, event.seq)
        for job_id, first in firsts.items():
            if job_id not in self._broken:
                continue
            (stored,) = conn.execute(q.LAST_SEQ.text, (job_id,)).fetchone()
            if first != (stored or 0) + 1:
                return LogConflict(job_id, first)
            self._broken.discard(job_id)
        return None

    def _apply(self, conn: sqlite3.Connection, group: list[_Work]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        # A row written several times in one transaction is written once, as it was last: a
        # chain's job row changes on every step, and each task row on two or three.
        jobs: dict[str, dict[str, Any]] = {}
        tasks: dict[tuple[str, str], dict[str, Any]] = {}
        events: list[Event] = []
        artifacts: dict[tuple[str, str], ArtifactRow] = {}
        claims: dict[str, tuple[Any, ...]] = {}
        commands_done: list[tuple[int]] = []
        steps: dict[tuple[str, str, str], StepRow] = {}
        steps_cleared: list[tuple[str, str]] = []
        # The owner of each job as this transaction stands: looked up once per job, then kept
        # up to date by the claims it writes (an operation may change any, so it clears it).
        owners: dict[str, str | None] = {}

        def owner_of(job_id: str) -> str | None:
            try:
                return owners[job_id]
            except KeyError:
                row = conn.execute(q.SELECT_OWNER.text, (job_id,)).fetchone()
                owner = owners[job_id] = None if row is None else row[0]
                return owner

        def flush() -> None:
            if jobs:
                conn.executemany(q.UPSERT_JOB.text, map(rows.encode_job, jobs.values()))
                jobs.clear()
            if tasks:
                conn.executemany(q.UPSERT_TASK.text, map(rows.encode_task, tasks.values()))
                tasks.clear()
            if events:
                conn.executemany(q.INSERT_EVENT.text, map(rows.encode_event, events))
                events.clear()
            if artifacts:
                conn.executemany(
                    q.UPSERT_ARTIFACT.text, map(rows.encode_artifact, artifacts.values())
                )
                artifacts.clear()
            if claims:
                conn.executemany(q.FORCE_CLAIM.text, claims.values())
                claims.clear()
            if commands_done:
                conn.executemany(q.DELETE_COMMAND.text, commands_done)
                commands_done.clear()
            if steps_cleared:
                conn.executemany(q.DELETE_TASK_STEPS.text, steps_cleared)
                steps_cleared.clear()
            if steps:
                conn.executemany(q.UPSERT_STEP.text, map(rows.encode_step, steps.values()))
                steps.clear()

        for work in group:
            batch = work.batch
            if batch is not None:
                if self._broken:
                    gap = self._gap(conn, batch)
                    if gap is not None:
                        outcomes.append((None, gap))
                        continue
                owner = batch.owner
                if owner is not None:
                    lost = unheld_jobs(batch, owner, owner_of)
                    if lost:
                        outcomes.append((None, ClaimLost(lost)))
                        continue
                if self._refusals:
                    refused = self._refusals.check(batch)
                    if refused:
                        outcomes.append((None, JobDataInvalid(refused)))
                        continue
                if owner is not None and batch.new_jobs:
                    host, pid, now = socket.gethostname(), os.getpid(), self.clock()
                    for job_id in batch.new_jobs:
                        owners[job_id] = owner
                        claims[job_id] = (job_id, owner, host, pid, now + batch.claim_lease_s)
                for row in batch.jobs:
                    jobs[row["job_id"]] = row
                for row in batch.tasks:
                    tasks[row["job_id"], row["task_id"]] = row
                events.extend(batch.events)
                for artifact in batch.artifacts:
                    artifacts[artifact.job_id, artifact.name] = artifact
                if batch.commands_done:
                    commands_done.extend((id_,) for id_ in batch.commands_done)
                if batch.steps_cleared:
                    cleared = set(batch.steps_cleared)
                    for key in [k for k in steps if k[:2] in cleared]:
                        del steps[key]  # written earlier in this group, cleared now
                    steps_cleared.extend(batch.steps_cleared)
                for step in batch.steps:
                    steps[step.job_id, step.task_id, step.step] = step
                outcomes.append(_WRITTEN)
            else:
                assert work.op is not None
                flush()  # operations see every batch queued before them
                owners.clear()
                outcomes.append((work.op(conn), None))
        flush()
        return outcomes

    def _finish(self, group: list[_Work], outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for work, (result, error) in zip(group, outcomes, strict=True):
            if work.future is None:
                continue
            assert work.loop is not None
            by_loop.setdefault(work.loop, []).append((work.future, result, error))
        self._written = group[-1].number
        for loop, settled in by_loop.items():
            # A loop closed while it waited has nobody left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)

    def _translate(self, exc: BaseException, doing: str) -> BaseException:
        if isinstance(exc, PlanweaveError):
            return exc
        if isinstance(exc, sqlite3.Error | OSError):
            error = StoreUnavailable(f"SQLite store {self.url}: cannot {doing}: {exc}")
        else:
            error = StoreUnavailable(f"SQLite store {self.url}: cannot {doing}: {exc!r}")
        error.__cause__ = exc
        return error

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                (TABLE_META,),
            ).fetchone()
            version = 0
            if exists:
                row = conn.execute(q.SELECT_VERSION.text, q.SELECT_VERSION.args()).fetchone()
                version = int(row[0]) if row else 0
            if version > STORE_SCHEMA_VERSION:
                raise ConfigError(
                    f"the store {self.url} has schema version {version}, but this planweave "
                    f"knows versions up to {STORE_SCHEMA_VERSION}: upgrade planweave to open it"
                )
            for step in q.MIGRATIONS[version:]:
                for sql in step:
                    conn.execute(sql.text, sql.args())
            if version != STORE_SCHEMA_VERSION:
                conn.execute(
                    q.SET_VERSION.text, (STORE_SCHEMA_VERSION_KEY, str(STORE_SCHEMA_VERSION))
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # --- reads -----------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._reader is None:
            raise StoreUnavailable(f"store {self.url} is closed")
        if self._written < self._queued:
            # Reads see this store's own queued writes (as MemoryStore's do).
            await self._submit(None, _noop)
        reader = self._reader
        return await asyncio.get_running_loop().run_in_executor(reader, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._read_conn is None:
                self._read_conn = self._connect()
                self._read_conn.execute("PRAGMA query_only=ON")
            return fn(self._read_conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.url}: cannot read: {exc}") from exc

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None

    async def load_job(self, job_id: str) -> JobState | None:
        def read(conn: sqlite3.Connection) -> tuple[Any, list[Any]] | None:
            conn.execute("BEGIN")  # one snapshot for the job and its tasks
            try:
                job = conn.execute(q.SELECT_JOB.text, (job_id,)).fetchone()
                tasks = conn.execute(q.SELECT_TASKS.text, (job_id,)).fetchall() if job else []
            finally:
                conn.execute("COMMIT")
            return None if job is None else (job, tasks)

        found = await self._read(read)
        if found is None:
            return None
        return JobState.from_rows(
            rows.decode_job(found[0]), [rows.decode_task(t) for t in found[1]]
        )

    async def find_job(self, tenant: str, idempotency_key: str) -> str | None:
        args = q.FIND_JOB.args(tenant=tenant, key=idempotency_key)
        found = await self._read(lambda conn: conn.execute(q.FIND_JOB.text, args).fetchall())
        return str(found[0][0]) if found else None

    async def tenant_usage(self, tenant: str, *, since: float) -> TenantUsage:
        sql = q.TENANT_USAGE
        args = sql.args(tenant=tenant, since=since)
        row = await self._read(lambda conn: conn.execute(sql.text, args).fetchone())
        active, stored, spent = row
        return TenantUsage(
            active_jobs=int(active), stored_bytes=int(stored), spent_usd=float(spent)
        )

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobSummary]:
        sql = q.LIST_JOBS
        args = sql.args(status=status, tenant=tenant, limit=limit, offset=offset)
        found = await self._read(lambda conn: conn.execute(sql.text, args).fetchall())
        width = len(rows.SUMMARY_COLS)
        return [
            rows.decode_summary(
                dict(zip(rows.SUMMARY_COLS, row[:width], strict=True)),
                tasks_total=row[width],
                tasks_done=row[width + 1],
                owner=row[width + 2],
                claim_expires_at=row[width + 3],
                result_is_json=True,
            )
            for row in found
        ]

    async def read_events(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        args = q.SELECT_EVENTS.args(job_id=job_id, after_seq=after_seq,
                                   limit=-1 if limit is None else max(limit, 0))  # fmt: skip
        found = await self._read(lambda conn: conn.execute(q.SELECT_EVENTS.text, args).fetchall())
        return [parse_event(body) for (body,) in found]

    async def read_steps(self, job_id: str) -> list[StepRow]:
        found = await self._read(
            lambda conn: conn.execute(q.SELECT_STEPS.text, (job_id,)).fetchall()
        )
        return [rows.decode_step(tuple(row)) for row in found]

    async def active_job_ids(self) -> list[str]:
        args = q.ACTIVE_JOBS.args()
        found = await self._read(lambda conn: conn.execute(q.ACTIVE_JOBS.text, args).fetchall())
        return [job_id for (job_id,) in found]

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        found = await self._read(
            lambda conn: conn.execute(q.SELECT_ARTIFACTS.text, (job_id,)).fetchall()
        )
        return [rows.decode_artifact(row) for row in found]

    # --- claims, commands, deletion (written by the writer thread, in queue order) ---------

    async def claim_job(
        self, job_id: str, owner: str, *, lease_s: float, force: bool = False
    ) -> bool:
        """Take or renew the claim; ``False`` for an unknown job or another live owner."""
        sql = q.FORCE_CLAIM if force else q.CLAIM

        def claim(conn: sqlite3.Connection) -> bool:
            if conn.execute(q.JOB_EXISTS.text, (job_id,)).fetchone() is None:
                return False
            now = self.clock()
            args = sql.args(job_id=job_id, owner=owner, host=socket.gethostname(),
                            pid=os.getpid(), expires_at=now + lease_s, now=now)  # fmt: skip
            return bool(conn.execute(sql.text, args).rowcount)

        return bool(await self._submit(None, claim))

    async def read_claim(self, job_id: str) -> Claim | None:
        def read(conn: sqlite3.Connection) -> tuple[tuple[Any, ...] | None, float]:
            return conn.execute(q.SELECT_CLAIM.text, (job_id,)).fetchone(), self.clock()

        row, now = await self._read(read)
        return None if row is None else rows.decode_claim(row, now)

    async def release_job(self, job_id: str, owner: str) -> None:
        args = q.RELEASE.args(job_id=job_id, owner=owner)
        await self._submit(None, lambda conn: conn.execute(q.RELEASE.text, args))

    async def add_command(self, job_id: str, name: str, args: dict[str, Any]) -> None:
        text = rows.dump(args)

        def add(conn: sqlite3.Connection) -> None:
            params = q.INSERT_COMMAND.args(
                job_id=job_id, name=name, args=text, created_at=self.clock()
            )
            conn.execute(q.INSERT_COMMAND.text, params)

        await self._submit(None, add)

    async def wait_commands(self, timeout_s: float) -> bool:
        """Sleep ``timeout_s``: this store does not announce commands; they are polled."""
        await asyncio.sleep(timeout_s)
        return True

    async def read_commands(self, job_ids: list[str]) -> list[Command]:
        if not job_ids:
            return []
        params = (json.dumps(job_ids),)
        found = await self._read(
            lambda conn: conn.execute(q.SELECT_COMMANDS.text, params).fetchall()
        )
        return [rows.decode_command(row) for row in found]

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job; ``False`` when it is unknown or still running."""

        finished = q.DELETE_FINISHED_JOB.args(job_id=job_id)

        def delete(conn: sqlite3.Connection) -> bool:
            if conn.execute(q.DELETE_FINISHED_JOB.text, finished).rowcount == 0:
                return False
            for sql in q.DELETE_JOB_ROWS:
                conn.execute(sql.text, sql.args(job_id=job_id))
            return True

        return bool(await self._submit(None, delete))


def _noop(conn: sqlite3.Connection) -> None:
    return None


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _parse_url(url: str) -> tuple[Path, dict[str, str]]:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ConfigError(
            f"bad SQLite store URL {url!r}: write sqlite:///relative/file.db "
            "or sqlite:////absolute/file.db"
        )
    path, _, query = url[len(prefix) :].partition("?")
    if not path or path == ":memory:":
        raise ConfigError(f"bad SQLite store URL {url!r}: name a file, or use memory://")
    return Path(path).expanduser(), dict(parse_qsl(query))
