"""Plans: the typed task DAG a planner (or a person) writes, and its validation.

A plan is checked before any of its tasks runs: unique ids, known dependencies, no cycles, size
limits, known tools and the fixed arguments of ``tool`` tasks against each tool's parameter
schema. ``validate_plan`` collects every problem in one pass, so a planner's repair round (or a
person) can fix them all at once; ``load_plan_file`` adds the problems of tasks that do not even
parse to the same list. Validation is linear in the plan's size and its sizes are capped before
any other work (tasks, dependencies per task, goal length), and the list names the first
``MAX_PLAN_PROBLEMS`` problems and counts the rest, so a hostile plan costs little and its error
stays short.

The models' validators are built on first use (``defer_build``), not at import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planweave._files import load_yaml_file
from planweave._text import truncate
from planweave.constants import (
    DEFAULT_MAX_PLAN_TASKS,
    DEFAULT_MAX_USER_PLAN_TASKS,
    MAX_PLAN_PROBLEMS,
    MAX_TASK_DEPENDENCIES,
    MAX_TASK_GOAL_CHARS,
)
from planweave.errors import ConfigError, PlanInvalid

if TYPE_CHECKING:  # imported by load_plan_file: a process that reads no plan file skips it
    import yaml

__all__ = [
    "LOOP_ITERATION_ARG",
    "OnFailure",
    "Plan",
    "ProblemList",
    "TaskBudget",
    "TaskKind",
    "TaskSpec",
    "args_problems",
    "load_plan_file",
    "plan_problems",
    "validate_plan",
]

TaskKind = Literal["plan", "execute", "tool", "compose", "spell"]

LOOP_ITERATION_ARG = "loop_iteration"
"""In the ``args`` of a ``plan`` task that runs a loop workflow: the iterations run so far. Such
a task decides whether the loop goes on (another iteration and another such task as its
children) or ends with the last iteration's result; the loop's ``max_iterations``, not
``max_plan_depth``, bounds how deep they nest."""
OnFailure = Literal["fail", "replan"]

_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


class TaskBudget(BaseModel):
    """What one task may spend, its retries, sub-agents and (for a ``plan`` task) its sub-plan's
    tasks included. Every field is optional; a task without one is held only to its job's
    budgets. Going over any of them stops the whole job with ``budget_exceeded``.

    Attributes:
        max_tokens: Model tokens, in plus out.
        max_cost_usd: Dollars of model calls (priced by the settings' ``prices`` table).
        max_time_s: Wall-clock seconds from the task's first start.
        max_tool_calls: Tool calls.
        max_fanout: Tasks its decomposition may create (a ``plan`` task; sub-plans included).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_time_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_tool_calls: int | None = Field(default=None, ge=0)
    max_fanout: int | None = Field(default=None, ge=0)


class TaskSpec(BaseModel):
    """One node of a plan.

    Attributes:
        id: Unique within its plan; letters, digits, ``_``, ``-`` and ``.``.
        goal: What the task must achieve, in words (the prompt for an agent).
        kind: ``execute`` runs an agent, ``plan`` decomposes the goal into a sub-plan, ``tool``
            calls a registered tool directly with ``args`` (no LLM), ``compose`` writes the final
            answer from its dependencies' results, ``spell`` runs the spell named ``spell`` with
            ``args`` as its parameters (``docs/spells.md``).
        depends_on: Ids of tasks that must succeed before this one starts.
        agent: Name of the registered agent that runs an ``execute`` task (default: the ReAct
            executor).
        tool: Name of the tool a ``tool`` task calls.
        args: Arguments for that tool, or the parameters of a ``spell`` task's spell.
        spell: Name of the spell a ``spell`` task runs (found in ``./spells`` and the folders of
            the setting ``spell_paths``).
        max_attempts: How often the task may fail before it fails for good (default: the job's).
        timeout_s: Wall-clock limit of one attempt.
        budget: What the task may spend (``TaskBudget``; ``None``: only the job's budgets).
        critic: Whether a critic checks an ``execute`` task's answer before it is accepted
            (``docs/critic.md``): ``None`` follows the agent and the job (``JobOptions.critic``),
            ``False`` turns it off for this task, ``True`` turns it on (the agent's or the job's
            critic, else the LLM critic ``llm``), and a name picks that critic.
        feedback: What a critic asked to be changed in this task's earlier answers, oldest
            first; the agent is given it on its next run. The engine adds to it when a critic's
            verdict is ``revise``; its length is the number of revisions so far.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    goal: str = ""
    kind: TaskKind = "execute"
    depends_on: tuple[str, ...] = ()
    agent: str | None = None
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    spell: str | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    timeout_s: float | None = Field(default=None, gt=0)
    budget: TaskBudget | None = None
    critic: bool | str | None = None
    feedback: tuple[str, ...] = ()


class Plan(BaseModel):
    """A whole plan: the tasks of one job (or of one ``plan`` task's decomposition)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    tasks: tuple[TaskSpec, ...]
    goal: str = ""
    on_failure: OnFailure | None = None


class ProblemList:
    """A plan's problems: the first ``MAX_PLAN_PROBLEMS`` in full, the rest only counted, so a
    plan with 60,000 bad dependencies yields a short list (and a short repair prompt)."""

    __slots__ = ("limit", "listed", "more")

    def __init__(self, limit: int = MAX_PLAN_PROBLEMS) -> None:
        self.limit = limit
        self.listed: list[str] = []
        self.more = 0

    def __bool__(self) -> bool:
        return bool(self.listed)

    def add(self, problem: str) -> None:
        """Note one problem (listed while there is room, else counted)."""
        if len(self.listed) < self.limit:
            self.listed.append(problem)
        else:
            self.more += 1

    def done(self) -> list[str]:
        """The listed problems, and ``... and N more problems`` when some were only counted."""
        if self.more:
            return [*self.listed, f"... and {self.more} more problems"]
        return list(self.listed)


def plan_problems(
    tasks: Sequence[TaskSpec],
    *,
    max_tasks: int = DEFAULT_MAX_PLAN_TASKS,
    known_tools: Iterable[str] | None = None,
    external_ids: Iterable[str] = (),
    tool_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    into: ProblemList | None = None,
) -> list[str]:
    """Return the problems with ``tasks`` (empty when the plan is valid).

    Runs in time linear in the plan's size. A plan over ``max_tasks`` is reported as that one
    problem, before any other work; a task with more than ``MAX_TASK_DEPENDENCIES``
    dependencies or a goal longer than ``MAX_TASK_GOAL_CHARS`` is a problem too. The first
    ``MAX_PLAN_PROBLEMS`` problems are listed, and the rest counted in a last line.

    Args:
        tasks: The plan's tasks.
        max_tasks: Largest number of tasks allowed.
        known_tools: Names of registered tools; when given, ``tool`` tasks must name one.
        external_ids: Ids outside this plan that a task may also depend on.
        tool_parameters: Each registered tool's parameter JSON schema, by name; when given,
            ``tool`` tasks must name one of them and their ``args`` must fit its schema.
        into: Problems found before (a planner's parsing problems): these are added to them,
            under the same limit, and the whole list is returned.
    """
    problems = into if into is not None else ProblemList()
    if not tasks:
        problems.add("the plan has no tasks")
        return problems.done()
    if len(tasks) > max_tasks:
        problems.add(f"the plan has {len(tasks)} tasks; at most {max_tasks} are allowed")
        return problems.done()
    ids: set[str] = set()
    for spec in tasks:
        if not _ID_RE.match(spec.id):
            problems.add(
                f"task id {truncate(spec.id, 80)!r} is not valid (use letters, digits, "
                "'_', '-', '.'; at most 64 characters)"
            )
        if spec.id in ids:
            problems.add(f"task id {truncate(spec.id, 80)!r} is used more than once")
        ids.add(spec.id)
    external = set(external_ids)
    tools = set(known_tools) if known_tools is not None else None
    if tool_parameters is not None:
        tools = (tools or set()) | set(tool_parameters)
    for spec in tasks:
        label = truncate(spec.id, 80)
        if len(spec.depends_on) > MAX_TASK_DEPENDENCIES:
            problems.add(
                f"task {label!r} lists {len(spec.depends_on)} dependencies; "
                f"at most {MAX_TASK_DEPENDENCIES} are allowed"
            )
            continue
        if len(spec.goal) > MAX_TASK_GOAL_CHARS:
            problems.add(
                f"task {label!r} has a goal of {len(spec.goal)} characters; "
                f"at most {MAX_TASK_GOAL_CHARS} are allowed"
            )
        for dep in spec.depends_on:
            if dep == spec.id:
                problems.add(f"task {label!r} depends on itself")
            elif dep not in ids and dep not in external:
                problems.add(f"task {label!r} depends on unknown task {truncate(dep, 80)!r}")
        if len(set(spec.depends_on)) != len(spec.depends_on):
            problems.add(f"task {label!r} lists a dependency more than once")
        if spec.kind == "tool":
            if not spec.tool:
                problems.add(f"task {label!r} has kind 'tool' but names no tool")
            elif tools is not None and spec.tool not in tools:
                known = ", ".join(sorted(tools)) or "none"
                problems.add(
                    f"task {label!r} names unknown tool {truncate(spec.tool, 80)!r} "
                    f"(known: {known})"
                )
            elif tool_parameters is not None and spec.tool in tool_parameters:
                for problem in args_problems(spec.tool, spec.args, tool_parameters[spec.tool]):
                    problems.add(f"task {label!r}: {problem}")
        elif spec.kind == "spell":
            if not spec.spell and not isinstance(spec.args.get("source"), str):
                problems.add(f"task {label!r} has kind 'spell' but names no spell")
        elif spec.kind != "compose" and not spec.goal.strip():
            problems.add(f"task {label!r} has an empty goal")
    cycle = _find_cycle(tasks)
    if cycle:
        shown = cycle if len(cycle) <= 12 else [*cycle[:5], "...", *cycle[-5:]]
        problems.add("the plan has a dependency cycle: " + " -> ".join(shown))
    return problems.done()


def validate_plan(
    tasks: Sequence[TaskSpec],
    *,
    max_tasks: int = DEFAULT_MAX_PLAN_TASKS,
    known_tools: Iterable[str] | None = None,
    external_ids: Iterable[str] = (),
    tool_parameters: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Raise :class:`PlanInvalid` listing every problem, or return when the plan is valid
    (the arguments are those of :func:`plan_problems`)."""
    problems = plan_problems(
        tasks,
        max_tasks=max_tasks,
        known_tools=known_tools,
        external_ids=external_ids,
        tool_parameters=tool_parameters,
    )
    if problems:
        raise PlanInvalid(problems)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}

_FILLED_IN = frozenset({"inputs"})
"""Parameters the engine fills in itself (the results of the task's dependencies)."""


def args_problems(tool: str, args: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Problems of a ``tool`` task's fixed ``args`` against the tool's parameter JSON schema.

    Checks what a tool's schema states for its top-level parameters: required ones present,
    no unknown ones (when ``additionalProperties`` is false), and each value's JSON type (with
    ``anyOf``, ``enum`` and array item types). The tool runtime still validates fully when the
    task runs; this catches the mistakes a person makes in a plan file before anything runs.
    """
    properties: Mapping[str, Any] = schema.get("properties") or {}
    problems: list[str] = []
    expected = ", ".join(properties) or "none"
    for name in schema.get("required") or ():
        if name not in args and name not in _FILLED_IN:
            problems.append(f"tool {tool!r} needs argument {name!r} (parameters: {expected})")
    for name, value in args.items():
        prop = properties.get(name)
        if prop is None:
            if schema.get("additionalProperties", True) is False:
                problems.append(f"tool {tool!r} has no parameter {name!r} (parameters: {expected})")
            continue
        wrong = _value_problem(value, prop)
        if wrong:
            problems.append(f"argument {name!r} of tool {tool!r} {wrong}")
    return problems


def _value_problem(value: Any, prop: Mapping[str, Any]) -> str:
    """Why ``value`` does not fit the JSON schema ``prop`` ('' when it fits or is unknown)."""
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        if any(not _value_problem(value, option) for option in options):
            return ""
        wanted = " or ".join(str(o.get("type", "value")) for o in options)
        return f"must be {wanted}, not {_json_type(value)}"
    if "enum" in prop and value not in prop["enum"]:
        return f"must be one of {', '.join(repr(v) for v in prop['enum'])}, not {value!r}"
    declared = prop.get("type")
    kinds: list[str] = (
        [declared]
        if isinstance(declared, str)
        else [str(k) for k in declared]
        if isinstance(declared, list)
        else []
    )
    if not kinds or "$ref" in prop:
        return ""
    if not any(_is_json_type(value, k) for k in kinds):
        return f"must be {' or '.join(kinds)}, not {_json_type(value)}"
    items = prop.get("items")
    if isinstance(value, list | tuple) and isinstance(items, Mapping):
        for index, item in enumerate(value):
            wrong = _value_problem(item, items)
            if wrong:
                return f"item {index} {wrong}"
    return ""


def _is_json_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    types = _JSON_TYPES.get(kind)
    return True if types is None else isinstance(value, types)


def _json_type(value: Any) -> str:
    for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if isinstance(value, _JSON_TYPES[kind]) and _is_json_type(value, kind):
            return kind
    return type(value).__name__


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
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return (
            f"plan file {str(file)!r}, line {mark.line + 1}, column {mark.column + 1}: "
            f"not valid YAML: {what}"
        )
    return f"plan file {str(file)!r} is not valid YAML: {exc}"


def load_plan_file(
    path: str | Path,
    *,
    max_tasks: int = DEFAULT_MAX_USER_PLAN_TASKS,
    known_tools: Iterable[str] | None = None,
    tool_parameters: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Read a plan from a YAML or JSON file (``tasks:`` list, optional ``goal`` and
    ``on_failure``) and check it, reporting every problem at once.

    Args:
        path: The file.
        max_tasks: Largest number of tasks allowed.
        known_tools: Names of registered tools (see :func:`plan_problems`).
        tool_parameters: Parameter schemas of registered tools, by name (see
            :func:`plan_problems`): ``tool`` tasks' ``args`` are checked against them.

    Raises:
        PlanInvalid: the file is missing, unreadable, or does not describe a valid plan; its
            ``errors`` list the malformed tasks and every other problem together.
    """
    import yaml

    file = Path(path)
    try:
        raw = load_yaml_file(file, what="plan file")
    except FileNotFoundError:
        raise PlanInvalid([f"plan file {str(file)!r} does not exist"]) from None
    except OSError as exc:
        raise PlanInvalid([f"cannot read plan file {str(file)!r}: {exc}"]) from exc
    except ConfigError as exc:  # a limit: too large, an alias, too deep, not UTF-8
        raise PlanInvalid([str(exc)]) from None
    except yaml.YAMLError as exc:
        raise PlanInvalid([_yaml_problem(file, exc)]) from exc
    if isinstance(raw, list):
        raw = {"tasks": raw}
    if not isinstance(raw, dict):
        raise PlanInvalid([f"plan file {str(file)!r} must hold a mapping with a 'tasks' list"])
    items = raw.get("tasks")
    problems = ProblemList()
    specs: list[TaskSpec] = []
    unparsed_ids: list[str] = []
    if isinstance(items, list):
        if len(items) > max_tasks:
            raise PlanInvalid([f"the plan has {len(items)} tasks; at most {max_tasks} are allowed"])
        for index, item in enumerate(items):
            try:
                specs.append(TaskSpec.model_validate(item))
            except ValidationError as exc:
                for problem in _pydantic_problems(exc, prefix=("tasks", index)):
                    problems.add(problem)
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    unparsed_ids.append(item["id"])
    try:
        plan = Plan.model_validate({**raw, "tasks": specs if isinstance(items, list) else items})
    except ValidationError as exc:
        for problem in _pydantic_problems(exc, prefix=()):
            problems.add(problem)
        plan = None
    if specs or not problems:
        plan_problems(
            specs,
            max_tasks=max_tasks,
            known_tools=known_tools,
            external_ids=unparsed_ids,
            tool_parameters=tool_parameters,
            into=problems,
        )
    if problems or plan is None:
        raise PlanInvalid(problems.done())
    return plan


def _pydantic_problems(exc: ValidationError, *, prefix: tuple[str | int, ...]) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in (*prefix, *err['loc']))}: {err['msg']}" for err in exc.errors()
    ]
