"""Renders the SQL of the stores from the SQLAlchemy Core tables of ``_schema`` into Python.

Why rendered ahead of time: importing SQLAlchemy and compiling some thirty statements costs a
third of a second, more than everything else ``planweave jobs`` does. So the statements are
built here with SQLAlchemy Core, compiled to SQLite text with ``?`` parameters, and written out
as two plain modules that the stores import instead:

* ``_columns.py``: the columns of each table, in order, and which of them hold JSON;
* ``_sqlite_sql.py``: every statement of the SQLite store and its schema migrations;
* ``_postgres_sql.py``: the same for the Postgres store, with asyncpg's ``$1`` parameters
  (its statements are built in ``_pg_sqlgen``).

The tables stay the one definition of the schema; a test renders every module again and fails
when a checked-in one differs. After changing ``_schema`` or a statement here, run::

    python -m planweave.store._sqlgen
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from planweave.state import TERMINAL_JOB, TERMINAL_TASK
from planweave.store import _schema as schema
from planweave.store._rows import SUMMARY_COLS
from planweave.store._sql import Sql

__all__ = [
    "GENERATED",
    "columns_of",
    "compile_sql",
    "param",
    "render_columns",
    "render_postgres",
    "render_sqlite",
    "statements_of",
    "write",
]

DIALECT = sqlite_dialect.dialect()

_HERE: Final = Path(__file__).parent


def compile_sql(stmt: ClauseElement, dialect: Dialect = DIALECT) -> Sql:
    """``stmt`` as text of ``dialect`` (SQLite unless told), its parameter names in order and
    its compiled-in constants."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    if not isinstance(compiled, SQLCompiler):  # DDL has no parameters
        return Sql(str(compiled), (), {})
    return Sql(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


def param(name: str) -> sa.BindParameter[Any]:
    """A named parameter; its placeholder value lets the statement compile before it runs."""
    return sa.bindparam(name, None)


def columns_of(table: sa.Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns)


_TABLES: Final = {
    "JOB_COLS": schema.jobs,
    "TASK_COLS": schema.tasks,
    "EVENT_COLS": schema.events,
    "ARTIFACT_COLS": schema.artifacts,
    "COMMAND_COLS": schema.commands,
    "CLAIM_COLS": schema.claims,
    "STEP_COLS": schema.steps,
}
"""Name in ``_columns`` -> the table whose columns it lists."""


# --- the statements of the SQLite store -----------------------------------------------------


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
    stmt = stmt.where(
        sa.or_(param("status").is_(None), jobs.c.status == param("status")),
        sa.or_(param("tenant").is_(None), jobs.c.tenant == param("tenant")),
    )
    stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc())
    return compile_sql(stmt.limit(param("limit")).offset(param("offset")))


def tenant_usage_sql(dialect: Dialect = DIALECT) -> Sql:
    """One tenant's active jobs, stored bytes (its jobs' data and artifacts) and spend since a
    time, in one statement (shared by the SQL stores)."""
    jobs, artifacts = schema.jobs, schema.artifacts
    tenant_jobs = sa.select(jobs.c.job_id).where(jobs.c.tenant == param("tenant"))
    artifact_bytes = (
        sa.select(sa.func.coalesce(sa.func.sum(artifacts.c.size), 0))
        .where(artifacts.c.job_id.in_(tenant_jobs))
        .scalar_subquery()
    )
    active = sa.case((jobs.c.status.not_in(sorted(TERMINAL_JOB)), 1), else_=0)
    spent = sa.case((jobs.c.updated_at >= param("since"), jobs.c.cost_usd), else_=0.0)
    stmt = sa.select(
        sa.func.coalesce(sa.func.sum(active), 0),
        sa.func.coalesce(sa.func.sum(jobs.c.data_bytes), 0) + artifact_bytes,
        sa.func.coalesce(sa.func.sum(spent), 0.0),
    ).where(jobs.c.tenant == param("tenant"))
    return compile_sql(stmt, dialect)


def _claim() -> Sql:
    claims = schema.claims
    stmt = sqlite_dialect.insert(claims).values({n: param(n) for n in columns_of(claims)})
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id"],
        set_={n: stmt.excluded[n] for n in columns_of(claims) if n != "job_id"},
        where=sa.or_(claims.c.owner == stmt.excluded.owner, claims.c.expires_at < param("now")),
    )
    return compile_sql(stmt)


def _select(table: sa.Table) -> sa.Select[Any]:
    return sa.select(*(table.c[n] for n in columns_of(table)))


def shared_statements(
    compile_stmt: Callable[[Any], Sql],
) -> dict[str, tuple[Sql | tuple[Sql, ...], str]]:
    """The statements both SQL stores use as they are, each compiled with ``compile_stmt`` (for
    its dialect)."""
    jobs, tasks, events, commands = schema.jobs, schema.tasks, schema.events, schema.commands
    artifacts, claims, steps = schema.artifacts, schema.claims, schema.steps
    terminal_jobs = sorted(TERMINAL_JOB)
    return {
        "LAST_SEQ": (
            compile_stmt(
                sa.select(sa.func.max(events.c.seq)).where(events.c.job_id == param("job_id"))
            ),
            "The seq of a job's last stored event (NULL: none).",
        ),
        "EVENT_EXISTS": (
            compile_stmt(
                sa.select(events.c.seq).where(
                    events.c.job_id == param("job_id"), events.c.seq == param("seq")
                )
            ),
            "Whether the log holds the event (job_id, seq).",
        ),
        "SELECT_JOB": (
            compile_stmt(_select(jobs).where(jobs.c.job_id == param("job_id"))),
            "A job's row.",
        ),
        "SELECT_TASKS": (
            compile_stmt(_select(tasks).where(tasks.c.job_id == param("job_id"))),
            "A job's task rows.",
        ),
        "FIND_JOB": (
            compile_stmt(
                sa.select(jobs.c.job_id).where(
                    jobs.c.tenant == param("tenant"), jobs.c.idempotency_key == param("key")
                )
            ),
            "The job a tenant submitted with an idempotency key.",
        ),
        "ACTIVE_JOBS": (
            compile_stmt(
                sa.select(jobs.c.job_id)
                .where(jobs.c.status.not_in(terminal_jobs))
                .order_by(jobs.c.created_at, jobs.c.job_id)
            ),
            "Ids of the jobs that have not ended, oldest first.",
        ),
        "SELECT_ARTIFACTS": (
            compile_stmt(
                _select(artifacts)
                .where(artifacts.c.job_id == param("job_id"))
                .order_by(artifacts.c.created_at, artifacts.c.name)
            ),
            "A job's artifacts, oldest first.",
        ),
        "RELEASE": (
            compile_stmt(
                sa.delete(claims).where(
                    claims.c.job_id == param("job_id"), claims.c.owner == param("owner")
                )
            ),
            "Drop a claim its owner holds.",
        ),
        "DELETE_FINISHED_JOB": (
            compile_stmt(
                sa.delete(jobs).where(
                    jobs.c.job_id == param("job_id"), jobs.c.status.in_(terminal_jobs)
                )
            ),
            "Delete a job's row if it has ended.",
        ),
        "DELETE_JOB_ROWS": (
            tuple(
                compile_stmt(sa.delete(table).where(table.c.job_id == param("job_id")))
                for table in (tasks, events, artifacts, commands, claims, steps)
            ),
            "Delete the rest of a deleted job: tasks, events, artifacts, commands, claim, "
            "journal steps.",
        ),
        "SELECT_STEPS": (
            compile_stmt(
                _select(steps)
                .where(steps.c.job_id == param("job_id"))
                .order_by(steps.c.task_id, steps.c.step)
            ),
            "A job's journal steps, by task and step.",
        ),
        "DELETE_TASK_STEPS": (
            compile_stmt(
                sa.delete(steps).where(
                    steps.c.job_id == param("job_id"), steps.c.task_id == param("task_id")
                )
            ),
            "Forget a task's journal steps (its attempt ended).",
        ),
    }


def sqlite_statements() -> dict[str, tuple[Sql | tuple[Sql, ...], str]]:
    """Each statement of the SQLite store by name, with what it does."""
    jobs, tasks, events, commands = schema.jobs, schema.tasks, schema.events, schema.commands
    artifacts, claims, meta = schema.artifacts, schema.claims, schema.meta
    job_ids_json = sa.select(sa.func.json_each(param("job_ids")).table_valued("value").c.value)
    return {
        # A job's goal, options and creation time never change; leaving them out of the
        # update keeps the index on created_at untouched by every step.
        "UPSERT_JOB": (
            _upsert(
                jobs,
                columns_of(jobs),
                keep=("goal", "options", "created_at", "tenant", "idempotency_key"),
            ),
            "Write a job row; an update leaves its goal, options, creation time and keys alone.",
        ),
        "UPSERT_TASK": (_upsert(tasks, columns_of(tasks)), "Write a task row."),
        "UPSERT_ARTIFACT": (_upsert(artifacts, columns_of(artifacts)), "Write an artifact row."),
        "UPSERT_STEP": (
            _upsert(schema.steps, columns_of(schema.steps)),
            "Write a journal step (a step recorded again replaces the old one).",
        ),
        "INSERT_EVENT": (
            compile_sql(sa.insert(events).values({n: param(n) for n in columns_of(events)})),
            "Append an event: a plain insert, so an event whose (job_id, seq) is stored already "
            "(a second writer) is an error (``LogConflict``), never silence.",
        ),
        **shared_statements(compile_sql),
        "SELECT_EVENTS": (
            compile_sql(
                sa.select(events.c.body)
                .where(events.c.job_id == param("job_id"), events.c.seq > param("after_seq"))
                .order_by(events.c.seq)
                .limit(param("limit"))
            ),
            "A job's events after a seq, in order (``limit`` -1: all of them).",
        ),
        "LIST_JOBS": (
            _list_jobs(),
            "Job summaries, newest first, with task counts and the claim: ``SUMMARY_COLS``, "
            "tasks total, tasks done, owner, claim expiry.",
        ),
        "TENANT_USAGE": (
            tenant_usage_sql(),
            "A tenant's jobs not ended, its stored bytes (jobs' data_bytes and artifact sizes) "
            "and what its jobs updated since a time spent.",
        ),
        "JOB_EXISTS": (
            compile_sql(sa.select(jobs.c.job_id).where(jobs.c.job_id == param("job_id"))),
            "Whether a job exists.",
        ),
        "SELECT_OWNER": (
            compile_sql(sa.select(claims.c.owner).where(claims.c.job_id == param("job_id"))),
            "Who holds a job's claim.",
        ),
        "SELECT_CLAIM": (
            compile_sql(_select(claims).where(claims.c.job_id == param("job_id"))),
            "A job's claim row.",
        ),
        "FORCE_CLAIM": (
            _upsert(claims, columns_of(claims)),
            "Take the claim whoever holds it (``force``, and the claims of new jobs).",
        ),
        "CLAIM": (
            _claim(),
            "Take a free claim, renew one's own, or take over an expired one: one changed row "
            "if so.",
        ),
        "INSERT_COMMAND": (
            compile_sql(
                sa.insert(commands).values({n: param(n) for n in columns_of(commands) if n != "id"})
            ),
            "Leave a command for a job's owner (its id comes from the table).",
        ),
        "SELECT_COMMANDS": (
            compile_sql(
                _select(commands).where(commands.c.job_id.in_(job_ids_json)).order_by(commands.c.id)
            ),
            "The commands left for some jobs (their ids as a JSON array), oldest first.",
        ),
        "DELETE_COMMAND": (
            compile_sql(sa.delete(commands).where(commands.c.id == param("id"))),
            "Drop a command that was carried out.",
        ),
        "SELECT_VERSION": (
            compile_sql(sa.select(meta.c.value).where(meta.c.key == schema.SCHEMA_VERSION_KEY)),
            "The schema version a file records.",
        ),
        "SET_VERSION": (_upsert(meta, ("key", "value")), "Record the schema version."),
    }


def sqlite_migrations() -> tuple[tuple[Sql, ...], ...]:
    """``_schema.MIGRATIONS`` as SQLite statements: item ``i`` upgrades version ``i``."""
    return tuple(statements_of(migrate) for migrate in schema.MIGRATIONS)


def statements_of(
    migrate: Callable[[schema.Execute], None], dialect: Dialect = DIALECT
) -> tuple[Sql, ...]:
    """The statements one migration runs, compiled for ``dialect``."""
    statements: list[Sql] = []
    migrate(lambda stmt: statements.append(compile_sql(stmt, dialect)))
    return tuple(statements)


# --- rendering ------------------------------------------------------------------------------

_HEADER: Final = '''"""{doc}

Generated by ``python -m planweave.store._sqlgen`` from the SQLAlchemy Core tables of
``_schema``: do not edit (a test fails when this file differs from what it renders).
"""

# fmt: off
from __future__ import annotations

from typing import Final
'''


def _text(text: str, indent: str) -> str:
    """A string literal of ``text``, one source line per line of SQL."""
    lines = text.splitlines(keepends=True) or [""]
    if len(lines) == 1:
        return repr(lines[0])
    inner = indent + "    "
    return "(\n" + "".join(f"{inner}{line!r}\n" for line in lines) + f"{indent})"


def _sql(sql: Sql, indent: str = "") -> str:
    inner = indent + "    "
    return (
        f"Sql(\n{inner}{_text(sql.text, inner)},\n"
        f"{inner}{sql.names!r},\n{inner}{sql.defaults!r},\n{indent})"
    )


def _all(names: list[str]) -> str:
    """``__all__`` of ``names``, sorted as ruff wants it (constants, then classes)."""
    order = sorted(names, key=lambda n: (not n.isupper(), n))
    return "__all__ = [\n" + "".join(f'    "{n}",\n' for n in order) + "]\n"


def _docstring(doc: str) -> str:
    return '"""' + doc.replace('"""', r"\"\"\"") + '"""\n'


def render_columns() -> str:
    """The source of ``_columns.py``."""
    out = [
        _HEADER.format(doc="The columns of the store tables, in order, and which hold JSON."),
        "\n" + _all([*_TABLES, "JSON_COLUMNS"]) + "\n",
    ]
    for name, table in _TABLES.items():
        out.append(f"{name}: Final = {columns_of(table)!r}\n")
        out.append(_docstring(f"The columns of ``{table.name}``, in table order."))
    json_columns = {name: sorted(columns) for name, columns in sorted(schema.JSON_COLUMNS.items())}
    out.append("\nJSON_COLUMNS: Final[dict[str, frozenset[str]]] = {\n")
    for name, columns in json_columns.items():
        out.append(f"    {name!r}: frozenset({columns!r}),\n")
    out.append("}\n")
    out.append(_docstring("Names of the JSON columns of each table (JSON text in SQLite)."))
    return "".join(out)


def _render_sql(
    doc: str,
    statements: dict[str, tuple[Sql | tuple[Sql, ...], str]],
    migrations: tuple[tuple[Sql, ...], ...],
) -> str:
    out = [
        _HEADER.format(doc=doc),
        "\nfrom planweave.store._sql import Sql\n\n",
        _all([*statements, "MIGRATIONS", "Sql"]),
    ]
    for name, (sql, what) in statements.items():
        if isinstance(sql, Sql):
            out.append(f"\n{name}: Final = {_sql(sql)}\n")
        else:
            parts = "".join(f"    {_sql(each, '    ')},\n" for each in sql)
            out.append(f"\n{name}: Final = (\n{parts})\n")
        out.append(_docstring(what))
    out.append("\nMIGRATIONS: Final = (\n")
    for step in migrations:
        out.append("    (\n" + "".join(f"        {_sql(each, '        ')},\n" for each in step))
        out.append("    ),\n")
    out.append(")\n")
    out.append(
        _docstring(
            "``MIGRATIONS[i]``: the statements that upgrade schema version ``i`` to ``i + 1``."
        )
    )
    return "".join(out)


def render_sqlite() -> str:
    """The source of ``_sqlite_sql.py``."""
    return _render_sql(
        "The SQL of the SQLite store: its statements and its schema migrations.",
        sqlite_statements(),
        sqlite_migrations(),
    )


def render_postgres() -> str:
    """The source of ``_postgres_sql.py``."""
    from planweave.store import _pg_sqlgen

    return _render_sql(
        "The SQL of the Postgres store: its statements (asyncpg's ``$n`` parameters) and its "
        "schema migrations.",
        _pg_sqlgen.postgres_statements(),
        _pg_sqlgen.postgres_migrations(),
    )


GENERATED: Final[dict[Path, Callable[[], str]]] = {
    _HERE / "_columns.py": render_columns,
    _HERE / "_sqlite_sql.py": render_sqlite,
    _HERE / "_postgres_sql.py": render_postgres,
}
"""Each generated module and the function that renders its source."""


def write() -> list[Path]:
    """Render every generated module; return the ones whose file changed."""
    changed = []
    for path, render in GENERATED.items():
        text = render()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"wrote {path}\n")
