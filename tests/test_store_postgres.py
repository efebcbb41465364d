"""The Postgres store against a real server: what the contract suite cannot show with one store.

Two stores on one database stand for two processes (each has its own pool); the server is
stopped and started again under a running store; URLs with mistakes in them are refused with
a line that says what to fix; and the engine and the CLI run whole jobs on Postgres.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from tests.postgres_server import SECRET_PASSWORD, SECRET_USER, PgServer

from planweave import Engine, Plan, TaskSpec, tool
from planweave.errors import (
    ClaimLost,
    ConfigError,
    JobDataInvalid,
    LogConflict,
    StoreUnavailable,
)
from planweave.events import ToolCalled
from planweave.llm import ScriptedModel
from planweave.state import replay
from planweave.store import Batch, Store, open_store
from planweave.store.postgres import PostgresStore
from store_helpers import add_job, created, ready, step, submitted


async def opened(url: str, **options: Any) -> PostgresStore:
    store = open_store(url, **options)
    assert isinstance(store, PostgresStore)
    await store.open()
    return store


@pytest.fixture
async def two_stores(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, each with its own pool, as two processes would have."""
    first = await opened(pg_url)
    second = await opened(pg_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


# --- two writers --------------------------------------------------------------------------------


async def test_postgres_two_stores_racing_on_one_job_never_leave_a_gap_or_a_duplicate(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_stores
    _, batch = created("job1", "cp1")
    await first.commit(batch)

    # Both believe they drive job1 as cp1 (a split brain): each queues steps 2..31 at once.
    def steps() -> list[Batch]:
        mine = replay([submitted("job1")])
        return [step(mine, "cp1", ready("job1", seq)) for seq in range(2, 32)]

    futures = [
        *(first.commit_soon(b) for b in steps()),
        *(second.commit_soon(b) for b in steps()),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)

    ours, theirs = results[:30], results[30:]
    for seq, (a, b) in enumerate(zip(ours, theirs, strict=True), start=2):
        won = [r is None for r in (a, b)]
        assert won.count(True) == 1, f"seq {seq}: {a!r}, {b!r}"
        lost = b if won[0] else a
        assert isinstance(lost, LogConflict) and (lost.job_id, lost.seq) == ("job1", seq)
    events = await second.read_events("job1")
    assert [e.seq for e in events] == list(range(1, 32))
    loaded = await first.load_job("job1")
    assert loaded is not None and loaded.seq == 31


async def test_postgres_a_claim_forced_by_another_store_fences_the_first_owner(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_stores
    state, batch = created("job1", "cp1")
    await first.commit(batch)
    await first.commit(step(state, "cp1", ready("job1", 2)))

    assert await second.claim_job("job1", "cp2", lease_s=30) is False  # live: not without force
    assert await second.claim_job("job1", "cp2", lease_s=30, force=True)

    with pytest.raises(ClaimLost) as caught:
        await first.commit(step(state, "cp1", ready("job1", 3)))
    assert caught.value.job_ids == ("job1",)
    assert not isinstance(caught.value, LogConflict)
    taken = replay(await second.read_events("job1"))
    await second.commit(step(taken, "cp2", ready("job1", 3, "add")))
    events = await first.read_events("job1")
    assert [(e.seq, e.task_id) for e in events] == [(1, None), (2, "fetch"), (3, "add")]
    claim = await first.read_claim("job1")
    assert claim is not None and claim.owner == "cp2" and not claim.expired


async def test_postgres_two_stores_creating_one_job_at_once_leave_it_one_owner(
    pg_url: str, two_stores: tuple[PostgresStore, PostgresStore]
) -> None:
    first, second = two_stores
    # Hold both writers after their owner fence (no claim to lock yet) and before they write
    # the job: a lock on pw_jobs that their upserts wait for.
    blocker = await asyncpg.connect(pg_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE pw_jobs IN SHARE MODE")
            batches = [created("job1", owner)[1] for owner in ("cp1", "cp2")]
            for batch in batches:
                batch.events = []  # no second event to collide on: only the claim can tell
            racing = asyncio.gather(
                first.commit(batches[0]), second.commit(batches[1]), return_exceptions=True
            )
            await asyncio.sleep(0.5)
            assert not racing.done()
        results = await asyncio.wait_for(racing, 30)
    finally:
        await blocker.close()

    assert sorted(type(r).__name__ for r in results) == ["ClaimLost", "NoneType"], results
    winner = "cp1" if results[0] is None else "cp2"
    claim = await first.read_claim("job1")
    assert claim is not None and claim.owner == winner


async def test_postgres_a_command_left_by_another_store_wakes_its_waiter(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    owner, other = two_stores
    await add_job(owner, "job1")
    assert await owner.wait_commands(0.2) is True  # listening starts: nothing heard before it
    assert await owner.wait_commands(0.2) is False  # nothing left since

    waiting = asyncio.create_task(owner.wait_commands(30))
    await asyncio.sleep(0.3)  # the waiter is listening
    assert not waiting.done()
    await other.add_command("job1", "cancel", {"reason": "user"})

    assert await asyncio.wait_for(waiting, 10) is True
    [command] = await owner.read_commands(["job1"])
    assert (command.name, command.args) == ("cancel", {"reason": "user"})


async def test_postgres_a_cancel_left_by_another_process_is_heard_without_polling(
    pg_url: str, tmp_path: Path
) -> None:
    never = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Run until cancelled."""
        await never.wait()
        return "done"

    plan = Plan(tasks=(TaskSpec(id="a", kind="tool", tool="wait_forever", args={}),))
    owner = Engine(
        store=pg_url,
        model="scripted",
        data_dir=tmp_path / "a",
        tools=[wait_forever],
        claim_lease_s=600,
    )
    # Polled, a command would wait an hour; at renewal, 200 s: only LISTEN hears it sooner.
    owner.plane.settings.poll_s = 3600
    async with owner, Engine(store=pg_url, model="scripted", data_dir=tmp_path / "b") as other:
        job_id = await owner.submit(plan=plan)
        await asyncio.sleep(0.5)  # the job runs, its claim is live
        assert await other.cancel(job_id, reason="stop it")
        result = await asyncio.wait_for(owner.wait(job_id), 30)
    assert result.status == "cancelled"


async def test_postgres_the_server_clock_times_claims_and_commands(pg_url: str) -> None:
    store = await opened(pg_url)
    try:
        await add_job(store, "job1")
        assert await store.claim_job("job1", "cp1", lease_s=60)
        await store.add_command("job1", "cancel", {})
        claim = await store.read_claim("job1")
        [command] = await store.read_commands(["job1"])
    finally:
        await store.close()
    assert claim is not None
    # The server's clock (on this machine: about the local time), not a test clock.
    assert abs(claim.now - time.time()) < 60
    assert abs(claim.now - command.created_at) < 60
    assert claim.expires_at == pytest.approx(claim.now + 60, abs=5)
    assert not claim.expired


async def test_postgres_stores_opening_a_new_database_at_once_create_its_tables_once(
    pg_url: str,
) -> None:
    stores = [open_store(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await add_job(stores[0], "job1")
        for store in stores:
            assert [j.job_id for j in await store.list_jobs()] == ["job1"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_postgres_text_with_a_nul_fails_only_its_own_job(pg_url: str) -> None:
    store = await opened(pg_url)
    try:
        state1, batch1 = created("job1", "cp1")
        state2, batch2 = created("job2", "cp1")
        await store.commit(batch1)
        await store.commit(batch2)
        bad = ToolCalled(job_id="job1", task_id="fetch", seq=2, name="t", outcome="ok",
                         result="a\x00b")  # fmt: skip
        futures = [
            store.commit_soon(step(state1, "cp1", bad)),
            store.commit_soon(step(state2, "cp1", ready("job2", 2))),
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(results[0], JobDataInvalid), results[0]
        assert results[0].job_ids == ("job1",)
        assert "NUL" in results[0].reasons["job1"]
        assert results[1] is None
        assert [e.seq for e in await store.read_events("job2")] == [1, 2]
        assert [e.seq for e in await store.read_events("job1")] == [1]
    finally:
        await store.close()


# --- faults -------------------------------------------------------------------------------------


async def test_postgres_a_server_restart_is_unavailable_then_recovers_by_itself(
    pg_server: PgServer, pg_url: str
) -> None:
    store = await opened(pg_url)
    try:
        state, batch = created("job1", "cp1")
        await store.commit(batch)

        pg_server.stop("fast")
        try:
            with pytest.raises(StoreUnavailable) as write_error:
                await store.commit(step(state, "cp1", ready("job1", 2)))
            with pytest.raises(StoreUnavailable):
                await store.read_events("job1")
            with pytest.raises(StoreUnavailable):
                await store.claim_job("job1", "cp1", lease_s=30)
        finally:
            pg_server.start()
        assert "PostgreSQL store" in str(write_error.value)

        # The same store object, without being reopened: fresh connections, same data.
        await store.commit(step(replay([submitted("job1")]), "cp1", ready("job1", 2)))
        assert [e.seq for e in await store.read_events("job1")] == [1, 2]
        assert await store.claim_job("job1", "cp1", lease_s=30)
    finally:
        await store.close()


# --- bad input ----------------------------------------------------------------------------------


def test_postgres_a_malformed_url_says_how_to_write_one() -> None:
    with pytest.raises(ConfigError, match=r"postgresql://USER:PASSWORD@HOST:PORT/DATABASE"):
        open_store("postgresql://u:hunter2@localhost:notaport/db")
    with pytest.raises(ConfigError, match=r"write postgresql://USER:PASSWORD@HOST"):
        open_store("postgresql:/db")  # no host part
    with pytest.raises(ConfigError, match="pool size"):
        open_store("postgresql://localhost/db?max_size=1")
    with pytest.raises(ConfigError, match="bad option"):
        open_store("postgresql://localhost/db?min_size=many")
    try:
        open_store("postgresql://u:hunter2@localhost:notaport/db")
    except ConfigError as exc:
        assert "hunter2" not in str(exc)


def test_postgres_the_password_never_shows_in_the_url() -> None:
    store = open_store("postgresql://alice:hunter2@db.example:5433/jobs?max_size=4&sslmode=disable")
    assert isinstance(store, PostgresStore)
    assert store.url == "postgresql://alice:***@db.example:5433/jobs?max_size=4&sslmode=disable"
    assert store.max_size == 4
    assert "hunter2" not in repr(vars(store).get("url"))


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_postgres_mistakes_in_the_url_are_one_clear_line_at_open(
    pg_server: PgServer, pg_url: str
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    cases: list[tuple[str, str]] = [
        (
            pg_server.url(database, user=SECRET_USER, password="wrong-pass"),
            f"refused the password of user '{SECRET_USER}': check the user and password",
        ),
        (pg_server.url("no_such_db"), "has no database 'no_such_db': create it"),
        (
            f"postgresql://postgres:wrong-pass@127.0.0.1:{_unused_port()}/x",
            "cannot reach PostgreSQL at 127.0.0.1:",
        ),
    ]
    for url, expected in cases:
        store = open_store(url, connect_timeout_s=5)
        with pytest.raises(ConfigError) as caught:
            await store.open()
        message = str(caught.value)
        assert expected in message, message
        assert "wrong-pass" not in message and "\n" not in message
        with pytest.raises(StoreUnavailable):  # nothing half-open
            await store.load_job("x")


async def test_postgres_the_right_password_opens_the_store(pg_server: PgServer) -> None:
    name = pg_server.new_database()
    pg_server.psql(f"ALTER DATABASE {name} OWNER TO {SECRET_USER}")
    store = await opened(pg_server.url(name, user=SECRET_USER, password=SECRET_PASSWORD))
    try:
        await add_job(store, "job1")
        assert [j.job_id for j in await store.list_jobs()] == ["job1"]
        assert SECRET_PASSWORD not in store.url
    finally:
        await store.close()


def test_postgres_a_wrong_password_on_the_command_line_exits_2_with_one_line(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    url = pg_server.url(database, user=SECRET_USER, password="wrong-pass")
    proc = _cli(tmp_path, "jobs", "--store", url)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "refused the password" in lines[0] and "wrong-pass" not in lines[0]


# --- whole jobs ---------------------------------------------------------------------------------


async def test_postgres_the_engine_runs_a_plan_of_tool_tasks(pg_url: str, tmp_path: Path) -> None:
    order: list[str] = []

    @tool
    def record(name: str) -> str:
        """Record a name."""
        order.append(name)
        return name.upper()

    plan = Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="record", args={"name": "a"}),
            TaskSpec(id="b", kind="tool", tool="record", args={"name": "b"}, depends_on=("a",)),
            TaskSpec(id="c", kind="tool", tool="record", args={"name": "c"}, depends_on=("a",)),
            TaskSpec(id="d", kind="tool", tool="record", args={"name": "d"}, depends_on=("b", "c")),
        )
    )
    engine = Engine(store=pg_url, model=ScriptedModel(replies=[]), data_dir=tmp_path / "data",
                    tools=[record])  # fmt: skip
    async with engine:
        results = await asyncio.gather(*(engine.run(plan=plan) for _ in range(3)))
        for result in results:
            assert result.ok and result.result == "D"
            events = await engine.events(result.job_id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sorted(order) == sorted("abcd" * 3)
    store: Store = await opened(pg_url)
    try:
        jobs = await store.list_jobs()
        assert sorted(j.job_id for j in jobs) == sorted(r.job_id for r in results)
        assert {(j.status, j.tasks_done, j.tasks_total) for j in jobs} == {("succeeded", 4, 4)}
        assert await store.active_job_ids() == []
    finally:
        await store.close()


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m planweave.cli ARGS`` as a real process, without PLANWEAVE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=tmp_path,
        env={**env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_postgres_planweave_run_with_a_plan_on_the_command_line(
    pg_url: str, tmp_path: Path
) -> None:
    plan = {
        "tasks": [
            {"id": "a", "kind": "tool", "tool": "calculator", "args": {"expression": "2+3"}},
            {"id": "b", "kind": "tool", "tool": "calculator", "args": {"expression": "10*4"},
             "depends_on": ["a"]},
        ]
    }  # fmt: skip
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan), encoding="utf-8")
    args = ("--store", pg_url, "--data-dir", str(tmp_path / "data"))
    proc = _cli(tmp_path, "run", "--plan", "plan.yaml", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["status"], data["result"]) == ("succeeded", 40)

    listed = _cli(tmp_path, "jobs", *args, "--json")
    assert listed.returncode == 0, listed.stderr
    assert data["job_id"] in listed.stdout
