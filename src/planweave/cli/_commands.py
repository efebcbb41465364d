"""The commands: each loads settings, builds an ``Engine`` and runs one coroutine to its end.

Commands raise ``PlanweaveError`` for anything the user can fix; ``planweave.cli`` turns those
into one red line and an exit code. Human output goes to stdout through rich; ``--json`` output
is plain JSON on stdout and nothing else, so it can be piped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.json import JSON
from rich.live import Live
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from planweave.cli._format import (
    STATUS_STYLE,
    age,
    cost,
    duration,
    event_detail,
    event_json,
    job_json,
    preview,
    tokens,
    truncate,
)
from planweave.cli._live import render
from planweave.config import Settings, load_settings
from planweave.engine import Engine, JobResult
from planweave.errors import JobNotFound, PlanweaveError, UnknownBackend, UsageError
from planweave.events import Event
from planweave.llm import ModelOptions, load_model
from planweave.plan import Plan, load_plan_file
from planweave.state import JobState, apply

__all__ = ["cancel", "events", "jobs", "resume", "run", "show"]

log = logging.getLogger("planweave.cli")

REFRESH_S = 0.125
"""Redraw interval of the live tree (8 per second)."""

EXIT_INTERRUPTED = 130


class OnFailureChoice(enum.StrEnum):
    fail = "fail"
    replan = "replan"


# --- shared options -------------------------------------------------------------------------

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL [default: sqlite file in the data dir]",
                 show_default=False),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model URL: local:, openai:NAME, scripted:FILE.yaml",
                 show_default=False),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Directory of the default store and job workspaces",
                 show_default=False),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file [default: ./planweave.toml if present]",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a rich view")]
JobArg = Annotated[str, typer.Argument(help="Job id (a unique prefix is enough)")]


def _settings(config: Path | None, **flags: Any) -> Settings:
    settings = load_settings(flags, config_file=config)
    logging.getLogger("planweave").setLevel(settings.log_level)
    return settings


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _read_only_engine(settings: Settings) -> Engine:
    """An engine that reads and controls jobs but runs no workers (and loads no model)."""
    return Engine(**settings.engine_kwargs(), run_workers=False)


async def _resolve(engine: Engine, text: str) -> JobState:
    """The job whose id is ``text`` or starts with it."""
    try:
        return await engine.get(text)
    except JobNotFound:
        matches = [s.job_id for s in await engine.store.list_jobs(limit=1000)
                   if s.job_id.startswith(text)]
        if len(matches) == 1:
            return await engine.get(matches[0])
        if len(matches) > 1:
            raise UsageError(
                f"job id prefix {text!r} is ambiguous: it matches {', '.join(matches[:5])}"
            ) from None
        raise


# --- run / resume ---------------------------------------------------------------------------


def run(
    goal: Annotated[str | None, typer.Argument(help="What to achieve, in words")] = None,
    plan: Annotated[
        Path | None, typer.Option("--plan", help="Run this YAML/JSON plan as written")
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", help="Folder the file tools may read and write",
                     show_default=False),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    on_failure: Annotated[
        OnFailureChoice | None,
        typer.Option("--on-failure", help="When a task fails for good: fail the job, or "
                     "replan the unfinished part", show_default=False),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", min=0, help="Dollar budget of the job", show_default=False),
    ] = None,
) -> None:
    """Plan and carry out GOAL (or run --plan FILE), showing a live tree of its tasks."""
    settings = _settings(config, model=model, store=store, data_dir=data_dir,
                         workspace=workspace)
    plan_obj = load_plan_file(plan) if plan is not None else None
    if goal is None and plan_obj is None:
        raise UsageError("give a GOAL to plan, or --plan FILE to run (see planweave run --help)")
    fields: dict[str, Any] = {}
    if on_failure is not None:
        fields["on_failure"] = on_failure.value
    if max_cost is not None:
        fields["max_cost_usd"] = max_cost
    if settings.workspace is not None:
        fields["workspace"] = str(settings.workspace.expanduser().resolve())

    async def start(engine: Engine) -> tuple[str, Awaitable[JobResult]]:
        await _check_model(settings, plan_obj, fields.get("on_failure"))
        job_id = await engine.submit(goal, plan=plan_obj, **fields)
        return job_id, engine.wait(job_id)

    raise typer.Exit(asyncio.run(_drive(settings, start, json_out=json_out)))


def resume(
    job: JobArg,
    force: Annotated[
        bool, typer.Option("--force", help="Take over now, even if another process holds it")
    ] = False,
    model: ModelOpt = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Carry on a job whose process stopped; finished tasks are kept."""
    settings = _settings(config, model=model, store=store, data_dir=data_dir)

    async def start(engine: Engine) -> tuple[str, Awaitable[JobResult]]:
        job_id = (await _resolve(engine, job)).id
        return job_id, _resume(engine, job_id, force)

    raise typer.Exit(asyncio.run(_drive(settings, start, json_out=json_out)))


async def _resume(engine: Engine, job_id: str, force: bool) -> JobResult:
    try:
        return await engine.resume(job_id, force=force)
    except RuntimeError as exc:  # another live process owns the job
        raise UsageError(f"{exc} (or pass --force)") from None


async def _check_model(settings: Settings, plan: Plan | None, on_failure: str | None) -> None:
    """Fail before submitting when the model URL is wrong and the job will need a model."""
    needs_model = (
        plan is None
        or any(task.kind != "tool" for task in plan.tasks)
        or (on_failure or plan.on_failure) == "replan"
    )
    options = ModelOptions(n_threads=settings.local_threads, base_url=settings.openai_base_url)
    try:
        model = load_model(settings.model, options)
    except UnknownBackend:
        raise
    except PlanweaveError:
        if needs_model:
            raise
        log.debug("model %s not loadable; this plan needs none", settings.model, exc_info=True)
        return
    await model.aclose()


async def _drive(
    settings: Settings,
    start: Callable[[Engine], Awaitable[tuple[str, Awaitable[JobResult]]]],
    *,
    json_out: bool,
) -> int:
    """Start a job (or resume one), show it live, print how it ended; the exit code."""
    out, err = _out(), _err()
    engine = Engine(**settings.engine_kwargs())
    job_id: str | None = None
    try:
        job_id, waiter = await start(engine)
        with _interrupts() as stopped:
            result = await _watch(engine, job_id, waiter, stopped, live_console=(
                None if json_out else out))
        if result is None:
            await engine.close()
            if json_out:
                _print_json(job_json(await _load(settings, job_id), []))
            err.print(Text(f"interrupted: job {job_id} stopped; run `planweave resume {job_id}` "
                           "to continue it", style="yellow"), soft_wrap=True)
            return EXIT_INTERRUPTED
        state = await engine.get(job_id)
        artifacts = [str(path) for path in result.artifacts]
        if json_out:
            _print_json(job_json(state, artifacts))
        else:
            _print_outcome(out, err, result)
        return 0 if result.ok else 1
    finally:
        await engine.close()


async def _load(settings: Settings, job_id: str) -> JobState:
    engine = _read_only_engine(settings)
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

    async def follow() -> None:
        async for event in engine.follow(job_id):
            view[0] = apply(view[0], event)

    result_task: asyncio.Task[JobResult] = asyncio.ensure_future(waiter)
    follow_task = asyncio.create_task(follow())
    stop_task = asyncio.create_task(stopped.wait())
    live = (Live(console=live_console, auto_refresh=False, redirect_stderr=False)
            if live_console is not None else None)
    try:
        with live if live is not None else contextlib.nullcontext():
            while not result_task.done() and not stopped.is_set():
                if live is not None:
                    live.update(render(view[0], now=time.time()), refresh=True)
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


@contextlib.contextmanager
def _interrupts() -> Iterator[asyncio.Event]:
    """An event set by the first Ctrl-C or SIGTERM; a second one interrupts at once."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if stopped.is_set():
            for each in installed:
                loop.remove_signal_handler(each)
            signal.raise_signal(sig)
            return
        stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without loop signal handlers
    try:
        yield stopped
    finally:
        for sig in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


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
    out.print(Text(
        f"\n{usage.tokens_in} tokens in, {usage.tokens_out} out, {usage.llm_calls} LLM calls, "
        f"{cost(usage.cost_usd)}", style="dim"))
    if not result.ok:
        err.print(Text(f"job {result.job_id} {result.status}: {result.error or ''}",
                       style="red"), soft_wrap=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


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
    settings = _settings(config, store=store, data_dir=data_dir)

    async def go() -> tuple[str, bool, str]:
        async with _read_only_engine(settings) as engine:
            state = await _resolve(engine, job)
            return state.id, await engine.cancel(state.id, reason=reason), state.status

    job_id, requested, status = asyncio.run(go())
    if requested:
        _out().print(f"cancel requested for job {job_id}", soft_wrap=True)
    else:
        _out().print(f"job {job_id} already ended ({status})", soft_wrap=True)


# --- jobs / show / events -------------------------------------------------------------------


def jobs(
    status: Annotated[
        str | None, typer.Option("--status", help="Only jobs with this status",
                                 show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most jobs listed")] = 20,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    settings = _settings(config, store=store, data_dir=data_dir)
    if status is not None and status not in STATUS_STYLE:
        raise UsageError(f"--status must be one of running, succeeded, failed, cancelled, "
                         f"not {status!r}")

    async def go() -> list[Any]:
        async with _read_only_engine(settings) as engine:
            return list(await engine.store.list_jobs(status=status, limit=limit))

    summaries = asyncio.run(go())
    if json_out:
        _print_json([
            {"job_id": s.job_id, "goal": s.goal, "status": s.status,
             "created_at": s.created_at, "finished_at": s.finished_at,
             "tasks_done": s.tasks_done, "tasks_total": s.tasks_total,
             "tokens_in": s.tokens_in, "tokens_out": s.tokens_out, "cost_usd": s.cost_usd,
             "error": s.error}
            for s in summaries
        ])
        return
    now = time.time()
    table = Table(box=None, header_style="bold")
    for column in ("id", "status", "goal", "age", "tasks", "tokens", "cost"):
        table.add_column(column, no_wrap=column != "goal",
                         justify="right" if column in ("tasks", "tokens", "cost") else "left")
    for s in summaries:
        table.add_row(
            s.job_id, Text(s.status, style=STATUS_STYLE.get(s.status, "")),
            truncate(s.goal, 50), age(s.created_at, now), f"{s.tasks_done}/{s.tasks_total}",
            tokens(s.tokens_in + s.tokens_out), cost(s.cost_usd),
        )
    out = _out()
    if summaries:
        out.print(table)
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
    settings = _settings(config, store=store, data_dir=data_dir)

    async def go() -> tuple[JobState, list[str]]:
        async with _read_only_engine(settings) as engine:
            state = await _resolve(engine, job)
            return state, [row.path for row in await engine.store.artifacts(state.id)]

    state, artifacts = asyncio.run(go())
    if json_out:
        _print_json(job_json(state, artifacts))
        return
    out = _out()
    end = state.finished_at if state.finished_at is not None else time.time()
    out.print(Text.assemble(
        ("job ", "bold"), (state.id, "bold"), "  ",
        (state.status, f"bold {STATUS_STYLE.get(state.status, '')}"),
        f"  {duration(end - state.created_at)}  ",
        f"{tokens(state.tokens_in + state.tokens_out)} tokens  {cost(state.cost_usd)}  "
        f"{state.llm_calls} LLM calls",
    ), soft_wrap=True)
    out.print(Text(f"goal: {state.goal}"), soft_wrap=True)
    if state.error:
        out.print(Text(f"error: {state.error}", style="red"), soft_wrap=True)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("id", "kind", "status", "attempts", "goal", "result / error"):
        table.add_column(column, overflow="fold")
    for task in state.tasks.values():
        detail = (Text(truncate(task.error, 60), style="red") if task.error and
                  task.status != "succeeded" else Text(preview(task.result, 60)))
        status = task.status + (" (superseded)" if task.superseded else "")
        table.add_row(
            ("  " * task.depth) + task.id, task.spec.kind,
            Text(status, style=STATUS_STYLE.get(task.status, "")), str(task.attempt),
            truncate(task.spec.goal or task.spec.tool or "", 40), detail,
        )
    out.print()
    out.print(table)
    if artifacts:
        out.print(Text("\nartifacts:", style="bold"))
        for path in artifacts:
            out.print(f"  {path}", soft_wrap=True)
    if state.result is not None:
        out.print(Text("\nresult:", style="bold"))
        if isinstance(state.result, str):
            out.print(Markdown(state.result))
        else:
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
    settings = _settings(config, store=store, data_dir=data_dir)
    out = _out()

    def emit(event: Event) -> None:
        if json_out:
            _print_json(event_json(event))
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at)) + f".{int(event.at % 1 * 1000):03d}"
        line = Text.assemble(
            (f"{event.seq:>5} ", "dim"), (stamp + " ", "dim"), (f"{event.type:<16} ", "bold"),
            (f"{event.task_id or '-':<12} ", "cyan"), event_detail(event, 100),
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
        async with _read_only_engine(settings) as engine:
            job_id = (await _resolve(engine, job)).id
            with _interrupts() as stopped:
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

    code = asyncio.run(go())
    if code:
        raise typer.Exit(code)
