"""The checks a user's plan passes before its job is created: one place, for every way a job
is submitted (a goal's plan, a plan file, a workflow run as a job)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from planweave.errors import PlanInvalid, UsageError
from planweave.plan import Plan, TaskSpec, validate_plan

if TYPE_CHECKING:
    from planweave.agents import AgentRegistry
    from planweave.critic import CriticRegistry
    from planweave.events import JobOptions
    from planweave.tools import ToolRegistry

__all__ = ["check_critics", "checked_job_plan"]


def checked_job_plan(
    plan: Plan | Sequence[TaskSpec],
    opts: JobOptions,
    goal: str | None,
    *,
    keep_on_failure: bool,
    max_user_plan_tasks: int,
    tools: ToolRegistry,
    agents: AgentRegistry,
) -> tuple[tuple[TaskSpec, ...], JobOptions, str]:
    """The plan's tasks, the job's options and its goal, once the plan is known to be valid:
    every problem at once (tool arguments included), within ``max_user_plan_tasks`` and the
    job's ``max_job_tasks``, naming only registered agents. A ``Plan``'s ``on_failure`` applies
    unless the options set it (``keep_on_failure``), and its goal is the job's when none is given.

    Raises:
        PlanInvalid: what is wrong with the plan.
        ConfigError: an ``execute`` task names an agent that is not registered.
    """
    specs = tuple(plan.tasks) if isinstance(plan, Plan) else tuple(plan)
    validate_plan(
        specs,
        max_tasks=max_user_plan_tasks,
        tool_parameters={each.name: each.parameters for each in tools},
    )
    if len(specs) > opts.max_job_tasks:
        raise PlanInvalid(
            [
                f"the plan has {len(specs)} tasks, over the job's limit of "
                f"{opts.max_job_tasks} (raise the job option max_job_tasks to run it)"
            ]
        )
    for spec in specs:
        if spec.kind == "execute" and spec.agent is not None:
            agents.get(spec.agent)
    if isinstance(plan, Plan):
        if plan.on_failure is not None and not keep_on_failure:
            opts = opts.model_copy(update={"on_failure": plan.on_failure})
        goal = goal or plan.goal
    return specs, opts, goal or "(user plan)"


def check_critics(
    critics: CriticRegistry,
    agents: AgentRegistry,
    options: JobOptions,
    specs: Sequence[TaskSpec] | None,
) -> None:
    """Refuse a job that names a critic no one registered: its options, its tasks, or the
    agents its tasks name.

    Raises:
        UsageError: the first unknown critic, and where it is named.
    """
    named: list[tuple[str, str]] = []
    if options.critic is not None:
        named.append(("the job option critic", options.critic))
    for spec in specs or ():
        if isinstance(spec.critic, str):
            named.append((f"task {spec.id!r}", spec.critic))
        agent = spec.agent
        if agent is not None and agent in agents:
            chosen = getattr(agents.get(agent), "critic", None)
            if isinstance(chosen, str):
                named.append((f"agent {agent!r}", chosen))
    for where, name in named:
        if name not in critics:
            raise UsageError(
                f"{where} names unknown critic {name!r}; known critics: "
                f"{', '.join(critics.names())}"
            )
