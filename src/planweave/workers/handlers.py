"""What each kind of worker does with a work item: plan, execute, compose, or call a tool.

Handlers turn everything that can go wrong into an ``Outcome`` the decider understands: model and
tool failures carry whether a retry may help, an invalid plan does not retry, a ``RetryTask``
signal asks for another attempt after a delay. They never write state themselves.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from planweave import _budget
from planweave._deadline import deadline
from planweave.agents import Agent, AgentContext, AgentRegistry, AgentTask, compose, plan
from planweave.agents._answers import check_answer
from planweave.agents._handoff import run_agent
from planweave.agents._workflows import LoopEnded, expand_step
from planweave.artifacts import ArtifactStore, fetch_files, store_artifacts
from planweave.constants import (
    RESULT_ARTIFACT,
    RESULTS_FOLDER,
    WORKER_COMPOSER,
    WORKER_CRITIC,
    WORKER_EXECUTOR,
    WORKER_PLANNER,
    WORKER_TOOL,
)
from planweave.critic import CriticRegistry
from planweave.errors import (
    AnswerRejected,
    ApprovalRequired,
    ArtifactStoreUnavailable,
    BudgetExceeded,
    BudgetNeeded,
    FailureType,
    HookVeto,
    ModelError,
    PlanInvalid,
    RetryTask,
    ToolError,
    UsageError,
)
from planweave.events import NO_USAGE, Grant, PolicyDenied, ToolCalled, trusted
from planweave.hooks import HookRegistry
from planweave.llm import Model, ModelOptions, load_model
from planweave.messages import Outcome, PendingApproval, WorkItem
from planweave.policy._task import TaskPolicies
from planweave.spells._errors import SpellError
from planweave.tools import FunctionTool, ToolContext, ToolProcesses, ToolRegistry, run_tool_call
from planweave.tools._approval import ApprovalGate, Verdict
from planweave.tools._runtime import event_args
from planweave.workers._critic import critic_handler
from planweave.workers._results import (
    has_references,
    load_inputs,
    may_spill,
    missing_references,
    spill_result,
)
from planweave.workers.pool import Handler, Reporter

__all__ = ["ModelCache", "WorkerServices", "handler_for"]

log = logging.getLogger("planweave.worker")


class ModelCache:
    """Models by URL, loaded once per process."""

    def __init__(
        self,
        *,
        default: str,
        options: ModelOptions | None = None,
        models: dict[str, Model] | None = None,
    ) -> None:
        self.default = default
        self.options = options
        self._models: dict[str, Model] = dict(models or {})
        self._instead: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def substitute(self, url: str, instead: str) -> None:
        """Serve the model ``instead`` wherever ``url`` is asked for (a job resumed on
        another model than the one it recorded)."""
        if url != instead:
            self._instead[url] = instead

    async def get(self, url: str | None) -> Model:
        url = url or self.default
        url = self._instead.get(url, url)
        model = self._models.get(url)
        if model is None:
            async with self._lock:
                model = self._models.get(url)
                if model is None:
                    model = load_model(url, self.options)
                    self._models[url] = model
        return model

    async def aclose(self) -> None:
        for model in self._models.values():
            try:
                await model.aclose()
            except Exception:
                log.exception("closing model %s failed", model.name)
        self._models.clear()


@dataclass(slots=True, kw_only=True)
class WorkerServices:
    """What handlers need: tools, agents, models, the network policy and the artifact store
    (which gets each file a task produced before its outcome is reported).

    ``policies`` holds every task to the engine's policy and its job's own (the ``policy``
    hook at its tool calls, the egress allowlist of its context, the content rules of its
    result).

    ``allow_private_network`` is what this process permits: a job's ``http_fetch`` reaches
    private addresses only when its own option asks for it too (``WorkItem``), so a process
    setting is never inherited by every job (or every API tenant) it runs.
    ``shell_commands`` are the programs this process lets the ``shell`` tool run.
    """

    tools: ToolRegistry
    agents: AgentRegistry
    models: ModelCache
    allow_private_network: bool = False
    shell_commands: tuple[str, ...] = ()
    tool_processes: ToolProcesses | None = None
    tool_context_options: dict[str, Any] = field(default_factory=dict)
    artifact_store: ArtifactStore | None = None
    hooks: HookRegistry | None = None
    policies: TaskPolicies | None = None
    critics: CriticRegistry | None = None
    spell_paths: tuple[Path, ...] = ()
    _paths: dict[str, Path] = field(default_factory=dict)

    def workspace_of(self, item: WorkItem) -> Path:
        key = item.workspace or ""
        workspace = self._paths.get(key)
        if workspace is None:
            workspace = self._paths[key] = Path(key) if key else Path.cwd()
        return workspace

    def tool_context(self, item: WorkItem) -> ToolContext:
        workspace = self.workspace_of(item)
        policies = self.policies.for_item(item) if self.policies is not None else None
        return ToolContext(
            workspace=workspace,
            job_id=item.job_id,
            task_id=item.task_id,
            allow_private_network=self.allow_private_network and item.allow_private_network,
            shell_commands=self.shell_commands,
            processes=self.tool_processes,
            egress=policies.egress if policies is not None else None,
            approval=approval_gate(item),
            **self.tool_context_options,
        )

    async def agent_context(self, item: WorkItem, reporter: Reporter) -> AgentContext:
        model = await self.models.get(item.model)
        return AgentContext(
            model=model,
            tools=self.tools,
            tool_context=replace(
                self.tool_context(item),
                model=model,
                emit=reporter,
                deadline_at=_deadline_at(item),
                tools=self.tools,
                agents=self.agents,
                live=reporter.live,
            ),
            emit=reporter,
            live=reporter.live,
            job_id=item.job_id,
            task_id=item.task_id,
            max_steps=item.max_agent_steps,
            max_tool_calls=item.max_tool_calls,
            max_tool_calls_per_step=item.max_tool_calls_per_step,
            load_model=self.models.get,
            agents=self.agents,
            max_handoffs=item.max_handoffs,
        )

    async def task_tool_context(self, item: WorkItem, reporter: Reporter) -> ToolContext:
        """The context of a ``tool`` task's call: the job's model when it can be loaded (a tool
        task that needs none must not fail because, say, an API key is missing)."""
        try:
            model: Model | None = await self.models.get(item.model)
        except (ModelError, UsageError):
            model = None
        return replace(
            self.tool_context(item),
            model=model,
            emit=reporter,
            deadline_at=_deadline_at(item),
            live=reporter.live,
        )


def _deadline_at(item: WorkItem) -> float | None:
    timeout = item.spec.timeout_s
    return None if timeout is None else time.monotonic() + timeout


def _ok(item: WorkItem, **fields: Any) -> Outcome:
    return trusted(
        Outcome,
        {
            "id": f"{item.id}:outcome",
            "job_id": item.job_id,
            "task_id": item.task_id,
            "attempt": item.attempt,
            "status": "succeeded",
            "usage": NO_USAGE,
            "at": time.time(),
            **fields,
        },
    )


def _failed(
    item: WorkItem,
    error: str,
    *,
    error_type: FailureType,
    retryable: bool,
    retry_delay_s: float | None = None,
    calls: tuple[ToolCalled | PolicyDenied, ...] = (),
) -> Outcome:
    return Outcome(
        job_id=item.job_id,
        task_id=item.task_id,
        attempt=item.attempt,
        status="failed",
        error=error,
        error_type=error_type,
        retryable=retryable,
        retry_delay_s=retry_delay_s,
        calls=calls,
    )


_NO_APPROVALS = ApprovalGate()


def approval_gate(item: WorkItem) -> ApprovalGate:
    """The approval gate of an item's tool calls: its job's ``approve_tools`` and the
    decisions made on its task's calls."""
    if not item.approve_tools and not item.approvals:
        return _NO_APPROVALS
    return ApprovalGate(
        patterns=item.approve_tools,
        decisions={
            d.call: Verdict(approved=d.approved, by=d.by, reason=d.reason) for d in item.approvals
        },
    )


def _awaiting(item: WorkItem, exc: ApprovalRequired) -> Outcome:
    """The outcome of an attempt stopped at a call that waits for a person."""
    if exc.tool is None or exc.call is None:
        return _failed(
            item,
            f"approval was asked for outside a tool call ({exc.reason}): only a tool call can "
            "wait for a person",
            error_type="usage",
            retryable=False,
        )
    return Outcome(
        job_id=item.job_id,
        task_id=item.task_id,
        attempt=item.attempt,
        status="awaiting_approval",
        approval=PendingApproval(
            tool=exc.tool, args=event_args(exc.arguments), call=exc.call, reason=exc.reason
        ),
    )


def _failure(item: WorkItem, exc: Exception) -> Outcome | None:
    """The failed outcome of an expected failure; ``None`` for any other exception."""
    if isinstance(exc, ApprovalRequired):
        return _awaiting(item, exc)
    if isinstance(exc, RetryTask):
        return _failed(
            item, exc.reason, error_type="retry", retryable=True, retry_delay_s=exc.delay_s
        )
    if isinstance(exc, PlanInvalid):
        return _failed(item, str(exc), error_type="plan_invalid", retryable=False)
    if isinstance(exc, HookVeto):
        return _failed(item, str(exc), error_type="vetoed", retryable=False)
    if isinstance(exc, SpellError):  # the script's own line, never a Python traceback
        return _failed(item, str(exc), error_type="error", retryable=False)
    if isinstance(exc, ModelError):
        return _failed(item, str(exc), error_type="model", retryable=exc.retryable)
    if isinstance(exc, ToolError):
        return _failed(item, str(exc), error_type="tool", retryable=exc.retryable)
    if isinstance(exc, AnswerRejected):
        return _failed(item, str(exc), error_type=exc.reason, retryable=True)
    if isinstance(exc, BudgetNeeded):
        needs = Grant(tokens=exc.tokens, cost_usd=exc.cost_usd, tool_calls=exc.tool_calls)
        outcome = _failed(item, exc.reason, error_type="budget_needed", retryable=True)
        return outcome.model_copy(update={"needs": needs})
    if isinstance(exc, BudgetExceeded):
        return _failed(item, str(exc), error_type="budget_exceeded", retryable=False)
    if isinstance(exc, UsageError):
        # Bad configuration or input (an unknown agent, a script without a matching reply).
        return _failed(item, str(exc), error_type="usage", retryable=False)
    if isinstance(exc, TimeoutError):
        return _failed(
            item,
            f"the task took longer than its timeout of {item.spec.timeout_s} s",
            error_type="timeout",
            retryable=True,
        )
    return None


async def _guard(item: WorkItem, run: Callable[[], Awaitable[Outcome]]) -> Outcome:
    """Run a handler body within the task's timeout, turning expected failures into failed
    outcomes."""
    timeout = item.spec.timeout_s
    try:
        if timeout is None:
            return await run()
        with deadline(timeout):
            return await run()
    except Exception as exc:
        outcome = _failure(item, exc)
        if outcome is None:
            raise
        return outcome


def _tool_handler(services: WorkerServices) -> Handler:
    tools = services.tools
    nowhere = Path()

    # Every tool task runs this: the same tool runtime as an agent's calls, one coroutine, no
    # closure per item. The ToolCalled event travels in the outcome, not in a message of its own.
    async def handle(item: WorkItem, reporter: Reporter) -> Outcome:
        spec = item.spec
        calls: list[ToolCalled | PolicyDenied] = []
        try:
            assert spec.tool is not None
            tool = tools.get(spec.tool)
            args = spec.args
            if "inputs" in tool.parameters.get("properties", {}) and "inputs" not in args:
                args = {**args, "inputs": item.inputs}
            timeout = spec.timeout_s
            # Only a tool that takes the context can write into the workspace.
            uses_context = tool.uses_context if isinstance(tool, FunctionTool) else True
            if uses_context:
                ctx = await services.task_tool_context(item, reporter)
                before = await asyncio.to_thread(_scan, ctx.workspace)
            else:
                # The tool never sees it; the runtime reads its ids for the event.
                policies = services.policies.for_item(item) if services.policies else None
                ctx = ToolContext(
                    workspace=nowhere,
                    job_id=item.job_id,
                    task_id=item.task_id,
                    processes=services.tool_processes,
                    egress=policies.egress if policies is not None else None,
                    approval=approval_gate(item),
                )
                before = None
            result = await run_tool_call(
                tools, spec.tool, args, ctx, record=calls.append, timeout_s=timeout
            )
        except Exception as exc:
            outcome = _failure(item, exc)
            if outcome is None:
                raise
            return outcome.model_copy(update={"calls": tuple(calls)}) if calls else outcome
        if not result.ok:
            return _failed(
                item,
                result.error or "the tool failed",
                error_type="timeout" if result.error_type == "timeout" else "tool",
                retryable=result.retryable,
                calls=tuple(calls),
            )
        if before is not None:
            written = _written(before, await asyncio.to_thread(_scan, ctx.workspace))
            if written:
                return _ok(item, result=result.value, artifacts=written, calls=tuple(calls))
        return _ok(item, result=result.value, calls=tuple(calls))

    return handle


_MAX_SCANNED_FILES = 2000


def _scan(workspace: Path) -> dict[str, tuple[int, int]]:
    """Files of a workspace: relative name -> (size, mtime in ns); hidden files left out."""
    found: dict[str, tuple[int, int]] = {}
    stack = [workspace]
    while stack and len(found) < _MAX_SCANNED_FILES:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or (folder is workspace and entry.name == RESULTS_FOLDER):
                continue  # hidden files, and results moved to files (their own artifacts)
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                name = Path(entry.path).relative_to(workspace).as_posix()
                found[name] = (stat.st_size, stat.st_mtime_ns)
    return found


def _written(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> tuple[tuple[str, int, str], ...]:
    """Files a task created or changed, as artifacts (name, size, content type)."""
    return tuple(
        (name, size, mimetypes.guess_type(name)[0] or "application/octet-stream")
        for name, (size, mtime) in sorted(after.items())
        if before.get(name) != (size, mtime)
    )


def _executor_handler(services: WorkerServices) -> Handler:
    async def handle(item: WorkItem, reporter: Reporter) -> Outcome:
        workspace = services.tool_context(item).workspace
        before = await asyncio.to_thread(_scan, workspace)
        outcome = await _run_agent(item, reporter)
        if outcome.status == "succeeded":
            after = await asyncio.to_thread(_scan, workspace)
            written = _written(before, after)
            if written:
                outcome = outcome.model_copy(update={"artifacts": written})
        return outcome

    async def _run_agent(item: WorkItem, reporter: Reporter) -> Outcome:
        async def run() -> Outcome:
            if item.spec.kind == "spell":
                from planweave.spells._task import spell_agent_for, spell_folders

                folders = spell_folders(services.workspace_of(item), services.spell_paths)
                agent: Agent = spell_agent_for(item.spec, folders)
            else:
                agent = services.agents.get(item.spec.agent or "executor")
            ctx = await services.agent_context(item, reporter)
            result = await run_agent(
                agent,
                AgentTask(
                    goal=_with_feedback(item.spec.goal, item.spec.feedback),
                    job_goal=item.job_goal,
                    inputs=item.inputs,
                    input_goals=item.input_goals,
                ),
                ctx,
            )
            # Whatever the agent, junk (empty, or the engine's instructions) is never a result.
            answer = check_answer(result.output, agent=agent.name)
            if item.spec.kind == "spell" and result.data is not None:
                return _ok(item, result=result.data)  # what the script returned, as data
            critic = getattr(agent, "critic", None)  # the agent's own critic, if it names one
            if isinstance(critic, str) and critic:
                return _ok(item, result=answer, critic=critic)
            return _ok(item, result=answer)

        return await _guard(item, run)

    return handle


def _with_feedback(goal: str, feedback: tuple[str, ...]) -> str:
    """A task's goal, with what a critic asked to change in its earlier answers."""
    if not feedback:
        return goal
    notes = "\n".join(f"- {text}" for text in feedback)
    return (
        f"{goal}\n\nA reviewer checked your earlier answer to this task and asked for "
        f"changes. Answer the task again, addressing this feedback:\n{notes}"
    )


def _planner_handler(services: WorkerServices) -> Handler:
    async def handle(item: WorkItem, reporter: Reporter) -> Outcome:
        async def run() -> Outcome:
            if item.spec.agent is not None and item.spec.agent in services.agents:
                # A workflow's steps are its sub-plan: no planner runs.
                steps = await expand_step(
                    services.agents.get(item.spec.agent),
                    AgentTask(
                        goal=item.spec.goal,
                        job_goal=item.job_goal,
                        inputs=item.inputs,
                        input_goals=item.input_goals,
                    ),
                    lambda: services.agent_context(item, reporter),
                    item.spec,
                )
                if isinstance(steps, LoopEnded):
                    return _ok(item, result=steps.result)
                if steps is not None:
                    return _ok(item, subtasks=steps)
            ctx = await services.agent_context(item, reporter)
            tasks = await plan(
                ctx,
                goal=item.spec.goal,
                job_goal=item.job_goal,
                inputs=item.inputs,
                input_goals=item.input_goals,
                depth=item.depth,
                max_depth=item.max_plan_depth,
                max_tasks=item.max_plan_tasks,
                known_tools=list(services.tools.names()),
                known_agents=services.agents.descriptions(),
                allow_subplans=item.allow_subplans,
            )
            return _ok(item, subtasks=tuple(tasks))

        return await _guard(item, run)

    return handle


def _composer_handler(services: WorkerServices) -> Handler:
    async def handle(item: WorkItem, reporter: Reporter) -> Outcome:
        async def run() -> Outcome:
            ctx = await services.agent_context(item, reporter)
            text = await compose(
                ctx, goal=item.spec.goal, inputs=item.inputs, input_goals=item.input_goals
            )
            workspace = ctx.tool_context.workspace
            data = text.encode("utf-8")
            await asyncio.to_thread(_write_artifact, workspace, RESULT_ARTIFACT, data)
            return _ok(
                item, result=text, artifacts=((RESULT_ARTIFACT, len(data), "text/markdown"),)
            )

        return await _guard(item, run)

    return handle


def _write_artifact(workspace: Path, name: str, data: bytes) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    tmp = workspace / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(workspace / name)


_FACTORIES: dict[str, Callable[[WorkerServices], Handler]] = {
    WORKER_TOOL: _tool_handler,
    WORKER_EXECUTOR: _executor_handler,
    WORKER_PLANNER: _planner_handler,
    WORKER_COMPOSER: _composer_handler,
    WORKER_CRITIC: critic_handler,
}


def handler_for(kind: str, services: WorkerServices) -> Handler:
    """The handler of a worker kind.

    Around every kind: inputs that are references to result files are read back into values
    first, and a result over the job's ``max_result_bytes`` is moved to a file afterwards
    (``_results``), so large results never travel in events, rows or work items.
    """
    inner = _FACTORIES[kind](services)
    hooks = services.hooks or None  # every attempt runs with its job's hooks in force

    async def handle(item: WorkItem, reporter: Reporter) -> Outcome:
        if item.inputs and has_references(item.inputs):
            workspace = services.tool_context(item).workspace
            store = services.artifact_store
            missing = missing_references(item.inputs, workspace) if store is not None else []
            if store is not None and missing:  # made on another worker machine
                try:
                    await fetch_files(store, item.job_id, missing, workspace)
                except ArtifactStoreUnavailable as exc:
                    return Outcome(
                        job_id=item.job_id,
                        task_id=item.task_id,
                        attempt=item.attempt,
                        status="failed",
                        error=f"cannot fetch the results it needs: {exc}",
                        retryable=True,
                    )
            inputs = await asyncio.to_thread(load_inputs, item.inputs, workspace)
            item = item.model_copy(update={"inputs": inputs})
        policies = services.policies.for_item(item) if services.policies is not None else None

        async def run(one: WorkItem) -> Outcome:
            if policies is None:
                return await inner(one, reporter)
            assert services.policies is not None
            workspace = services.workspace_of(one)
            return await services.policies.run(
                one, policies, workspace, lambda held: inner(held, reporter)
            )

        if item.grant is not None:  # the attempt's share of its job's budgets
            with _budget.granted(item.grant):
                outcome = await run(item) if hooks is None else await hooks.run_task(item, run)
        else:
            outcome = await run(item) if hooks is None else await hooks.run_task(item, run)
        if may_spill(item, outcome):
            workspace = services.tool_context(item).workspace
            outcome = await asyncio.to_thread(spill_result, item, outcome, workspace)
        if outcome.artifacts and services.artifact_store is not None:
            # Before the outcome is reported: a recorded artifact can always be downloaded.
            workspace = services.tool_context(item).workspace
            outcome = await store_artifacts(services.artifact_store, item, outcome, workspace)
        return outcome

    return handle
