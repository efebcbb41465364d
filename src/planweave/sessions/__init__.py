"""Reactive sessions: a long-lived board of inputs that agents react to.

People add and remove inputs over time; each input is routed to the agents it concerns; agents
depend on each other; only what is downstream of a change runs again, an unchanged result stops
the cascade (early cutoff), removing an input retracts what depended on it, and an aggregator
keeps a live summary over exactly the current inputs. Every change is an event in the session's
own log. See ``docs/sessions.md``::

    spec = SessionSpec.from_file("party.yaml")
    async with Engine(model=...) as engine:
        s = await engine.sessions.create(spec, inputs=["jungle theme party for 75 guests"])
        await s.add_input("budget is $1500", tags=["budget"])
        board = await s.wait_settled()
"""

from planweave.sessions._events import (
    AgentCompleted,
    AgentDropped,
    AgentFailed,
    AgentRunQueued,
    AgentRunStarted,
    AgentRunSuperseded,
    AggregateUpdated,
    InputAdded,
    InputRemoved,
    ResultFenced,
    SessionBlocked,
    SessionCreated,
    SessionEvent,
    SessionSettled,
    parse_session_event,
)
from planweave.sessions._manager import SessionManager
from planweave.sessions._propagate import (
    CancelRun,
    Decision,
    RunAgent,
    RunOutcome,
    decide,
    on_result,
    recover,
)
from planweave.sessions._reactive import ReactiveAgent, ReactiveFunction, reactive
from planweave.sessions._session import InputLike, Session
from planweave.sessions._spec import (
    AggregatorSpec,
    Consumes,
    RoutingSpec,
    SessionAgentSpec,
    SessionBudget,
    SessionSpec,
)
from planweave.sessions._state import AgentNode, AggregateNode, InputNode, SessionState
from planweave.sessions._store import (
    MemorySessionStore,
    SessionRow,
    SessionStore,
    SqliteSessionStore,
    open_session_store,
)

__all__ = [
    "AgentCompleted",
    "AgentDropped",
    "AgentFailed",
    "AgentNode",
    "AgentRunQueued",
    "AgentRunStarted",
    "AgentRunSuperseded",
    "AggregateNode",
    "AggregateUpdated",
    "AggregatorSpec",
    "CancelRun",
    "Consumes",
    "Decision",
    "InputAdded",
    "InputLike",
    "InputNode",
    "InputRemoved",
    "MemorySessionStore",
    "PostgresSessionStore",
    "ReactiveAgent",
    "ReactiveFunction",
    "ResultFenced",
    "RoutingSpec",
    "RunAgent",
    "RunOutcome",
    "Session",
    "SessionAgentSpec",
    "SessionBlocked",
    "SessionBudget",
    "SessionCreated",
    "SessionEvent",
    "SessionManager",
    "SessionRow",
    "SessionSettled",
    "SessionSpec",
    "SessionState",
    "SessionStore",
    "SqliteSessionStore",
    "decide",
    "on_result",
    "open_session_store",
    "parse_session_event",
    "reactive",
    "recover",
]


def __getattr__(name: str) -> object:
    # PostgresSessionStore needs asyncpg (the ``postgres`` extra): imported when asked for.
    if name == "PostgresSessionStore":
        from planweave.sessions._pg_store import PostgresSessionStore

        return PostgresSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
