"""One contract for every session store (memory, SQLite, PostgreSQL): the log and the state are
written together or not at all, in order, and a batch based on an old ``seq`` is refused; one
owner holds a session's lease at a time, and a write from any other is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from planweave.errors import LogConflict, SessionLogConflict, SessionOwned, UsageError
from planweave.sessions import (
    InputAdded,
    MemorySessionStore,
    SessionCreated,
    SessionEvent,
    SessionState,
    SessionStore,
    SqliteSessionStore,
    open_session_store,
)
from planweave.sessions._pg_store import PostgresSessionStore

SPEC = {"name": "kind", "agents": [{"name": "a", "instructions": "x"}]}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    made: SessionStore
    if request.param == "memory":
        made = MemorySessionStore()
    elif request.param == "sqlite":
        made = SqliteSessionStore(tmp_path / "deep" / "s.db")
    else:
        made = PostgresSessionStore(request.getfixturevalue("pg_url"))
    await made.open()
    yield made
    await made.close()


def events_for(state: SessionState, n: int) -> list[SessionEvent]:
    events: list[SessionEvent] = []
    for _ in range(n):
        seq = state.seq + 1
        event: SessionEvent
        if seq == 1:
            event = SessionCreated(session_id=state.session_id, seq=1, at=10.0, spec=SPEC)
        else:
            event = InputAdded(
                session_id=state.session_id, seq=seq, at=10.0 + seq, input_id=f"i{seq}",
                text=f"t{seq}", version=seq - 1, input_rev=seq - 1, routes=("a",),
            )  # fmt: skip
        state.apply(event)
        events.append(event)
    return events


async def test_append_load_and_read_back(store: SessionStore) -> None:
    state = SessionState(session_id="s1")
    first = events_for(state, 2)
    await store.append(state, first, based_on=0)
    more = events_for(state, 3)
    await store.append(state, more, based_on=2)
    loaded = await store.load("s1")
    assert loaded == state
    assert await store.read_events("s1") == first + more
    assert [e.seq for e in await store.read_events("s1", after_seq=3, limit=1)] == [4]
    assert await store.load("nope") is None and await store.read_events("nope") == []
    rows = await store.list_sessions()
    assert [(r.session_id, r.name, r.seq, r.input_rev) for r in rows] == [("s1", "kind", 5, 4)]


async def test_a_batch_based_on_an_old_seq_writes_nothing(store: SessionStore) -> None:
    state = SessionState(session_id="s1")
    await store.append(state, events_for(state, 2), based_on=0)
    stale = state.copy_state()
    await store.append(state, events_for(state, 1), based_on=2)
    with pytest.raises(SessionLogConflict) as info:
        await store.append(stale, events_for(stale, 1), based_on=2)
    assert isinstance(info.value, LogConflict)
    assert "session s1" in str(info.value)
    assert await store.load("s1") == state
    assert len(await store.read_events("s1")) == 3


async def test_sessions_are_listed_newest_first(store: SessionStore) -> None:
    for n, sid in enumerate(["old", "new"]):
        state = SessionState(session_id=sid)
        events = [SessionCreated(session_id=sid, seq=1, at=float(n), spec=SPEC)]
        state.apply(events[0])
        await store.append(state, events, based_on=0)
    assert [r.session_id for r in await store.list_sessions()] == ["new", "old"]
    assert [r.session_id for r in await store.list_sessions(limit=1)] == ["new"]


async def test_sessions_are_listed_per_tenant(store: SessionStore) -> None:
    for n, (sid, tenant) in enumerate([("a1", "alice"), ("b1", "bob"), ("a2", "alice")]):
        state = SessionState(session_id=sid)
        event = SessionCreated(session_id=sid, seq=1, at=float(n), spec=SPEC, tenant=tenant)
        state.apply(event)
        await store.append(state, [event], based_on=0)
    assert [r.session_id for r in await store.list_sessions(tenant="alice")] == ["a2", "a1"]
    assert [r.session_id for r in await store.list_sessions(tenant="bob")] == ["b1"]
    assert await store.list_sessions(tenant="carol") == []
    assert len(await store.list_sessions()) == 3


def test_the_session_store_follows_the_job_store_url(tmp_path: Path) -> None:
    assert isinstance(open_session_store("memory://"), MemorySessionStore)
    sqlite = open_session_store(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(sqlite, SqliteSessionStore) and sqlite.path == tmp_path / "x.db"
    pg = open_session_store("postgresql://u:pw@h:5/db")
    assert isinstance(pg, PostgresSessionStore) and pg.url == "postgresql://u:***@h:5/db"
    with pytest.raises(UsageError, match="sqlite, postgresql or memory"):
        open_session_store("redis://h/0")


async def test_one_owner_holds_the_lease_and_only_it_writes(store: SessionStore) -> None:
    state = SessionState(session_id="s1")
    await store.claim("s1", "p1", lease_s=30)
    await store.append(state, events_for(state, 2), based_on=0, owner="p1")
    await store.claim("s1", "p1", lease_s=30)  # renewing
    with pytest.raises(SessionOwned) as info:
        await store.claim("s1", "p2", lease_s=30)
    assert info.value.owner == "p1"
    assert "session s1 is driven by p1" in str(info.value) and info.value.expires_in_s > 20
    for intruder in ("p2", None):  # a non-owner's write, based on the right seq, is refused
        probe = state.copy_state()
        with pytest.raises(SessionOwned, match="driven by p1"):
            await store.append(probe, events_for(probe, 1), based_on=2, owner=intruder)
    assert len(await store.read_events("s1")) == 2 and await store.load("s1") == state


async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_refused(
    store: SessionStore,
) -> None:
    state = SessionState(session_id="s1")
    await store.claim("s1", "old", lease_s=0.05)
    await store.append(state, events_for(state, 1), based_on=0, owner="old")
    await asyncio.sleep(0.2)
    await store.claim("s1", "new", lease_s=30)
    late = state.copy_state()
    with pytest.raises(SessionOwned, match="driven by new"):
        await store.append(late, events_for(late, 1), based_on=1, owner="old")
    with pytest.raises(SessionOwned):
        await store.claim("s1", "old", lease_s=30)
    await store.append(state, events_for(state, 1), based_on=1, owner="new")
    await store.release("s1", "old")  # not its lease: nothing happens
    with pytest.raises(SessionOwned):
        await store.claim("s1", "old", lease_s=30)
    await store.release("s1", "new")
    await store.claim("s1", "old", lease_s=30)
    assert [e.seq for e in await store.read_events("s1")] == [1, 2]
