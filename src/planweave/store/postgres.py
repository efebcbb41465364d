"""The scaled store: PostgreSQL through an asyncpg pool, shared by every process of a cluster.

Why one writer task: a durable step costs a transaction, and a transaction costs round trips
(begin, the owner fence, the writes, commit) far more than rows. So ``commit_soon`` only queues
a batch; one task drains the queue and writes everything queued in one transaction (group
commit) and wakes each waiter. The job rows, task rows and events of the whole group go in one
statement, each column an array that ``unnest`` turns back into rows: a transaction is four
round trips (begin, lock the claims, write, commit) however many batches it holds. The queue is FIFO, so when an
awaited ``commit`` returns, every batch queued before it is durable too.

Each batch must still succeed or fail alone. The writer first writes the whole group at once;
should that fail (a second writer's event, data Postgres refuses), it writes the group again in
one transaction with a SAVEPOINT per batch, so the failing batch is rolled back to its
savepoint and fails alone while the others commit.

The owner fence runs in the transaction: the claims rows of the group's jobs are locked
(``SELECT … FOR UPDATE``, in job order) before anything is written, so a claim another process
takes waits for this commit, and this commit never writes for an owner that lost its claim.
Times are the server's (``clock_timestamp()``), so machines with skewed clocks agree; a store
given a ``clock`` (tests) passes its time as a parameter instead.

Reads use the other connections of the pool. A connection lost to a server restart is replaced
by the pool; a read retries on a fresh connection with a short backoff, a write fails with
``StoreUnavailable`` (it cannot know whether a commit it lost the answer to was written) and the
next one reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import asyncpg

from planweave.constants import (
    PG_COMMANDS_CHANNEL,
    PG_MIGRATION_LOCK,
    STORE_SCHEMA_VERSION,
    STORE_SCHEMA_VERSION_KEY,
    TABLE_META,
)
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
from planweave.store import _postgres_sql as q
from planweave.store import _rows as rows
from planweave.store._fence import Refusals, unheld_jobs
from planweave.store._pg_url import connect_error, parse_url
from planweave.store._pg_writes import Writes as _Writes
from planweave.store._pg_writes import invalid_jobs as _invalid_jobs
from planweave.store._pg_writes import jobs_of as _jobs_of
from planweave.store.base import (
    ArtifactRow,
    Batch,
    Claim,
    Command,
    JobSummary,
    StepRow,
    TenantUsage,
)

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_Conn = Any  # an asyncpg.Connection (asyncpg ships no type hints)
_Op = Callable[[_Conn], Awaitable[Any]]

_GROUP_MAX: Final = 512
"""Most batches and operations the writer puts in one transaction."""

_RETRY_DELAYS_S: Final = (0.05, 0.25, 1.0)
"""Backoff between the tries of a read (or of starting a write) on a lost connection."""

_LOST: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
)
"""Errors that mean the connection or the server went away, not that a statement was wrong."""


@dataclass(slots=True)
class _Work:
    """One queued write: a batch or an operation, and the future that reports its outcome."""

    number: int
    batch: Batch | None
    op: _Op | None
    future: asyncio.Future[Any]


_Outcome = tuple[Any, BaseException | None]
_WRITTEN: Final[_Outcome] = (None, None)


class PostgresStore:
    """A store in a PostgreSQL database (URL ``postgresql://USER:PASSWORD@HOST:PORT/DB``).

    ``postgres://`` and ``postgresql+asyncpg://`` are accepted too. ``url`` holds the URL with
    its password masked, as every message shows it.

    Args:
        url: The database's URL. Query options ``min_size``, ``max_size``,
            ``connect_timeout_s`` and ``command_timeout_s`` set the arguments below; other
            query options (``sslmode``…) go to asyncpg.
        min_size: Connections the pool keeps open (default 1).
        max_size: Most connections the pool opens (default 10, at least 2: the writer holds
            one, reads use the others).
        connect_timeout_s: How long opening a connection may take (default 10 s).
        command_timeout_s: How long one statement may take before it fails (default 60 s).
        clock: The store's clock (seconds since the epoch) for claims and commands. Leave it
            out to use the server's clock, as every process sharing the database should;
            injectable for tests.
    """

    announces_commands = True

    def __init__(
        self,
        url: str,
        *,
        min_size: int | None = None,
        max_size: int | None = None,
        connect_timeout_s: float | None = None,
        command_timeout_s: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._url = parse_url(url)
        self.url = self._url.masked
        self.clock = clock
        options = self._url.options
        try:
            self.min_size = int(min_size if min_size is not None else options.get("min_size", 1))
            self.max_size = int(max_size if max_size is not None else options.get("max_size", 10))
            self.connect_timeout_s = float(
                connect_timeout_s
                if connect_timeout_s is not None
                else options.get("connect_timeout_s", 10.0)
            )
            self.command_timeout_s = float(
                command_timeout_s
                if command_timeout_s is not None
                else options.get("command_timeout_s", 60.0)
            )
        except ValueError as exc:
            raise ConfigError(f"bad option in the store URL {self.url}: {exc}") from None
        if not 0 <= self.min_size <= self.max_size or self.max_size < 2:
            raise ConfigError(
                f"bad pool size for {self.url}: need 0 <= min_size <= max_size and "
                f"max_size >= 2 (got min_size={self.min_size}, max_size={self.max_size})"
            )
        if self.connect_timeout_s <= 0 or self.command_timeout_s <= 0:
            raise ConfigError(f"bad option for {self.url}: timeouts must be positive")
        self._pool: Any = None
        self._writer_conn: _Conn | None = None
        self._writer: asyncio.Task[None] | None = None
        self._queue: collections.deque[_Work] = collections.deque()
        self._wake = asyncio.Event()
        self._queued = 0
        self._written = 0
        self._refusals = Refusals()
        # Jobs whose last write failed with the store unreachable: batches of theirs queued
        # behind it must start where the stored log ends, or they would leave a gap in it.
        self._broken: set[str] = set()
        self._listener: _Conn | None = None
        self._notified: asyncio.Event | None = None
        self._closed = True
        self._stopping = False

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, bring the schema up to date and start the writer. Idempotent.

        Raises:
            ConfigError: the URL is wrong (password, user, database, host), or the database
                was written by a newer planweave.
            StoreUnavailable: the server refused for another reason.
        """
        if not self._closed:
            return
        try:
            pool = await asyncpg.create_pool(
                self._url.dsn,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.connect_timeout_s,
                command_timeout=self.command_timeout_s,
            )
        except PlanweaveError:
            raise
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise connect_error(self._url, exc, self.connect_timeout_s) from exc
        try:
            async with pool.acquire() as conn:
                await self._migrate(conn)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, asyncpg.PostgresError | _LOST):
                raise connect_error(self._url, exc, self.connect_timeout_s) from exc
            raise
        self._pool = pool
        self._queue = collections.deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._writer = asyncio.create_task(self._write_loop(), name="planweave-postgres-writer")

    async def close(self) -> None:
        """Write everything queued, then stop the writer and close the pool."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        pool, self._pool = self._pool, None
        await self._stop_listening(pool)
        if self._writer_conn is not None:
            with contextlib.suppress(Exception):
                await pool.release(self._writer_conn)
            self._writer_conn = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), self.command_timeout_s)
        pool.terminate()

    async def _migrate(self, conn: _Conn) -> None:
        async with conn.transaction():
            await conn.execute(q.MIGRATION_LOCK.text, *q.MIGRATION_LOCK.args(key=PG_MIGRATION_LOCK))
            exists = await conn.fetchval(q.META_EXISTS.text, TABLE_META)
            version = 0
            if exists:
                found = await conn.fetchval(q.SELECT_VERSION.text, *q.SELECT_VERSION.args())
                version = int(found) if found is not None else 0
            if version > STORE_SCHEMA_VERSION:
                raise ConfigError(
                    f"the store {self.url} has schema version {version}, but this planweave "
                    f"knows versions up to {STORE_SCHEMA_VERSION}: upgrade planweave to open it"
                )
            for step in q.MIGRATIONS[version:]:
                for sql in step:
                    await conn.execute(sql.text, *sql.args())
            if version != STORE_SCHEMA_VERSION:
                await conn.execute(
                    q.SET_VERSION.text, STORE_SCHEMA_VERSION_KEY, str(STORE_SCHEMA_VERSION)
                )

    # --- writes ----------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        """Write ``batch`` (with everything queued before it) and wait until it is durable."""
        await self._submit(batch, None)

    def commit_soon(self, batch: Batch) -> asyncio.Future[None]:
        """Queue ``batch`` for the writer; the future resolves once it is durable."""
        return self._enqueue(batch, None)

    def _enqueue(self, batch: Batch | None, op: _Op | None) -> asyncio.Future[Any]:
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued += 1
        self._queue.append(_Work(self._queued, batch, op, future))
        self._wake.set()
        return future

    async def _submit(self, batch: Batch | None, op: _Op | None) -> Any:
        return await self._enqueue(batch, op)

    def _now(self) -> float | None:
        """The ``now`` parameter: the injected clock's time, or NULL for the server's."""
        return None if self.clock is None else self.clock()

    async def _write_loop(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group = [queue.popleft() for _ in range(min(len(queue), _GROUP_MAX))]
            try:
                outcomes = await self._write_group(group)
            except Exception as exc:  # a lost connection: the whole group failed
                error = self._translate(exc, "write")
                if isinstance(error, StoreUnavailable):
                    error.args = (f"{error}; the batch may not have been written",)
                outcomes = [(None, error)] * len(group)
                for work in group:
                    if work.batch is not None:
                        self._broken.update(e.job_id for e in work.batch.events)
            self._written = group[-1].number
            for work, (result, failed) in zip(group, outcomes, strict=True):
                if work.future.done():
                    continue
                if failed is not None:
                    work.future.set_exception(failed)
                else:
                    work.future.set_result(result)

    async def _writer_connection(self) -> _Conn:
        if self._writer_conn is None:
            self._writer_conn = await self._pool.acquire()
        return self._writer_conn

    async def _drop_writer_connection(self) -> None:
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    async def _write_group(self, group: list[_Work]) -> list[_Outcome]:
        """Write ``group`` in one transaction, or when that fails, again with a savepoint per
        item so that each one fails alone."""
        for delay_s in (*_RETRY_DELAYS_S, None):
            try:
                conn = await self._writer_connection()
                transaction = conn.transaction()
                await transaction.start()
                break
            except _LOST:
                # Nothing was sent that could have been written: try a fresh connection.
                await self._drop_writer_connection()
                if delay_s is None:
                    raise
                await asyncio.sleep(delay_s)
        try:
            try:
                outcomes = await self._apply(conn, group, careful=False)
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()
            return outcomes
        except _LOST:
            await self._drop_writer_connection()
            raise
        except (asyncpg.PostgresError, ValueError, TypeError):
            pass  # one of the items is at fault: find which
        try:
            async with conn.transaction():
                return await self._apply(conn, group, careful=True)
        except _LOST:
            await self._drop_writer_connection()
            raise

    async def _apply(self, conn: _Conn, group: list[_Work], *, careful: bool) -> list[_Outcome]:
        """Write the items of ``group`` in the open transaction.

        Not ``careful``: rows written several times are written once, as they were last, in
        one statement, and any error fails the whole transaction. ``careful``: each
        item in a savepoint of its own, its error its outcome.
        """
        outcomes: list[_Outcome] = []
        owners: dict[str, str | None] = {}
        now = self._now()
        host, pid = socket.gethostname(), os.getpid()
        writes = _Writes()

        async def lock(job_ids: Iterable[str]) -> None:
            missing = sorted({j for j in job_ids if j not in owners})
            if not missing:
                return
            for job_id in missing:
                owners[job_id] = None
            for job_id, owner in await conn.fetch(q.LOCK_OWNERS.text, missing):
                owners[job_id] = owner

        await lock(
            j for w in group if w.batch is not None and w.batch.owner for j in _jobs_of(w.batch)
        )
        for work in group:
            batch = work.batch
            if batch is None:
                assert work.op is not None
                await writes.flush(conn)
                owners.clear()  # an operation may change any claim
                if careful:
                    try:
                        async with conn.transaction():
                            outcomes.append((await work.op(conn), None))
                    except (asyncpg.PostgresError, ValueError, TypeError) as exc:
                        outcomes.append((None, self._translate(exc, "write")))
                else:
                    outcomes.append((await work.op(conn), None))
                continue
            if self._broken:
                gap = await self._gap(conn, batch)
                if gap is not None:
                    outcomes.append((None, gap))
                    continue
            owner = batch.owner
            if owner is not None:
                await lock(_jobs_of(batch))
                lost = unheld_jobs(batch, owner, owners.get)
                if lost:
                    outcomes.append((None, ClaimLost(lost)))
                    continue
            if self._refusals:
                refused = self._refusals.check(batch)
                if refused:
                    outcomes.append((None, JobDataInvalid(refused)))
                    continue
            claims: list[tuple[Any, ...]] = []
            if owner is not None:
                for job_id in batch.new_jobs:
                    sql = q.NEW_CLAIM if owners.get(job_id) is None else q.FORCE_CLAIM
                    claims.append((sql, (job_id, owner, host, pid, now, batch.claim_lease_s)))
            if not careful:
                writes.add(batch, claims)
                for job_id in batch.new_jobs:
                    owners[job_id] = owner
                outcomes.append(_WRITTEN)
                continue
            one = _Writes()
            one.add(batch, claims)
            try:
                async with conn.transaction():
                    await one.flush(conn)
            except (asyncpg.PostgresError, ValueError, TypeError) as exc:
                for job_id in _jobs_of(batch):
                    owners.pop(job_id, None)
                outcomes.append((None, await self._failure(conn, batch, exc)))
                continue
            for job_id in batch.new_jobs:
                owners[job_id] = owner
            outcomes.append(_WRITTEN)
        await writes.flush(conn)
        return outcomes

    async def _gap(self, conn: _Conn, batch: Batch) -> LogConflict | None:
        """``LogConflict`` for a batch whose events of a job that failed to write would not
        follow on from the stored log (they were decided on top of the lost write); a job whose
        batch does follow on is whole again."""
        firsts: dict[str, int] = {}
        for event in batch.events:
            firsts.setdefault(event.job_id, event.seq)
        for job_id, first in firsts.items():
            if job_id not in self._broken:
                continue
            stored = await conn.fetchval(q.LAST_SEQ.text, job_id) or 0
            if first != stored + 1:
                return LogConflict(job_id, first)
            self._broken.discard(job_id)
        return None

    async def _failure(self, conn: _Conn, batch: Batch, exc: BaseException) -> BaseException:
        """The error of a batch that failed alone: ``LogConflict`` when one of its events is a
        second writer's, ``ClaimLost`` when another process claimed a job it creates,
        ``JobDataInvalid`` when some of its jobs' data cannot be stored, else
        ``StoreUnavailable``."""
        if isinstance(exc, asyncpg.UniqueViolationError):
            seen: set[tuple[str, int]] = set()
            for event in batch.events:
                key = (event.job_id, event.seq)
                stored = await conn.fetchval(q.EVENT_EXISTS.text, *key) is not None
                if key in seen or stored:
                    conflict = LogConflict(event.job_id, event.seq)
                    conflict.__cause__ = exc
                    return conflict
                seen.add(key)
            if batch.new_jobs and getattr(exc, "table_name", None) == "pw_claims":
                lost = ClaimLost(batch.new_jobs)
                lost.__cause__ = exc
                return lost
        bad = _invalid_jobs(batch)
        if bad:
            self._refusals.refuse(batch, tuple(bad))
            invalid = JobDataInvalid(bad)
            invalid.__cause__ = exc
            return invalid
        error = self._translate(exc, "write")
        if isinstance(error, StoreUnavailable):
            error.args = (f"{error}; nothing of this batch was written",)
            self._broken.update(e.job_id for e in batch.events)
        return error

    def _translate(self, exc: BaseException, doing: str) -> BaseException:
        if isinstance(exc, PlanweaveError):
            return exc
        text = str(exc) or type(exc).__name__
        error = StoreUnavailable(f"PostgreSQL store {self.url}: cannot {doing}: {text}")
        error.__cause__ = exc
        return error

    # --- reads -----------------------------------------------------------------------------

    async def _read(self, fn: Callable[[_Conn], Awaitable[T]]) -> T:
        if self._closed or self._pool is None:
            raise StoreUnavailable(f"store {self.url} is closed")
        if self._written < self._queued:
            # Reads see this store's own queued writes (as MemoryStore's do).
            await self._submit(None, _noop)
        for delay_s in (*_RETRY_DELAYS_S, None):
            try:
                async with self._pool.acquire() as conn:
                    return await fn(conn)
            except _LOST as exc:
                if delay_s is None or self._closed:
                    raise self._translate(exc, "read") from exc
                await asyncio.sleep(delay_s)
            except asyncpg.PostgresError as exc:
                raise self._translate(exc, "read") from exc
        raise AssertionError("unreachable")

    async def load_job(self, job_id: str) -> JobState | None:
        async def read(conn: _Conn) -> tuple[Any, list[Any]] | None:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                job = await conn.fetchrow(q.SELECT_JOB.text, job_id)
                tasks = await conn.fetch(q.SELECT_TASKS.text, job_id) if job else []
            return None if job is None else (job, tasks)

        found = await self._read(read)
        if found is None:
            return None
        return JobState.from_rows(
            rows.decode_job(tuple(found[0])), [rows.decode_task(tuple(t)) for t in found[1]]
        )

    async def tenant_usage(self, tenant: str, *, since: float) -> TenantUsage:
        sql = q.TENANT_USAGE
        args = sql.args(tenant=tenant, since=since)
        row = await self._read(lambda conn: conn.fetchrow(sql.text, *args))
        active, stored, spent = row
        return TenantUsage(
            active_jobs=int(active), stored_bytes=int(stored), spent_usd=float(spent)
        )

    async def find_job(self, tenant: str, idempotency_key: str) -> str | None:
        args = q.FIND_JOB.args(tenant=tenant, key=idempotency_key)
        found = await self._read(lambda conn: conn.fetchval(q.FIND_JOB.text, *args))
        return None if found is None else str(found)

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobSummary]:
        sql = q.LIST_JOBS
        args = sql.args(status=status, tenant=tenant, limit=max(limit, 0), offset=max(offset, 0))
        found = await self._read(lambda conn: conn.fetch(sql.text, *args))
        width = len(rows.SUMMARY_COLS)
        return [
            rows.decode_summary(
                dict(zip(rows.SUMMARY_COLS, tuple(row)[:width], strict=True)),
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
        args = q.SELECT_EVENTS.args(
            job_id=job_id, after_seq=after_seq, limit=None if limit is None else max(limit, 0)
        )
        found = await self._read(lambda conn: conn.fetch(q.SELECT_EVENTS.text, *args))
        return [parse_event(body) for (body,) in found]

    async def active_job_ids(self) -> list[str]:
        args = q.ACTIVE_JOBS.args()
        found = await self._read(lambda conn: conn.fetch(q.ACTIVE_JOBS.text, *args))
        return [job_id for (job_id,) in found]

    async def read_steps(self, job_id: str) -> list[StepRow]:
        found = await self._read(lambda conn: conn.fetch(q.SELECT_STEPS.text, job_id))
        return [rows.decode_step(tuple(row)) for row in found]

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        found = await self._read(lambda conn: conn.fetch(q.SELECT_ARTIFACTS.text, job_id))
        return [rows.decode_artifact(tuple(row)) for row in found]

    async def read_claim(self, job_id: str) -> Claim | None:
        args = q.SELECT_CLAIM.args(job_id=job_id, now=self._now())
        row = await self._read(lambda conn: conn.fetchrow(q.SELECT_CLAIM.text, *args))
        if row is None:
            return None
        *values, now = tuple(row)
        return rows.decode_claim(tuple(values), now)

    async def read_commands(self, job_ids: list[str]) -> list[Command]:
        if not job_ids:
            return []
        ids = list(job_ids)
        found = await self._read(lambda conn: conn.fetch(q.SELECT_COMMANDS.text, ids))
        return [rows.decode_command(tuple(row)) for row in found]

    # --- claims, commands, deletion (written by the writer, in queue order) ---------------

    async def claim_job(
        self, job_id: str, owner: str, *, lease_s: float, force: bool = False
    ) -> bool:
        """Take or renew the claim; ``False`` for an unknown job or another live owner."""
        sql = q.FORCE_CLAIM_JOB if force else q.CLAIM_JOB

        async def claim(conn: _Conn) -> bool:
            args = sql.args(job_id=job_id, owner=owner, host=socket.gethostname(),
                            pid=os.getpid(), now=self._now(), lease_s=float(lease_s))  # fmt: skip
            return _changed(await conn.execute(sql.text, *args))

        return bool(await self._submit(None, claim))

    async def release_job(self, job_id: str, owner: str) -> None:
        args = q.RELEASE.args(job_id=job_id, owner=owner)

        async def release(conn: _Conn) -> None:
            await conn.execute(q.RELEASE.text, *args)

        await self._submit(None, release)

    async def add_command(self, job_id: str, name: str, args: dict[str, Any]) -> None:
        text = rows.dump(args)

        async def add(conn: _Conn) -> None:
            params = q.INSERT_COMMAND.args(
                job_id=job_id, name=name, args=text, now=self._now(), channel=PG_COMMANDS_CHANNEL
            )
            await conn.execute(q.INSERT_COMMAND.text, *params)

        await self._submit(None, add)

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job; ``False`` when it is unknown or still running."""
        finished = q.DELETE_FINISHED_JOB.args(job_id=job_id)

        async def delete(conn: _Conn) -> bool:
            if not _changed(await conn.execute(q.DELETE_FINISHED_JOB.text, *finished)):
                return False
            for sql in q.DELETE_JOB_ROWS:
                await conn.execute(sql.text, *sql.args(job_id=job_id))
            return True

        return bool(await self._submit(None, delete))

    # --- waking the owner ------------------------------------------------------------------

    async def wait_commands(self, timeout_s: float) -> bool:
        """Wait until any process leaves a command for any job, or ``timeout_s`` passes.

        Backed by ``LISTEN`` on a connection of the pool, so a control plane that waits here
        instead of sleeping between polls of ``read_commands`` hears a cancel at once.

        Returns:
            Whether a command was announced (read them with ``read_commands``), or may have
            been: ``True`` at once when listening starts (again, after a lost connection),
            since nothing announced before was heard.
        """
        if self._closed or self._pool is None:
            raise StoreUnavailable(f"store {self.url} is closed")
        if self._listener is None or self._listener.is_closed():
            await self._stop_listening(self._pool)
            self._notified = asyncio.Event()
            listener = None
            try:
                listener = await self._pool.acquire()
                await listener.add_listener(PG_COMMANDS_CHANNEL, self._heard)
            except (asyncpg.PostgresError, *_LOST) as exc:
                if listener is not None:
                    listener.terminate()
                    await self._pool.release(listener)
                raise self._translate(exc, "listen for commands") from exc
            self._listener = listener
            return True
        notified = self._notified
        assert notified is not None
        try:
            await asyncio.wait_for(notified.wait(), timeout_s)
        except TimeoutError:
            return False
        notified.clear()
        return True

    def _heard(self, *_: object) -> None:
        if self._notified is not None:
            self._notified.set()

    async def _stop_listening(self, pool: Any) -> None:
        """Give the listening connection back to ``pool`` (a lost one is replaced there)."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        try:
            if not listener.is_closed():
                await listener.remove_listener(PG_COMMANDS_CHANNEL, self._heard)
        except (asyncpg.PostgresError, *_LOST):
            listener.terminate()
        await pool.release(listener)


def _changed(status: str) -> bool:
    """Whether a command tag (``INSERT 0 1``, ``DELETE 1``) reports a changed row."""
    return status.rsplit(" ", 1)[-1] not in ("0", "")


async def _noop(conn: _Conn) -> None:
    return None
