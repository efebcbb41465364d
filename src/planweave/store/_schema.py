"""The SQL schema of the stores, defined once with SQLAlchemy Core, and its migrations.

Every SQL store (SQLite, Postgres) builds its statements from these tables, so a column is added
in one place. ``MIGRATIONS[i]`` brings a database from schema version ``i`` to ``i + 1``; a store
applies the missing ones on open and records the version in ``pw_meta``. A migration receives an
``execute`` callable that runs one SQLAlchemy statement (DDL or DML) in the store's transaction,
so the same list serves every dialect.

Nothing imports this module (nor SQLAlchemy) when a store opens: ``_sqlgen`` renders the column
lists and the SQLite statements and migrations from it into plain Python modules, and a test
checks they are up to date.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement

from planweave.constants import (
    EVENT_BASE_BYTES,
    STORE_SCHEMA_VERSION,
    STORE_SCHEMA_VERSION_KEY,
    TABLE_ARTIFACTS,
    TABLE_CLAIMS,
    TABLE_COMMANDS,
    TABLE_EVENTS,
    TABLE_JOBS,
    TABLE_META,
    TABLE_STEPS,
    TABLE_TASKS,
)

__all__ = [
    "JSON_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION_KEY",
    "artifacts",
    "claims",
    "commands",
    "events",
    "jobs",
    "meta",
    "metadata",
    "steps",
    "tasks",
]

SCHEMA_VERSION_KEY: Final = STORE_SCHEMA_VERSION_KEY

# JSON is text in SQLite (a column typed JSON would get NUMERIC affinity there and turn the
# document "123" into the integer 123) and JSONB in Postgres.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")

metadata = sa.MetaData()


# ``sqlite_with_rowid=False``: SQLite keeps rows of a WITHOUT ROWID table in primary-key order,
# one b-tree less per insert, and a job's tasks and events lie together. Other dialects ignore it.


def _v2_job_columns() -> list[sa.schema.SchemaItem]:
    """The columns and indexes of ``pw_jobs`` as schema version 2 had them (new objects on
    every call, so the tables of older versions can be built from them too)."""
    return [
        sa.Column("job_id", sa.String, primary_key=True),
        sa.Column("goal", sa.Text, nullable=False),
        sa.Column("options", Json, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("result", Json),
        sa.Column("error", sa.Text),
        sa.Column("artifacts", Json, nullable=False),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("llm_calls", sa.Integer, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("replans", sa.Integer, nullable=False),
        sa.Column("planned", sa.Boolean, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("idempotency_key", sa.String),
        # The only index of pw_jobs is on a column no update touches, so the job row a step
        # rewrites costs no index page (active jobs are found by a scan: there are few jobs).
        sa.Index("ix_pw_jobs_created", "created_at"),
        sa.Index("ix_pw_jobs_tenant", "tenant", "created_at"),
        sa.Index("ux_pw_jobs_idempotency", "tenant", "idempotency_key", unique=True),
    ]


jobs = sa.Table(
    TABLE_JOBS,
    metadata,
    *_v2_job_columns(),
    # ``JobState.data_bytes``: what the job's events recorded, summed into its tenant's storage.
    sa.Column("data_bytes", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)


def _v4_task_columns() -> list[sa.schema.SchemaItem]:
    """The columns of ``pw_tasks`` as schema version 4 had them (new objects on every call)."""
    return [
        sa.Column("job_id", sa.String, primary_key=True),
        sa.Column("task_id", sa.String, primary_key=True),
        sa.Column("spec", Json, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("parent", sa.String),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("started", sa.Boolean, nullable=False),
        sa.Column("result", Json),
        sa.Column("error", sa.Text),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("ord", sa.Integer, nullable=False),
        sa.Column("superseded", sa.Boolean, nullable=False),
    ]


tasks = sa.Table(
    TABLE_TASKS,
    metadata,
    *_v4_task_columns(),
    # The call a task waits on a person for, and the decisions made on its calls.
    sa.Column("approval", Json),
    sqlite_with_rowid=False,
)


events = sa.Table(
    TABLE_EVENTS,
    metadata,
    sa.Column("job_id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    # Not indexed: event ids are random, so an index on them dirties one page per event, about
    # half of what a step writes. (job_id, seq) already makes storing an event idempotent.
    sa.Column("id", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("task_id", sa.String),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("body", Json, nullable=False),
    sqlite_with_rowid=False,
)

artifacts = sa.Table(
    TABLE_ARTIFACTS,
    metadata,
    sa.Column("job_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content_type", sa.String, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("task_id", sa.String),
    sqlite_with_rowid=False,
)

commands = sa.Table(
    TABLE_COMMANDS,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("args", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_pw_commands_job", "job_id", "id"),
    # Ids never come back after a delete, so they order commands across takes.
    sqlite_autoincrement=True,
)

claims = sa.Table(
    TABLE_CLAIMS,
    metadata,
    # The control plane that drives the job, in a table of its own: a renewal rewrites this
    # short row, not the job's, and the owner fence of every commit is one lookup here.
    sa.Column("job_id", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sqlite_with_rowid=False,
)

meta = sa.Table(
    TABLE_META,
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
    sqlite_with_rowid=False,
)

steps = sa.Table(
    TABLE_STEPS,
    metadata,
    # The step journal: each completed model or tool call of a running task, replayed when
    # the task is run again after a crash. Deleted once the task's attempt reports its end.
    sa.Column("job_id", sa.String, primary_key=True),
    sa.Column("task_id", sa.String, primary_key=True),
    sa.Column("step", sa.String, primary_key=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("result", Json),
    sa.Column("at", sa.Float, nullable=False),
    sqlite_with_rowid=False,
)

JSON_COLUMNS: Final[dict[str, frozenset[str]]] = {
    table.name: frozenset(c.name for c in table.columns if c.type is Json)
    for table in metadata.sorted_tables
}
"""Names of the JSON columns of each table."""

Execute = Callable[[ClauseElement], object]


def _create(execute: Execute, tables: list[sa.Table]) -> None:
    for table in tables:
        execute(sa.schema.CreateTable(table, if_not_exists=True))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _v1_tables() -> list[sa.Table]:
    """The tables as version 1 had them: claims were two columns of ``pw_jobs``."""
    v1 = sa.MetaData()
    v1_jobs = sa.Table(
        TABLE_JOBS,
        v1,
        *_v2_job_columns(),
        sa.Column("owner", sa.String),
        sa.Column("lease_until", sa.Float),
        sqlite_with_rowid=False,
    )
    v1_tasks = sa.Table(TABLE_TASKS, v1, *_v4_task_columns(), sqlite_with_rowid=False)
    return [v1_jobs, v1_tasks, *(t.to_metadata(v1) for t in (events, artifacts, commands, meta))]


def _v1_create_all(execute: Execute) -> None:
    _create(execute, _v1_tables())


def _v2_claims_table(execute: Execute) -> None:
    """Claims move to ``pw_claims`` and record the claiming host and pid."""
    _create(execute, [claims])
    execute(
        sa.insert(claims).from_select(
            ["job_id", "owner", "host", "pid", "expires_at"],
            sa.select(
                sa.column("job_id"),
                sa.column("owner"),
                sa.literal(""),
                sa.literal(0),
                sa.column("lease_until"),
            )
            .select_from(sa.table(TABLE_JOBS))
            .where(sa.column("owner").is_not(None), sa.column("lease_until").is_not(None)),
        )
    )
    for column in ("owner", "lease_until"):
        execute(sa.text(f"ALTER TABLE {TABLE_JOBS} DROP COLUMN {column}"))


def _v3_data_bytes(execute: Execute) -> None:
    """Jobs count the bytes their events recorded (``data_bytes``). A job stored before has
    its events' count times ``EVENT_BASE_BYTES`` as an estimate (its text is not measured)."""
    execute(sa.text(f"ALTER TABLE {TABLE_JOBS} ADD COLUMN data_bytes BIGINT NOT NULL DEFAULT 0"))
    execute(sa.update(jobs).values(data_bytes=jobs.c.seq * EVENT_BASE_BYTES))


def _v4_steps_table(execute: Execute) -> None:
    """The step journal (``pw_steps``)."""
    _create(execute, [steps])


class _AddColumn(sa.schema.ExecutableDDLElement):
    """``ALTER TABLE ... ADD COLUMN`` with the column's definition in each dialect's types."""

    inherit_cache = False

    def __init__(self, table: str, column: sa.Column[Any]) -> None:
        self.table = table
        self.column = column


@compiles(_AddColumn)
def _compile_add_column(element: _AddColumn, compiler: Any, **kw: Any) -> str:
    definition = compiler.process(sa.schema.CreateColumn(element.column), **kw)
    return f"ALTER TABLE {element.table} ADD COLUMN {definition}"


def _v5_task_approval(execute: Execute) -> None:
    """Tasks record the call they wait on a person for, and the decisions made on them."""
    execute(_AddColumn(TABLE_TASKS, sa.Column("approval", Json)))


MIGRATIONS: Final[list[Callable[[Execute], None]]] = [
    _v1_create_all,
    _v2_claims_table,
    _v3_data_bytes,
    _v4_steps_table,
    _v5_task_approval,
]
"""``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``."""

assert len(MIGRATIONS) == STORE_SCHEMA_VERSION, "add a migration with each schema version"
