"""Plans: the typed task DAG a planner (or a person) writes, and its validation.

A plan is checked before any of its tasks runs: unique ids, known dependencies, no cycles, size
limits. ``validate_plan`` collects every problem so a planner's repair round (or a person) can fix
them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planweave.constants import DEFAULT_MAX_PLAN_TASKS
from planweave.errors import PlanInvalid

__all__ = [
    "OnFailure",
    "Plan",
    "TaskKind",
    "TaskSpec",
    "load_plan_file",
    "plan_problems",
    "validate_plan",
]

TaskKind = Literal["plan", "execute", "tool", "compose"]
OnFailure = Literal["fail", "replan"]

_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


class TaskSpec(BaseModel):
    """One node of a plan.

    Attributes:
        id: Unique within its plan; letters, digits, ``_``, ``-`` and ``.``.
        goal: What the task must achieve, in words (the prompt for an agent).
        kind: ``execute`` runs an agent, ``plan`` decomposes the goal into a sub-plan, ``tool``
            calls a registered tool directly with ``args`` (no LLM), ``compose`` writes the final
            answer from its dependencies' results.
        depends_on: Ids of tasks that must succeed before this one starts.
        agent: Name of the registered agent that runs an ``execute`` task (default: the ReAct
            executor).
        tool: Name of the tool a ``tool`` task calls.
        args: Arguments for that tool.
        max_attempts: How often the task may fail before it fails for good (default: the job's).
        timeout_s: Wall-clock limit of one attempt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    goal: str = ""
    kind: TaskKind = "execute"
    depends_on: tuple[str, ...] = ()
    agent: str | None = None
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    timeout_s: float | None = Field(default=None, gt=0)


class Plan(BaseModel):
    """A whole plan: the tasks of one job (or of one ``plan`` task's decomposition)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[TaskSpec, ...]
    goal: str = ""
    on_failure: OnFailure | None = None


def plan_problems(
    tasks: Sequence[TaskSpec],
    *,
    max_tasks: int = DEFAULT_MAX_PLAN_TASKS,
    known_tools: Iterable[str] | None = None,
    external_ids: Iterable[str] = (),
) -> list[str]:
    """Return every problem with ``tasks`` (empty when the plan is valid).

    Args:
        tasks: The plan's tasks.
        max_tasks: Largest number of tasks allowed.
        known_tools: Names of registered tools; when given, ``tool`` tasks must name one.
        external_ids: Ids outside this plan that a task may also depend on.
    """
    problems: list[str] = []
    if not tasks:
        problems.append("the plan has no tasks")
        return problems
    if len(tasks) > max_tasks:
        problems.append(f"the plan has {len(tasks)} tasks; at most {max_tasks} are allowed")
    ids: dict[str, int] = {}
    for spec in tasks:
        if not _ID_RE.match(spec.id):
            problems.append(
                f"task id {spec.id!r} is not valid (use letters, digits, '_', '-', '.'; "
                "at most 64 characters)"
            )
        if spec.id in ids:
            problems.append(f"task id {spec.id!r} is used more than once")
        ids[spec.id] = ids.get(spec.id, 0) + 1
    external = set(external_ids)
    tools = set(known_tools) if known_tools is not None else None
    for spec in tasks:
        for dep in spec.depends_on:
            if dep == spec.id:
                problems.append(f"task {spec.id!r} depends on itself")
            elif dep not in ids and dep not in external:
                problems.append(f"task {spec.id!r} depends on unknown task {dep!r}")
        if len(set(spec.depends_on)) != len(spec.depends_on):
            problems.append(f"task {spec.id!r} lists a dependency more than once")
        if spec.kind == "tool":
            if not spec.tool:
                problems.append(f"task {spec.id!r} has kind 'tool' but names no tool")
            elif tools is not None and spec.tool not in tools:
                problems.append(f"task {spec.id!r} names unknown tool {spec.tool!r}")
        elif spec.kind != "compose" and not spec.goal.strip():
            problems.append(f"task {spec.id!r} has an empty goal")
    cycle = _find_cycle(tasks)
    if cycle:
        problems.append("the plan has a dependency cycle: " + " -> ".join(cycle))
    return problems


def validate_plan(
    tasks: Sequence[TaskSpec],
    *,
    max_tasks: int = DEFAULT_MAX_PLAN_TASKS,
    known_tools: Iterable[str] | None = None,
    external_ids: Iterable[str] = (),
) -> None:
    """Raise :class:`PlanInvalid` listing every problem, or return when the plan is valid."""
    problems = plan_problems(
        tasks, max_tasks=max_tasks, known_tools=known_tools, external_ids=external_ids
    )
    if problems:
        raise PlanInvalid(problems)


def _find_cycle(tasks: Sequence[TaskSpec]) -> list[str]:
    """Return one cycle as a list of ids (first id repeated at the end), or ``[]``."""
    deps = {spec.id: [d for d in spec.depends_on if d != spec.id] for spec in tasks}
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(deps, white)
    for start in deps:
        if colour[start] != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        colour[start] = grey
        while stack:
            node, index = stack[-1]
            children = deps[node]
            if index < len(children):
                stack[-1] = (node, index + 1)
                child = children[index]
                if child not in colour:
                    continue
                if colour[child] == grey:
                    return [*path[path.index(child) :], child]
                if colour[child] == white:
                    colour[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return []


def _yaml_problem(file: Path, exc: yaml.YAMLError) -> str:
    """``plan file 'x.yaml', line 3, column 5: mapping values are not allowed here``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return (
            f"plan file {str(file)!r}, line {mark.line + 1}, column {mark.column + 1}: "
            f"not valid YAML: {what}"
        )
    return f"plan file {str(file)!r} is not valid YAML: {exc}"


def load_plan_file(path: str | Path) -> Plan:
    """Read a plan from a YAML or JSON file (``tasks:`` list, optional ``goal`` and
    ``on_failure``).

    Raises:
        PlanInvalid: the file is missing, unreadable, or does not describe a plan.
    """
    file = Path(path)
    try:
        with file.open(encoding="utf-8") as stream:  # a stream, so marks name the file
            raw = yaml.safe_load(stream)
    except FileNotFoundError:
        raise PlanInvalid([f"plan file {str(file)!r} does not exist"]) from None
    except OSError as exc:
        raise PlanInvalid([f"cannot read plan file {str(file)!r}: {exc}"]) from exc
    except yaml.YAMLError as exc:
        raise PlanInvalid([_yaml_problem(file, exc)]) from exc
    if isinstance(raw, list):
        raw = {"tasks": raw}
    if not isinstance(raw, dict):
        raise PlanInvalid([f"plan file {str(file)!r} must hold a mapping with a 'tasks' list"])
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as exc:
        raise PlanInvalid(
            [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        ) from None
    validate_plan(plan.tasks)
    return plan
