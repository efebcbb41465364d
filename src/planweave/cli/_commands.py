"""The inspection commands: ``jobs``, ``show``, ``events`` and ``cancel``.

They open the store through an engine that runs no workers and loads no model, so they are
cheap and safe to use while another process runs the job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from planweave.cli._common import (
    EXIT_INTERRUPTED,
    SHORT_ID,
    ConfigOpt,
    DataDirOpt,
    JobArg,
    JsonOpt,
    StoreOpt,
    interrupts,
    out_console,
    print_json,
    read_only_engine,
    resolve_job,
    run_async,
    settings_from,
)
from planweave.constants import JOB_STATUSES
from planweave.errors import UsageError

if TYPE_CHECKING:  # imported when a command runs, so --help stays fast
    from planweave.engine import Engine
    from planweave.events import Event
    from planweave.state import JobState


__all__ = ["cancel", "events", "jobs", "show"]


# --- cancel ---------------------------------------------------------------------------------


def cancel(
    job: JobArg,
    reason: Annotated[str, typer.Option("--reason", help="Recorded as the cancel reason")] = (
        "cancelled by the user"
    ),
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Cancel a job, whichever process runs it."""
    settings = settings_from(config, store=store, data_dir=data_dir)

    async def go() -> tuple[str, bool, str]:
        async with read_only_engine(settings) as engine:
            state = await resolve_job(engine, job)
            return state.id, await engine.cancel(state.id, reason=reason), state.status

    job_id, requested, status = run_async(go())
    if requested:
        out_console().print(f"cancel requested for job {job_id}", soft_wrap=True)
    else:
        out_console().print(f"job {job_id} already ended ({status})", soft_wrap=True)


# --- jobs / show / events -------------------------------------------------------------------


def jobs(
    status: Annotated[
        str | None, typer.Option("--status", help="Only jobs with this status", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most jobs listed")] = 20,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    from rich.table import Table

    from planweave.cli._format import STATUS_STYLE, age, cost, tokens, truncate

    settings = settings_from(config, store=store, data_dir=data_dir)
    if status is not None and status not in JOB_STATUSES:
        raise UsageError(f"--status must be one of {', '.join(JOB_STATUSES)}, not {status!r}")

    async def go() -> tuple[list[Any], set[str]]:
        async with read_only_engine(settings) as engine:
            found = list(await engine.list_jobs(status=status, limit=limit))
            stuck = {
                s.job_id for s in found if s.status == "running" and await engine.stalled(s.job_id)
            }
            return found, stuck

    summaries, stalled = run_async(go())
    if json_out:
        print_json(
            [
                {
                    "job_id": s.job_id,
                    "goal": s.goal,
                    "status": s.status,
                    "stalled": s.job_id in stalled,
                    "created_at": s.created_at,
                    "finished_at": s.finished_at,
                    "tasks_done": s.tasks_done,
                    "tasks_total": s.tasks_total,
                    "tokens_in": s.tokens_in,
                    "tokens_out": s.tokens_out,
                    "cost_usd": s.cost_usd,
                    "error": s.error,
                }
                for s in summaries
            ]
        )
        return
    now = time.time()
    table = Table(box=None, header_style="bold")
    for column in ("id", "status", "goal", "age", "tasks", "tokens", "cost"):
        table.add_column(
            column,
            no_wrap=column != "goal",
            min_width=16 if column == "goal" else None,
            justify="right" if column in ("tasks", "tokens", "cost") else "left",
        )
    for s in summaries:
        table.add_row(
            s.job_id[:SHORT_ID],
            Text("stalled", style=STATUS_STYLE["stalled"])
            if s.job_id in stalled
            else Text(s.status, style=STATUS_STYLE.get(s.status, "")),
            truncate(s.goal, 50),
            age(s.created_at, now),
            f"{s.tasks_done}/{s.tasks_total}",
            tokens(s.tokens_in + s.tokens_out),
            cost(s.cost_usd),
        )
    out = out_console()
    if summaries:
        out.print(table)
        if stalled:
            out.print(
                Text(
                    "stalled: no process runs these jobs any more (it stopped or died); "
                    "planweave resume JOB carries one on",
                    style="dim",
                ),
                soft_wrap=True,
            )
    else:
        out.print("no jobs yet: start one with planweave run GOAL")


def show(
    job: JobArg,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a job: its tasks, artifacts and result."""
    from rich.table import Table

    from planweave.cli._format import (
        STATUS_STYLE,
        cost,
        duration,
        job_json,
        preview,
        tokens,
        truncate,
    )

    settings = settings_from(config, store=store, data_dir=data_dir)

    async def go() -> tuple[JobState, list[str], bool]:
        async with read_only_engine(settings) as engine:
            state = await resolve_job(engine, job)
            paths = [row.path for row in await engine.artifacts(state.id)]
            return state, paths, await engine.stalled(state.id)

    state, artifacts, stalled = run_async(go())
    if json_out:
        print_json({**job_json(state, artifacts), "stalled": stalled})
        return
    out = out_console()
    end = state.finished_at if state.finished_at is not None else time.time()
    out.print(
        Text.assemble(
            ("job ", "bold"),
            (state.id, "bold"),
            "  ",
            ("stalled", f"bold {STATUS_STYLE['stalled']}")
            if stalled
            else (state.status, f"bold {STATUS_STYLE.get(state.status, '')}"),
            f"  {duration(end - state.created_at)}  ",
            f"{tokens(state.tokens_in + state.tokens_out)} tokens  {cost(state.cost_usd)}  "
            f"{state.llm_calls} LLM calls",
        ),
        soft_wrap=True,
    )
    out.print(Text(f"goal: {state.goal}"), soft_wrap=True)
    if stalled:
        out.print(
            Text(
                "stalled: no process runs this job any more (it stopped or died); "
                f"run planweave resume {state.id} to carry it on",
                style=STATUS_STYLE["stalled"],
            ),
            soft_wrap=True,
        )
    if state.error:
        out.print(Text(f"error: {state.error}", style="red"), soft_wrap=True)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("id", "kind", "status", "attempts", "goal", "result / error"):
        table.add_column(column, overflow="fold")
    for task in state.tasks.values():
        detail = (
            Text(truncate(task.error, 60), style="red")
            if task.error and task.status != "succeeded"
            else Text(preview(task.result, 60))
        )
        status = task.status + (" (superseded)" if task.superseded else "")
        if task.reviewing:
            status += " (critic reviewing)"
        revisions = len(task.spec.feedback)
        if revisions:
            status += f" (revised {revisions}x by the critic)"
        table.add_row(
            ("  " * task.depth) + task.id,
            task.spec.kind,
            Text(status, style=STATUS_STYLE.get(task.status, "")),
            str(task.attempt),
            truncate(task.spec.goal or task.spec.tool or "", 40),
            detail,
        )
    out.print()
    out.print(table)
    if artifacts:
        out.print(Text("\nartifacts:", style="bold"))
        for path in artifacts:
            out.print(f"  {path}", soft_wrap=True)
    if state.result is not None:
        out.print(Text("\nresult:", style="bold"))
        # Each renderer is imported only for a result it draws (Markdown loads a parser).
        if isinstance(state.result, str):
            from rich.markdown import Markdown

            out.print(Markdown(state.result))
        else:
            from rich.json import JSON

            out.print(JSON.from_data(state.result, default=str))


def events(
    job: JobArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends")
    ] = False,
    after: Annotated[int, typer.Option("--after", min=0, help="Only events after this seq")] = 0,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a job's events, one per line (JSON lines with --json)."""
    import asyncio

    from planweave.cli._format import event_detail, event_json

    settings = settings_from(config, store=store, data_dir=data_dir)
    out = out_console()

    def emit(event: Event) -> None:
        if json_out:
            print_json(event_json(event))
            return
        stamp = (
            time.strftime("%H:%M:%S", time.localtime(event.at)) + f".{int(event.at % 1 * 1000):03d}"
        )
        line = Text.assemble(
            (f"{event.seq:>5} ", "dim"),
            (stamp + " ", "dim"),
            (f"{event.type:<16} ", "bold"),
            (f"{event.task_id or '-':<12} ", "cyan"),
            event_detail(event, 100),
        )
        out.print(line, soft_wrap=True)

    async def stream(engine: Engine, job_id: str) -> AsyncIterator[Event]:
        if follow:
            async for event in engine.follow(job_id, after_seq=after):
                yield event
        else:
            for event in await engine.events(job_id, after_seq=after):
                yield event

    async def go() -> int:
        async with read_only_engine(settings) as engine:
            job_id = (await resolve_job(engine, job)).id
            with interrupts() as stopped:

                async def pump() -> None:
                    async for event in stream(engine, job_id):
                        emit(event)

                pump_task = asyncio.create_task(pump())
                stop_task = asyncio.create_task(stopped.wait())
                await asyncio.wait({pump_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
                stop_task.cancel()
                if not pump_task.done():
                    pump_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pump_task
                    return EXIT_INTERRUPTED
                pump_task.result()
                return 0

    code = run_async(go())
    if code:
        raise typer.Exit(code)
