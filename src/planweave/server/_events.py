"""Event streams: a job's events as SSE, WebSocket frames or JSON pages; all of a tenant's live.

A job stream sends the stored history first, then live events, and ends once the job has ended.
Every event carries its per-job ``seq``: a client that reconnects with ``Last-Event-ID`` (or
``?after=``) gets every event after it exactly once. The streams read the job through
``Engine.follow_runs`` (the same follow as the Python API and ``planweave events --follow``),
whose runs of events become one write each and whose idle ticks become keep-alives.

With ``deltas=true`` a job stream also carries the pieces of model replies while they are
written (``LlmDelta``: SSE event ``delta`` without an ``id``, WebSocket frames of type
``LlmDelta``); they are live only, never stored, so a resumed stream does not send them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, WebSocket
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from planweave.bus.base import Subscription
from planweave.events import Event, JobSubmitted, LlmDelta
from planweave.server._context import AppContext, Ctx, JobId, Tenant, context
from planweave.server._errors import (
    ApiError,
    SafeJSONResponse,
    dumps,
    error_payload,
    error_responses,
)
from planweave.server._models import EventPage

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"], responses=error_responses(401, 404, 422, 429))

PAGE = 500
MAX_SEQ = 2**53
LAST_EVENT_ID_PATTERN = r"^\s*[0-9]{0,15}\s*$"
"""An event's seq as a stream sent it (15 digits stay below ``MAX_SEQ``), or blank."""
TICK_S = 1.0
_ENDED = object()


async def _first_of(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` until one ends (the stream is done, or the client left); stop the rest."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            # A client that went away makes the other side fail; nothing is left to tell it.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _next(sub: Subscription, iterator: AsyncIterator[Event], timeout_s: float) -> Any:
    """The next live event, ``None`` after ``timeout_s``, ``_ENDED`` when the bus closed."""
    try:
        if sub.buffered():
            return await iterator.__anext__()  # already there: no timer needed
        return await asyncio.wait_for(iterator.__anext__(), max(timeout_s, 0.01))
    except TimeoutError:
        return None
    except StopAsyncIteration:
        return _ENDED


async def _job_runs(
    ctx: AppContext, job_id: str, after: int, *, deltas: bool = False
) -> AsyncGenerator[list[Event] | None]:
    """The engine's follow of a job, ended early when the server stops."""
    follow = ctx.engine.follow_runs(job_id, after_seq=after, deltas=deltas)
    async with contextlib.aclosing(follow) as runs:
        async for run in runs:
            yield run
            if ctx.closing.is_set():
                return


_FRAMES: dict[tuple[str, int, bool], bytes] = {}
_FRAMES_KEPT = 4096


def _frame(event: Event, *, with_id: bool = True) -> bytes:
    """The SSE frame of an event, built once however many subscribers stream it."""
    if isinstance(event, LlmDelta):  # no seq: never resumed from, never cached
        return b"event: delta\ndata: " + dumps(event.model_dump(mode="json")) + b"\n\n"
    key = (event.job_id, event.seq, with_id)
    frame = _FRAMES.get(key)
    if frame is None:
        head = f"id: {event.seq}\n" if with_id else ""
        data = dumps(event.model_dump(mode="json"))
        frame = f"{head}event: {event.type}\n".encode() + b"data: " + data + b"\n\n"
        if len(_FRAMES) >= _FRAMES_KEPT:
            del _FRAMES[next(iter(_FRAMES))]  # the oldest
        _FRAMES[key] = frame
    return frame


async def _with_keepalives(
    ctx: AppContext,
    events: AsyncGenerator[list[Any] | None],
    *,
    with_id: bool = True,
    frame: Callable[[Any], bytes] | None = None,
) -> AsyncGenerator[bytes]:
    """Runs of events as SSE frames (``frame``, by default a job event's), with a keep-alive
    comment on idle ticks past ``keepalive_s``."""
    to_bytes = frame or (lambda event: _frame(event, with_id=with_id))
    last_sent = time.monotonic()
    async with contextlib.aclosing(events):
        async for run in events:
            now = time.monotonic()
            if run is not None:
                last_sent = now
                if len(run) == 1:
                    yield to_bytes(run[0])
                else:
                    yield b"".join([to_bytes(event) for event in run])
            elif now - last_sent >= ctx.keepalive_s:
                last_sent = now
                yield b": keep-alive\n\n"


class EventStreamResponse(Response):
    """A ``text/event-stream`` response that stops (and closes its source) as soon as the
    client goes away, not at the next write."""

    media_type = "text/event-stream"

    def __init__(self, chunks: AsyncGenerator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.chunks = chunks
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def pump() -> None:
            async with contextlib.aclosing(self.chunks):
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        await _first_of(pump(), watch())


def _sse_event(*, with_id: bool) -> dict[str, Any]:
    """The schema of one Server-Sent Event as a client reads it (OpenAPI 3.1: ``schema`` of a
    ``text/event-stream`` describes each event)."""
    properties: dict[str, Any] = {
        "event": {"type": "string", "description": "The event's type, as in its data"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The event, as JSON (an Event of the JSON page); for the event "
            "'delta' (with deltas=true), an LlmDelta: a piece of a model reply being written, "
            "live only, without an id",
        },
    }
    if with_id:
        properties["id"] = {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The event's seq: send it back as Last-Event-ID to resume "
            "(absent on 'delta' events)",
        }
    return {
        "type": "object",
        "properties": properties,
        "required": ["event", "data"],
    }


_SSE_HEADERS = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-cache"]}}}
JOB_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events (default), history then live until the job ends; "
        "or, with format=json (or Accept: application/json), a page of events",
        "content": {"text/event-stream": {"schema": _sse_event(with_id=True)}},
        "headers": _SSE_HEADERS,
    }
}
LIVE_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events of all the tenant's jobs, live (no history)",
        "content": {"text/event-stream": {"schema": _sse_event(with_id=False)}},
        "headers": _SSE_HEADERS,
    }
}


@router.get("/jobs/{job_id}/events", response_model=EventPage, responses=JOB_STREAM_RESPONSE)
async def job_events(
    request: Request,
    job_id: JobId,
    ctx: Ctx,
    tenant: Tenant,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    format: Literal["sse", "json"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = PAGE,
    deltas: Annotated[
        bool,
        Query(
            description="Also stream the pieces of model replies while they are written "
            "(SSE event 'delta', live only, never stored)"
        ),
    ] = False,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=LAST_EVENT_ID_PATTERN,
            description="The seq of the last event seen: the stream goes on after it",
        ),
    ] = "",
) -> Any:
    """The job's events: SSE, history then live until the job ends; or a JSON page.

    With ``deltas=true`` the stream also sends ``delta`` events: the pieces of model replies
    while they are written (live only: a JSON page never holds them)."""
    await ctx.job(job_id, tenant)
    if last_event_id.strip():
        after = int(last_event_id)  # digits only, below MAX_SEQ: the pattern saw to it
    accept = request.headers.get("accept", "")
    if format is None:
        wants_json = "application/json" in accept and "text/event-stream" not in accept
        format = "json" if wants_json else "sse"
    if format == "json":
        events = await ctx.engine.events(job_id, after_seq=after, limit=limit)
        page = EventPage(events=events, next_after=events[-1].seq if events else after)
        return SafeJSONResponse(page.model_dump(mode="json"))
    return _stream_response(
        ctx,
        tenant,
        lambda: _with_keepalives(ctx, _job_runs(ctx, job_id, after, deltas=deltas)),
    )


def _stream_response(
    ctx: AppContext, tenant: str, chunks: Callable[[], AsyncGenerator[bytes]]
) -> Response:
    """An event stream, counted among the tenant's open streams (429 past the limit)."""
    ctx.open_stream(tenant)
    return EventStreamResponse(chunks(), on_close=lambda: ctx.close_stream(tenant))


async def _tenant_events(ctx: AppContext, tenant: str) -> AsyncGenerator[list[Event] | None]:
    async with ctx.engine.subscribe() as sub:
        live = sub.__aiter__()
        while not ctx.closing.is_set():
            event = await _next(sub, live, TICK_S)
            if event is None or event is _ENDED:
                if event is _ENDED:
                    await asyncio.sleep(TICK_S)
                yield None
                continue
            if isinstance(event, JobSubmitted):
                ctx.remember(event.job_id, event.tenant)
            if await ctx.tenant_of(event.job_id) == tenant:
                yield [event]


@router.get("/events", responses=LIVE_STREAM_RESPONSE, response_class=Response)
async def all_events(ctx: Ctx, tenant: Tenant) -> Response:
    """Live events of all the tenant's jobs, as SSE (no history)."""
    return _stream_response(
        ctx, tenant, lambda: _with_keepalives(ctx, _tenant_events(ctx, tenant), with_id=False)
    )


@router.websocket("/jobs/{job_id}/events/ws")
async def job_events_ws(websocket: WebSocket, job_id: str) -> None:
    """The job's events as JSON text frames; closes (1000) once the job has ended.

    ``?deltas=1`` adds frames of type ``LlmDelta``: pieces of model replies being written."""
    ctx = context(websocket)
    tenant = websocket.scope.get("state", {}).get("tenant")
    raw_after = websocket.query_params.get("after", "0")
    deltas = websocket.query_params.get("deltas", "").lower() in ("1", "true", "yes", "on")
    try:
        after = int(raw_after)
        if not 0 <= after <= MAX_SEQ:
            raise ValueError(raw_after)
        if not isinstance(tenant, str):
            raise ApiError(401, "a valid API token is required")
        await ctx.job(job_id, tenant)
    except ValueError:
        await _deny(websocket, 422, "validation_error", "after must be an event's seq")
        return
    except ApiError as exc:
        await _deny(websocket, exc.status, exc.code, exc.message)
        return
    try:
        ctx.open_stream(tenant)
    except ApiError as exc:
        await _deny(websocket, exc.status, exc.code, exc.message, exc.headers)
        return
    try:
        await _pump_websocket(websocket, ctx, job_id, after, deltas=deltas)
    finally:
        ctx.close_stream(tenant)


async def _pump_websocket(
    websocket: WebSocket, ctx: AppContext, job_id: str, after: int, *, deltas: bool = False
) -> None:
    await websocket.accept()

    async def pump() -> None:
        async with contextlib.aclosing(_job_runs(ctx, job_id, after, deltas=deltas)) as events:
            async for run in events:
                for event in run or ():
                    await websocket.send_text(dumps(event.model_dump(mode="json")).decode())
        await websocket.close(1000)

    async def watch() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    await _first_of(pump(), watch())


async def _deny(
    websocket: WebSocket,
    status: int,
    code: Any,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            SafeJSONResponse(error_payload(code, message), status_code=status, headers=headers)
        )
    else:
        await websocket.close(4000 + status)
