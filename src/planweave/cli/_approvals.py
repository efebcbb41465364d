"""The approval commands: ``approvals`` (what waits for a person), ``approve`` and ``reject``.

They work from any process, like ``cancel``: a job this command's process does not run gets
the decision as a command in the store, carried out by the process that runs the job, or by
whoever resumes it (``planweave resume JOB``) when none does.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from planweave.cli._common import (
    SHORT_ID,
    ConfigOpt,
    DataDirOpt,
    JobArg,
    JsonOpt,
    StoreOpt,
    out_console,
    print_json,
    read_only_engine,
    resolve_job,
    run_async,
    settings_from,
)

__all__ = ["approvals", "approve", "reject"]

TaskArg = Annotated[str, typer.Argument(help="The task that waits (its id, as in the tree)")]


def approvals(
    json_out: JsonOpt = False,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the tool calls waiting for a person's approval, across jobs."""
    settings = settings_from(config, store=store, data_dir=data_dir)

    async def go() -> list[dict[str, object]]:
        async with read_only_engine(settings) as engine:
            return [call.to_dict() for call in await engine.approvals()]

    found = run_async(go())
    if json_out:
        print_json(found)
        return
    console = out_console()
    if not found:
        console.print("no tool calls wait for approval")
        return
    table = Table("job", "task", "tool", "arguments", "waiting since", "why")
    for call in found:
        since = datetime.datetime.fromtimestamp(float(str(call["since"]))).strftime("%H:%M:%S")
        args = json.dumps(call["args"], ensure_ascii=False)
        table.add_row(
            str(call["job_id"])[:SHORT_ID],
            str(call["task_id"]),
            str(call["tool"]),
            args if len(args) <= 80 else args[:77] + "...",
            since,
            str(call["reason"]),
        )
    console.print(table)
    console.print(
        "approve: planweave approve JOB TASK   reject: planweave reject JOB TASK --reason ..."
    )


def approve(
    job: JobArg,
    task: TaskArg,
    reason: Annotated[str, typer.Option("--reason", help="Recorded with the decision")] = "",
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approve the tool call a task waits on: the task runs again and the call runs."""
    _decide(job, task, approved=True, reason=reason, store=store, data_dir=data_dir, config=config)


def reject(
    job: JobArg,
    task: TaskArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; the agent reads it (required)", show_default=False)
    ] = "",
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reject the tool call a task waits on: the agent reads the reason and carries on."""
    _decide(job, task, approved=False, reason=reason, store=store, data_dir=data_dir, config=config)


def _decide(
    job: str,
    task: str,
    *,
    approved: bool,
    reason: str,
    store: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    settings = settings_from(config, store=store, data_dir=data_dir)

    async def go() -> str:
        async with read_only_engine(settings) as engine:
            state = await resolve_job(engine, job)
            if approved:
                await engine.approve(state.id, task, reason=reason)
            else:
                await engine.reject(state.id, task, reason=reason)
            return state.id

    job_id = run_async(go())
    what = "approved" if approved else "rejected"
    out_console().print(
        f"{what} the call task {task} of job {job_id} waits on: the process that runs the job "
        f"carries it out (if none does, it takes effect when the job is resumed: "
        f"planweave resume {job_id})",
        soft_wrap=True,
    )
