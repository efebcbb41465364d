"""The decider's budget arithmetic: grants, what a waiting task needs, and the over-budget
reasons. Pure functions of a job's state (and ``now``), like the rest of the decider.

A job's budgets of tokens, dollars and tool calls are shared out as *grants*: when a task is
handed to a worker it gets a share of what the job has left unreserved (what it has not spent,
less what the other running attempts still hold), split evenly among the tasks ready at that
moment, and never more than its own ``TaskBudget`` has left. The worker checks each call against
the grant before making it (``planweave._budget``), so parallel branches cannot together spend
more than the job has. An attempt whose grant cannot cover its next call stops and says what
that call needs; it runs again once that much is unreserved, or the job stops with
``budget_exceeded`` when even every other grant coming back would not cover it.

Wall time and fan-out (tasks created by plans) need no grants: the control plane's timer and
the decider's handling of each new sub-plan enforce them directly.
"""

from __future__ import annotations

from planweave.events import Grant, trusted
from planweave.state import JobState, TaskState

__all__ = [
    "fanout_problem",
    "grant_for",
    "need_problem",
    "over_budget",
    "time_deadline",
    "time_problem",
]

_Kinds = tuple[int | None, float | None, int | None]


def _job_limits(state: JobState) -> _Kinds:
    options = state.options
    return options.max_job_tokens, options.max_cost_usd, options.max_job_tool_calls


def _task_limits(task: TaskState) -> _Kinds:
    budget = task.spec.budget
    if budget is None:
        return None, None, None
    return budget.max_tokens, budget.max_cost_usd, budget.max_tool_calls


def _held(state: JobState, skip: str | None = None) -> tuple[int, float, int]:
    """What the running attempts' grants still hold, unspent (as far as their reports say)."""
    tokens, cost, tools = 0, 0.0, 0
    tasks = state.tasks
    for task_id in state.holders:
        if task_id == skip:
            continue
        task = tasks[task_id]
        grant = task.grant
        if grant is None:
            continue
        base_tokens, base_cost, base_tools = task.grant_base
        if grant.tokens is not None:
            tokens += max(0, grant.tokens - (task.tokens_in + task.tokens_out - base_tokens))
        if grant.cost_usd is not None:
            cost += max(0.0, grant.cost_usd - (task.cost_usd - base_cost))
        if grant.tool_calls is not None:
            tools += max(0, grant.tool_calls - (task.tool_calls - base_tools))
    return tokens, cost, tools


def _unreserved(state: JobState) -> tuple[int | None, float | None, int | None]:
    """What the job has neither spent nor granted, per kind (``None``: no job limit)."""
    max_tokens, max_cost, max_tools = _job_limits(state)
    held_tokens, held_cost, held_tools = _held(state)
    return (
        None
        if max_tokens is None
        else max(0, max_tokens - state.tokens_in - state.tokens_out - held_tokens),
        None if max_cost is None else max(0.0, max_cost - state.cost_usd - held_cost),
        None if max_tools is None else max(0, max_tools - state.tool_calls - held_tools),
    )


def _task_left(task: TaskState) -> tuple[int | None, float | None, int | None]:
    max_tokens, max_cost, max_tools = _task_limits(task)
    return (
        None if max_tokens is None else max(0, max_tokens - task.tokens_in - task.tokens_out),
        None if max_cost is None else max(0.0, max_cost - task.cost_usd),
        None if max_tools is None else max(0, max_tools - task.tool_calls),
    )


def _least(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def grant_for(state: JobState, task: TaskState) -> Grant | None:
    """The share of the job's budgets a task's next attempt may spend (``None``: no budget of
    tokens, dollars or tool calls applies). Called while the task is still ready."""
    options = state.options
    budget = task.spec.budget
    if task.spec.kind == "tool":  # one tool call, no model: only tool-call budgets apply
        if options.max_job_tool_calls is None and (budget is None or budget.max_tool_calls is None):
            return None
    elif (
        options.max_job_tokens is None
        and options.max_cost_usd is None
        and options.max_job_tool_calls is None
        and (budget is None or (budget.max_tokens, budget.max_cost_usd, budget.max_tool_calls))
        == (None, None, None)
    ):
        return None
    shares = max(1, state.ready_count)
    job_tokens, job_cost, job_tools = _unreserved(state)
    task_tokens, task_cost, task_tools = _task_left(task)
    needs = task.needs
    share_tokens = None if job_tokens is None else job_tokens // shares
    share_cost = None if job_cost is None else job_cost / shares
    share_tools = None if job_tools is None else job_tools // shares
    if needs is not None:  # it asked for this much, and waited until the job had it
        if needs.tokens is not None and share_tokens is not None and job_tokens is not None:
            share_tokens = max(share_tokens, min(needs.tokens, job_tokens))
        if needs.cost_usd is not None and share_cost is not None and job_cost is not None:
            share_cost = max(share_cost, min(needs.cost_usd, job_cost))
        if needs.tool_calls is not None and share_tools is not None and job_tools is not None:
            share_tools = max(share_tools, min(needs.tool_calls, job_tools))
    tokens = _least(share_tokens, task_tokens)
    tools = _least(share_tools, task_tools)
    return trusted(
        Grant,
        {
            "tokens": None if tokens is None else int(tokens),
            "cost_usd": _least(share_cost, task_cost),
            "tool_calls": None if tools is None else int(tools),
        },
    )


_JOB_OPTIONS = ("max_job_tokens", "max_cost_usd", "max_job_tool_calls")
_WHAT = ("tokens", "dollars", "tool calls")


def _amount(kind: int, value: float) -> str:
    return f"${value:.4f}" if kind == 1 else f"{int(value)} {_WHAT[kind]}"


def need_problem(state: JobState, task: TaskState) -> tuple[bool, str | None]:
    """Whether a task waiting for budget may run now, and, when it never can, why the job must
    stop (a reason that names the budget and the option to raise)."""
    needs = task.needs
    if needs is None:
        return True, None
    wanted = (needs.tokens, needs.cost_usd, needs.tool_calls)
    task_left = _task_left(task)
    for kind, want in enumerate(wanted):
        left = task_left[kind]
        if want is not None and left is not None and want > left:
            field = ("max_tokens", "max_cost_usd", "max_tool_calls")[kind]
            return False, (
                f"task {task.id!r} has {_amount(kind, left)} left of its budget "
                f"(budget.{field}), too little for its next call, which may take "
                f"{_amount(kind, want)} (raise the task's budget.{field} to let it go on)"
            )
    free = _unreserved(state)
    held = _held(state, skip=task.id)
    fits = True
    for kind, want in enumerate(wanted):
        left = free[kind]
        if want is None or left is None or want <= left:
            continue
        fits = False
        if want > left + held[kind]:
            limit = _job_limits(state)[kind]
            option = _JOB_OPTIONS[kind]
            return False, (
                f"the job has {_amount(kind, left + held[kind])} left of its budget of "
                f"{_amount(kind, float(limit or 0))} ({option}), too little for the next call "
                f"of task {task.id!r}, which may take {_amount(kind, want)} (raise the job "
                f"option {option} to let it go on)"
            )
    return fits, None


def over_budget(state: JobState, task: TaskState) -> str | None:
    """Why the job went over one of its budgets (or the task over its own) with what it has
    recorded; ``None`` when it did not. The reason names the option to raise."""
    options = state.options
    used = state.tokens_in + state.tokens_out
    if options.max_cost_usd is not None and state.cost_usd > options.max_cost_usd:
        return (
            f"the job spent ${state.cost_usd:.4f}, over its budget of "
            f"${options.max_cost_usd:.4f} (raise the job option max_cost_usd to let it spend more)"
        )
    if options.max_job_tokens is not None and used > options.max_job_tokens:
        return (
            f"the job used {used} tokens, over its limit of {options.max_job_tokens} "
            "(raise the job option max_job_tokens to let it use more)"
        )
    if options.max_job_tool_calls is not None and state.tool_calls > options.max_job_tool_calls:
        return (
            f"the job made {state.tool_calls} tool calls, over its limit of "
            f"{options.max_job_tool_calls} (raise the job option max_job_tool_calls)"
        )
    budget = task.spec.budget
    if budget is None:
        return None
    if budget.max_cost_usd is not None and task.cost_usd > budget.max_cost_usd:
        return (
            f"task {task.id!r} spent ${task.cost_usd:.4f}, over its budget of "
            f"${budget.max_cost_usd:.4f} (raise the task's budget.max_cost_usd)"
        )
    if budget.max_tokens is not None and task.tokens_in + task.tokens_out > budget.max_tokens:
        return (
            f"task {task.id!r} used {task.tokens_in + task.tokens_out} tokens, over its limit "
            f"of {budget.max_tokens} (raise the task's budget.max_tokens)"
        )
    if budget.max_tool_calls is not None and task.tool_calls > budget.max_tool_calls:
        return (
            f"task {task.id!r} made {task.tool_calls} tool calls, over its limit of "
            f"{budget.max_tool_calls} (raise the task's budget.max_tool_calls)"
        )
    return None


def fanout_problem(state: JobState, task: TaskState, created: int) -> str | None:
    """Why a sub-plan of ``created`` tasks under ``task`` would go over the job's ``max_fanout``
    or a ``budget.max_fanout`` of the task or of a plan task above it; ``None``: it fits."""
    limit = state.options.max_fanout
    if limit is not None and state.fanout + created > limit:
        return (
            f"task {task.id!r} planned {created} tasks, which would take the tasks the job's "
            f"plans created to {state.fanout + created}, over its limit of {limit} (raise the "
            "job option max_fanout to allow more)"
        )
    tasks = state.tasks
    node: TaskState | None = task
    while node is not None:
        budget = node.spec.budget
        if (
            budget is not None
            and budget.max_fanout is not None
            and node.fanout + created > budget.max_fanout
        ):
            return (
                f"task {task.id!r} planned {created} tasks, which would take the tasks planned "
                f"under {node.id!r} to {node.fanout + created}, over its budget.max_fanout of "
                f"{budget.max_fanout} (raise that task's budget.max_fanout to allow more)"
            )
        node = tasks.get(node.parent) if node.parent is not None else None
    return None


def time_deadline(state: JobState) -> float | None:
    """When the job or one of its running tasks reaches its wall-time budget next."""
    due: float | None = None
    limit = state.options.max_time_s
    if limit is not None:
        due = state.created_at + limit
    if not state.task_budgets:
        return due
    for task in state.tasks.values():
        budget = task.spec.budget
        if (
            budget is not None
            and budget.max_time_s is not None
            and task.started_at is not None
            and not task.terminal
        ):
            at = task.started_at + budget.max_time_s
            due = at if due is None else min(due, at)
    return due


def time_problem(state: JobState, now: float) -> tuple[str | None, str | None]:
    """Why the job must stop for wall time at ``now`` (and the task that ran out), if it must."""
    limit = state.options.max_time_s
    if limit is not None and now >= state.created_at + limit:
        return (
            f"the job ran for {now - state.created_at:.1f} s, over its time budget of "
            f"{limit:g} s (raise the job option max_time_s, or --max-time, to give it longer)"
        ), None
    if not state.task_budgets:
        return None, None
    for task in state.tasks.values():
        budget = task.spec.budget
        if (
            budget is not None
            and budget.max_time_s is not None
            and task.started_at is not None
            and not task.terminal
            and now >= task.started_at + budget.max_time_s
        ):
            return (
                f"task {task.id!r} ran for {now - task.started_at:.1f} s, over its time budget "
                f"of {budget.max_time_s:g} s (raise the task's budget.max_time_s)"
            ), task.id
    return None, None
