"""``engine.sessions``: create, open and list the sessions of an engine's store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planweave.errors import ConfigError, SessionNotFound
from planweave.events import new_id
from planweave.sessions._events import InputAdded, SessionCreated, SessionEvent
from planweave.sessions._propagate import Decision, recover
from planweave.sessions._session import InputLike, Session
from planweave.sessions._spec import SessionSpec
from planweave.sessions._state import SessionState
from planweave.sessions._store import SessionRow, SessionStore, open_session_store

if TYPE_CHECKING:
    from planweave.engine import Engine

__all__ = ["SessionManager"]


class SessionManager:
    """The sessions of one engine (``engine.sessions``).

    Sessions are kept beside the engine's jobs (its SQLite file, or memory for ``memory://``)
    and driven by the process that created or opened them.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._store: SessionStore | None = None
        self._live: dict[str, Session] = {}
        self._open_lock = asyncio.Lock()

    async def _ready(self) -> SessionStore:
        await self.engine.start()
        if self._store is None:
            store = open_session_store(self.engine.store.url)
            await store.open()
            self._store = store
        return self._store

    async def create(
        self,
        spec: SessionSpec | str | Path,
        *,
        inputs: Iterable[InputLike] = (),
        tenant: str = "default",
        session_id: str | None = None,
    ) -> Session:
        """Start a session and route its first ``inputs``.

        Args:
            spec: The session (a ``SessionSpec`` or the path of its YAML file).
            inputs: Inputs to begin with (text, or ``{"text": ..., "tags": [...]}``).
            tenant: Whose session it is.
            session_id: Its id (default: a fresh one).

        Raises:
            ConfigError: the spec is not valid, or names an agent the engine does not have.
            SessionInputInvalid: an input is not valid; nothing was created.
        """
        if not isinstance(spec, SessionSpec):
            spec = SessionSpec.from_file(spec)
        store = await self._ready()
        sid = session_id or new_id()
        state = SessionState(session_id=sid)
        empty = SessionState(session_id=sid)
        session = Session(self.engine, store, spec, empty, self._register(spec))
        checked = [session._checked_input(item, ()) for item in inputs]
        now = time.time()
        events: list[SessionEvent] = [
            SessionCreated(
                session_id=sid, seq=1, at=now, spec=spec.model_dump(mode="json"), tenant=tenant
            )
        ]
        for index, (text, tags) in enumerate(checked, start=1):
            routes, reason = await session._route(text, tags)
            events.append(
                InputAdded(
                    session_id=sid,
                    seq=index + 1,
                    at=now,
                    input_id=new_id(),
                    text=text,
                    tags=tags,
                    version=index,
                    input_rev=index,
                    routes=routes,
                    route_reason=reason,
                )
            )
        for event in events:
            state.apply(event)
        await session._write(Decision(state=state, events=events))
        self._live[sid] = session
        session.start()
        return session

    async def open(self, session_id: str) -> Session:
        """The session, driven in this process from its stored state: runs that were in
        flight when its last process stopped run again.

        Raises:
            SessionNotFound: no such session.
        """
        async with self._open_lock:
            live = self._live.get(session_id)
            if live is not None:
                return live
            store = await self._ready()
            state = await store.load(session_id)
            if state is None:
                raise SessionNotFound(session_id)
            spec = SessionSpec.from_data(state.spec, where=f"session {session_id}")
            session = Session(self.engine, store, spec, state, self._register(spec))
            await session._write(recover(state, spec, time.time()))
            self._live[session_id] = session
            session.start()
            return session

    async def load(self, session_id: str) -> SessionState:
        """A session's stored state, read without driving it here.

        Raises:
            SessionNotFound: no such session.
        """
        state = await (await self._ready()).load(session_id)
        if state is None:
            raise SessionNotFound(session_id)
        return state

    async def follow(
        self,
        session_id: str,
        *,
        after_seq: int = 0,
        until_settled: bool = False,
        poll_s: float = 0.2,
    ) -> AsyncIterator[SessionEvent]:
        """A stored session's events after ``after_seq``, then each new one as it is stored,
        whichever process drives it (read from the store every ``poll_s``). With
        ``until_settled`` it ends at a ``session.settled`` event that nothing followed yet.

        Raises:
            SessionNotFound: no such session.
        """
        live = self._live.get(session_id)
        if live is not None:
            async for event in live.follow(after_seq=after_seq, until_settled=until_settled):
                yield event
            return
        store = await self._ready()
        if await store.load(session_id) is None:
            raise SessionNotFound(session_id)
        seq = after_seq
        while True:
            events = await store.read_events(session_id, after_seq=seq)
            for event in events:
                yield event
                seq = event.seq
            if until_settled and events and events[-1].type == "session.settled":
                return
            if not events:
                await asyncio.sleep(poll_s)

    async def list(self, *, limit: int = 50, tenant: str | None = None) -> list[SessionRow]:
        """Stored sessions, newest first (only ``tenant``'s when given)."""
        return await (await self._ready()).list_sessions(limit=limit, tenant=tenant)

    async def replay(self, session_id: str) -> SessionState:
        """The state its log folds to, built from the events alone (for checks and audits).

        Raises:
            SessionNotFound: no such session.
        """
        store = await self._ready()
        events = await store.read_events(session_id)
        if not events:
            raise SessionNotFound(session_id)
        state = SessionState(session_id=session_id)
        for event in events:
            state.apply(event)
        return state

    async def close(self) -> None:
        """Stop driving every session here (their logs stay) and close the session store."""
        live, self._live = list(self._live.values()), {}
        for session in live:
            await session.close()
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    def _register(self, spec: SessionSpec) -> dict[str, str]:
        """Make the spec's agents known to the engine; return board name -> agent name."""
        from planweave.agents import ReactAgent

        registry = self.engine.agents
        known = set(registry.names())
        names: dict[str, str] = {}
        parts: list[tuple[str, Any, str]] = [
            (f"agents[{i}]", a, a.name) for i, a in enumerate(spec.agents)
        ]
        if spec.aggregator is not None:
            parts.append(("aggregator", spec.aggregator, spec.aggregator.name))
        if spec.routing.mode == "llm":
            parts.append(("routing", spec.routing, "@routing"))
        for where, part, board_name in parts:
            if part.agent is not None:
                if part.agent not in known:
                    raise ConfigError(
                        f"session {spec.name}: {where}.agent: no agent {part.agent!r} is "
                        "registered with the engine"
                    )
                names[board_name] = part.agent
                continue
            name = f"{spec.name}.{board_name.lstrip('@')}"
            tools = list(getattr(part, "tools", ()))
            agent = ReactAgent(name, instructions=part.instructions, tools=tools, model=part.model)
            registry.register(agent, replace=True)
            names[board_name] = name
        return names
