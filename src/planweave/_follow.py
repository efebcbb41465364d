"""A job's events, history then live, until the job ends: the one follow behind every edge.

``Engine.follow`` (the Python API and ``planweave events --follow``) and the HTTP API's SSE,
WebSocket and long-poll streams all read a job through this generator, so they agree on what a
client sees: every event after the ``seq`` it names, exactly once and in order, then the end of
the stream once the job has ended.

History comes from the store a page at a time. Live events come from this process's bus when
this process runs the job; the events already waiting on the subscription go out together as one
run (one write for a stream, however many events), and whenever one arrives out of order (a gap)
the store fills in, so the sequence stays contiguous. A job run by another process publishes
nothing here: the store is polled instead. While nothing happens the generator yields ``None``
about once a ``tick_s``, which a stream turns into keep-alives and uses to notice that it should
stop.

A client that names a ``seq`` past the job's last event gets only the events after it (none, if
the job ends first), and the stream still ends when the job does. A job that nobody drives (its
process died and its claim expired or was released) ends the follow after its stored events.

With ``deltas`` on, the pieces of model replies that workers publish while a call is written
(``LlmDelta``, never stored) come out too, among the live events as they arrive; they have no
``seq`` and change nothing of the above. Without it they are dropped here, so event listings
stay what the log holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from planweave.bus.base import Bus, Subscription
from planweave.constants import EVENT_TOPIC_ALL, TERMINAL_EVENT_TYPES
from planweave.events import Event, LlmDelta
from planweave.state import JobState
from planweave.store.base import Store

__all__ = ["FollowOps", "follow_runs"]

PAGE: Final = 500
"""Events read from the store at once."""
MAX_RUN: Final = 256
"""Live events yielded in one run at most (bounds a stream's write buffer)."""
TICK_S: Final = 1.0
OWNED_POLL_S: Final = 5.0
"""How often the store is read for a job this process runs (a safety net: the bus has it)."""
REMOTE_POLL_S: Final = 0.5
"""How often the store is read for a job another process runs."""

_ENDED: Final = object()


async def _next(sub: Subscription, live: AsyncIterator[Event], timeout_s: float) -> Any:
    """The next live event, ``None`` after ``timeout_s``, ``_ENDED`` when the bus closed."""
    try:
        if sub.buffered():
            return await live.__anext__()  # already there: no timer needed
        return await asyncio.wait_for(live.__anext__(), max(timeout_s, 0.01))
    except TimeoutError:
        return None
    except StopAsyncIteration:
        return _ENDED


async def follow_runs(
    job_id: str,
    *,
    after_seq: int,
    store: Store,
    bus: Bus,
    load: Callable[[str], Awaitable[JobState]],
    runs_here: Callable[[str], bool],
    unclaimed: Callable[[str], Awaitable[bool]],
    is_open: Callable[[], bool],
    poll_s: float = REMOTE_POLL_S,
    tick_s: float = TICK_S,
    deltas: bool = False,
) -> AsyncGenerator[list[Event] | None]:
    """Yield runs of a job's events after ``after_seq`` until the job ends, ``None`` when idle.

    Args:
        job_id: The job to follow.
        after_seq: Only events with a greater ``seq`` are yielded.
        store: Where the history is read.
        bus: Where this process publishes the job's live events.
        load: The job's current state (raises ``JobNotFound``).
        runs_here: Whether this process runs the job (its live events reach ``bus``).
        unclaimed: Whether nobody drives the job (no claim, an expired one, or a dead holder):
            a job run nowhere ends the follow after its stored events.
        is_open: ``False`` once the engine is closing: the generator then stops.
        poll_s: How often the store is read for a job another process runs.
        tick_s: Longest time between two yields while nothing happens.
        deltas: Also yield the ``LlmDelta`` pieces of replies being written (live only).
    """
    seq = after_seq
    last_type: str | None = None
    async with bus.subscribe(f"{EVENT_TOPIC_ALL}:{job_id}") as sub:
        live = sub.__aiter__()
        state = await load(job_id)
        ended_at = state.seq if state.terminal else None
        # Resumed past the last event (an id from another job, or made up): the job's end may
        # come in an event at or before that seq, which is never yielded.
        past_end = seq > state.seq
        need_read = True
        ending = False
        last_read = 0.0
        while is_open():
            if need_read:
                batch = await store.read_events(job_id, after_seq=seq, limit=PAGE)
                last_read = time.monotonic()
                run = [event for event in batch if event.seq > seq]
                if run:
                    seq = run[-1].seq
                    last_type = run[-1].type
                    past_end = False
                    yield run
                if len(batch) >= PAGE:
                    continue
                need_read = False
                # A job ends with its last event; a retried job goes on past an earlier end.
                if last_type in TERMINAL_EVENT_TYPES:
                    return
                if last_type is None and ended_at is not None and seq >= ended_at:
                    return
                if past_end and not run:
                    now_state = await load(job_id)
                    if now_state.terminal and now_state.seq <= seq:
                        return
                if not runs_here(job_id):
                    if ending:
                        return
                    if await unclaimed(job_id):
                        # Nobody drives it: read once more (its owner may have just written its
                        # last events and released its claim), then end.
                        ending = need_read = True
                        continue
            interval = OWNED_POLL_S if runs_here(job_id) else poll_s
            wait_s = min(tick_s, last_read + interval - time.monotonic())
            item = await _next(sub, live, wait_s)
            if item is None or item is _ENDED:
                if item is _ENDED:
                    await asyncio.sleep(max(wait_s, 0.05))
                need_read = time.monotonic() - last_read >= interval
                yield None
                continue
            event: Event = item
            run = []
            ended = False
            run_from = seq
            # The event just read, then those already waiting: the contiguous ones go out
            # together; a gap stops the run and the store fills it in.
            while True:
                if isinstance(event, LlmDelta):
                    if deltas:
                        run.append(event)
                elif event.seq == seq + 1:
                    seq = event.seq
                    last_type = event.type
                    run.append(event)
                    if last_type in TERMINAL_EVENT_TYPES:
                        break
                elif event.seq > seq + 1:
                    need_read = True
                    break
                elif event.type in TERMINAL_EVENT_TYPES:
                    ended = True  # at or before where the follow started: nothing more to send
                    break
                if not sub.buffered() or len(run) >= MAX_RUN:
                    break
                try:
                    event = await live.__anext__()
                except StopAsyncIteration:
                    break
            if time.monotonic() - last_read >= interval:
                need_read = True  # deltas keep coming: the store is still read when it is due
            if run:
                if seq != run_from:  # logged events, not deltas alone
                    past_end = False
                yield run
                if last_type in TERMINAL_EVENT_TYPES:
                    return
            if ended:
                return


class FollowOps:
    """``Engine.follow`` and ``follow_runs``: a job's events, history then live (mixed into
    ``Engine``)."""

    __slots__ = ()

    store: Store
    bus: Bus

    if TYPE_CHECKING:  # provided by ``Engine``

        async def start(self) -> None: ...

        async def get(self, job_id: str) -> JobState: ...

        def runs_here(self, job_id: str) -> bool: ...

        async def _unclaimed(self, job_id: str) -> bool: ...

        def _is_open(self) -> bool: ...

    async def follow(
        self,
        job_id: str,
        *,
        after_seq: int = 0,
        poll_s: float = REMOTE_POLL_S,
        deltas: bool = False,
    ) -> AsyncGenerator[Event]:
        """A job's events from ``after_seq`` on, history then live, until the job ends.

        Works whichever process runs the job: history comes from the store, live events from
        this process's bus when it runs the job, else by polling the store every ``poll_s``.
        Every event after ``after_seq`` is yielded exactly once, in order, so a caller that
        stopped can carry on from the last ``seq`` it saw. A job that nobody drives (stalled:
        its process died and its claim expired or was released) ends the stream after its
        stored events, instead of waiting for events that never come.

        With ``deltas=True`` it also yields ``LlmDelta`` events, live only (never stored, no
        ``seq``): the pieces of model replies while they are being written.

        Raises:
            JobNotFound: no such job.
        """
        async with contextlib.aclosing(
            self.follow_runs(job_id, after_seq=after_seq, poll_s=poll_s, deltas=deltas)
        ) as runs:
            async for run in runs:
                if run:
                    for event in run:
                        yield event

    async def follow_runs(
        self,
        job_id: str,
        *,
        after_seq: int = 0,
        poll_s: float = REMOTE_POLL_S,
        tick_s: float = 1.0,
        deltas: bool = False,
    ) -> AsyncGenerator[list[Event] | None]:
        """``follow`` in runs, for streams: each run is a page of history or the live events
        already waiting, so a stream writes them at once; ``None`` every ``tick_s`` while
        nothing happens (time for a keep-alive, or to stop). Ends when the job ends or the
        engine closes.

        Raises:
            JobNotFound: no such job.
        """
        await self.start()
        runs = follow_runs(
            job_id,
            after_seq=after_seq,
            store=self.store,
            bus=self.bus,
            load=self.get,
            runs_here=self.runs_here,
            unclaimed=self._unclaimed,
            is_open=self._is_open,
            poll_s=poll_s,
            tick_s=tick_s,
            deltas=deltas,
        )
        async with contextlib.aclosing(runs):
            async for run in runs:
                yield run
