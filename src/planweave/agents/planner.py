"""The planner: one LLM call that breaks a goal into a small task DAG.

The model answers in structured output (a JSON schema); the plan is then validated like any
other (:func:`planweave.plan.plan_problems`). Invalid plans get one repair round, in which the
model sees the problems at once (the first ``MAX_PLAN_PROBLEMS``, the rest counted, and its own
reply cut to ``REPAIR_REPLY_MAX_CHARS``, so a hostile reply of 60,000 dependencies costs a short
prompt); a plan still invalid after it raises ``PlanInvalid``. Sizes are capped before any work
and the checks are linear in the reply's size.

Small models (by their profile: ``local:``, or a small model on an OpenAI-compatible server)
produce schema-valid JSON but rarely a valid DAG: duplicate
ids, forward and self dependencies, dependencies on ids that do not exist. For them the DAG is
put into the schema itself (see ``shared/research/local-llm.md`` §4): ``tasks`` is an ``anyOf``
of fixed-length tuples whose item *i* has the id ``t<i>`` and may depend only on earlier ids, so
whatever the grammar lets through is a valid DAG.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from planweave._json import JsonTooDeep, loads_bounded, too_deep
from planweave.agents._context import AgentContext, call_model
from planweave.agents._text import input_budget_chars, is_small_model, render_inputs, truncate
from planweave.constants import MAX_TASK_DEPENDENCIES, MAX_TASK_GOAL_CHARS
from planweave.errors import PlanInvalid
from planweave.llm.base import ChatMessage, LlmRequest, LlmResponse
from planweave.plan import ProblemList, TaskSpec, plan_problems

__all__ = ["dag_plan_schema", "plan", "plan_schema"]

_ID_MAX_CHARS = 100
"""Task ids are at most 64 characters: longer ones are cut here (and still reported as bad)."""
REPAIR_REPLY_MAX_CHARS = 8_000
"""Most of a rejected plan echoed back to the model in the repair round."""
GOAL_MIN_CHARS = 5
GOAL_MAX_CHARS = 120
SMALL_MIN_TASKS = 2
SMALL_MAX_TASKS = 5

_SYSTEM = """\
You are the planner. You break a goal into a small plan of subtasks that AI agents carry out.

Rules:
- Write 3 to 5 subtasks (at most {max_tasks}); fewer only when the goal is truly small.
- Each goal is one self-contained instruction an agent can act on without seeing the other \
subtasks: name the subject explicitly, never "it" or "the above".
- Use the ids t1, t2, t3, ... in order.
- depends_on lists only ids of EARLIER subtasks whose results this subtask needs; the first \
subtask depends on nothing.
- {kinds}
- Every subtask's result is handed on, and the results are combined into the final answer \
afterwards: do not add a subtask that only combines or repeats the others.
{extras}
Reply with the plan as JSON: {{"tasks": [{{"id": ..., "goal": ..., "depends_on": [...], \
"kind": ...{agent_field}}}]}}."""

_KINDS_EXECUTE = 'kind is always "execute".'
_KINDS_PLAN = (
    'kind is "execute" for a subtask an agent can do in one go; use "plan" only for a subtask '
    "that is still too big and must itself be broken down."
)
_REPAIR = "That plan is not valid:"
_REPAIR_FOOTER = "Reply with the whole corrected plan as JSON in the same format."
_SUBPLAN = "This is a sub-plan at depth {depth} of at most {max_depth}."

PROMPT_TEXTS = (_SYSTEM, _KINDS_EXECUTE, _KINDS_PLAN, _REPAIR, _REPAIR_FOOTER, _SUBPLAN)
"""Every instruction the planner writes (templates)."""


def plan_schema(
    *, max_tasks: int, allow_subplans: bool, known_agents: Sequence[str] = ()
) -> dict[str, Any]:
    """The structured-output schema for a capable model: a list of tasks."""
    properties: dict[str, Any] = {
        "id": {"type": "string", "description": "t1, t2, ... in order"},
        "goal": {"type": "string"},
        "depends_on": {"type": "array", "items": {"type": "string"}},
        "kind": {"type": "string", "enum": _kinds(allow_subplans)},
    }
    required = ["id", "goal", "depends_on", "kind"]
    if len(known_agents) > 1:
        properties["agent"] = {
            "anyOf": [{"type": "string", "enum": list(known_agents)}, {"type": "null"}]
        }
        required.append("agent")
    return {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_tasks,
                "items": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": False,
                },
            }
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }


def dag_plan_schema(
    *, max_tasks: int, allow_subplans: bool, known_agents: Sequence[str] = ()
) -> dict[str, Any]:
    """The DAG-encoding schema for small models: every output it admits is a valid DAG.

    ``tasks`` is an ``anyOf`` of fixed-length tuples (``prefixItems``) of 2 to 5 tasks (fewer
    when ``max_tasks`` is smaller); task *i* has the id ``t<i>`` and ``depends_on`` drawn from
    the earlier ids only. With more than one known agent, a task may also name one of them
    (an optional ``agent``, last).
    """
    agent: dict[str, Any] = (
        {"agent": {"type": "string", "enum": list(known_agents)}} if len(known_agents) > 1 else {}
    )
    high = max(1, min(SMALL_MAX_TASKS, max_tasks))
    low = min(SMALL_MIN_TASKS, high)
    kinds = _kinds(allow_subplans)
    tuples = []
    for size in range(low, high + 1):
        items = []
        for index in range(1, size + 1):
            earlier = [f"t{j}" for j in range(1, index)]
            depends_on: dict[str, Any] = (
                {
                    "type": "array",
                    "items": {"type": "string", "enum": earlier},
                    "maxItems": len(earlier),
                }
                if earlier
                # llama.cpp reads maxItems 0 as "no limit": spell the empty list out instead.
                else {"type": "array", "const": []}
            )
            items.append(
                {
                    "type": "object",
                    # goal comes first: after a fixed id, a small model writes ids as goals.
                    "properties": {
                        "goal": {
                            "type": "string",
                            "minLength": GOAL_MIN_CHARS,
                            "maxLength": GOAL_MAX_CHARS,
                        },
                        "id": {"type": "string", "enum": [f"t{index}"]},
                        "depends_on": depends_on,
                        "kind": {"type": "string", "enum": kinds},
                        **agent,
                    },
                    "required": ["goal", "id", "depends_on", "kind"],
                    "additionalProperties": False,
                }
            )
        tuples.append(
            {
                "type": "array",
                "prefixItems": items,
                "items": False,
                "minItems": size,
                "maxItems": size,
            }
        )
    return {
        "type": "object",
        "properties": {"tasks": {"anyOf": tuples}},
        "required": ["tasks"],
        "additionalProperties": False,
    }


async def plan(
    ctx: AgentContext,
    *,
    goal: str,
    job_goal: str = "",
    inputs: Mapping[str, Any] | None = None,
    input_goals: Mapping[str, str] | None = None,
    depth: int = 0,
    max_depth: int = 2,
    max_tasks: int = 50,
    known_tools: Sequence[str] = (),
    known_agents: Sequence[str] | Mapping[str, str] = (),
    allow_subplans: bool = True,
) -> tuple[TaskSpec, ...]:
    """Break ``goal`` into a valid plan of ``execute`` (and, if allowed, ``plan``) tasks.

    Args:
        ctx: Model, events and ids.
        goal: The goal to decompose.
        job_goal: The whole job's goal, when ``goal`` is a part of it.
        inputs: Results already available (by task id) that the plan may build on.
        input_goals: Goals of those tasks (labels for ``inputs``).
        depth: How deep this planning call is (0 for the job's root plan).
        max_depth: The deepest a plan may go; shown to the model.
        max_tasks: Most tasks the plan may have.
        known_tools: Tools the executing agents can use (shown to the model).
        known_agents: Agents a task may name, or their one-line descriptions by name (shown to
            the model); with more than one the schema offers ``agent``.
        allow_subplans: Whether tasks may have kind ``plan``.

    Returns:
        The tasks, with plan-local ids (``t1``, ``t2``, ...) and dependencies.

    Raises:
        PlanInvalid: the plan was still invalid after one repair round; ``errors`` lists why.
        ModelError: a model call failed.
    """
    small = is_small_model(ctx.model)
    schema = (
        dag_plan_schema(
            max_tasks=max_tasks, allow_subplans=allow_subplans, known_agents=list(known_agents)
        )
        if small
        else plan_schema(
            max_tasks=max_tasks, allow_subplans=allow_subplans, known_agents=list(known_agents)
        )
    )
    messages = [
        ChatMessage(
            role="system",
            content=_system_prompt(
                max_tasks=max_tasks,
                allow_subplans=allow_subplans,
                known_tools=known_tools,
                known_agents=known_agents,
            ),
        ),
        ChatMessage(
            role="user",
            content=_user_prompt(
                ctx,
                goal=goal,
                job_goal=job_goal,
                inputs=inputs or {},
                input_goals=input_goals or {},
                depth=depth,
                max_depth=max_depth,
            ),
        ),
    ]
    check = _Checker(max_tasks=max_tasks, allow_subplans=allow_subplans, known_agents=known_agents)
    response = await call_model(ctx, _request(messages, schema))
    tasks, problems = check(response)
    if not problems:
        return tasks
    messages += [
        ChatMessage(role="assistant", content=_reply_text(response)),
        ChatMessage(
            role="user",
            content=f"{_REPAIR}\n"
            + "\n".join(f"- {problem}" for problem in problems)
            + f"\n\n{_REPAIR_FOOTER}",
        ),
    ]
    response = await call_model(ctx, _request(messages, schema))
    tasks, problems = check(response)
    if problems:
        raise PlanInvalid(problems)
    return tasks


def _kinds(allow_subplans: bool) -> list[str]:
    return ["execute", "plan"] if allow_subplans else ["execute"]


def _request(messages: Sequence[ChatMessage], schema: dict[str, Any]) -> LlmRequest:
    return LlmRequest(
        messages=tuple(messages),
        role="planner",
        agent="planner",
        response_schema=schema,
        schema_name="plan",
    )


def _system_prompt(
    *,
    max_tasks: int,
    allow_subplans: bool,
    known_tools: Sequence[str],
    known_agents: Sequence[str] | Mapping[str, str],
) -> str:
    extras = []
    if known_tools:
        extras.append(f"The agents can use these tools: {', '.join(known_tools)}.")
    agent_field = ""
    if len(known_agents) > 1:
        extras.append(_agents_line(known_agents))
        agent_field = ', "agent": ...'
    return _SYSTEM.format(
        max_tasks=max_tasks,
        kinds=_KINDS_PLAN if allow_subplans else _KINDS_EXECUTE,
        extras="".join(f"- {line}\n" for line in extras),
        agent_field=agent_field,
    )


def _agents_line(known_agents: Sequence[str] | Mapping[str, str]) -> str:
    if not isinstance(known_agents, Mapping) or not any(known_agents.values()):
        return (
            f"agent names who carries out a subtask, one of: {', '.join(known_agents)} "
            "(null for the default)."
        )
    described = "".join(
        f"\n  - {name}: {truncate(' '.join(text.split()), 200)}" if text else f"\n  - {name}"
        for name, text in known_agents.items()
    )
    return (
        "agent names who carries out a subtask (null for the default); choose the agent whose "
        f"description fits the subtask best:{described}"
    )


def _user_prompt(
    ctx: AgentContext,
    *,
    goal: str,
    job_goal: str,
    inputs: Mapping[str, Any],
    input_goals: Mapping[str, str],
    depth: int,
    max_depth: int,
) -> str:
    parts = [f"Goal: {goal.strip()}"]
    if job_goal.strip() and job_goal.strip() != goal.strip():
        parts.append(f"This goal is part of the job: {job_goal.strip()}")
    if inputs:
        budget = input_budget_chars(ctx.model) // 2
        rendered = render_inputs(inputs, input_goals, max_chars=budget)
        parts.append(f"Results already available (do not redo this work):\n\n{rendered}")
    if depth > 0:
        parts.append(_SUBPLAN.format(depth=depth, max_depth=max_depth))
    return "\n\n".join(parts)


def _reply_text(response: LlmResponse) -> str:
    """The model's reply as it is echoed back in the repair round (cut to a bounded size)."""
    if response.content.strip():
        return truncate(response.content, REPAIR_REPLY_MAX_CHARS)
    return truncate(
        json.dumps(response.data, ensure_ascii=False, default=str), REPAIR_REPLY_MAX_CHARS
    )


class _Checker:
    """Turns a reply into tasks plus every problem with them."""

    def __init__(
        self,
        *,
        max_tasks: int,
        allow_subplans: bool,
        known_agents: Sequence[str] | Mapping[str, str],
    ) -> None:
        self.max_tasks = max_tasks
        self.kinds = _kinds(allow_subplans)
        self.known_agents = set(known_agents)

    def __call__(self, response: LlmResponse) -> tuple[tuple[TaskSpec, ...], list[str]]:
        raw, problem = _raw_tasks(response)
        if problem:
            return (), [problem]
        if len(raw) > self.max_tasks:  # before any work on the tasks
            return (), [f"the plan has {len(raw)} tasks; at most {self.max_tasks} are allowed"]
        problems = ProblemList()
        tasks = self._tasks(raw, problems)
        return tasks, plan_problems(tasks, max_tasks=self.max_tasks, into=problems)

    def _tasks(self, raw: list[Any], problems: ProblemList) -> tuple[TaskSpec, ...]:
        items: list[dict[str, Any]] = []
        for position, item in enumerate(raw, start=1):
            if not isinstance(item, dict):
                problems.add(f"task {position} is not an object")
                continue
            cleaned, problem = _cleaned(item)
            if problem:
                problems.add(problem)
            items.append(cleaned)
        # A task without a goal carries nothing to do: drop it, and the dependencies on it.
        dropped = {item["id"] for item in items if not item["goal"]}
        items = [item for item in items if item["goal"]]
        tasks: list[TaskSpec] = []
        for item in items:
            item["depends_on"] = [dep for dep in item["depends_on"] if dep not in dropped]
            label = truncate(item["id"], 80) or "(no id)"
            if item["kind"] not in self.kinds:
                problems.add(
                    f"task {label!r} has kind {item['kind']!r}; use "
                    + " or ".join(repr(kind) for kind in self.kinds)
                )
                item["kind"] = "execute"
            agent = item.get("agent")
            if agent is not None and self.known_agents and agent not in self.known_agents:
                problems.add(
                    f"task {label!r} names unknown agent {truncate(agent, 80)!r}; use one of "
                    + ", ".join(sorted(self.known_agents))
                )
            try:
                tasks.append(TaskSpec.model_validate(item))
            except ValidationError as exc:
                for error in exc.errors():
                    where = ".".join(str(part) for part in error["loc"])
                    problems.add(f"task {label!r}: {where}: {error['msg']}")
        return tuple(tasks)


def _raw_tasks(response: LlmResponse) -> tuple[list[Any], str | None]:
    data = response.data
    if data is None:
        text = response.content.strip()
        if text.startswith("```"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
            text = text.rsplit("```", 1)[0]
        try:
            data = loads_bounded(text)
        except JsonTooDeep as exc:
            return [], f"the reply is {exc.msg}: write a flat list of tasks"
        except json.JSONDecodeError as exc:
            return [], f"the reply is not JSON ({exc.msg}): {truncate(response.content, 200)!r}"
    elif too_deep(data):
        return [], f"the reply is {JsonTooDeep().msg}: write a flat list of tasks"
    if isinstance(data, list):
        data = {"tasks": data}
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        return [], 'the reply must be a JSON object with a "tasks" list'
    tasks: list[Any] = data["tasks"]
    return tasks, None


def _cleaned(item: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Normalise one task object without inventing anything: trim text, dedupe dependencies.

    Returns the task and the problem with its size, if any: an id, goal or dependency list
    over its limit is cut to it first (so the work done here stays bounded), and the model is
    told.
    """
    # Only the fields a planner writes; anything else the model adds (notes, "task_type") goes.
    out: dict[str, Any] = {}
    problem: str | None = None
    raw_id = item.get("id", "")
    out["id"] = (raw_id if isinstance(raw_id, str) else str(raw_id))[:_ID_MAX_CHARS].strip()
    label = out["id"] or "(no id)"
    goal = item.get("goal", "")
    if isinstance(goal, str) and len(goal) > MAX_TASK_GOAL_CHARS:
        problem = (
            f"task {label!r} has a goal of {len(goal)} characters; "
            f"at most {MAX_TASK_GOAL_CHARS} are allowed"
        )
        goal = goal[:MAX_TASK_GOAL_CHARS]
    out["goal"] = " ".join(goal.split()) if isinstance(goal, str) else ""
    deps = item.get("depends_on") or []
    if isinstance(deps, str):
        deps = [deps]
    if not isinstance(deps, list):
        deps = []
    if len(deps) > MAX_TASK_DEPENDENCIES:
        problem = (
            f"task {label!r} lists {len(deps)} dependencies; "
            f"at most {MAX_TASK_DEPENDENCIES} are allowed"
        )
        deps = deps[:MAX_TASK_DEPENDENCIES]
    # A dict keeps the first occurrence of each id, in order, in linear time.
    seen = dict.fromkeys(
        text for text in (str(dep)[:_ID_MAX_CHARS].strip() for dep in deps) if text
    )
    out["depends_on"] = list(seen)
    kind = item.get("kind", "execute")
    out["kind"] = kind.strip().lower() if isinstance(kind, str) and kind.strip() else "execute"
    agent = item.get("agent")
    out["agent"] = agent.strip() if isinstance(agent, str) and agent.strip() else None
    return out, problem
