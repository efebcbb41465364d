"""Where sessions are kept: each session's event log and the state it folds to.

A ``SessionStore`` appends a batch of a session's events and writes the state they lead to in
one transaction, and only if the session's last stored ``seq`` is the one the batch was based
on: a second writer gets ``LogConflict``, never a silent interleaving. Three implementations: in
memory (``memory://`` engines), SQLite (the engine's own database file, tables of their own) and
PostgreSQL (``PostgresSessionStore``, the engine's database, shared by many processes). The
engine opens the one matching its store URL (``open_session_store``).

One process drives a session at a time: it holds the session's **lease** (an owner id and an
expiry), renews it while it drives, and writes only as that owner. ``claim`` takes a lease that
is free, expired or already this owner's, and raises ``SessionOwned`` naming the owner of a live
one; ``append`` with an ``owner`` is refused with ``SessionOwned`` once another owner holds the
lease, so a process that was taken over (paused past its lease, say) writes nothing more.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from planweave.constants import TABLE_SESSION_EVENTS, TABLE_SESSION_LEASES, TABLE_SESSIONS
from planweave.errors import SessionLogConflict, SessionOwned, StoreUnavailable, UsageError
from planweave.sessions._events import SessionEvent, parse_session_event
from planweave.sessions._state import SessionState

if TYPE_CHECKING:
    from planweave.store.base import Store

__all__ = [
    "MemorySessionStore",
    "SessionRow",
    "SessionStore",
    "SqliteSessionStore",
    "open_session_store",
]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as listed."""

    session_id: str
    name: str
    tenant: str
    seq: int
    input_rev: int
    settled: bool
    created_at: float


@runtime_checkable
class SessionStore(Protocol):
    """Durable sessions. Every method may raise ``StoreUnavailable``."""

    async def open(self) -> None:
        """Connect and create the tables (idempotent)."""

    async def close(self) -> None:
        """Disconnect."""

    async def append(
        self,
        state: SessionState,
        events: Sequence[SessionEvent],
        *,
        based_on: int,
        owner: str | None = None,
    ) -> None:
        """Append ``events`` and store ``state`` (the state after them), in one transaction.

        Raises:
            SessionOwned: the session's lease is held by another owner than ``owner``.
            SessionLogConflict: the session's last stored ``seq`` is not ``based_on``.
        """

    async def claim(self, session_id: str, owner: str, *, lease_s: float) -> None:
        """Take (or renew) the session's lease for ``owner`` for ``lease_s`` seconds: when no
        one holds it, it expired, or ``owner`` holds it already.

        Raises:
            SessionOwned: another owner's lease is live.
        """

    async def release(self, session_id: str, owner: str) -> None:
        """Give up ``owner``'s lease (nothing when another owner holds it)."""

    async def load(self, session_id: str) -> SessionState | None:
        """The stored state, or ``None`` for an unknown session."""

    async def read_events(
        self, session_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[SessionEvent]:
        """The session's events with ``seq > after_seq``, in order."""

    async def list_sessions(
        self, *, limit: int = 50, tenant: str | None = None
    ) -> list[SessionRow]:
        """Sessions, newest first (only ``tenant``'s when given)."""


def _row(state: SessionState) -> SessionRow:
    return SessionRow(
        session_id=state.session_id,
        name=str(state.spec.get("name", "session")),
        tenant=state.tenant,
        seq=state.seq,
        input_rev=state.input_rev,
        settled=state.settled,
        created_at=state.created_at,
    )


class MemorySessionStore:
    """Sessions in this process's memory (lost when it ends)."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._events: dict[str, list[str]] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(
        self,
        state: SessionState,
        events: Sequence[SessionEvent],
        *,
        based_on: int,
        owner: str | None = None,
    ) -> None:
        check_owner(state.session_id, owner, self._leases.get(state.session_id), time.time())
        log = self._events.setdefault(state.session_id, [])
        if len(log) != based_on:
            raise SessionLogConflict(state.session_id, based_on + 1)
        log.extend(event.model_dump_json() for event in events)
        self._states[state.session_id] = state.model_dump_json()

    async def claim(self, session_id: str, owner: str, *, lease_s: float) -> None:
        now = time.time()
        check_claim(session_id, owner, self._leases.get(session_id), now)
        self._leases[session_id] = (owner, now + lease_s)

    async def release(self, session_id: str, owner: str) -> None:
        held = self._leases.get(session_id)
        if held is not None and held[0] == owner:
            del self._leases[session_id]

    async def load(self, session_id: str) -> SessionState | None:
        raw = self._states.get(session_id)
        return None if raw is None else SessionState.model_validate_json(raw)

    async def read_events(
        self, session_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[SessionEvent]:
        log = self._events.get(session_id, [])
        end = len(log) if limit is None else min(len(log), after_seq + limit)
        return [parse_session_event(raw) for raw in log[after_seq:end]]

    async def list_sessions(
        self, *, limit: int = 50, tenant: str | None = None
    ) -> list[SessionRow]:
        states = [SessionState.model_validate_json(raw) for raw in self._states.values()]
        if tenant is not None:
            states = [state for state in states if state.tenant == tenant]
        states.sort(key=lambda state: state.created_at, reverse=True)
        return [_row(state) for state in states[:limit]]


_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE_SESSIONS} (session_id TEXT PRIMARY KEY, "
    "seq INTEGER NOT NULL, created_at REAL NOT NULL, state TEXT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {TABLE_SESSION_EVENTS} (session_id TEXT NOT NULL, "
    "seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (session_id, seq))",
    f"CREATE TABLE IF NOT EXISTS {TABLE_SESSION_LEASES} (session_id TEXT PRIMARY KEY, "
    "owner TEXT NOT NULL, expires_at REAL NOT NULL)",
)

T = TypeVar("T")


def check_owner(
    session_id: str, owner: str | None, held: tuple[str, float] | None, now: float
) -> None:
    """Refuse a write by anyone but the holder of the session's lease (where it has one).

    Raises:
        SessionOwned: another owner holds the lease.
    """
    if held is not None and held[0] != owner:
        raise SessionOwned(session_id, held[0], held[1] - now)


def check_claim(session_id: str, owner: str, held: tuple[str, float] | None, now: float) -> None:
    """Refuse to take a lease another owner holds unexpired.

    Raises:
        SessionOwned: another owner's lease is live.
    """
    if held is not None and held[0] != owner and held[1] > now:
        raise SessionOwned(session_id, held[0], held[1] - now)


class SqliteSessionStore:
    """Sessions in a SQLite file (WAL), beside the engine's jobs.

    Args:
        path: The database file (created with its folder where missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        if self._conn is None:
            await asyncio.to_thread(self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the session store {self.path}: {exc}") from exc
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the session store is not open")
        return self._conn

    async def append(
        self,
        state: SessionState,
        events: Sequence[SessionEvent],
        *,
        based_on: int,
        owner: str | None = None,
    ) -> None:
        rows = [(state.session_id, event.seq, event.model_dump_json()) for event in events]

        def write(conn: sqlite3.Connection) -> None:
            check_owner(state.session_id, owner, self._lease(conn, state.session_id), time.time())
            found = conn.execute(
                f"SELECT seq FROM {TABLE_SESSIONS} WHERE session_id = ?", (state.session_id,)
            ).fetchone()
            if (found[0] if found else 0) != based_on:
                raise SessionLogConflict(state.session_id, based_on + 1)
            conn.executemany(
                f"INSERT INTO {TABLE_SESSION_EVENTS} (session_id, seq, event) VALUES (?, ?, ?)",
                rows,
            )
            conn.execute(
                f"INSERT INTO {TABLE_SESSIONS} (session_id, seq, created_at, state) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                "seq = excluded.seq, state = excluded.state",
                (state.session_id, state.seq, state.created_at, state.model_dump_json()),
            )

        try:
            await asyncio.to_thread(self._transaction, write)
        except sqlite3.IntegrityError as exc:
            raise SessionLogConflict(state.session_id, based_on + 1) from exc

    async def claim(self, session_id: str, owner: str, *, lease_s: float) -> None:
        def take(conn: sqlite3.Connection) -> None:
            now = time.time()
            check_claim(session_id, owner, self._lease(conn, session_id), now)
            conn.execute(
                f"INSERT INTO {TABLE_SESSION_LEASES} (session_id, owner, expires_at) "
                "VALUES (?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                "owner = excluded.owner, expires_at = excluded.expires_at",
                (session_id, owner, now + lease_s),
            )

        await asyncio.to_thread(self._transaction, take)

    async def release(self, session_id: str, owner: str) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"DELETE FROM {TABLE_SESSION_LEASES} WHERE session_id = ? AND owner = ?",
                (session_id, owner),
            )

        await asyncio.to_thread(self._transaction, drop)

    @staticmethod
    def _lease(conn: sqlite3.Connection, session_id: str) -> tuple[str, float] | None:
        found = conn.execute(
            f"SELECT owner, expires_at FROM {TABLE_SESSION_LEASES} WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        return None if found is None else (str(found[0]), float(found[1]))

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._db()
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"session store write failed: {exc}") from exc

    async def load(self, session_id: str) -> SessionState | None:
        found = await asyncio.to_thread(
            self._query, f"SELECT state FROM {TABLE_SESSIONS} WHERE session_id = ?", (session_id,)
        )
        return SessionState.model_validate_json(found[0][0]) if found else None

    async def read_events(
        self, session_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[SessionEvent]:
        found = await asyncio.to_thread(
            self._query,
            f"SELECT event FROM {TABLE_SESSION_EVENTS} WHERE session_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (session_id, after_seq, -1 if limit is None else limit),
        )
        return [parse_session_event(raw) for (raw,) in found]

    async def list_sessions(
        self, *, limit: int = 50, tenant: str | None = None
    ) -> list[SessionRow]:
        if tenant is None:
            sql = f"SELECT state FROM {TABLE_SESSIONS} ORDER BY created_at DESC LIMIT ?"
            args: tuple[object, ...] = (limit,)
        else:
            sql = (
                f"SELECT state FROM {TABLE_SESSIONS} WHERE json_extract(state, '$.tenant') = ? "
                "ORDER BY created_at DESC LIMIT ?"
            )
            args = (tenant, limit)
        found = await asyncio.to_thread(self._query, sql, args)
        return [_row(SessionState.model_validate_json(raw)) for (raw,) in found]

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[str]]:
        conn = self._db()
        with self._lock:
            try:
                return list(conn.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"session store read failed: {exc}") from exc


def open_session_store(store_url: str, *, job_store: Store | None = None) -> SessionStore:
    """The session store beside an engine's job store (``job_store``, whose URL with its
    password is used for PostgreSQL: ``store_url`` shows it masked).

    Raises:
        UsageError: the job store's backend keeps no sessions.
    """
    if store_url.split(":", 1)[0].lower() in ("postgresql", "postgres", "postgresql+asyncpg"):
        from planweave.sessions._pg_store import PostgresSessionStore

        dsn = getattr(getattr(job_store, "_url", None), "dsn", None)
        return PostgresSessionStore(dsn if isinstance(dsn, str) else store_url)
    if store_url.startswith("memory:"):
        return MemorySessionStore()
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///").split("?", 1)[0]
        return SqliteSessionStore(path if path.startswith("/") else Path(path).resolve())
    scheme = store_url.split(":", 1)[0]
    raise UsageError(
        f"sessions are kept in sqlite, postgresql or memory stores; this engine's store is {scheme}"
    )
