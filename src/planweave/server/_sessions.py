"""Reactive sessions over HTTP: create, list and read boards, add and remove inputs, and follow
a session's log as Server-Sent Events or WebSocket frames.

A session belongs to the tenant whose token created it; another tenant's session is answered
exactly like one that does not exist (404). The server drives every session it creates or reads
(``engine.sessions.open`` on first use), so its agents re-run as inputs change. A change is
either made whole or refused with nothing changed: a stale ``expected_version`` is 409 with the
``current_version`` in the body, a session over its ``max_changes_per_minute`` is 429 with
``Retry-After``, an input the session refuses (too long, an unknown tag) is 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from planweave.errors import (
    ConfigError,
    SessionConflict,
    SessionInputInvalid,
    SessionNotFound,
    SessionRateLimited,
)
from planweave.server._context import AppContext, Ctx, Tenant, context, tenant
from planweave.server._errors import (
    ApiError,
    SafeJSONResponse,
    dumps,
    error_payload,
    error_responses,
)
from planweave.server._events import (
    LAST_EVENT_ID_PATTERN,
    MAX_SEQ,
    EventStreamResponse,
    _deny,
    _first_of,
    _with_keepalives,
)
from planweave.sessions import Session, SessionEvent, SessionSpec, SessionState
from planweave.sessions._session import board_of

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["sessions"], responses=error_responses(401, 404, 422, 429))

MAX_SPEC_CHARS = 200_000
MAX_INPUT_CHARS = 100_000
MAX_TAGS = 50
MAX_FIRST_INPUTS = 100
TICK_S = 1.0

SessionId = Annotated[
    str, Path(description="The session's id", max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
]
InputId = Annotated[
    str, Path(description="The input's id", max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
]
Tag = Annotated[str, Field(min_length=1, max_length=200)]


class SessionInput(BaseModel):
    """An input to a session: its text and the tags that route it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class SessionInputCreate(SessionInput):
    """An input to add; with ``expected_version`` the change applies only if the session's
    inputs are still at that version (else 409)."""

    expected_version: int | None = Field(default=None, ge=0, le=MAX_SEQ)


class SessionCreate(BaseModel):
    """A session to start: its spec (a JSON object, or the text of a session YAML file) and
    the inputs to begin with."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] | Annotated[str, Field(min_length=1, max_length=MAX_SPEC_CHARS)]
    inputs: list[SessionInput] = Field(default_factory=list, max_length=MAX_FIRST_INPUTS)


class InputAccepted(BaseModel):
    """The input added and the session's version after it."""

    input_id: str
    version: int


class InputRemovedReply(BaseModel):
    """The input removed and the session's version after it."""

    input_id: str
    version: int


class SessionBoard(BaseModel):
    """A session's board: its current inputs, each agent's latest result with its version and
    status, the aggregate, the budget and the propagation counters. ``version`` is what a
    change's ``expected_version`` is compared with; ``seq`` is the last event's."""

    session_id: str
    name: str
    version: int
    seq: int
    settled: bool
    inputs: list[dict[str, Any]]
    agents: dict[str, dict[str, Any]]
    aggregate: dict[str, Any]
    budget: dict[str, Any]
    counters: dict[str, Any]


class SessionSummary(BaseModel):
    """A session as listed."""

    session_id: str
    name: str
    version: int
    seq: int
    settled: bool
    created_at: float


class SessionList(BaseModel):
    """The tenant's sessions, newest first."""

    sessions: list[SessionSummary]
    limit: int


class ConflictBody(BaseModel):
    """A change based on an older version: nothing changed; read the board and try again
    with ``current_version``."""

    error: dict[str, Any]
    current_version: int


def _parse_spec(raw: dict[str, Any] | str) -> SessionSpec:
    """The spec of a create request, or 422 naming the field."""
    data: Any = raw
    if isinstance(raw, str):
        import yaml

        from planweave._yaml import BoundedLoader, Refused

        loader: BoundedLoader | None = None
        try:
            loader = BoundedLoader(raw)
            data = loader.get_single_data()
        except Refused as exc:
            raise ApiError(422, f"spec: {exc.problem}") from None
        except yaml.YAMLError as exc:
            first = " ".join(str(exc).split())[:300]
            raise ApiError(422, f"spec: not valid YAML: {first}") from None
        finally:
            if loader is not None:
                loader.dispose()
    try:
        spec = SessionSpec.from_data(data, where="spec")
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    if spec.routing.mode == "function" or spec.routing.function is not None:
        raise ApiError(
            422,
            "spec.routing.function: a session created over the API routes by tags or by an "
            "LLM, never by importing code on the server",
        )
    return spec


def _check_models(ctx: AppContext, spec: SessionSpec) -> None:
    allowed = ctx.engine.allowed_models(ctx.settings.api_models)
    parts: list[tuple[str, str | None]] = [
        (f"spec.agents[{i}].model", agent.model) for i, agent in enumerate(spec.agents)
    ]
    if spec.aggregator is not None:
        parts.append(("spec.aggregator.model", spec.aggregator.model))
    parts.append(("spec.routing.model", spec.routing.model))
    for where, model in parts:
        if model is not None and model not in allowed:
            raise ApiError(
                422, f"{where}: this server lets sessions use {', '.join(sorted(allowed))}"
            )


def _check_agent_names(ctx: AppContext, spec: SessionSpec) -> None:
    """Refuse a spec whose session-made agents would replace different live ones of the same
    name (another session, maybe another tenant's, named alike)."""
    registry = ctx.engine.agents
    known = set(registry.names())
    parts: list[tuple[str, Any]] = [(agent.name, agent) for agent in spec.agents]
    if spec.aggregator is not None:
        parts.append((spec.aggregator.name, spec.aggregator))
    for board_name, part in parts:
        name = f"{spec.name}.{board_name}"
        if part.agent is not None or name not in known:
            continue
        live = registry.get(name)
        same = (
            getattr(live, "instructions", None) == part.instructions
            and tuple(getattr(live, "tools", None) or ()) == tuple(getattr(part, "tools", ()))
            and getattr(live, "model", None) == part.model
        )
        if not same:
            raise ApiError(
                409,
                f"spec.name: a session named {spec.name!r} with other agents is live on this "
                "server; give yours another name",
            )


async def _owned_state(ctx: AppContext, session_id: str, tenant: str) -> SessionState:
    try:
        state = await ctx.engine.sessions.load(session_id)
    except SessionNotFound:
        raise ApiError(404, "no such session") from None
    if state.tenant != tenant:
        raise ApiError(404, "no such session")
    return state


async def _owned(ctx: AppContext, session_id: str, tenant: str) -> Session:
    """The tenant's session, driven by this server (404 for unknown ids and other tenants')."""
    await _owned_state(ctx, session_id, tenant)
    try:
        return await ctx.engine.sessions.open(session_id)
    except SessionNotFound:
        raise ApiError(404, "no such session") from None
    except ConfigError as exc:
        raise ApiError(409, f"the session cannot be driven here: {exc}") from None


async def owned_session(request: Request, session_id: SessionId) -> Session:
    """Dependency: the path's session, if it belongs to the caller's tenant (checked before the
    body is read, so another tenant's id is 404 whatever the body)."""
    return await _owned(context(request), session_id, tenant(request))


OwnedSession = Annotated[Session, Depends(owned_session)]


def _board(session: Session) -> dict[str, Any]:
    return board_of(session.spec, session._state)


def _change_error(exc: Exception) -> Exception:
    if isinstance(exc, SessionConflict):
        payload = error_payload("conflict", str(exc))
        payload["current_version"] = exc.current_version
        return _Answer(SafeJSONResponse(payload, status_code=409))
    if isinstance(exc, SessionRateLimited):
        return ApiError(
            429,
            str(exc),
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))},
        )
    return ApiError(422, str(exc))


class _Answer(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("answered")
        self.response = response


_CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ConflictBody, "description": "The session's inputs changed since then"},
}


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionBoard,
    responses=error_responses(400, 413),
)
async def create_session(body: SessionCreate, ctx: Ctx, tenant: Tenant) -> Any:
    """Start a session from its spec and first inputs; returns its board (201). The server
    drives it from then on."""
    spec = _parse_spec(body.spec)
    _check_models(ctx, spec)
    _check_agent_names(ctx, spec)
    inputs = [item.model_dump() for item in body.inputs]
    try:
        session = await ctx.engine.sessions.create(spec, inputs=inputs, tenant=tenant)
    except SessionInputInvalid as exc:
        raise ApiError(422, str(exc)) from None
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    return _board(session)


@router.get("/sessions", response_model=SessionList)
async def list_sessions(
    ctx: Ctx, tenant: Tenant, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> SessionList:
    """The tenant's sessions, newest first."""
    rows = await ctx.engine.sessions.list(limit=limit, tenant=tenant)
    return SessionList(
        sessions=[
            SessionSummary(
                session_id=row.session_id,
                name=row.name,
                version=row.input_rev,
                seq=row.seq,
                settled=row.settled,
                created_at=row.created_at,
            )
            for row in rows
        ],
        limit=limit,
    )


@router.get("/sessions/{session_id}", response_model=SessionBoard)
async def get_session(session_id: SessionId, ctx: Ctx, tenant: Tenant) -> Any:
    """The session's board, with its ``version`` (for ``expected_version``) and ``seq``."""
    return _board(await _owned(ctx, session_id, tenant))


@router.post(
    "/sessions/{session_id}/inputs",
    status_code=201,
    response_model=InputAccepted,
    responses={**_CHANGE_RESPONSES, **error_responses(400, 413)},
)
async def add_input(body: SessionInputCreate, session: OwnedSession) -> Any:
    """Add an input; the agents it is routed to (and their dependents) re-run."""
    try:
        input_id = await session.add_input(
            {"text": body.text, "tags": body.tags}, expected_version=body.expected_version
        )
    except (SessionConflict, SessionRateLimited, SessionInputInvalid, ConfigError) as exc:
        error = _change_error(exc)
        if isinstance(error, _Answer):
            return error.response
        raise error from None
    return InputAccepted(input_id=input_id, version=session.version)


@router.delete(
    "/sessions/{session_id}/inputs/{input_id}",
    response_model=InputRemovedReply,
    responses=_CHANGE_RESPONSES,
)
async def remove_input(
    input_id: InputId,
    session: OwnedSession,
    expected_version: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
) -> Any:
    """Remove an input: it leaves every agent's inputs; agents left with none drop their
    results and their dependents re-run or drop in turn."""
    node = session._state.inputs.get(input_id)
    if node is None or node.removed:
        raise ApiError(404, "the session has no such input")
    try:
        await session.remove_input(input_id, expected_version=expected_version)
    except (SessionConflict, SessionRateLimited, SessionInputInvalid) as exc:
        error = _change_error(exc)
        if isinstance(error, _Answer):
            return error.response
        if isinstance(exc, SessionInputInvalid):
            raise ApiError(404, "the session has no such input") from None
        raise error from None
    return InputRemovedReply(input_id=input_id, version=session.version)


# --- streams ------------------------------------------------------------------------------


async def _session_runs(
    ctx: AppContext, session: Session, after: int
) -> AsyncGenerator[list[SessionEvent] | None]:
    """The session's events after ``after``, then live ones; ``None`` on idle ticks (for
    keep-alives). Ends when the server stops."""
    queue: asyncio.Queue[SessionEvent] = asyncio.Queue()

    async def produce() -> None:
        async for event in session.follow(after_seq=after):
            await queue.put(event)

    producer = asyncio.create_task(produce())
    try:
        while not ctx.closing.is_set():
            try:
                first = await asyncio.wait_for(queue.get(), TICK_S)
            except TimeoutError:
                if producer.done():
                    return
                yield None
                continue
            run = [first]
            while not queue.empty():
                run.append(queue.get_nowait())
            yield run
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


def _sse(event: SessionEvent) -> bytes:
    data = dumps(event.model_dump(mode="json"))
    return f"id: {event.seq}\nevent: {event.type}\n".encode() + b"data: " + data + b"\n\n"


def _sse_chunks(ctx: AppContext, session: Session, after: int) -> AsyncGenerator[bytes]:
    return _with_keepalives(ctx, _session_runs(ctx, session, after), frame=_sse)


_SESSION_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: the session's log after the given seq, then each "
        "change as it is recorded (id: the event's seq; event: its type; data: the event)",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "event": {"type": "string"},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                    },
                    "required": ["id", "event", "data"],
                }
            }
        },
        "headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["no-cache"]}}},
    }
}


@router.get(
    "/sessions/{session_id}/events",
    responses=_SESSION_STREAM_RESPONSE,
    response_class=Response,
)
async def session_events(
    request: Request,
    session_id: SessionId,
    ctx: Ctx,
    tenant: Tenant,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    format: Literal["sse", "json"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=LAST_EVENT_ID_PATTERN,
            description="The seq of the last event seen: the stream goes on after it",
        ),
    ] = "",
) -> Response:
    """The session's events as SSE: its log after ``after`` (or ``Last-Event-ID``), then each
    change live, for as long as the client stays; or, with ``format=json`` (or ``Accept:
    application/json``), a page of events ``{"events": [...], "next_after": seq}``."""
    session = await _owned(ctx, session_id, tenant)
    if last_event_id.strip():
        after = int(last_event_id)
    accept = request.headers.get("accept", "")
    if format is None:
        wants_json = "application/json" in accept and "text/event-stream" not in accept
        format = "json" if wants_json else "sse"
    if format == "json":
        events = await session.events(after_seq=after, limit=limit)
        return SafeJSONResponse(
            {
                "events": [event.model_dump(mode="json") for event in events],
                "next_after": events[-1].seq if events else after,
            }
        )
    ctx.open_stream(tenant)
    return EventStreamResponse(
        _sse_chunks(ctx, session, after), on_close=lambda: ctx.close_stream(tenant)
    )


@router.websocket("/sessions/{session_id}/ws")
async def session_ws(websocket: WebSocket, session_id: str) -> None:
    """The session's events as JSON text frames: its log after ``?after=``, then live."""
    ctx = context(websocket)
    tenant = websocket.scope.get("state", {}).get("tenant")
    raw_after = websocket.query_params.get("after", "0")
    try:
        after = int(raw_after)
        if not 0 <= after <= MAX_SEQ:
            raise ValueError(raw_after)
        if not isinstance(tenant, str):
            raise ApiError(401, "a valid API token is required")
        if len(session_id) > 128:
            raise ApiError(404, "no such session")
        session = await _owned(ctx, session_id, tenant)
        ctx.open_stream(tenant)
    except ValueError:
        await _deny(websocket, 422, "validation_error", "after must be an event's seq")
        return
    except ApiError as exc:
        await _deny(websocket, exc.status, exc.code, exc.message, exc.headers)
        return
    try:
        await websocket.accept()

        async def pump() -> None:
            async with contextlib.aclosing(_session_runs(ctx, session, after)) as runs:
                async for run in runs:
                    for event in run or ():
                        await websocket.send_text(dumps(event.model_dump(mode="json")).decode())
            await websocket.close(1000)

        async def watch() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

        await _first_of(pump(), watch())
    finally:
        ctx.close_stream(tenant)
