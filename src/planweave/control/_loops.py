"""The control plane's background loops: reports from workers, timers (retry delays, run
deadlines), commands left by other processes with the renewal of job claims, and, on a bus that
can lose messages, reconciling the work items out with what the bus still holds.

Each loop runs as a task of its ``ControlPlane`` (``ControlPlane.start``) until the plane stops,
and works on the plane's own state: these are its methods, kept in a module of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from planweave.control import decider
from planweave.messages import Outcome, WorkItem

if TYPE_CHECKING:
    from planweave.control.plane import ControlPlane

__all__ = ["command_loop", "reconcile_loop", "report_loop", "timer_loop"]

log = logging.getLogger("planweave.control")


def dead_lettered(plane: ControlPlane, item: WorkItem) -> None:
    """The bus gave up on a work item (``max_deliveries`` holders died or stalled on it):
    its task fails for good, as if its last holder had reported so."""
    state = plane._jobs.get(item.job_id)
    task = state.tasks.get(item.task_id) if state is not None else None
    if task is None:
        return
    log.warning(
        "task %s of job %s: its work item was dead-lettered (no worker finished it)",
        item.task_id,
        item.job_id,
    )
    plane._handle(
        Outcome(
            job_id=item.job_id,
            task_id=item.task_id,
            attempt=item.attempt,
            status="failed",
            error="its work item was dead-lettered: every worker that took it died or "
            "stalled past its lease (see the dead letters)",
            error_type="crash",
            retryable=False,
            delivery=max(1, task.delivery),
        )
    )


async def reconcile_loop(plane: ControlPlane) -> None:
    """Send again the work items the bus lost (see ``_reconcile``)."""
    reconciler = plane._reconciler
    assert reconciler is not None
    while not plane._closed:
        await asyncio.sleep(plane.settings.reconcile_s)
        try:
            lost, dead = await reconciler.check(plane.bus)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("control plane: checking the work items out failed: %s", exc)
            continue
        for item in dead:
            dead_lettered(plane, item)
        if dead:
            await plane._flush()
        for item in lost:
            state = plane._jobs.get(item.job_id)
            task = state.tasks.get(item.task_id) if state is not None else None
            if task is None or task.status != "running" or task.attempt != item.attempt:
                reconciler.ended(item.job_id, [item.task_id])
                continue
            log.warning(
                "task %s of job %s (attempt %d) is no longer on the bus: sending it again",
                item.task_id,
                item.job_id,
                item.attempt,
            )
            await plane._send_checked(item)


async def report_loop(plane: ControlPlane) -> None:
    bus = plane.bus
    while not plane._closed:
        try:
            deliveries = await bus.receive(
                plane.reply_queue, plane.owner, max_items=1024, lease_s=60.0
            )
            if not deliveries:
                continue
            for delivery in deliveries:
                plane._handle(delivery.message)
            plane._pending.acks.extend(deliveries)
            await plane._flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("control plane: handling reports failed; retrying")
            await asyncio.sleep(0.5)


async def timer_loop(plane: ControlPlane) -> None:
    while not plane._closed:
        now = plane._clock()
        due: float | None = None
        for state in list(plane._jobs.values()):
            when = decider.next_timer(state)
            if when is None:
                continue
            if when <= now:
                plane._take(state, decider.on_tick(state, now=now))
            else:
                due = when if due is None else min(due, when)
        if plane._pending.events or plane._redispatch:
            plane._redispatch = False
            await plane._flush()
        plane._timer_wake.clear()
        if plane._redispatch:  # a job ended while this loop flushed
            continue
        timeout = None if due is None else max(0.0, due - plane._clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(plane._timer_wake.wait(), timeout)


async def command_loop(plane: ControlPlane) -> None:
    """Commands left in the store by other processes, and renewal of job claims.

    On a store that announces commands (PostgreSQL's ``LISTEN``) they are read when one is
    announced, and at each renewal in case one was missed; on others, every ``poll_s``.
    """
    claims = plane._claims
    store = plane.store
    last_renew = 0.0
    while not plane._closed:
        renew_s = claims.lease_s / 3
        if store.announces_commands:
            wait_s = max(0.0, min(renew_s, last_renew + renew_s - plane._clock()))
        else:
            wait_s = plane.settings.poll_s
        try:
            heard = await store.wait_commands(wait_s)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store is down: poll once it is back
            await asyncio.sleep(plane.settings.poll_s)
            heard = True
        now = plane._clock()
        if not plane._jobs:
            claims.renewed_at = last_renew = now  # nothing held, nothing to lose
            continue
        try:
            renewing = now - last_renew >= renew_s
            if renewing:
                last_renew = now
                await renew(plane)
                claims.renewed_at = now
            job_ids = list(plane._jobs)
            if job_ids and (heard or renewing):
                plane._apply_commands(await store.read_commands(job_ids))
                await plane._flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("control plane: polling commands failed")


async def renew(plane: ControlPlane) -> None:
    """Renew the claims of the jobs driven here; drop at once each one that was lost."""
    driven = [j for j in plane._jobs if j not in plane._unborn]  # those claims come with it
    for job_id, error in await plane._claims.renew(driven):
        if job_id in plane._jobs:
            log.error("control plane: %s", error)
            await plane._drop(job_id, error, release=False)
