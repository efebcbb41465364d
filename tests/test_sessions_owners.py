"""Many processes, one driver per session, on SQLite and PostgreSQL: while the owner's lease is
live another process's ``open`` is refused naming the owner; once it ran out (the owner killed
with -9, or paused with SIGSTOP) the other process takes the session over and the board
converges to that of a run without the crash; the paused owner, resumed, has its late writes
refused and stops driving the session; the CLI cannot change a driven session; and a Postgres
writer paused inside a transaction cannot hold a take-over off."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.session_owner import party_model
from tests.test_sessions_durability import comparable, reference_board

from planweave import Engine
from planweave.errors import SessionOwned
from planweave.sessions import Session, SessionStore, open_session_store

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 3.0


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pw.db'}"
    return str(request.getfixturevalue("pg_url"))


class Owner:
    """The owner process (``tests/session_owner.py``) and the ids it printed."""

    def __init__(self, store_url: str, data_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.session_owner", store_url, str(data_dir), str(LEASE_S)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.session_id = ""
        self.owner = ""

    async def line(self) -> str:
        assert self.proc.stdout is not None
        return (await asyncio.to_thread(self.proc.stdout.readline)).strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
async def owner(store_url: str, tmp_path: Path) -> AsyncIterator[Owner]:
    started = Owner(store_url, tmp_path / "owner")
    try:
        started.session_id = await started.line()
        started.owner = await started.line()
        assert started.session_id and started.owner, "the owner process printed no ids"
        yield started
    finally:
        started.stop()


async def mid_cascade(store_url: str, session_id: str) -> None:
    """Wait until some agents have their result and some are still running."""
    store: SessionStore = open_session_store(store_url)
    await store.open()
    try:
        async with asyncio.timeout(60):
            while True:
                state = await store.load(session_id)
                statuses = {node.status for node in state.agents.values()} if state else set()
                if "fresh" in statuses and "running" in statuses:
                    assert state is not None and state.aggregate.value is None
                    return
                await asyncio.sleep(0.05)
    finally:
        await store.close()


async def take_over(engine: Engine, session_id: str, owner: str) -> Session:
    """``open`` the session, refused (naming ``owner``) until the owner's lease runs out."""
    async with asyncio.timeout(30):
        while True:
            try:
                session = await engine.sessions.open(session_id)
            except SessionOwned as exc:
                assert exc.owner == owner and f"driven by {owner}" in str(exc)
                await asyncio.sleep(0.1)
                continue
            assert session.driving
            return session


def new_engine(store_url: str, tmp: Path) -> Engine:
    return Engine(store=store_url, model=party_model(0), data_dir=tmp, builtins=False)


async def test_open_is_refused_while_the_lease_is_live_and_takes_over_after_kill_9(
    store_url: str, owner: Owner, tmp_path: Path
) -> None:
    await mid_cascade(store_url, owner.session_id)
    async with new_engine(store_url, tmp_path / "second") as engine:
        with pytest.raises(SessionOwned, match=f"session {owner.session_id} is driven by"):
            await engine.sessions.open(owner.session_id)
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait(timeout=30)
        session = await take_over(engine, owner.session_id, owner.owner)
        board = await session.wait_settled()
        assert await engine.sessions.replay(owner.session_id) == session.state
    assert comparable(board) == comparable(await reference_board(tmp_path / "reference"))


async def test_a_paused_owner_is_taken_over_and_its_late_writes_are_refused(
    store_url: str, owner: Owner, tmp_path: Path
) -> None:
    await mid_cascade(store_url, owner.session_id)
    owner.proc.send_signal(signal.SIGSTOP)
    async with new_engine(store_url, tmp_path / "second") as engine:
        session = await take_over(engine, owner.session_id, owner.owner)
        owner.proc.send_signal(signal.SIGCONT)
        async with asyncio.timeout(30):
            lost = await owner.line()
        assert lost.startswith("lost: ") and f"driven by {engine.sessions.owner}" in lost
        assert await asyncio.to_thread(owner.proc.wait, 30) == 0
        board = await session.wait_settled()
        assert session.driving and session.lost is None
        assert await engine.sessions.replay(owner.session_id) == session.state
    assert comparable(board) == comparable(await reference_board(tmp_path / "reference"))


async def test_the_cli_cannot_change_a_session_another_process_drives(tmp_path: Path) -> None:
    from tests.test_cli import cli, store_args

    args = store_args(tmp_path)
    driving = Owner(args[1], tmp_path / "owner")
    try:
        session_id, owner_id = await driving.line(), await driving.line()
        proc = await asyncio.to_thread(
            cli, tmp_path, "session", "add", session_id, "a late idea", "--model", "scripted:",
            *args,
        )  # fmt: skip
        assert proc.returncode == 1
        assert proc.stderr.strip().count("\n") == 0
        assert f"session {session_id} is driven by {owner_id}" in proc.stderr
    finally:
        driving.stop()


async def test_a_postgres_writer_paused_inside_a_transaction_cannot_block_a_take_over(
    pg_url: str,
) -> None:
    from planweave.sessions import PostgresSessionStore

    paused, other = PostgresSessionStore(pg_url), PostgresSessionStore(pg_url)
    await paused.open()
    await other.open()
    try:
        await paused.claim("s1", "paused", lease_s=0.01)
        async with paused._db().acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute(
                "SELECT owner FROM pw_session_leases WHERE session_id = 's1' FOR UPDATE"
            )
            # The paused process holds the lease row's lock and does nothing more.
            async with asyncio.timeout(30):
                await other.claim("s1", "other", lease_s=30)
            with pytest.raises(SessionOwned, match="driven by other"):
                await paused.claim("s1", "paused", lease_s=30)
    finally:
        await paused.close()
        await other.close()
