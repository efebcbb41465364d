"""Stopping a job that runs in this process when the user presses Ctrl-C (or sends SIGTERM).

The first signal lets running work finish for a grace period, then the engine gives back what
is still running and releases the job's claim. A tool or model call that blocks a thread cannot
be cancelled: if one is still running after the grace, this process exits at once, so the
"run planweave resume" it prints is never followed by the same task going on here. A second
signal stops without waiting: the claim is released first, then the process exits. Either way
the exit code is 130 and ``planweave resume JOB`` needs no ``--force``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn, ParamSpec, TypeVar

from rich.console import Console
from rich.text import Text

from planweave.cli._common import EXIT_INTERRUPTED
from planweave.engine import Engine

__all__ = ["GRACE_S", "BusyExecutor", "stop_job"]

log = logging.getLogger("planweave.cli")

GRACE_S = 5.0
"""How long running work may take to finish after the first Ctrl-C."""

P = ParamSpec("P")
T = TypeVar("T")


class BusyExecutor(ThreadPoolExecutor):
    """The event loop's default executor, counting the calls still running in its threads
    (blocking tools and in-process model calls run there)."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="planweave-blocking")
        self._lock = threading.Lock()
        self._busy = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            self._busy += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._busy -= 1

    @property
    def busy(self) -> int:
        """Calls submitted and not yet finished."""
        with self._lock:
            return self._busy


async def stop_job(
    engine: Engine,
    job_id: str,
    *,
    forced: asyncio.Event,
    executor: BusyExecutor,
    err: Console,
    report: Callable[[], Any],
) -> int:
    """Stop the engine after a first signal, and say what happened.

    Args:
        engine: The engine running the job.
        job_id: The job.
        forced: Set by a second signal: stop without waiting for running work.
        executor: The loop's default executor (to know whether a blocking call still runs).
        err: Where to say it.
        report: Awaitable factory printing the job as it stands (``--json``), or a no-op.

    Returns:
        130, when the process may exit normally (nothing runs in a thread any more); otherwise
        the process exits here, after saying so.
    """
    _say(err, f"stopping: letting running work finish (up to {GRACE_S:g} s)…", "yellow")
    _say(err, "press Ctrl-C again to stop at once", "dim")
    closing = asyncio.create_task(engine.close(grace_s=GRACE_S))
    second = asyncio.create_task(forced.wait())
    await asyncio.wait({closing, second}, return_when=asyncio.FIRST_COMPLETED)
    resume = f"run `planweave resume {job_id}` to continue it"
    if closing.done():
        second.cancel()
        if closing.exception() is not None:
            log.warning("stopping the engine failed", exc_info=closing.exception())
        await report()
        if executor.busy == 0:
            _say(err, f"interrupted: job {job_id} stopped; {resume}", "yellow")
            return EXIT_INTERRUPTED
        _say(
            err,
            f"interrupted: job {job_id} stopped and its claim is released; work still running "
            f"after the {GRACE_S:g} s grace ends with this process (that task runs again on "
            f"resume); {resume}",
            "yellow",
        )
        _exit_now()
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await closing
    released = await _release(engine, job_id)
    await report()
    what = "its claim is released" if released else "its claim could not be released"
    _say(
        err,
        f"interrupted again: job {job_id} stopped without waiting for running work; {what}; "
        + (resume if released else f"run `planweave resume {job_id} --force` to continue it"),
        "yellow",
    )
    _exit_now()


async def _release(engine: Engine, job_id: str) -> bool:
    """Flush what was decided and give up the job's claim, without waiting for running work."""
    return await engine.abandon(job_id, timeout_s=GRACE_S)


def _say(err: Console, text: str, style: str) -> None:
    err.print(Text(text, style=style), soft_wrap=True)


def _exit_now() -> NoReturn:
    """Exit without waiting for threads that run blocking work (they end with the process)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
