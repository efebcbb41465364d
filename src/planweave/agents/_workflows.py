"""Workflow agents: agents made of agents.

``Sequential``, ``Parallel``, ``Conditional`` and ``Loop`` share the :class:`Agent` interface, so a
workflow can be a step of another, be wrapped as a tool (``as_tool``) or run a task of a plan.
Each runs its steps in-process when it is called as one agent. Run as a job
(``engine.run(agent=...)``), a ``Sequential``, ``Parallel`` or ``Conditional`` instead becomes a
``plan`` task that :func:`expand_step` turns into child tasks of the job's DAG (a parallel merge
is a child task depending on the branches; a conditional's child is the branch it chose), so
each step gets the engine's events, retries, cancel and resume. A ``Loop`` decides after each
iteration whether to go on, so it stays one task; its iterations show in that task's model and
tool calls, which carry the inner agents' names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from planweave import _journal
from planweave.agents._agent import Agent, AgentRegistry, AgentResult, AgentTask
from planweave.agents._context import AgentContext, call_model
from planweave.agents._handoff import run_agent
from planweave.errors import ConfigError, ModelResponseError, UsageError
from planweave.hooks import AfterStep, BeforeStep, run_step_hooks
from planweave.llm.base import ChatMessage, LlmRequest
from planweave.plan import LOOP_ITERATION_ARG, TaskSpec

__all__ = [
    "Conditional",
    "Loop",
    "LoopEnded",
    "MergeFunction",
    "Parallel",
    "Sequential",
    "expand_step",
    "expand_workflow",
    "members_of",
]

MergeFunction = Callable[[dict[str, str]], Any]
"""A parallel merge: the branches' outputs by step name in, the merged result out (text, or a
JSON value that becomes the output as JSON text)."""

MERGE_STEP = "merge"
"""Local id of the task that merges a parallel workflow's branches."""

_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a {kind} workflow needs a name")


def _check_agents(kind: str, name: str, agents: Iterable[Agent]) -> tuple[Agent, ...]:
    steps = tuple(agents)
    if not steps:
        raise ConfigError(f"{kind} workflow {name!r} has no agents")
    for step in steps:
        if not isinstance(step, Agent):
            raise ConfigError(
                f"{kind} workflow {name!r}: {step!r} is not an agent (it needs a name and an "
                "async run(task, ctx))"
            )
    return steps


def step_ids(agents: Sequence[Agent], *, taken: Iterable[str] = ()) -> list[str]:
    """A task id for each step: the agent's name made a valid id, numbered when repeated."""
    used = set(taken)
    ids: list[str] = []
    for agent in agents:
        base = _as_id(agent.name)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids.append(candidate)
    return ids


def _as_id(name: str) -> str:
    """``name`` made a valid task id."""
    base = _BAD_ID_CHARS.sub("_", name).strip(".")[:48] or "step"
    return "_" + base if base[0] in ".-" else base


def _step_task(task: AgentTask, extra: Mapping[str, str]) -> AgentTask:
    """``task`` with ``extra`` outputs (by label) added to its inputs."""
    if not extra:
        return task
    return AgentTask(
        goal=task.goal,
        job_goal=task.job_goal,
        inputs={**task.inputs, **extra},
        input_goals={**task.input_goals, **{label: label for label in extra}},
    )


class Sequential:
    """Runs its agents one after another; each sees the previous one's output.

    Args:
        name: The workflow's name (in plans, events and the agent registry).
        agents: The steps, in order.
        description: What the workflow does (for a planner, or a model using it as a tool).
    """

    def __init__(self, name: str, agents: Iterable[Agent], *, description: str = "") -> None:
        _check_name("sequential", name)
        self.name = name
        self.agents = _check_agents("sequential", name, agents)
        self.description = description

    def __repr__(self) -> str:
        return f"Sequential(name={self.name!r}, agents={[a.name for a in self.agents]!r})"

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Run each step on ``task``, giving it the previous step's output as an input."""
        outputs: list[dict[str, Any]] = []
        previous: dict[str, str] = {}
        steps = 0
        result: AgentResult | None = None
        for step_id, agent in zip(step_ids(self.agents), self.agents, strict=True):
            result = await run_step(self.name, step_id, agent, _step_task(task, previous), ctx)
            steps += result.steps
            outputs.append({"step": step_id, "agent": agent.name, "output": result.output})
            previous = {step_id: result.output}
        assert result is not None
        return AgentResult(output=result.output, data={"steps": outputs}, steps=steps)


class Parallel:
    """Runs its agents at once on the same task and merges their outputs.

    Args:
        name: The workflow's name.
        agents: The branches.
        merge: ``"concat"`` (outputs joined, each under its step name), ``"dict"`` (a JSON
            object of outputs by step name) or a function of ``{step name: output}``.
        description: What the workflow does.
    """

    def __init__(
        self,
        name: str,
        agents: Iterable[Agent],
        *,
        merge: Literal["concat", "dict"] | MergeFunction = "concat",
        description: str = "",
    ) -> None:
        _check_name("parallel", name)
        self.name = name
        self.agents = _check_agents("parallel", name, agents)
        if not callable(merge) and merge not in ("concat", "dict"):
            raise ConfigError(
                f"parallel workflow {name!r}: merge must be 'concat', 'dict' or a function, "
                f"not {merge!r}"
            )
        self.merge = merge
        self.description = description

    def __repr__(self) -> str:
        return f"Parallel(name={self.name!r}, agents={[a.name for a in self.agents]!r})"

    def branch_ids(self) -> list[str]:
        """The step name of each branch (task ids when the workflow runs as a job)."""
        return step_ids(self.agents, taken=(MERGE_STEP,))

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Run every branch on ``task`` concurrently, then merge their outputs. Each branch's
        calls are journaled in a numbering of their own, so a re-run replays them however the
        branches interleaved."""
        numbering = _journal.branches(len(self.agents))

        async def branch(index: int, step: str, agent: Agent) -> AgentResult:
            with numbering[index]:
                return await run_step(self.name, step, agent, task, ctx)

        results = await asyncio.gather(
            *(
                branch(index, step, agent)
                for index, (step, agent) in enumerate(
                    zip(self.branch_ids(), self.agents, strict=True)
                )
            )
        )
        outputs = {
            step: result.output for step, result in zip(self.branch_ids(), results, strict=True)
        }
        merged = self.merged(outputs)
        return AgentResult(
            output=merged.output, data=merged.data, steps=sum(r.steps for r in results)
        )

    def merged(self, outputs: dict[str, str]) -> AgentResult:
        """The merge of the branches' ``outputs`` (by step name)."""
        if self.merge == "concat":
            text = "\n\n".join(f"## {step}\n\n{output}" for step, output in outputs.items())
            return AgentResult(output=text, data=dict(outputs))
        if self.merge == "dict":
            return AgentResult(output=json.dumps(outputs, ensure_ascii=False), data=dict(outputs))
        assert callable(self.merge)
        value = self.merge(dict(outputs))
        if isinstance(value, AgentResult):
            return value
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return AgentResult(output=text, data=value)


class _Merge:
    """The agent of a parallel workflow's merge task: merges the results of the branch tasks
    it depends on (its siblings, found by the task's id)."""

    def __init__(self, parallel: Parallel) -> None:
        self.parallel = parallel
        self.name = merge_agent_name(parallel.name)

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        prefix = ctx.task_id.rsplit(".", 1)[0] + "." if "." in ctx.task_id else ""
        outputs: dict[str, str] = {}
        for step in self.parallel.branch_ids():
            value = task.inputs.get(prefix + step)
            outputs[step] = value if isinstance(value, str) else json.dumps(value, default=str)
        return self.parallel.merged(outputs)


def is_step_agent(agent: Agent) -> bool:
    """Whether ``agent`` only runs a workflow's own step tasks (a parallel merge)."""
    return isinstance(agent, _Merge)


def merge_agent_name(parallel: str) -> str:
    """The registered name of a parallel workflow's merge agent."""
    return f"{parallel}.{MERGE_STEP}"


_DECIDE_PROMPT = (
    "Choose the branch that should handle this task. Reply with a JSON object "
    '{{"branch": "<name>"}}, one of: {names}.\n\nBranches:\n{branches}\n\nTask: {goal}'
)


class Conditional:
    """Runs one of several named branches, chosen by a predicate or by the model.

    Args:
        name: The workflow's name.
        branches: The agents to choose among, by branch name.
        predicate: A function of the task returning the branch name (``None``: the default).
        decide: ``"llm"``: the model picks the branch (a recorded model call under this
            workflow's name). Give exactly one of ``predicate`` and ``decide``.
        default: The branch taken when the choice names none of them (``None``: such a choice
            fails the task).
        description: What the workflow does.
    """

    def __init__(
        self,
        name: str,
        branches: Mapping[str, Agent],
        *,
        predicate: Callable[[AgentTask], str | None] | None = None,
        decide: Literal["llm"] | None = None,
        default: str | None = None,
        description: str = "",
    ) -> None:
        _check_name("conditional", name)
        self.name = name
        self.branches = dict(branches)
        _check_agents("conditional", name, self.branches.values())
        if (predicate is None) == (decide is None):
            raise ConfigError(
                f"conditional workflow {name!r}: give either predicate=... or decide='llm'"
            )
        if decide is not None and decide != "llm":
            raise ConfigError(f"conditional workflow {name!r}: decide must be 'llm'")
        if default is not None and default not in self.branches:
            raise ConfigError(
                f"conditional workflow {name!r}: default {default!r} is not a branch "
                f"(branches: {', '.join(self.branches)})"
            )
        self.predicate = predicate
        self.decide = decide
        self.default = default
        self.description = description

    def __repr__(self) -> str:
        return f"Conditional(name={self.name!r}, branches={list(self.branches)!r})"

    @property
    def agents(self) -> tuple[Agent, ...]:
        return tuple(self.branches.values())

    async def choose(self, task: AgentTask, ctx: AgentContext) -> str:
        """The branch for ``task``.

        Raises:
            ModelResponseError: the choice names no branch and there is no default (retryable
                when the model chose).
        """
        if self.predicate is not None:
            choice = self.predicate(task)
        else:
            choice = await self._ask_model(task, ctx)
        if choice in self.branches:
            assert choice is not None
            return choice
        if self.default is not None:
            return self.default
        raise ModelResponseError(
            f"conditional workflow {self.name!r} chose {choice!r}, which is not one of its "
            f"branches ({', '.join(self.branches)}), and it has no default",
            retryable=self.decide == "llm",
        )

    async def _ask_model(self, task: AgentTask, ctx: AgentContext) -> str | None:
        names = list(self.branches)
        lines = []
        for branch, agent in self.branches.items():
            about = getattr(agent, "description", "") or ""
            lines.append(f"- {branch}: {about}".rstrip(": "))
        prompt = _DECIDE_PROMPT.format(
            names=", ".join(names), branches="\n".join(lines), goal=task.goal.strip()
        )
        response = await call_model(
            ctx,
            LlmRequest(
                messages=(ChatMessage(role="user", content=prompt),),
                role="executor",
                agent=self.name,
                response_schema={
                    "type": "object",
                    "properties": {"branch": {"enum": names}},
                    "required": ["branch"],
                    "additionalProperties": False,
                },
                schema_name="branch",
            ),
        )
        data = response.data
        if isinstance(data, dict) and isinstance(data.get("branch"), str):
            return str(data["branch"]).strip()
        text = response.content.strip()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return text.strip('"').strip() or None
        if isinstance(parsed, dict) and isinstance(parsed.get("branch"), str):
            return str(parsed["branch"]).strip()
        return None

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Choose a branch and run it on ``task``."""
        branch = await self.choose(task, ctx)
        result = await run_step(self.name, branch, self.branches[branch], task, ctx)
        return AgentResult(
            output=result.output,
            data={"branch": branch, "result": result.data},
            steps=result.steps,
        )


class Loop:
    """Runs its body again and again until a predicate holds or the iterations run out.

    Args:
        name: The workflow's name.
        body: The agent run on each iteration (it sees the previous iteration's output).
        until: A function of an iteration's result; true ends the loop (``None``: run all
            ``max_iterations``).
        max_iterations: The bound (required: a loop without one is a configuration error).
        description: What the workflow does.
    """

    def __init__(
        self,
        name: str,
        body: Agent,
        *,
        until: Callable[[AgentResult], bool] | None = None,
        max_iterations: int | None = None,
        description: str = "",
    ) -> None:
        _check_name("loop", name)
        self.name = name
        (self.body,) = _check_agents("loop", name, (body,))
        if max_iterations is None:
            raise ConfigError(
                f"loop workflow {name!r} has no bound: give max_iterations=N (N >= 1)"
            )
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
            raise ConfigError(f"loop workflow {name!r}: max_iterations must be an integer")
        if max_iterations < 1:
            raise ConfigError(
                f"loop workflow {name!r}: max_iterations must be at least 1, not {max_iterations}"
            )
        self.until = until
        self.max_iterations = max_iterations
        self.description = description

    def __repr__(self) -> str:
        return f"Loop(name={self.name!r}, body={self.body.name!r})"

    @property
    def agents(self) -> tuple[Agent, ...]:
        return (self.body,)

    def iteration_tasks(self, done: int, goal: str) -> tuple[TaskSpec, ...]:
        """The child tasks of the loop's ``plan`` task after ``done`` iterations: the next
        iteration and, unless it is the last one allowed, the task that decides whether the
        loop goes on after it."""
        body = _spec(f"{_as_id(self.body.name)}_{done + 1}", self.body, goal, ())
        if done + 1 >= self.max_iterations:
            return (body,)
        after = TaskSpec(
            id=f"after_{done + 1}",
            goal=f"Decide whether {self.name} runs again after iteration {done + 1}",
            kind="plan",
            agent=self.name,
            args={LOOP_ITERATION_ARG: done + 1},
            depends_on=(body.id,),
        )
        return (body, after)

    def ended(self, output: Any) -> bool:
        """Whether an iteration that produced ``output`` (a task's result) ends the loop."""
        if self.until is None:
            return False
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        data: Any = output if not isinstance(output, str) else None
        if data is None:
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        return bool(self.until(AgentResult(output=text, data=data)))

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Run the body until ``until`` holds or ``max_iterations`` iterations have run."""
        previous: dict[str, str] = {}
        steps = 0
        stopped: Literal["until", "max_iterations"] = "max_iterations"
        result: AgentResult | None = None
        iteration = 0
        while iteration < self.max_iterations:
            iteration += 1
            result = await run_step(
                self.name,
                f"{self.body.name}#{iteration}",
                self.body,
                _step_task(task, previous),
                ctx,
            )
            steps += result.steps
            if self.until is not None and self.until(result):
                stopped = "until"
                break
            previous = {f"{self.body.name} (iteration {iteration})": result.output}
        assert result is not None
        return AgentResult(
            output=result.output,
            data={"iterations": iteration, "stopped": stopped, "result": result.data},
            steps=steps,
        )


def members_of(agent: Agent) -> list[Agent]:
    """Every agent a workflow is made of, nested ones included, with the merge agents its
    parallel parts run as tasks (empty for an agent that is not a workflow)."""
    found: list[Agent] = []
    seen: set[int] = {id(agent)}
    stack: list[Agent] = [agent]
    while stack:
        current = stack.pop()
        if isinstance(current, Parallel):
            found.append(_Merge(current))
        if isinstance(current, Sequential | Parallel | Conditional | Loop):
            for member in current.agents:
                if id(member) not in seen:
                    seen.add(id(member))
                    found.append(member)
                    stack.append(member)
    return found


async def expand_step(
    agent: Agent,
    task: AgentTask,
    context: Callable[[], Awaitable[AgentContext]],
    spec: TaskSpec | None = None,
) -> tuple[TaskSpec, ...] | LoopEnded | None:
    """The child tasks of a ``plan`` task (``spec``) whose agent is ``agent``, or ``None`` when
    it is not a workflow that runs as tasks (``Sequential``, ``Parallel``, ``Conditional``,
    ``Loop``).

    A ``Conditional`` chooses its branch here (its model call, if it asks the model, is
    recorded in the plan task's log), and the branch becomes its one child task. ``context``
    gives the agent context for that choice. A ``Loop`` runs one iteration at a time: its
    task's children are the first iteration and a task that, once the iteration is done,
    checks ``until`` on its result and either ends the loop (:class:`LoopEnded`) or adds the
    next iteration and another such task below itself.

    Raises:
        ModelResponseError: the conditional chose no branch and has no default.
    """
    if isinstance(agent, Conditional):
        branch = await agent.choose(task, await context())
        return (_spec(_as_id(branch), agent.branches[branch], task.goal, ()),)
    if isinstance(agent, Loop):
        done = spec.args.get(LOOP_ITERATION_ARG) if spec is not None else None
        if not isinstance(done, int) or isinstance(done, bool) or done < 1:
            return agent.iteration_tasks(0, task.goal)
        assert spec is not None
        last = task.inputs.get(spec.depends_on[0]) if spec.depends_on else None
        if agent.ended(last):
            return LoopEnded(last)
        return agent.iteration_tasks(done, task.goal)
    return expand_workflow(agent, task.goal)


@dataclasses.dataclass(frozen=True, slots=True)
class LoopEnded:
    """A loop's decision task found the loop done: its result is the last iteration's."""

    result: Any


def expand_workflow(agent: Agent, goal: str) -> tuple[TaskSpec, ...] | None:
    """The child tasks of a sequential or parallel workflow's ``plan`` task (``None`` for
    another agent).

    A step that is itself a sequential, parallel or conditional workflow becomes a ``plan``
    task in turn; the job option ``max_plan_depth`` bounds the nesting (deeper steps run as
    one task).
    """
    if isinstance(agent, Sequential):
        ids = step_ids(agent.agents)
        return tuple(
            _spec(step_id, member, goal, (ids[index - 1],) if index else ())
            for index, (step_id, member) in enumerate(zip(ids, agent.agents, strict=True))
        )
    if isinstance(agent, Parallel):
        ids = agent.branch_ids()
        branches = [
            _spec(step_id, m, goal, ()) for step_id, m in zip(ids, agent.agents, strict=True)
        ]
        merge = TaskSpec(
            id=MERGE_STEP,
            goal=f"Merge the results of {agent.name}",
            kind="execute",
            agent=merge_agent_name(agent.name),
            depends_on=tuple(ids),
        )
        return (*branches, merge)
    return None


def _spec(step_id: str, member: Agent, goal: str, depends_on: tuple[str, ...]) -> TaskSpec:
    expandable = isinstance(member, Sequential | Parallel | Conditional | Loop)
    return TaskSpec(
        id=step_id,
        goal=goal,
        kind="plan" if expandable else "execute",
        agent=member.name,
        depends_on=depends_on,
    )


def job_plan(agent: Agent, text: str) -> tuple[TaskSpec, ...]:
    """The plan of a job that runs ``agent`` on ``text`` with no planner: one task, a ``plan``
    task for a sequential or parallel workflow (its steps become its child tasks), else an
    ``execute`` task."""
    (step_id,) = step_ids([agent])
    return (_spec(step_id, agent, text, ()),)


def agent_job_plan(
    agents: AgentRegistry, name: str, text: str | None, goal: str | None, plan: object
) -> tuple[TaskSpec, ...]:
    """The plan of ``Engine.submit(agent=name, input=text)``.

    Raises:
        UsageError: a plan is given too, or there is no input.
        ConfigError: no agent has that name.
    """
    if plan is not None:
        raise UsageError("give an agent or a plan to run, not both")
    text = text if text is not None else goal
    if text is None or not text.strip():
        raise UsageError(f"give the agent {name!r} an input (input='...')")
    return job_plan(agents.get(name), text)


async def run_step(
    workflow: str, step: str, agent: Agent, task: AgentTask, ctx: AgentContext
) -> AgentResult:
    """Run one step of a workflow in this task, through the ``before_step`` and ``after_step``
    hooks: a hook may give the step another task or its result another value, or veto it.

    Raises:
        HookVeto: a hook refused the step (the workflow's task fails with the reason).
    """
    before = await run_step_hooks(
        BeforeStep(job_id=ctx.job_id, task_id=ctx.task_id, workflow=workflow, step=step, input=task)
    )
    step_task = before.input
    if isinstance(step_task, str):
        step_task = dataclasses.replace(task, goal=step_task)
    elif not isinstance(step_task, AgentTask):
        step_task = task
    result = await run_agent(agent, step_task, ctx)
    after = await run_step_hooks(
        AfterStep(
            job_id=ctx.job_id,
            task_id=ctx.task_id,
            workflow=workflow,
            step=step,
            input=step_task,
            output=result,
        )
    )
    if isinstance(after.output, str):
        return dataclasses.replace(result, output=after.output)
    return after.output if isinstance(after.output, AgentResult) else result
