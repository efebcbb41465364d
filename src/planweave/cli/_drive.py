"""Driving a started job in the terminal: the live tree, Ctrl-C handling and the outcome.

Imported only when ``run`` or ``resume`` runs (it pulls in the engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from planweave.cli._common import (
    err_console,
    interrupts,
    out_console,
    print_json,
    read_only_engine,
)
from planweave.cli._format import cost, job_json
from planweave.cli._live import render
from planweave.cli._replies import ReplyView
from planweave.cli._stop import BusyExecutor, stop_job
from planweave.config import Settings
from planweave.engine import Engine, JobResult
from planweave.errors import UsageError
from planweave.events import LlmDelta
from planweave.state import JobState, apply

__all__ = ["drive", "job_needs_model", "resume_job"]

REFRESH_S = 0.125
"""Redraw interval of the live tree (8 per second)."""


async def resume_job(engine: Engine, job_id: str, force: bool, model: str | None) -> JobResult:
    try:
        return await engine.resume(job_id, force=force, model=model)
    except RuntimeError as exc:  # another live process owns the job
        raise UsageError(f"{exc} (or pass --force)") from None


def job_needs_model(state: JobState) -> bool:
    return (
        not state.tasks
        or state.options.on_failure == "replan"
        or any(task.spec.kind != "tool" and not task.terminal for task in state.tasks.values())
    )


async def drive(
    settings: Settings,
    start: Callable[[Engine], Awaitable[tuple[str, Awaitable[JobResult]]]],
    *,
    json_out: bool,
    tools: Sequence[Any] = (),
) -> int:
    """Start a job (or resume one), show it live, print how it ended; the exit code.

    Args:
        settings: The merged settings.
        start: Submits or adopts the job on the engine; returns its id and its end.
        json_out: Print one JSON object instead of the live view.
        tools: Tools for the engine besides the built-in ones.
    """
    out, err = out_console(), err_console()
    executor = BusyExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    kwargs = settings.engine_kwargs()
    engine = Engine(**{**kwargs, "tools": [*kwargs["tools"], *tools]})
    forced = asyncio.Event()
    try:
        with interrupts(forced=forced) as stopped:
            job_id, waiter = await start(engine)
            result = await _watch(
                engine, job_id, waiter, stopped, live_console=(None if json_out else out)
            )
            if result is None:

                async def report() -> None:
                    if json_out:
                        print_json(job_json(await _load(settings, job_id), []))

                return await stop_job(
                    engine, job_id, forced=forced, executor=executor, err=err, report=report
                )
        state = await engine.get(job_id)
        artifacts = [str(path) for path in result.artifacts]
        if json_out:
            print_json(job_json(state, artifacts))
        else:
            _print_outcome(out, err, result)
        return 0 if result.ok else 1
    finally:
        await engine.close()


async def _load(settings: Settings, job_id: str) -> JobState:
    engine = read_only_engine(settings)
    async with engine:
        return await engine.get(job_id)


async def _watch(
    engine: Engine,
    job_id: str,
    waiter: Awaitable[JobResult],
    stopped: asyncio.Event,
    *,
    live_console: Console | None,
) -> JobResult | None:
    """Follow the job's events into a local state and redraw it until the job ends.

    Returns ``None`` when the user interrupted.
    """
    view: list[JobState | None] = [None]
    replies = ReplyView()

    async def follow() -> None:
        async for event in engine.follow(job_id, deltas=live_console is not None):
            if isinstance(event, LlmDelta):
                replies.add(event)
            else:
                view[0] = apply(view[0], event)

    result_task: asyncio.Task[JobResult] = asyncio.ensure_future(waiter)
    follow_task = asyncio.create_task(follow())
    stop_task = asyncio.create_task(stopped.wait())
    live = (
        Live(console=live_console, auto_refresh=False, redirect_stderr=False)
        if live_console is not None
        else None
    )
    try:
        with live if live is not None else contextlib.nullcontext():
            while not result_task.done() and not stopped.is_set():
                if live is not None:
                    shown = render(view[0], now=time.time(), replies=replies.as_dict())
                    live.update(shown, refresh=True)
                await asyncio.wait({result_task, stop_task}, timeout=REFRESH_S)
            if stopped.is_set():
                return None
            result = result_task.result()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(follow_task), 2.0)
            if live is not None:
                final = view[0] if view[0] is not None and view[0].terminal else None
                final = final or await engine.get(job_id)
                live.update(render(final, now=time.time(), spinners=False), refresh=True)
            return result
    finally:
        for task in (follow_task, stop_task, result_task):
            if not task.done():
                task.cancel()
        for task in (follow_task, stop_task, result_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _print_outcome(out: Console, err: Console, result: JobResult) -> None:
    if result.result is not None:
        out.print()
        if isinstance(result.result, str):
            out.print(Markdown(result.result))
        else:
            out.print(JSON.from_data(result.result, default=str))
    if result.artifacts:
        out.print()
        out.print(Text("artifacts:", style="bold"))
        for path in result.artifacts:
            out.print(f"  {path}", soft_wrap=True)
    usage = result.usage
    out.print(
        Text(
            f"\n{usage.tokens_in} tokens in, {usage.tokens_out} out, {usage.llm_calls} LLM calls, "
            f"{cost(usage.cost_usd)}",
            style="dim",
        )
    )
    if not result.ok:
        err.print(
            Text(f"job {result.job_id} {result.status}: {result.error or ''}", style="red"),
            soft_wrap=True,
        )
