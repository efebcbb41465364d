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
tables of ``_schema``, compiled once at import: the store uses SQLAlchemy below its convenient
layer, where its cost is nil.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import operator
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast, get_args
from urllib.parse import parse_qsl

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from planweave.constants import STORE_SCHEMA_VERSION
from planweave.errors import ConfigError, PlanweaveError, StoreUnavailable
from planweave.events import Event, JobOptions, parse_event
from planweave.plan import TaskSpec
from planweave.state import TERMINAL_JOB, TERMINAL_TASK, JobState
from planweave.store import _schema as schema
from planweave.store.base import ArtifactRow, Batch, Command, JobSummary

__all__ = ["SqliteStore", "Synchronous"]

log = logging.getLogger(__name__)

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
T = TypeVar("T")

# --- SQL, compiled once -------------------------------------------------------------------------

_DIALECT = sqlite_dialect.dialect()


@dataclass(frozen=True, slots=True)
class _Sql:
    text: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, **values: Any) -> tuple[Any, ...]:
        return tuple(values[n] if n in values else self.defaults[n] for n in self.names)


def _compile(stmt: ClauseElement) -> _Sql:
    compiled = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    if not isinstance(compiled, SQLCompiler):  # DDL has no parameters
        return _Sql(str(compiled), (), {})
    return _Sql(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


def _p(name: str) -> sa.BindParameter[Any]:
    """A named parameter; its placeholder value lets the statement compile before it runs."""
    return sa.bindparam(name, None)


def _upsert(table: sa.Table, columns: tuple[str, ...], *, keep: tuple[str, ...] = ()) -> _Sql:
    """``INSERT … ON CONFLICT DO UPDATE`` of ``columns``; an update leaves ``keep`` alone."""
    stmt = sqlite_dialect.insert(table).values({name: _p(name) for name in columns})
    keys = [c.name for c in table.primary_key]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={n: stmt.excluded[n] for n in columns if n not in keys and n not in keep},
    )
    sql = _compile(stmt)
    assert sql.names == columns, sql.names
    return sql


def _columns(table: sa.Table, *skip: str) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name not in skip)


_JOB_COLS = _columns(schema.jobs, "owner", "lease_until")
_TASK_COLS = _columns(schema.tasks)
_EVENT_COLS = _columns(schema.events)
_ARTIFACT_COLS = _columns(schema.artifacts)
_COMMAND_COLS = _columns(schema.commands)
assert _EVENT_COLS == ("job_id", "seq", "id", "type", "task_id", "at", "body")

# A job's goal, options and creation time never change; leaving them out of the update keeps
# the index on created_at untouched by every step.
_UPSERT_JOB = _upsert(schema.jobs, _JOB_COLS, keep=("goal", "options", "created_at"))
_UPSERT_TASK = _upsert(schema.tasks, _TASK_COLS)
_UPSERT_ARTIFACT = _upsert(schema.artifacts, _ARTIFACT_COLS)
# Events never change: storing one again (a retried batch) is a no-op.
_INSERT_EVENT = _compile(
    sqlite_dialect.insert(schema.events)
    .values({n: _p(n) for n in _EVENT_COLS})
    .on_conflict_do_nothing()
)

_jobs, _tasks, _events, _commands = schema.jobs, schema.tasks, schema.events, schema.commands
_TERMINAL_JOB = sorted(TERMINAL_JOB)
_TERMINAL_TASK = sorted(TERMINAL_TASK)

_SELECT_JOB = _compile(
    sa.select(*(_jobs.c[n] for n in _JOB_COLS)).where(_jobs.c.job_id == _p("job_id"))
)
_SELECT_TASKS = _compile(
    sa.select(*(_tasks.c[n] for n in _TASK_COLS)).where(_tasks.c.job_id == _p("job_id"))
)
_SELECT_EVENTS = _compile(
    sa.select(_events.c.body)
    .where(_events.c.job_id == _p("job_id"), _events.c.seq > _p("after_seq"))
    .order_by(_events.c.seq)
    .limit(_p("limit"))
)
_SUMMARY_COLS = (
    "job_id", "goal", "status", "created_at", "updated_at", "finished_at",
    "tokens_in", "tokens_out", "cost_usd", "error", "result",
)  # fmt: skip


def _list_jobs(filtered: bool) -> _Sql:
    total = sa.select(sa.func.count()).where(_tasks.c.job_id == _jobs.c.job_id)
    done = total.where(_tasks.c.status.in_(_TERMINAL_TASK))
    stmt = sa.select(
        *(_jobs.c[n] for n in _SUMMARY_COLS), total.scalar_subquery(), done.scalar_subquery()
    )
    if filtered:
        stmt = stmt.where(_jobs.c.status == _p("status"))
    stmt = stmt.order_by(_jobs.c.created_at.desc(), _jobs.c.job_id.desc())
    return _compile(stmt.limit(_p("limit")).offset(_p("offset")))


_LIST_JOBS = _list_jobs(False)
_LIST_JOBS_BY_STATUS = _list_jobs(True)
_ACTIVE_JOBS = _compile(
    sa.select(_jobs.c.job_id)
    .where(_jobs.c.status.not_in(_TERMINAL_JOB))
    .order_by(_jobs.c.created_at, _jobs.c.job_id)
)
_SELECT_ARTIFACTS = _compile(
    sa.select(*(schema.artifacts.c[n] for n in _ARTIFACT_COLS))
    .where(schema.artifacts.c.job_id == _p("job_id"))
    .order_by(schema.artifacts.c.created_at, schema.artifacts.c.name)
)
_CLAIM = _compile(
    sa.update(_jobs)
    .where(
        _jobs.c.job_id == _p("job_id"),
        sa.or_(
            _jobs.c.owner.is_(None),
            _jobs.c.owner == _p("new_owner"),
            _jobs.c.lease_until < _p("now"),
        ),
    )
    .values(owner=_p("new_owner"), lease_until=_p("until"))
)
_RELEASE = _compile(
    sa.update(_jobs)
    .where(_jobs.c.job_id == _p("job_id"), _jobs.c.owner == _p("old_owner"))
    .values(owner=None, lease_until=None)
)
_INSERT_COMMAND = _compile(
    sa.insert(_commands).values({n: _p(n) for n in _COMMAND_COLS if n != "id"})
)
_job_ids_json = sa.select(sa.func.json_each(_p("job_ids")).table_valued("value").c.value)
_TAKE_COMMANDS = _compile(
    sa.delete(_commands)
    .where(_commands.c.job_id.in_(_job_ids_json))
    .returning(*(_commands.c[n] for n in _COMMAND_COLS))
)
_DELETE_FINISHED_JOB = _compile(
    sa.delete(_jobs).where(_jobs.c.job_id == _p("job_id"), _jobs.c.status.in_(_TERMINAL_JOB))
)
_DELETE_JOB_ROWS = tuple(
    _compile(sa.delete(table).where(table.c.job_id == _p("job_id")))
    for table in (_tasks, _events, schema.artifacts, _commands)
)
_SELECT_VERSION = _compile(
    sa.select(schema.meta.c.value).where(schema.meta.c.key == schema.SCHEMA_VERSION_KEY)
)
_SET_VERSION = _upsert(schema.meta, ("key", "value"))

# --- rows <-> tuples ------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


# JSON of frozen models by identity: a task's spec and a job's options are the same objects on
# every step, so each is serialised once. Bounded; checked by identity, so an id reused after
# garbage collection cannot return another object's text.
_model_json: dict[int, tuple[BaseModel, str]] = {}
_MODEL_JSON_MAX: Final = 8192


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, BaseModel):
        hit = _model_json.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        text = value.model_dump_json()
        if value.model_config.get("frozen"):
            if len(_model_json) >= _MODEL_JSON_MAX:
                _model_json.clear()
            _model_json[id(value)] = (value, text)
        return text
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _encoder(
    columns: tuple[str, ...], table: sa.Table
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function turning a row dict into the parameter tuple of ``columns``."""
    get = operator.itemgetter(*columns)
    json_at = [i for i, n in enumerate(columns) if n in schema.JSON_COLUMNS[table.name]]

    def encode(row: dict[str, Any]) -> tuple[Any, ...]:
        values = list(get(row))
        for i in json_at:
            values[i] = _dump(values[i])
        return tuple(values)

    return encode


_encode_job = _encoder(_JOB_COLS, schema.jobs)
_encode_task = _encoder(_TASK_COLS, schema.tasks)


def _encode_event(event: Event) -> tuple[Any, ...]:
    return (event.job_id, event.seq, event.id, event.type, event.task_id, event.at,
            event.model_dump_json())  # fmt: skip


def _encode_artifact(a: ArtifactRow) -> tuple[Any, ...]:
    return (a.job_id, a.name, a.path, a.size, a.content_type, a.created_at, a.task_id)


def _decode_job(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(_JOB_COLS, values, strict=True))
    row["options"] = JobOptions.model_validate_json(row["options"])
    row["result"] = _load(row["result"])
    row["artifacts"] = _load(row["artifacts"])
    row["planned"] = bool(row["planned"])
    return row


def _decode_task(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(_TASK_COLS, values, strict=True))
    row["spec"] = TaskSpec.model_validate_json(row["spec"])
    row["result"] = _load(row["result"])
    row["started"] = bool(row["started"])
    row["superseded"] = bool(row["superseded"])
    return row


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


def _settle(outcomes: Sequence[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class SqliteStore:
    """A store in one SQLite file (URL ``sqlite:///relative.db`` or ``sqlite:////abs.db``).

    Args:
        url: The file's URL; its parent folders are created. ``?synchronous=FULL`` in the URL
            sets the option below.
        synchronous: SQLite's ``synchronous`` setting. ``NORMAL`` (the default) survives a crash
            of the application, as a ``kill -9``; ``FULL`` also survives a power cut, at the cost
            of an fsync per commit.
        busy_timeout_ms: How long a statement waits for a lock another process holds.
    """

    def __init__(
        self,
        url: str,
        *,
        synchronous: Synchronous | None = None,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.url = url
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
        self._soon_error: BaseException | None = None
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
        self._soon_error = None
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
        error, self._soon_error = self._soon_error, None
        if error is not None:
            raise StoreUnavailable(f"a queued write to {self.url} failed: {error}") from error

    # --- writes ----------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        """Write ``batch`` (with everything queued before it) and wait until it is durable."""
        await self._submit(batch, None)

    def commit_soon(self, batch: Batch) -> None:
        """Queue ``batch`` for the writer and return at once."""
        if self._closed:
            raise StoreUnavailable(f"store {self.url} is closed")
        self._queued += 1
        self._queue.put(_Work(self._queued, batch, None, None, None))

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
        get, get_nowait = self._queue.get, self._queue.get_nowait
        try:
            while True:
                group = [get()]
                while True:
                    try:
                        group.append(get_nowait())
                    except queue.Empty:
                        break
                stop = _STOP in group
                work = [w for w in group if isinstance(w, _Work)]
                if work:
                    self._write_group(conn, work)
                if stop:
                    return
        finally:
            conn.close()

    def _write_group(self, conn: sqlite3.Connection, group: list[_Work]) -> None:
        """Write ``group`` in one transaction; when that fails, write its items one by one so
        that one bad batch fails alone."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                results = self._apply(conn, group)
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
            self._finish(group, [None], self._translate(exc, "write"))
            return
        self._finish(group, results, None)

    def _apply(self, conn: sqlite3.Connection, group: list[_Work]) -> list[Any]:
        results: list[Any] = []
        jobs: list[tuple[Any, ...]] = []
        tasks: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        artifacts: list[tuple[Any, ...]] = []

        def flush() -> None:
            for sql, rows in (
                (_UPSERT_JOB, jobs), (_UPSERT_TASK, tasks),
                (_INSERT_EVENT, events), (_UPSERT_ARTIFACT, artifacts),
            ):  # fmt: skip
                if rows:
                    conn.executemany(sql.text, rows)
                    rows.clear()

        for work in group:
            batch = work.batch
            if batch is not None:
                jobs.extend(map(_encode_job, batch.jobs))
                tasks.extend(map(_encode_task, batch.tasks))
                events.extend(map(_encode_event, batch.events))
                artifacts.extend(map(_encode_artifact, batch.artifacts))
                results.append(None)
            else:
                assert work.op is not None
                flush()  # operations see every batch queued before them
                results.append(work.op(conn))
        flush()
        return results

    def _finish(self, group: list[_Work], results: list[Any], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for work, result in zip(group, results, strict=True):
            if work.future is None:
                if error is not None:
                    log.error("a queued write to %s failed: %s", self.url, error)
                    self._soon_error = error
                continue
            outcome_error = error
            if outcome_error is None and self._soon_error is not None:
                # An earlier queued batch failed: this commit must not report "all durable".
                soon, self._soon_error = self._soon_error, None
                outcome_error = StoreUnavailable(f"a queued write to {self.url} failed: {soon}")
                outcome_error.__cause__ = soon
            assert work.loop is not None
            by_loop.setdefault(work.loop, []).append((work.future, result, outcome_error))
        self._written = group[-1].number
        for loop, outcomes in by_loop.items():
            # A loop closed while it waited has nobody left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, outcomes)

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
                (schema.meta.name,),
            ).fetchone()
            version = 0
            if exists:
                row = conn.execute(_SELECT_VERSION.text, _SELECT_VERSION.args()).fetchone()
                version = int(row[0]) if row else 0
            if version > STORE_SCHEMA_VERSION:
                raise ConfigError(
                    f"the store {self.url} has schema version {version}, but this planweave "
                    f"knows versions up to {STORE_SCHEMA_VERSION}: upgrade planweave to open it"
                )

            def execute(stmt: ClauseElement) -> None:
                sql = _compile(stmt)
                conn.execute(sql.text, sql.args())

            for migrate in schema.MIGRATIONS[version:]:
                migrate(execute)
            if version != STORE_SCHEMA_VERSION:
                conn.execute(
                    _SET_VERSION.text, (schema.SCHEMA_VERSION_KEY, str(STORE_SCHEMA_VERSION))
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
                job = conn.execute(_SELECT_JOB.text, (job_id,)).fetchone()
                tasks = conn.execute(_SELECT_TASKS.text, (job_id,)).fetchall() if job else []
            finally:
                conn.execute("COMMIT")
            return None if job is None else (job, tasks)

        rows = await self._read(read)
        if rows is None:
            return None
        return JobState.from_rows(_decode_job(rows[0]), [_decode_task(t) for t in rows[1]])

    async def list_jobs(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[JobSummary]:
        sql = _LIST_JOBS if status is None else _LIST_JOBS_BY_STATUS
        args = sql.args(status=status, limit=limit, offset=offset)
        rows = await self._read(lambda conn: conn.execute(sql.text, args).fetchall())
        out = []
        for row in rows:
            (job_id, goal, status_, created_at, updated_at, finished_at, tokens_in, tokens_out,
             cost_usd, error, result, total, done) = row  # fmt: skip
            out.append(JobSummary(
                job_id=job_id, goal=goal, status=status_, created_at=created_at,
                updated_at=updated_at, finished_at=finished_at, tokens_in=tokens_in,
                tokens_out=tokens_out, cost_usd=cost_usd, tasks_total=total, tasks_done=done,
                error=error, result=_load(result),
            ))  # fmt: skip
        return out

    async def read_events(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        args = _SELECT_EVENTS.args(job_id=job_id, after_seq=after_seq,
                                   limit=-1 if limit is None else max(limit, 0))  # fmt: skip
        rows = await self._read(lambda conn: conn.execute(_SELECT_EVENTS.text, args).fetchall())
        return [parse_event(body) for (body,) in rows]

    async def active_job_ids(self) -> list[str]:
        args = _ACTIVE_JOBS.args()
        rows = await self._read(lambda conn: conn.execute(_ACTIVE_JOBS.text, args).fetchall())
        return [job_id for (job_id,) in rows]

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        rows = await self._read(
            lambda conn: conn.execute(_SELECT_ARTIFACTS.text, (job_id,)).fetchall()
        )
        return [ArtifactRow(**dict(zip(_ARTIFACT_COLS, row, strict=True))) for row in rows]

    # --- claims, commands, deletion (written by the writer thread, in queue order) ---------

    async def claim_job(self, job_id: str, owner: str, *, lease_s: float, now: float) -> bool:
        """Take or renew the claim; ``False`` for an unknown job or another live owner."""
        args = _CLAIM.args(job_id=job_id, new_owner=owner, now=now, until=now + lease_s)
        return bool(await self._submit(None, lambda conn: conn.execute(_CLAIM.text, args).rowcount))

    async def release_job(self, job_id: str, owner: str) -> None:
        args = _RELEASE.args(job_id=job_id, old_owner=owner)
        await self._submit(None, lambda conn: conn.execute(_RELEASE.text, args))

    async def add_command(
        self, job_id: str, name: str, args: dict[str, Any], *, now: float
    ) -> None:
        params = _INSERT_COMMAND.args(job_id=job_id, name=name, args=_dump(args), created_at=now)
        await self._submit(None, lambda conn: conn.execute(_INSERT_COMMAND.text, params))

    async def take_commands(self, job_ids: list[str]) -> list[Command]:
        if not job_ids:
            return []
        params = (json.dumps(job_ids),)

        def take(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(_TAKE_COMMANDS.text, params).fetchall()

        rows = await self._submit(None, take)
        commands = [
            Command(id=id_, job_id=job_id, name=name, args=json.loads(args), created_at=at)
            for id_, job_id, name, args, at in rows
        ]
        commands.sort(key=lambda c: c.id)
        return commands

    async def delete_job(self, job_id: str) -> bool:
        """Delete a finished job; ``False`` when it is unknown or still running."""

        def delete(conn: sqlite3.Connection) -> bool:
            if conn.execute(_DELETE_FINISHED_JOB.text, (job_id,)).rowcount == 0:
                return False
            for sql in _DELETE_JOB_ROWS:
                conn.execute(sql.text, (job_id,))
            return True

        return bool(await self._submit(None, delete))


def _noop(conn: sqlite3.Connection) -> None:
    return None


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
