"""Sessions in PostgreSQL: the engine's database, shared by every process that drives or reads
its sessions.

The tables are those of the SQLite session store, plus the leases (``pw_session_leases``).
Every check runs in the writing transaction: ``append`` locks the session's lease and row
(``SELECT … FOR UPDATE``) before it writes, so a take-over waits for that commit and no write
lands for an owner that lost the lease. Lease times are the server's (``clock_timestamp()``), so
processes on machines with skewed clocks agree on when a lease has run out. A process paused in
the middle of a write (its connection idle in a transaction) has that transaction ended by the
server after ``IDLE_IN_TRANSACTION_S``, so its row locks do not keep the session from being
taken over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from planweave.constants import (
    PG_MIGRATION_LOCK,
    TABLE_SESSION_EVENTS,
    TABLE_SESSION_LEASES,
    TABLE_SESSIONS,
)
from planweave.errors import PlanweaveError, SessionLogConflict, StoreUnavailable
from planweave.sessions._events import SessionEvent, parse_session_event
from planweave.sessions._state import SessionState
from planweave.sessions._store import SessionRow, _row, check_claim, check_owner
from planweave.store._pg_url import connect_error, parse_url

__all__ = ["IDLE_IN_TRANSACTION_S", "PostgresSessionStore"]

IDLE_IN_TRANSACTION_S: Final = 5.0
"""How long a session-store connection may sit idle inside a transaction before the server ends
it (and rolls it back)."""

_NOW: Final = "extract(epoch from clock_timestamp())"

_SCHEMA: Final = (
    f"CREATE TABLE IF NOT EXISTS {TABLE_SESSIONS} (session_id TEXT PRIMARY KEY, "
    "seq BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE_SESSIONS}_created ON {TABLE_SESSIONS} (created_at)",
    f"CREATE TABLE IF NOT EXISTS {TABLE_SESSION_EVENTS} (session_id TEXT NOT NULL, "
    "seq BIGINT NOT NULL, event TEXT NOT NULL, PRIMARY KEY (session_id, seq))",
    f"CREATE TABLE IF NOT EXISTS {TABLE_SESSION_LEASES} (session_id TEXT PRIMARY KEY, "
    "owner TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
)

_LEASE: Final = (
    f"SELECT owner, expires_at, {_NOW} FROM {TABLE_SESSION_LEASES} WHERE session_id = $1"
)

_CLAIM: Final = (
    f"INSERT INTO {TABLE_SESSION_LEASES} AS l (session_id, owner, expires_at) "
    f"VALUES ($1, $2, {_NOW} + $3) ON CONFLICT (session_id) DO UPDATE SET "
    f"owner = excluded.owner, expires_at = excluded.expires_at "
    f"WHERE l.owner = excluded.owner OR l.expires_at <= {_NOW} RETURNING owner"
)

_LOST: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
)
"""Errors that mean the connection or the server went away."""


class PostgresSessionStore:
    """Sessions in a PostgreSQL database, through an asyncpg pool.

    Args:
        url: The database's URL (``postgresql://USER:PASSWORD@HOST:PORT/DB``); messages show
            it with the password masked.
        max_size: Most connections the pool opens (default 4).
    """

    def __init__(self, url: str, *, max_size: int = 4) -> None:
        self._url = parse_url(url)
        self.url = self._url.masked
        self.max_size = max_size
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        timeout_s = float(self._url.options.get("connect_timeout_s", 10.0))
        try:
            pool = await asyncpg.create_pool(
                self._url.dsn,
                min_size=1,
                max_size=self.max_size,
                timeout=timeout_s,
                server_settings={
                    "idle_in_transaction_session_timeout": str(int(IDLE_IN_TRANSACTION_S * 1000))
                },
            )
        except PlanweaveError:
            raise
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise connect_error(self._url, exc, timeout_s) from exc
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_MIGRATION_LOCK)
                for statement in _SCHEMA:
                    await conn.execute(statement)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, asyncpg.PostgresError | _LOST):
                raise StoreUnavailable(
                    f"cannot create the session tables in {self.url}: {exc}"
                ) from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _db(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the session store is not open")
        return self._pool

    async def append(
        self,
        state: SessionState,
        events: Sequence[SessionEvent],
        *,
        based_on: int,
        owner: str | None = None,
    ) -> None:
        sid = state.session_id
        rows = [(sid, event.seq, event.model_dump_json()) for event in events]
        try:
            async with self._db().acquire() as conn, conn.transaction():
                lease = await conn.fetchrow(_LEASE + " FOR UPDATE", sid)
                held = None if lease is None else (str(lease[0]), float(lease[1]))
                check_owner(sid, owner, held, float(lease[2]) if lease else 0.0)
                seq = await conn.fetchval(
                    f"SELECT seq FROM {TABLE_SESSIONS} WHERE session_id = $1 FOR UPDATE", sid
                )
                if (seq or 0) != based_on:
                    raise SessionLogConflict(sid, based_on + 1)
                await conn.executemany(
                    f"INSERT INTO {TABLE_SESSION_EVENTS} (session_id, seq, event) "
                    "VALUES ($1, $2, $3)",
                    rows,
                )
                await conn.execute(
                    f"INSERT INTO {TABLE_SESSIONS} (session_id, seq, created_at, state) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) DO UPDATE SET "
                    "seq = excluded.seq, state = excluded.state",
                    sid,
                    state.seq,
                    state.created_at,
                    state.model_dump_json(),
                )
        except asyncpg.UniqueViolationError as exc:
            raise SessionLogConflict(sid, based_on + 1) from exc
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise StoreUnavailable(f"session store write failed ({self.url}): {exc}") from exc

    async def claim(self, session_id: str, owner: str, *, lease_s: float) -> None:
        try:
            async with self._db().acquire() as conn:
                taken = await conn.fetchval(_CLAIM, session_id, owner, float(lease_s))
                if taken is None:
                    lease = await conn.fetchrow(_LEASE, session_id)
                    if lease is not None:
                        check_claim(
                            session_id, owner, (str(lease[0]), float(lease[1])), float(lease[2])
                        )
                    # The other lease ran out (or was released) just now: try once more.
                    if await conn.fetchval(_CLAIM, session_id, owner, float(lease_s)) is None:
                        lease = await conn.fetchrow(_LEASE, session_id)
                        raise StoreUnavailable(
                            f"the lease of session {session_id} changed hands while it was "
                            f"being claimed ({lease[0] if lease else 'no owner'})"
                        )
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise StoreUnavailable(f"session lease claim failed ({self.url}): {exc}") from exc

    async def release(self, session_id: str, owner: str) -> None:
        try:
            await self._db().execute(
                f"DELETE FROM {TABLE_SESSION_LEASES} WHERE session_id = $1 AND owner = $2",
                session_id,
                owner,
            )
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise StoreUnavailable(f"session lease release failed ({self.url}): {exc}") from exc

    async def load(self, session_id: str) -> SessionState | None:
        raw = await self._fetchval(
            f"SELECT state FROM {TABLE_SESSIONS} WHERE session_id = $1", session_id
        )
        return None if raw is None else SessionState.model_validate_json(raw)

    async def read_events(
        self, session_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[SessionEvent]:
        found = await self._fetch(
            f"SELECT event FROM {TABLE_SESSION_EVENTS} WHERE session_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            session_id,
            after_seq,
            limit,
        )
        return [parse_session_event(row[0]) for row in found]

    async def list_sessions(
        self, *, limit: int = 50, tenant: str | None = None
    ) -> list[SessionRow]:
        if tenant is None:
            found = await self._fetch(
                f"SELECT state FROM {TABLE_SESSIONS} ORDER BY created_at DESC LIMIT $1", limit
            )
        else:
            found = await self._fetch(
                f"SELECT state FROM {TABLE_SESSIONS} WHERE (state::jsonb)->>'tenant' = $1 "
                "ORDER BY created_at DESC LIMIT $2",
                tenant,
                limit,
            )
        return [_row(SessionState.model_validate_json(row[0])) for row in found]

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        try:
            return list(await self._db().fetch(sql, *args))
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise StoreUnavailable(f"session store read failed ({self.url}): {exc}") from exc

    async def _fetchval(self, sql: str, *args: object) -> Any:
        try:
            return await self._db().fetchval(sql, *args)
        except (asyncpg.PostgresError, *_LOST) as exc:
            raise StoreUnavailable(f"session store read failed ({self.url}): {exc}") from exc
