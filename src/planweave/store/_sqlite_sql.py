"""The SQL of the SQLite store, compiled once from the Core tables, and its row codecs.

Statements are built with SQLAlchemy Core from ``_schema`` and compiled at import to SQLite text
with ``?`` parameters and their names in order, so the writer thread runs plain ``sqlite3``
``executemany`` calls without SQLAlchemy in the loop. Rows travel as tuples; the codecs turn
the engine's row dicts into them and back (JSON columns as text, booleans as integers).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from planweave.events import Event, JobOptions
from planweave.plan import TaskSpec
from planweave.state import TERMINAL_JOB, TERMINAL_TASK
from planweave.store import _schema as schema
from planweave.store.base import ArtifactRow

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


def _column_names(table: sa.Table, *skip: str) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name not in skip)


JOB_COLS = _column_names(schema.jobs, "owner", "lease_until")
TASK_COLS = _column_names(schema.tasks)
EVENT_COLS = _column_names(schema.events)
ARTIFACT_COLS = _column_names(schema.artifacts)
COMMAND_COLS = _column_names(schema.commands)
assert EVENT_COLS == ("job_id", "seq", "id", "type", "task_id", "at", "body")

# A job's goal, options and creation time never change; leaving them out of the update keeps
# the index on created_at untouched by every step.
UPSERT_JOB = _upsert(
    schema.jobs, JOB_COLS,
    keep=("goal", "options", "created_at", "tenant", "idempotency_key"),
)  # fmt: skip
UPSERT_TASK = _upsert(schema.tasks, TASK_COLS)
UPSERT_ARTIFACT = _upsert(schema.artifacts, ARTIFACT_COLS)
# Events never change: storing one again (a retried batch) is a no-op.
INSERT_EVENT = compile_sql(
    sqlite_dialect.insert(schema.events)
    .values({n: param(n) for n in EVENT_COLS})
    .on_conflict_do_nothing()
)

_jobs, _tasks, _events, _commands = schema.jobs, schema.tasks, schema.events, schema.commands
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
_SUMMARY_COLS = (
    "job_id", "goal", "status", "created_at", "updated_at", "finished_at",
    "tokens_in", "tokens_out", "cost_usd", "error", "result", "tenant",
)  # fmt: skip


def _list_jobs() -> Sql:
    total = sa.select(sa.func.count()).where(_tasks.c.job_id == _jobs.c.job_id)
    done = total.where(_tasks.c.status.in_(_TERMINAL_TASKS))
    stmt = sa.select(
        *(_jobs.c[n] for n in _SUMMARY_COLS), total.scalar_subquery(), done.scalar_subquery()
    )
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
CLAIM = compile_sql(
    sa.update(_jobs)
    .where(
        _jobs.c.job_id == param("job_id"),
        sa.or_(
            _jobs.c.owner.is_(None),
            _jobs.c.owner == param("new_owner"),
            _jobs.c.lease_until < param("now"),
        ),
    )
    .values(owner=param("new_owner"), lease_until=param("until"))
)
FORCE_CLAIM = compile_sql(
    sa.update(_jobs)
    .where(_jobs.c.job_id == param("job_id"))
    .values(owner=param("new_owner"), lease_until=param("until"))
)
RELEASE = compile_sql(
    sa.update(_jobs)
    .where(_jobs.c.job_id == param("job_id"), _jobs.c.owner == param("old_owner"))
    .values(owner=None, lease_until=None)
)
INSERT_COMMAND = compile_sql(
    sa.insert(_commands).values({n: param(n) for n in COMMAND_COLS if n != "id"})
)
_job_ids_json = sa.select(sa.func.json_each(param("job_ids")).table_valued("value").c.value)
TAKE_COMMANDS = compile_sql(
    sa.delete(_commands)
    .where(_commands.c.job_id.in_(_job_ids_json))
    .returning(*(_commands.c[n] for n in COMMAND_COLS))
)
DELETE_FINISHED_JOB = compile_sql(
    sa.delete(_jobs).where(_jobs.c.job_id == param("job_id"), _jobs.c.status.in_(_TERMINAL_JOBS))
)
DELETE_JOB_ROWS = tuple(
    compile_sql(sa.delete(table).where(table.c.job_id == param("job_id")))
    for table in (_tasks, _events, schema.artifacts, _commands)
)
SELECT_VERSION = compile_sql(
    sa.select(schema.meta.c.value).where(schema.meta.c.key == schema.SCHEMA_VERSION_KEY)
)
SET_VERSION = _upsert(schema.meta, ("key", "value"))

# --- rows <-> tuples ------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


_encode_json = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode

# JSON of frozen models by identity: a task's spec and a job's options are the same objects on
# every step, so each is serialised once. Bounded; checked by identity, so an id reused after
# garbage collection cannot return another object's text.
_model_json: dict[int, tuple[BaseModel, str]] = {}
_MODEL_JSON_MAX: Final = 8192


def dump(value: Any) -> str | None:
    """JSON text of a column value (``None`` stays SQL NULL); models via pydantic."""
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
    return _encode_json(value)


def load(text: str | None) -> Any:
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
            values[i] = dump(values[i])
        return tuple(values)

    return encode


encode_job = _encoder(JOB_COLS, schema.jobs)
encode_task = _encoder(TASK_COLS, schema.tasks)


def encode_event(event: Event) -> tuple[Any, ...]:
    # ``model_dump_json`` without its Python layer: the same JSON, about 0.6 µs less per event.
    body = event.__pydantic_serializer__.to_json(event).decode()
    return (event.job_id, event.seq, event.id, event.type, event.task_id, event.at, body)


def encode_artifact(a: ArtifactRow) -> tuple[Any, ...]:
    return (a.job_id, a.name, a.path, a.size, a.content_type, a.created_at, a.task_id)


def decode_job(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(JOB_COLS, values, strict=True))
    row["options"] = JobOptions.model_validate_json(row["options"])
    row["result"] = load(row["result"])
    row["artifacts"] = load(row["artifacts"])
    row["planned"] = bool(row["planned"])
    return row


def decode_task(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(TASK_COLS, values, strict=True))
    row["spec"] = TaskSpec.model_validate_json(row["spec"])
    row["result"] = load(row["result"])
    row["started"] = bool(row["started"])
    row["superseded"] = bool(row["superseded"])
    return row
