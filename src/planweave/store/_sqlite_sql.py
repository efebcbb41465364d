"""The SQL of the SQLite store, compiled once from the Core tables.

Statements are built with SQLAlchemy Core from ``_schema`` and compiled at import to SQLite text
with ``?`` parameters and their names in order, so the writer thread runs plain ``sqlite3``
``executemany`` calls without SQLAlchemy in the loop. Rows travel as tuples in the column order
of ``_rows``, whose codecs every SQL store shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from planweave.state import TERMINAL_JOB, TERMINAL_TASK
from planweave.store import _schema as schema
from planweave.store._rows import (
    ARTIFACT_COLS,
    CLAIM_COLS,
    COMMAND_COLS,
    EVENT_COLS,
    JOB_COLS,
    SUMMARY_COLS,
    TASK_COLS,
)

DIALECT = sqlite_dialect.dialect()


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement as SQLite text, with the names of its ``?`` parameters in order."""

    text: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, **values: Any) -> tuple[Any, ...]:
        """The parameter tuple: ``values`` by name, compiled-in constants for the rest."""
        return tuple(values[n] if n in values else self.defaults[n] for n in self.names)


def compile_sql(stmt: ClauseElement) -> Sql:
    compiled = stmt.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
    if not isinstance(compiled, SQLCompiler):  # DDL has no parameters
        return Sql(str(compiled), (), {})
    return Sql(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


def param(name: str) -> sa.BindParameter[Any]:
    """A named parameter; its placeholder value lets the statement compile before it runs."""
    return sa.bindparam(name, None)


def _upsert(table: sa.Table, columns: tuple[str, ...], *, keep: tuple[str, ...] = ()) -> Sql:
    """``INSERT … ON CONFLICT DO UPDATE`` of ``columns``; an update leaves ``keep`` alone."""
    stmt = sqlite_dialect.insert(table).values({name: param(name) for name in columns})
    keys = [c.name for c in table.primary_key]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={n: stmt.excluded[n] for n in columns if n not in keys and n not in keep},
    )
    sql = compile_sql(stmt)
    assert sql.names == columns, sql.names
    return sql


# A job's goal, options and creation time never change; leaving them out of the update keeps
# the index on created_at untouched by every step.
UPSERT_JOB = _upsert(
    schema.jobs, JOB_COLS,
    keep=("goal", "options", "created_at", "tenant", "idempotency_key"),
)  # fmt: skip
UPSERT_TASK = _upsert(schema.tasks, TASK_COLS)
UPSERT_ARTIFACT = _upsert(schema.artifacts, ARTIFACT_COLS)
# A plain insert: an event whose (job_id, seq) is stored already is a second writer, and the
# primary key turns it into an error (``LogConflict``), never into silence.
INSERT_EVENT = compile_sql(sa.insert(schema.events).values({n: param(n) for n in EVENT_COLS}))
_jobs, _tasks, _events, _commands = schema.jobs, schema.tasks, schema.events, schema.commands
_claims = schema.claims
EVENT_EXISTS = compile_sql(
    sa.select(_events.c.seq).where(
        _events.c.job_id == param("job_id"), _events.c.seq == param("seq")
    )
)
_TERMINAL_JOBS = sorted(TERMINAL_JOB)
_TERMINAL_TASKS = sorted(TERMINAL_TASK)

SELECT_JOB = compile_sql(
    sa.select(*(_jobs.c[n] for n in JOB_COLS)).where(_jobs.c.job_id == param("job_id"))
)
SELECT_TASKS = compile_sql(
    sa.select(*(_tasks.c[n] for n in TASK_COLS)).where(_tasks.c.job_id == param("job_id"))
)
SELECT_EVENTS = compile_sql(
    sa.select(_events.c.body)
    .where(_events.c.job_id == param("job_id"), _events.c.seq > param("after_seq"))
    .order_by(_events.c.seq)
    .limit(param("limit"))
)


def _list_jobs() -> Sql:
    total = sa.select(sa.func.count()).where(_tasks.c.job_id == _jobs.c.job_id)
    done = total.where(_tasks.c.status.in_(_TERMINAL_TASKS))
    stmt = sa.select(
        *(_jobs.c[n] for n in SUMMARY_COLS),
        total.scalar_subquery(),
        done.scalar_subquery(),
        _claims.c.owner,
        _claims.c.expires_at,
    ).select_from(_jobs.outerjoin(_claims, _claims.c.job_id == _jobs.c.job_id))
    stmt = stmt.where(
        sa.or_(param("status").is_(None), _jobs.c.status == param("status")),
        sa.or_(param("tenant").is_(None), _jobs.c.tenant == param("tenant")),
    )
    stmt = stmt.order_by(_jobs.c.created_at.desc(), _jobs.c.job_id.desc())
    return compile_sql(stmt.limit(param("limit")).offset(param("offset")))


LIST_JOBS = _list_jobs()
FIND_JOB = compile_sql(
    sa.select(_jobs.c.job_id).where(
        _jobs.c.tenant == param("tenant"), _jobs.c.idempotency_key == param("key")
    )
)
ACTIVE_JOBS = compile_sql(
    sa.select(_jobs.c.job_id)
    .where(_jobs.c.status.not_in(_TERMINAL_JOBS))
    .order_by(_jobs.c.created_at, _jobs.c.job_id)
)
SELECT_ARTIFACTS = compile_sql(
    sa.select(*(schema.artifacts.c[n] for n in ARTIFACT_COLS))
    .where(schema.artifacts.c.job_id == param("job_id"))
    .order_by(schema.artifacts.c.created_at, schema.artifacts.c.name)
)
JOB_EXISTS = compile_sql(sa.select(_jobs.c.job_id).where(_jobs.c.job_id == param("job_id")))
SELECT_OWNER = compile_sql(sa.select(_claims.c.owner).where(_claims.c.job_id == param("job_id")))
SELECT_CLAIM = compile_sql(
    sa.select(*(_claims.c[n] for n in CLAIM_COLS)).where(_claims.c.job_id == param("job_id"))
)
FORCE_CLAIM = _upsert(_claims, CLAIM_COLS)
"""Take the claim whoever holds it (``force``, and the claims of new jobs)."""


def _claim() -> Sql:
    stmt = sqlite_dialect.insert(_claims).values({n: param(n) for n in CLAIM_COLS})
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id"],
        set_={n: stmt.excluded[n] for n in CLAIM_COLS if n != "job_id"},
        where=sa.or_(_claims.c.owner == stmt.excluded.owner, _claims.c.expires_at < param("now")),
    )
    return compile_sql(stmt)


CLAIM = _claim()
"""Take a free claim, renew one's own, or take over an expired one: one changed row if so."""
RELEASE = compile_sql(
    sa.delete(_claims).where(_claims.c.job_id == param("job_id"), _claims.c.owner == param("owner"))
)
INSERT_COMMAND = compile_sql(
    sa.insert(_commands).values({n: param(n) for n in COMMAND_COLS if n != "id"})
)
_job_ids_json = sa.select(sa.func.json_each(param("job_ids")).table_valued("value").c.value)
SELECT_COMMANDS = compile_sql(
    sa.select(*(_commands.c[n] for n in COMMAND_COLS))
    .where(_commands.c.job_id.in_(_job_ids_json))
    .order_by(_commands.c.id)
)
DELETE_COMMAND = compile_sql(sa.delete(_commands).where(_commands.c.id == param("id")))
DELETE_FINISHED_JOB = compile_sql(
    sa.delete(_jobs).where(_jobs.c.job_id == param("job_id"), _jobs.c.status.in_(_TERMINAL_JOBS))
)
DELETE_JOB_ROWS = tuple(
    compile_sql(sa.delete(table).where(table.c.job_id == param("job_id")))
    for table in (_tasks, _events, schema.artifacts, _commands, _claims)
)
SELECT_VERSION = compile_sql(
    sa.select(schema.meta.c.value).where(schema.meta.c.key == schema.SCHEMA_VERSION_KEY)
)
SET_VERSION = _upsert(schema.meta, ("key", "value"))
