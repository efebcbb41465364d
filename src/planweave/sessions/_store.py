"""Where sessions are kept: each session's event log and the state it folds to.

A ``SessionStore`` appends a batch of a session's events and writes the state they lead to in
one transaction, and only if the session's last stored ``seq`` is the one the batch was based
on: a second writer gets ``LogConflict``, never a silent interleaving. Two implementations: in
memory (``memory://`` engines) and SQLite (the engine's own database file, tables of their own).
The engine opens the one matching its store URL (``open_session_store``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from planweave.constants import TABLE_SESSION_EVENTS, TABLE_SESSIONS
from planweave.errors import SessionLogConflict, StoreUnavailable, UsageError
from planweave.sessions._events import SessionEvent, parse_session_event
from planweave.sessions._state import SessionState

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
        self, state: SessionState, events: Sequence[SessionEvent], *, based_on: int
    ) -> None:
        """Append ``events`` and store ``state`` (the state after them), in one transaction.

        Raises:
            SessionLogConflict: the session's last stored ``seq`` is not ``based_on``.
        """

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

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(
        self, state: SessionState, events: Sequence[SessionEvent], *, based_on: int
    ) -> None:
        log = self._events.setdefault(state.session_id, [])
        if len(log) != based_on:
            raise SessionLogConflict(state.session_id, based_on + 1)
        log.extend(event.model_dump_json() for event in events)
        self._states[state.session_id] = state.model_dump_json()

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
)


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
        self, state: SessionState, events: Sequence[SessionEvent], *, based_on: int
    ) -> None:
        rows = [(state.session_id, event.seq, event.model_dump_json()) for event in events]
        await asyncio.to_thread(self._append, state, rows, based_on)

    def _append(self, state: SessionState, rows: list[tuple[str, int, str]], based_on: int) -> None:
        conn = self._db()
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    found = conn.execute(
                        f"SELECT seq FROM {TABLE_SESSIONS} WHERE session_id = ?",
                        (state.session_id,),
                    ).fetchone()
                    if (found[0] if found else 0) != based_on:
                        raise SessionLogConflict(state.session_id, based_on + 1)
                    conn.executemany(
                        f"INSERT INTO {TABLE_SESSION_EVENTS} (session_id, seq, event) "
                        "VALUES (?, ?, ?)",
                        rows,
                    )
                    conn.execute(
                        f"INSERT INTO {TABLE_SESSIONS} (session_id, seq, created_at, state) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                        "seq = excluded.seq, state = excluded.state",
                        (state.session_id, state.seq, state.created_at, state.model_dump_json()),
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                raise SessionLogConflict(state.session_id, based_on + 1) from exc
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


def open_session_store(store_url: str) -> SessionStore:
    """The session store beside an engine's job store.

    Raises:
        UsageError: the job store's backend keeps no sessions.
    """
    if store_url.startswith("memory:"):
        return MemorySessionStore()
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///").split("?", 1)[0]
        return SqliteSessionStore(path if path.startswith("/") else Path(path).resolve())
    scheme = store_url.split(":", 1)[0]
    raise UsageError(
        f"sessions are kept in sqlite or memory stores; this engine's store is {scheme}"
    )
