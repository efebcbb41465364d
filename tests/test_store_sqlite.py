"""What only the SQLite store must do: a file in WAL mode, shared by processes, group commit."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from planweave.constants import EVENT_BASE_BYTES, STORE_SCHEMA_VERSION, TABLE_META
from planweave.errors import ClaimLost, ConfigError, LogConflict, StoreUnavailable
from planweave.events import Event, LlmCalled, ToolCalled
from planweave.state import JobState, apply, replay
from planweave.store import Batch, open_store
from planweave.store.base import Claim
from planweave.store.sqlite import SqliteStore
from store_helpers import (
    Clock,
    add_job,
    assert_same_state,
    batch_for,
    created,
    progress,
    ready,
    step,
    submitted,
)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/pw.db"


async def test_sqlite_creates_folders_and_a_versioned_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "pw.db"
    store = open_store(f"sqlite:///{path}", synchronous="FULL")
    await store.open()
    await store.open()  # idempotent
    await add_job(store, "job1")
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute(f"SELECT value FROM {TABLE_META}").fetchall() == [
                (str(STORE_SCHEMA_VERSION),)
            ]
        conn.close()
    finally:
        await store.close()


async def test_sqlite_data_is_visible_to_another_store_on_the_same_file(sqlite_url: str) -> None:
    writer, reader = open_store(sqlite_url), open_store(sqlite_url)
    await writer.open()
    await reader.open()
    try:
        events: list[Event] = [submitted("job1"), *progress("job1")]
        state = replay(events[:3])
        await writer.commit(batch_for(state, events[:3]))
        assert [e.seq for e in await reader.read_events("job1")] == [1, 2, 3]

        # Following the log from another process: poll from the last seq seen.
        state = replay(events)
        await writer.commit(batch_for(state, events[3:]))
        assert [e.seq for e in await reader.read_events("job1", after_seq=3)] == [4, 5, 6, 7]
        assert_same_state(await reader.load_job("job1"), state)

        # Claims and commands are shared through the file too.
        assert await writer.claim_job("job1", "cp1", lease_s=30)
        assert await reader.claim_job("job1", "cp2", lease_s=30) is False
        await reader.add_command("job1", "cancel", {})
        commands = await writer.read_commands(["job1"])
        assert [c.name for c in commands] == ["cancel"]
        await writer.commit(Batch(commands_done=[commands[0].id]))
        assert await reader.read_commands(["job1"]) == []
    finally:
        await writer.close()
        await reader.close()


_CHILD = r"""
import asyncio, sys
from planweave.events import JobSubmitted, LlmCalled, TaskReady
from planweave.plan import TaskSpec
from planweave.state import apply
from planweave.store import Batch, open_store

async def main():
    store = open_store(sys.argv[1])
    await store.open()
    first = JobSubmitted(job_id="job1", seq=1, goal="g", plan=(TaskSpec(id="a", goal="a"),))
    state = apply(None, first)
    await store.commit(Batch(jobs=[state.to_row()], tasks=[state.tasks["a"].to_row("job1")],
                             events=[first]))
    seq = 1
    while True:
        events = [LlmCalled(job_id="job1", task_id="a", seq=seq + 1, model="m", role="r",
                            tokens_in=1, reply="x" * 500),
                  TaskReady(job_id="job1", task_id="a", seq=seq + 2)]
        seq += 2
        for event in events:
            apply(state, event)
        batch = Batch(jobs=[state.to_row()], tasks=[state.tasks["a"].to_row("job1")],
                      events=events)
        if seq % 4 == 1:
            store.commit_soon(batch)
        else:
            await store.commit(batch)
            print(seq, flush=True)

asyncio.run(main())
"""


def _write_until_killed(url: str, commits: int) -> int:
    """Run the child until it reports ``commits`` awaited commits, ``kill -9`` it, and return
    the last seq it saw durable."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    durable = 0
    try:
        for _ in range(commits):
            line = child.stdout.readline()
            assert line, "the child process stopped writing"
            durable = int(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return durable


async def test_sqlite_a_killed_process_leaves_every_awaited_commit_readable(
    sqlite_url: str,
) -> None:
    durable = await asyncio.to_thread(_write_until_killed, sqlite_url, 300)

    store = open_store(sqlite_url)
    await store.open()
    try:
        state = await store.load_job("job1")
        events = await store.read_events("job1")
    finally:
        await store.close()
    assert state is not None
    assert state.seq >= durable
    # The rows and the log were written in the same transactions: they agree.
    assert [e.seq for e in events] == list(range(1, state.seq + 1))
    assert state.tokens_in == state.llm_calls == (state.seq - 1) // 2
    assert_same_state(state, replay(events))


async def test_sqlite_migrates_an_empty_or_foreign_file_and_keeps_its_tables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pw.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE mine (x INTEGER)")
        conn.execute("INSERT INTO mine VALUES (42)")
    conn.close()

    for i in range(2):  # the second open finds the schema current and changes nothing
        store = open_store(f"sqlite:///{path}")
        await store.open()
        await add_job(store, f"job{i}")
        await store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM mine").fetchall() == [(42,)]
        assert conn.execute(f"SELECT key, value FROM {TABLE_META}").fetchall() == [
            ("schema_version", str(STORE_SCHEMA_VERSION))
        ]
    conn.close()


async def test_sqlite_refuses_a_file_from_a_newer_planweave(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = open_store(sqlite_url)
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "pw.db") as conn:
        conn.execute(f"UPDATE {TABLE_META} SET value = '99' WHERE key = 'schema_version'")
    conn.close()

    newer = open_store(sqlite_url)
    with pytest.raises(ConfigError, match=r"schema version 99.*upgrade planweave"):
        await newer.open()
    with pytest.raises(StoreUnavailable):
        await newer.commit(Batch(events=[submitted("job1")]))


async def test_sqlite_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database" * 100)

    store = open_store(f"sqlite:///{path}")
    with pytest.raises(StoreUnavailable, match="not a database"):
        await store.open()


async def test_sqlite_many_concurrent_commits_are_all_durable(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    await store.open()
    states: list[JobState] = []
    batches: list[Batch] = []
    for i in range(300):
        events: list[Event] = [submitted(f"job{i:03}", at=float(i)), *progress(f"job{i:03}", at=i)]
        states.append(replay(events))
        batches.append(batch_for(states[-1], events))

    await asyncio.gather(*(store.commit(batch) for batch in batches))
    await store.close()

    again = open_store(sqlite_url)
    await again.open()
    try:
        assert len(await again.list_jobs(limit=1000)) == 300
        for state in (states[0], states[150], states[-1]):
            assert_same_state(await again.load_job(state.id), state)
            assert len(await again.read_events(state.id)) == 7
    finally:
        await again.close()


async def test_sqlite_one_bad_batch_fails_alone(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    await store.open()
    try:
        good = replay([submitted("good")])
        bad_row = {**replay([submitted("bad")]).to_row(), "goal": None}  # violates NOT NULL
        results = await asyncio.gather(
            store.commit(Batch(jobs=[bad_row])),
            store.commit(batch_for(good, [submitted("good")])),
            return_exceptions=True,
        )
        assert isinstance(results[0], StoreUnavailable)
        assert results[1] is None
        assert await store.load_job("good") is not None
        assert await store.load_job("bad") is None
    finally:
        await store.close()


async def test_sqlite_a_failed_queued_batch_fails_its_own_future_only(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    await store.open()
    bad_row = {**replay([submitted("bad")]).to_row(), "goal": None}  # violates NOT NULL
    good = replay([submitted("good")])
    try:
        failed = store.commit_soon(Batch(jobs=[bad_row]))
        await store.commit(batch_for(good, [submitted("good")]))
        with pytest.raises(StoreUnavailable):
            await failed
        assert await store.load_job("good") is not None
        assert await store.load_job("bad") is None
    finally:
        await store.close()


async def _hold_the_writer(store: SqliteStore) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Keep the writer thread busy until the returned event is set, so that everything queued
    meanwhile is written in the writer's next transaction (one group commit). No read may be
    awaited meanwhile: reads wait for the writes queued before them."""
    gate, busy = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        busy.set()
        gate.wait(30)

    held = asyncio.ensure_future(store._submit(None, hold))
    await asyncio.to_thread(busy.wait, 30)
    return gate, held


async def test_sqlite_group_commit_writes_the_accepted_batches_of_a_group_only(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url, clock=Clock())
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        state1, batch1 = created("job1", "cp1")
        state2, batch2 = created("job2", "cp2")
        await store.commit(batch1)
        await store.commit(batch2)
        gate, held = await _hold_the_writer(store)
        before = store._transactions

        futures = [
            store.commit_soon(step(state1, "cp1", ready("job1", 2))),
            store.commit_soon(step(replay([submitted("job2")]), "cp1", ready("job2", 2))),
            store.commit_soon(step(state2, "cp2", ready("job2", 2, "add"))),
            store.commit_soon(created("job3", "cp1")[1]),
        ]
        gate.set()
        await held
        results = await asyncio.gather(*futures, return_exceptions=True)

        assert store._transactions == before + 2  # the hold, then the four in one
        assert [results[0], results[2], results[3]] == [None, None, None]
        assert isinstance(results[1], ClaimLost) and results[1].job_ids == ("job2",)
        assert [e.task_id for e in await store.read_events("job2")] == [None, "add"]
        assert [e.seq for e in await store.read_events("job1")] == [1, 2]
        claim = await store.read_claim("job3")
        assert claim is not None and claim.owner == "cp1"

        # A seq conflict in a group fails its own batch only, with nothing of it written.
        conflicting = step(replay(await store.read_events("job1")), "cp1", ready("job1", 2))
        gate, held = await _hold_the_writer(store)
        futures = [
            store.commit_soon(step(state2, "cp2", ready("job2", 3))),
            store.commit_soon(conflicting),
            store.commit_soon(step(state1, "cp1", ready("job1", 3))),
        ]
        gate.set()
        await held
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], LogConflict) and (results[1].seq == 2)
        assert [e.seq for e in await store.read_events("job1")] == [1, 2, 3]
        assert [e.seq for e in await store.read_events("job2")] == [1, 2, 3]
        assert_same_state(await store.load_job("job1"), replay(await store.read_events("job1")))
    finally:
        await store.close()


async def test_sqlite_a_full_disk_fails_the_batch_and_the_store_keeps_working(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        state = await add_job(store, "job1")

        # The database may not grow by a single page: SQLite reports SQLITE_FULL, as it does
        # when the disk is full.
        def fill(conn: sqlite3.Connection) -> None:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count={pages}")

        await store._submit(None, fill)
        big = [submitted(f"big{i}", goal="x" * 20_000) for i in range(20)]
        with pytest.raises(
            StoreUnavailable, match="cannot write: database or disk is full; nothing of this batch"
        ):
            await store.commit(Batch(jobs=[replay([e]).to_row() for e in big], events=big))

        assert_same_state(await store.load_job("job1"), state)
        assert [j.job_id for j in await store.list_jobs()] == ["job1"]
        assert await store.load_job("big0") is None
        await store._submit(None, lambda conn: conn.execute("PRAGMA max_page_count=1073741823"))
        await store.commit(Batch(jobs=[replay(big[:1]).to_row()], events=big[:1]))
        assert await store.load_job("big0") is not None
    finally:
        await store.close()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


async def test_sqlite_a_version_1_file_keeps_its_claims(tmp_path: Path) -> None:
    from planweave.store import _rows, _schema
    from planweave.store._sqlgen import compile_sql

    path = tmp_path / "v1.db"
    # A version-1 row: no data_bytes (the last column today), and the claim in the job row.
    row = (*_rows.encode_job(replay([submitted("job1")]).to_row())[:-1], "cp1", 150.0)
    with sqlite3.connect(path) as conn:
        _schema.MIGRATIONS[0](lambda stmt: conn.execute(compile_sql(stmt).text))
        conn.execute(f"INSERT INTO {TABLE_META} VALUES ('schema_version', '1')")
        conn.execute(f"INSERT INTO pw_jobs VALUES ({', '.join('?' * len(row))})", row)
    conn.close()

    store = open_store(f"sqlite:///{path}", clock=Clock(100.0))
    await store.open()
    try:
        assert await store.read_claim("job1") == Claim("job1", "cp1", "", 0, 150.0, 100.0)
        assert await store.claim_job("job1", "cp2", lease_s=10) is False
        loaded = await store.load_job("job1")
        assert loaded is not None and loaded.goal == "a goal"
        assert loaded.data_bytes == EVENT_BASE_BYTES  # one event, estimated by the migration
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(pw_jobs)")]
        version = conn.execute(f"SELECT value FROM {TABLE_META}").fetchone()
    conn.close()
    assert "owner" not in columns and "lease_until" not in columns
    assert version == (str(STORE_SCHEMA_VERSION),)


async def test_sqlite_the_wal_stays_bounded_under_a_steady_stream_of_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pw.db"
    wal = tmp_path / "pw.db-wal"
    store = open_store(f"sqlite:///{path}", wal_max_pages=256)
    await store.open()
    first: list[Event] = [submitted("job1")]
    state = replay(first)
    await store.commit(batch_for(state, first))
    page_size = 4096
    peak = 0
    try:
        # Every commit waits for the one before: the writer never pauses, and a reader polls
        # the log as a follower in another process would.
        for seq in range(2, 1500):
            event = LlmCalled(job_id="job1", task_id="fetch", seq=seq, model="m", role="r",
                              tokens_in=1, reply="x" * 3000)  # fmt: skip
            apply(state, event)
            await store.commit(Batch(jobs=[state.to_row()], events=[event]))
            if seq % 10 == 0:
                await store.read_events("job1", after_seq=seq - 5)
            peak = max(peak, wal.stat().st_size // page_size)
    finally:
        await store.close()
    # Without checkpoints that complete, the WAL would hold every page the run wrote (~4,500).
    assert peak < 4 * 256, f"the WAL grew to {peak} pages"


async def test_sqlite_a_claim_taken_by_another_process_fences_the_next_commit(
    sqlite_url: str,
) -> None:
    first, second = open_store(sqlite_url), open_store(sqlite_url)
    await first.open()
    await second.open()
    try:
        state, batch = created("job1", "cp1")
        await first.commit(batch)
        await first.commit(step(state, "cp1", ready("job1", 2)))

        assert await second.claim_job("job1", "cp2", lease_s=30, force=True)

        with pytest.raises(ClaimLost):
            await first.commit(step(state, "cp1", ready("job1", 3)))
        claim = await first.read_claim("job1")
        assert claim is not None and (claim.owner, claim.pid) == ("cp2", os.getpid())
        assert [e.seq for e in await second.read_events("job1")] == [1, 2]
    finally:
        await first.close()
        await second.close()


# --- the rendered SQL ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["_columns.py", "_sqlite_sql.py", "_postgres_sql.py"])
def test_the_rendered_sql_modules_are_what_the_schema_renders(name: str) -> None:
    from planweave.store import _sqlgen

    path = next(p for p in _sqlgen.GENERATED if p.name == name)
    assert path.read_text(encoding="utf-8") == _sqlgen.GENERATED[path](), (
        f"{name} is out of date: run python -m planweave.store._sqlgen"
    )


def test_the_rendered_statements_are_those_the_schema_compiles_to() -> None:
    from planweave.store import _columns, _schema, _sqlgen
    from planweave.store import _sqlite_sql as q

    for name, (sql, _) in _sqlgen.sqlite_statements().items():
        assert getattr(q, name) == sql, name
    assert _sqlgen.sqlite_migrations() == q.MIGRATIONS
    from planweave.store import _pg_sqlgen
    from planweave.store import _postgres_sql as pq

    for name, (sql, _) in _pg_sqlgen.postgres_statements().items():
        assert getattr(pq, name) == sql, name
    assert _pg_sqlgen.postgres_migrations() == pq.MIGRATIONS
    assert len(pq.MIGRATIONS) == STORE_SCHEMA_VERSION
    assert len(q.MIGRATIONS) == STORE_SCHEMA_VERSION
    assert tuple(c.name for c in _schema.jobs.columns) == _columns.JOB_COLS
    assert _columns.JSON_COLUMNS == _schema.JSON_COLUMNS


def test_sqlite_a_new_file_gets_the_schema_of_the_core_tables(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from planweave.store import _schema

    async def create() -> None:
        store = open_store(f"sqlite:///{tmp_path}/new.db")
        await store.open()
        await store.close()

    asyncio.run(create())
    engine = sa.create_engine(f"sqlite:///{tmp_path}/new.db")
    try:
        found = sa.MetaData()
        found.reflect(engine)
    finally:
        engine.dispose()
    for table in _schema.metadata.sorted_tables:
        stored = found.tables[table.name]
        assert [c.name for c in stored.columns] == [c.name for c in table.columns]
        assert {i.name for i in stored.indexes} == {i.name for i in table.indexes}


async def test_after_a_write_lost_to_a_full_disk_a_batch_that_would_leave_a_gap_is_refused(
    sqlite_url: str,
) -> None:
    store = SqliteStore(sqlite_url)
    await store.open()
    try:
        state, batch = created("job1", "cp1")
        await store.commit(batch)

        def cap(conn: sqlite3.Connection) -> None:  # the disk is full: no page more
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")

        await store._submit(None, cap)
        lost = copy.deepcopy(state)
        big = ToolCalled(
            job_id="job1", task_id="fetch", seq=2, name="t", outcome="ok", result="x" * 200_000
        )
        with pytest.raises(StoreUnavailable, match="full"):
            await store.commit(step(lost, "cp1", big))
        await store._submit(None, lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))

        # Decided on top of the lost write, the next batch would leave seq 2 out of the log.
        with pytest.raises(LogConflict):
            await store.commit(step(copy.deepcopy(lost), "cp1", ready("job1", 3)))
        # Carried on from the stored log, the job writes again.
        await store.commit(step(state, "cp1", ready("job1", 2)))
        assert [e.seq for e in await store.read_events("job1")] == [1, 2]
    finally:
        await store.close()
