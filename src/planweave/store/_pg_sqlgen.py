"""The statements of the Postgres store, built from the SQLAlchemy Core tables of ``_schema``.

Rendered ahead of time into ``_postgres_sql.py`` by ``python -m planweave.store._sqlgen``, as
the SQLite ones are, so the store runs plain asyncpg and never imports SQLAlchemy. They are
compiled with SQLAlchemy's asyncpg dialect: ``$1`` parameters, each cast to its column's type
so that the server never has to guess one.

The store's clock is the server's (``clock_timestamp()``, seconds since the epoch), unless the
store was given a clock: every statement that stamps or compares a time takes a ``now``
parameter, ``NULL`` for the server's clock, so the same text serves both.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from planweave.state import TERMINAL_TASK
from planweave.store import _schema as schema
from planweave.store._rows import SUMMARY_COLS
from planweave.store._sql import Sql
from planweave.store._sqlgen import (
    columns_of,
    compile_sql,
    param,
    shared_statements,
    statements_of,
    tenant_usage_sql,
)

__all__ = ["DIALECT", "postgres_migrations", "postgres_statements"]

DIALECT: Dialect = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]


def _compile(stmt: Any) -> Sql:
    return compile_sql(stmt, DIALECT)


def _now() -> ColumnElement[float]:
    """The store's clock: the ``now`` parameter, or the server's clock when it is ``NULL``."""
    server = sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return sa.func.coalesce(sa.cast(param("now"), sa.Float), server)


def _upsert(table: sa.Table, columns: tuple[str, ...], *, keep: tuple[str, ...] = ()) -> Sql:
    """``INSERT … ON CONFLICT DO UPDATE`` of ``columns``; an update leaves ``keep`` alone."""
    stmt = postgresql.insert(table).values({name: param(name) for name in columns})
    keys = [c.name for c in table.primary_key]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={n: stmt.excluded[n] for n in columns if n not in keys and n not in keep},
    )
    sql = _compile(stmt)
    assert sql.names == columns, sql.names
    return sql


def _unnest(table: sa.Table, prefix: str) -> sa.Select[Any]:
    """The rows of ``table`` given as one array parameter per column (``prefix`` + name)."""
    names = columns_of(table)
    arrays = []
    for column in table.columns:
        json = column.name in schema.JSON_COLUMNS[table.name]
        element = postgresql.JSONB() if json else column.type
        arrays.append(sa.bindparam(prefix + column.name, None, type_=postgresql.ARRAY(element)))
    rows = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    return sa.select(*(rows.c[n] for n in names))


def _upsert_from(table: sa.Table, prefix: str, *, keep: tuple[str, ...] = ()) -> postgresql.Insert:
    names = list(columns_of(table))
    stmt = postgresql.insert(table).from_select(names, _unnest(table, prefix))
    keys = [c.name for c in table.primary_key]
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={n: stmt.excluded[n] for n in names if n not in keys and n not in keep},
    )


def _write_rows() -> Sql:
    jobs, tasks, events = schema.jobs, schema.tasks, schema.events
    keep = ("goal", "options", "created_at", "tenant", "idempotency_key")
    job_rows = _upsert_from(jobs, "j_", keep=keep).cte("j")
    task_rows = _upsert_from(tasks, "t_").cte("t")
    stmt = (
        sa.insert(events)
        .from_select(list(columns_of(events)), _unnest(events, "e_"))
        .add_cte(job_rows)
        .add_cte(task_rows)
    )
    sql = _compile(stmt)
    expected = tuple(
        prefix + name
        for prefix, table in (("j_", jobs), ("t_", tasks), ("e_", events))
        for name in columns_of(table)
    )
    assert sql.names == expected, sql.names
    return sql


def _select(table: sa.Table) -> sa.Select[Any]:
    return sa.select(*(table.c[n] for n in columns_of(table)))


def _job_ids() -> Any:
    return sa.any_(sa.bindparam("job_ids", None, type_=postgresql.ARRAY(sa.String)))


def _claim_values(*, if_job_exists: bool) -> sa.Select[str, str, str, int, float]:
    """A claim row from parameters, expiring ``lease_s`` after the store's clock."""
    jobs = schema.jobs
    row = sa.select(
        sa.cast(param("job_id"), sa.String),
        sa.cast(param("owner"), sa.String),
        sa.cast(param("host"), sa.String),
        sa.cast(param("pid"), sa.Integer),
        _now() + sa.cast(param("lease_s"), sa.Float),
    )
    if if_job_exists:
        row = row.where(sa.exists().where(jobs.c.job_id == param("job_id")))
    return row


def _claim(*, force: bool, if_job_exists: bool) -> Sql:
    """Write a claim; unless ``force``, only over one's own or an expired one."""
    claims = schema.claims
    names = list(columns_of(claims))
    stmt = postgresql.insert(claims).from_select(names, _claim_values(if_job_exists=if_job_exists))
    where = None
    if not force:
        where = sa.or_(claims.c.owner == stmt.excluded.owner, claims.c.expires_at < _now())
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id"],
        set_={n: stmt.excluded[n] for n in names if n != "job_id"},
        where=where,
    )
    return _compile(stmt)


def _list_jobs() -> Sql:
    jobs, tasks, claims = schema.jobs, schema.tasks, schema.claims
    total = sa.select(sa.func.count()).where(tasks.c.job_id == jobs.c.job_id)
    done = total.where(tasks.c.status.in_(sorted(TERMINAL_TASK)))
    stmt = sa.select(
        *(jobs.c[n] for n in SUMMARY_COLS),
        total.scalar_subquery(),
        done.scalar_subquery(),
        claims.c.owner,
        claims.c.expires_at,
    ).select_from(jobs.outerjoin(claims, claims.c.job_id == jobs.c.job_id))
    status = sa.cast(param("status"), sa.String)
    tenant = sa.cast(param("tenant"), sa.String)
    stmt = stmt.where(
        sa.or_(status.is_(None), jobs.c.status == status),
        sa.or_(tenant.is_(None), jobs.c.tenant == tenant),
    )
    stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc())
    return _compile(stmt.limit(param("limit")).offset(param("offset")))


def postgres_statements() -> dict[str, tuple[Sql | tuple[Sql, ...], str]]:
    """Each statement of the Postgres store by name, with what it does."""
    events, commands = schema.events, schema.commands
    artifacts, claims, meta = schema.artifacts, schema.claims, schema.meta
    return {
        "WRITE_ROWS": (
            _write_rows(),
            "Write job rows, task rows and events in one statement (one round trip), each "
            "part as one array per column (``j_*``, ``t_*``, ``e_*`` in table order). An update "
            "leaves a job's goal, options, creation time and keys alone; an event is a plain "
            "insert, so one whose (job_id, seq) is stored already (a second writer) violates "
            "the primary key (``LogConflict``), never silence.",
        ),
        "UPSERT_ARTIFACT": (_upsert(artifacts, columns_of(artifacts)), "Write an artifact row."),
        "UPSERT_STEP": (
            _upsert(schema.steps, columns_of(schema.steps)),
            "Write a journal step (a step recorded again replaces the old one).",
        ),
        **shared_statements(_compile),
        "SELECT_EVENTS": (
            _compile(
                sa.select(events.c.body)
                .where(events.c.job_id == param("job_id"), events.c.seq > param("after_seq"))
                .order_by(events.c.seq)
                .limit(param("limit"))
            ),
            "A job's events after a seq, in order (``limit`` NULL: all of them).",
        ),
        "LIST_JOBS": (
            _list_jobs(),
            "Job summaries, newest first, with task counts and the claim: ``SUMMARY_COLS``, "
            "tasks total, tasks done, owner, claim expiry.",
        ),
        "TENANT_USAGE": (
            tenant_usage_sql(DIALECT),
            "A tenant's active jobs, stored bytes (job data and artifacts) and spend since "
            "``since``.",
        ),
        "LOCK_OWNERS": (
            _compile(
                sa.select(claims.c.job_id, claims.c.owner)
                .where(claims.c.job_id == _job_ids())
                .order_by(claims.c.job_id)
                .with_for_update()
            ),
            "Lock the claims of some jobs until the transaction ends, and read their owners: "
            "the owner fence of a group of batches. Locked in job order, so two writers never "
            "wait on each other in a circle.",
        ),
        "SELECT_CLAIM": (
            _compile(
                sa.select(*(claims.c[n] for n in columns_of(claims)), _now()).where(
                    claims.c.job_id == param("job_id")
                )
            ),
            "A job's claim row and the store's clock.",
        ),
        "NEW_CLAIM": (
            _compile(
                postgresql.insert(claims).from_select(
                    list(columns_of(claims)), _claim_values(if_job_exists=False)
                )
            ),
            "Record the claim of a job a batch creates: a plain insert, so a claim another "
            "process took meanwhile violates the primary key (``ClaimLost``).",
        ),
        "FORCE_CLAIM": (
            _claim(force=True, if_job_exists=False),
            "Take the claim whoever holds it.",
        ),
        "FORCE_CLAIM_JOB": (
            _claim(force=True, if_job_exists=True),
            "Take the claim of an existing job whoever holds it (``force``).",
        ),
        "CLAIM_JOB": (
            _claim(force=False, if_job_exists=True),
            "Take the free claim of an existing job, renew one's own, or take over an expired "
            "one: one changed row if so.",
        ),
        "INSERT_COMMAND": (
            _compile(
                sa.insert(commands)
                .values(
                    job_id=param("job_id"),
                    name=param("name"),
                    args=sa.cast(param("args"), postgresql.JSONB),
                    created_at=_now(),
                )
                .returning(sa.func.pg_notify(sa.cast(param("channel"), sa.Text), commands.c.job_id))
            ),
            "Leave a command for a job's owner, stamped with the store's clock (its id comes "
            "from the table's sequence), and notify the channel that owners listen on with "
            "the job's id.",
        ),
        "SELECT_COMMANDS": (
            _compile(
                _select(commands).where(commands.c.job_id == _job_ids()).order_by(commands.c.id)
            ),
            "The commands left for some jobs, oldest first.",
        ),
        "DELETE_COMMANDS": (
            _compile(
                sa.delete(commands).where(
                    commands.c.id
                    == sa.any_(sa.bindparam("ids", None, type_=postgresql.ARRAY(sa.Integer)))
                )
            ),
            "Drop the commands that were carried out.",
        ),
        "META_EXISTS": (
            _compile(sa.select(sa.func.to_regclass(schema.meta.name).is_not(None))),
            "Whether the database has planweave's tables at all.",
        ),
        "MIGRATION_LOCK": (
            _compile(sa.select(sa.func.pg_advisory_xact_lock(param("key")))),
            "Hold the migration lock until the transaction ends: two processes that open a "
            "new database at once create its tables once.",
        ),
        "SELECT_VERSION": (
            _compile(sa.select(meta.c.value).where(meta.c.key == schema.SCHEMA_VERSION_KEY)),
            "The schema version a database records.",
        ),
        "SET_VERSION": (_upsert(meta, ("key", "value")), "Record the schema version."),
    }


def postgres_migrations() -> tuple[tuple[Sql, ...], ...]:
    """``_schema.MIGRATIONS`` as Postgres statements: item ``i`` upgrades version ``i``."""
    return tuple(statements_of(migrate, DIALECT) for migrate in schema.MIGRATIONS)
