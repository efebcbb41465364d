"""``run`` and ``resume``: start or adopt a job, draw its live task tree, print how it ended.

The tree is rebuilt in this process by replaying the job's events (``engine.follow``) through
``planweave.state.apply``, the same reducer the control plane uses, and redrawn from the event
loop (never from rich's refresh thread, which would race the reducer). Ctrl-C and SIGTERM are
handled in ``_stop``. This module holds only the command definitions, so ``--help`` loads nothing
heavy; the engine is imported when a command runs (``_drive``).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planweave.cli._agents import AgentOpt, AgentsDirOpt
from planweave.cli._common import (
    BusOpt,
    ClaimLeaseOpt,
    ConfigOpt,
    DataDirOpt,
    HookOpt,
    JobArg,
    JsonOpt,
    ModelOpt,
    StoreOpt,
    ToolsOpt,
    WorkersOpt,
    WorkLeaseOpt,
    resolve_job,
    run_async,
    settings_from,
)
from planweave.constants import DEFAULT_MAX_USER_PLAN_TASKS
from planweave.errors import UsageError

if TYPE_CHECKING:
    from planweave.engine import Engine, JobResult
    from planweave.plan import Plan

__all__ = ["resume", "run"]


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
        typer.Option(
            "--max-cost",
            min=0,
            help="Dollar budget of the job (default: the max_cost_usd setting, $5)",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            min=1,
            help="Token budget of the job, in + out (default: the max_job_tokens setting, "
            "2,000,000)",
            show_default=False,
        ),
    ] = None,
    max_time: Annotated[
        str | None,
        typer.Option(
            "--max-time",
            help="Wall-time budget of the job: 90s, 10m, 1h30m (default: none)",
            show_default=False,
        ),
    ] = None,
    max_tool_calls: Annotated[
        int | None,
        typer.Option(
            "--max-tool-calls",
            min=0,
            help="Tool calls the whole job may make (default: none)",
            show_default=False,
        ),
    ] = None,
    max_fanout: Annotated[
        int | None,
        typer.Option(
            "--max-fanout",
            min=0,
            help="Tasks the job's plans may create in all (default: none)",
            show_default=False,
        ),
    ] = None,
    critic: Annotated[
        bool,
        typer.Option(
            "--critic",
            help="Check every execute task's answer with the LLM critic before accepting it",
        ),
    ] = False,
    critic_name: Annotated[
        str | None,
        typer.Option(
            "--critic-name",
            help="Check the answers with this registered critic instead (implies --critic)",
            show_default=False,
        ),
    ] = None,
    critic_model: Annotated[
        str | None,
        typer.Option(
            "--critic-model",
            help="Model URL the LLM critic uses (default: the job's model)",
            show_default=False,
        ),
    ] = None,
    max_revisions: Annotated[
        int | None,
        typer.Option(
            "--max-revisions",
            min=0,
            max=20,
            help="Times the critic may send one task back for revision",
            show_default="2",
        ),
    ] = None,
    max_user_plan_tasks: Annotated[
        int | None,
        typer.Option(
            "--max-user-plan-tasks",
            min=1,
            help="Largest --plan accepted, in tasks",
            show_default=str(DEFAULT_MAX_USER_PLAN_TASKS),
        ),
    ] = None,
    claim_lease_s: ClaimLeaseOpt = None,
    work_lease_s: WorkLeaseOpt = None,
    bus: BusOpt = None,
    workers: WorkersOpt = None,
    tools: ToolsOpt = None,
    agent: AgentOpt = None,
    agents_dir: AgentsDirOpt = None,
    hook: HookOpt = None,
) -> None:
    """Plan and carry out GOAL (or run --plan FILE, or --agent NAME with GOAL as its input),
    showing a live tree of its tasks."""
    from planweave.cli._checks import check_model, check_writable
    from planweave.cli._drive import drive
    from planweave.plan import load_plan_file

    settings = settings_from(
        config,
        model=model,
        store=store,
        data_dir=data_dir,
        workspace=workspace,
        max_user_plan_tasks=max_user_plan_tasks,
        claim_lease_s=claim_lease_s,
        work_lease_s=work_lease_s,
        bus=bus,
        workers=workers,
        tools=tools,
        agents_dir=agents_dir,
        hooks=tuple(hook) if hook else None,
    )
    if agent is not None and (goal is None or plan is not None):
        raise UsageError("--agent NAME runs a GOAL as the agent's input: give a GOAL, not --plan")
    if goal is None and plan is None:
        raise UsageError("give a GOAL to plan, or --plan FILE to run (see planweave run --help)")
    fields: dict[str, Any] = {}
    if on_failure is not None:
        fields["on_failure"] = on_failure.value
    if max_cost is not None:
        fields["max_cost_usd"] = max_cost
    if max_tokens is not None:
        fields["max_job_tokens"] = max_tokens
    if max_time is not None:
        from planweave._durations import parse_duration_s

        fields["max_time_s"] = parse_duration_s(max_time, what="--max-time")
    if max_tool_calls is not None:
        fields["max_job_tool_calls"] = max_tool_calls
    if max_fanout is not None:
        fields["max_fanout"] = max_fanout
    if critic_name is not None or critic:
        fields["critic"] = critic_name or "llm"
    if critic_model is not None:
        fields["critic_model"] = critic_model
    if max_revisions is not None:
        fields["max_revisions"] = max_revisions
    if settings.workspace is not None:
        fields["workspace"] = str(settings.workspace.expanduser().resolve())

    check_writable(settings, workspaces=True)

    async def start(engine: Engine) -> tuple[str, Awaitable[JobResult]]:
        # Checked against this engine's tools, so every problem is reported in one pass.
        plan_obj = (
            load_plan_file(
                plan,
                max_tasks=settings.max_user_plan_tasks,
                tool_parameters={each.name: each.parameters for each in engine.tools},
            )
            if plan is not None
            else None
        )
        if agent is not None:
            engine.agents.get(agent)  # an unknown agent: exit 2 before the model is checked
        needs_model = _plan_needs_model(plan_obj, fields.get("on_failure"))
        await check_model(settings, settings.model, needs_model=needs_model)
        if agent is not None and goal is not None:
            from planweave.cli._agents import submit_agent

            job_id = await submit_agent(engine, agent, goal, fields)
        else:
            job_id = await engine.submit(goal, plan=plan_obj, **fields)
        return job_id, engine.wait(job_id)

    raise typer.Exit(run_async(drive(settings, start, json_out=json_out)))


def resume(
    job: JobArg,
    force: Annotated[
        bool, typer.Option("--force", help="Take over now, even if another process holds it")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Carry on with this model URL",
            show_default="the model the job was started with",
        ),
    ] = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    claim_lease_s: ClaimLeaseOpt = None,
    work_lease_s: WorkLeaseOpt = None,
    bus: BusOpt = None,
    workers: WorkersOpt = None,
    tools: ToolsOpt = None,
    agents_dir: AgentsDirOpt = None,
    hook: HookOpt = None,
) -> None:
    """Carry on a job whose process stopped; finished tasks are kept."""
    from planweave.cli._checks import check_model, check_model_url, check_writable
    from planweave.cli._drive import drive, job_needs_model, resume_job

    settings = settings_from(
        config,
        model=model,
        store=store,
        data_dir=data_dir,
        claim_lease_s=claim_lease_s,
        work_lease_s=work_lease_s,
        bus=bus,
        workers=workers,
        tools=tools,
        agents_dir=agents_dir,
        hooks=tuple(hook) if hook else None,
    )
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
        await check_model(settings, chosen, needs_model=job_needs_model(state))
        return state.id, resume_job(engine, state.id, force, model)

    raise typer.Exit(run_async(drive(settings, start, json_out=json_out)))


def _plan_needs_model(plan: Plan | None, on_failure: str | None) -> bool:
    """Whether a job of this plan (or of a goal, when ``None``) will call a model."""
    return (
        plan is None
        or any(task.kind != "tool" for task in plan.tasks)
        or (on_failure or plan.on_failure) == "replan"
    )
