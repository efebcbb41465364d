"""``run`` and ``resume``: start or adopt a job, draw its live task tree, print how it ended.

The tree is rebuilt in this process by replaying the job's events (``engine.follow``) through
``planweave.state.apply``, the same reducer the control plane uses, and redrawn from the event
loop (never from rich's refresh thread, which would race the reducer). The first Ctrl-C or
SIGTERM closes the engine, which releases in-flight work so ``planweave resume`` can continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.json import JSON
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from planweave.cli._checks import check_model, check_model_url, check_writable
from planweave.cli._common import (
    EXIT_INTERRUPTED,
    ConfigOpt,
    DataDirOpt,
    JobArg,
    JsonOpt,
    ModelOpt,
    StoreOpt,
    err_console,
    interrupts,
    out_console,
    print_json,
    read_only_engine,
    resolve_job,
    settings_from,
)
from planweave.cli._format import cost, job_json
from planweave.cli._live import render
from planweave.config import Settings
from planweave.engine import Engine, JobResult
from planweave.errors import UsageError
from planweave.plan import Plan, load_plan_file
from planweave.state import JobState, apply

__all__ = ["resume", "run"]

log = logging.getLogger("planweave.cli")

REFRESH_S = 0.125
"""Redraw interval of the live tree (8 per second)."""


class OnFailureChoice(enum.StrEnum):
    fail = "fail"
    replan = "replan"


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
        typer.Option(
            "--workspace", help="Folder the file tools may read and write", show_default=False
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    on_failure: Annotated[
        OnFailureChoice | None,
        typer.Option(
            "--on-failure",
            help="When a task fails for good: fail the job, or replan the unfinished part",
            show_default=False,
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", min=0, help="Dollar budget of the job", show_default=False),
    ] = None,
) -> None:
    """Plan and carry out GOAL (or run --plan FILE), showing a live tree of its tasks."""
    settings = settings_from(
        config, model=model, store=store, data_dir=data_dir, workspace=workspace
    )
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

    needs_model = _plan_needs_model(plan_obj, fields.get("on_failure"))
    check_writable(settings, workspaces=True)

    async def start(engine: Engine) -> tuple[str, Awaitable[JobResult]]:
        await check_model(settings, settings.model, needs_model=needs_model)
        job_id = await engine.submit(goal, plan=plan_obj, **fields)
        return job_id, engine.wait(job_id)

    raise typer.Exit(asyncio.run(_drive(settings, start, json_out=json_out)))


def resume(
    job: JobArg,
    force: Annotated[
        bool, typer.Option("--force", help="Take over now, even if another process holds it")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Carry on with this model URL [default: the model the job was started with]",
            show_default=False,
        ),
    ] = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Carry on a job whose process stopped; finished tasks are kept."""
    settings = settings_from(config, model=model, store=store, data_dir=data_dir)
    if model is not None:
        check_model_url(model)
    check_writable(settings, workspaces=True)

    async def start(engine: Engine) -> tuple[str, Awaitable[JobResult]]:
        state = await resolve_job(engine, job)
        if state.terminal:
            raise UsageError(
                f"job {state.id} already finished ({state.status}): nothing to resume; "
                f"see it with 'planweave show {state.id}'"
            )
        chosen = model or state.options.model or settings.model
        await check_model(settings, chosen, needs_model=_job_needs_model(state))
        return state.id, _resume(engine, state.id, force, model)

    raise typer.Exit(asyncio.run(_drive(settings, start, json_out=json_out)))


async def _resume(engine: Engine, job_id: str, force: bool, model: str | None) -> JobResult:
    try:
        return await engine.resume(job_id, force=force, model=model)
    except RuntimeError as exc:  # another live process owns the job
        raise UsageError(f"{exc} (or pass --force)") from None


def _plan_needs_model(plan: Plan | None, on_failure: str | None) -> bool:
    """Whether a job of this plan (or of a goal, when ``None``) will call a model."""
    return (
        plan is None
        or any(task.kind != "tool" for task in plan.tasks)
        or (on_failure or plan.on_failure) == "replan"
    )


def _job_needs_model(state: JobState) -> bool:
    return (
        not state.tasks
        or state.options.on_failure == "replan"
        or any(task.spec.kind != "tool" and not task.terminal for task in state.tasks.values())
    )


async def _drive(
    settings: Settings,
    start: Callable[[Engine], Awaitable[tuple[str, Awaitable[JobResult]]]],
    *,
    json_out: bool,
) -> int:
    """Start a job (or resume one), show it live, print how it ended; the exit code."""
    out, err = out_console(), err_console()
    engine = Engine(**settings.engine_kwargs())
    try:
        job_id, waiter = await start(engine)
        with interrupts() as stopped:
            result = await _watch(
                engine, job_id, waiter, stopped, live_console=(None if json_out else out)
            )
        if result is None:
            await engine.close()
            if json_out:
                print_json(job_json(await _load(settings, job_id), []))
            err.print(
                Text(
                    f"interrupted: job {job_id} stopped; run `planweave resume {job_id}` "
                    "to continue it",
                    style="yellow",
                ),
                soft_wrap=True,
            )
            return EXIT_INTERRUPTED
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

    async def follow() -> None:
        async for event in engine.follow(job_id):
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
