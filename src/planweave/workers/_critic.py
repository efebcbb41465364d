"""The critic worker: checks a task's candidate answer and reports the verdict as its outcome.

The control plane sends a task here (a work item of the ``critic`` kind, with the answer as
``candidate``) when a critic must check it; the outcome's result is the verdict
(``{"verdict", "feedback", "model"}``) and its usage what the critic's model calls spent. The
decider turns it into a ``CriticVerdict`` event and what follows from it.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from planweave.critic import CriticRegistry, CriticTask, as_verdict
from planweave.events import LlmCalled, PolicyDenied, ToolCalled, Usage
from planweave.messages import Outcome, WorkItem
from planweave.workers._results import has_references, load_inputs
from planweave.workers.pool import Handler, Reporter

if TYPE_CHECKING:
    from planweave.workers.handlers import WorkerServices

__all__ = ["critic_handler"]


def critic_handler(services: WorkerServices) -> Handler:
    """The handler of ``critic`` work items."""
    from planweave.workers.handlers import _guard, _ok

    async def handle(item: WorkItem, reporter: Reporter) -> Outcome:
        async def run() -> Outcome:
            spec = item.spec
            name = spec.critic if isinstance(spec.critic, str) else "llm"
            registry = services.critics or CriticRegistry()
            function = registry.get(name)
            candidate = item.candidate
            if has_references({"candidate": candidate}):  # an answer moved to a file
                workspace = services.tool_context(item).workspace
                loaded = await asyncio.to_thread(load_inputs, {"candidate": candidate}, workspace)
                candidate = loaded["candidate"]
            task = CriticTask(
                job_id=item.job_id,
                task_id=item.task_id,
                goal=spec.goal,
                job_goal=item.job_goal,
                inputs=item.inputs,
                feedback=spec.feedback,
            )
            if function is None:
                from planweave.critic._llm import llm_review

                spent: list[Usage] = []

                async def emit(event: LlmCalled | ToolCalled | PolicyDenied) -> None:
                    if isinstance(event, LlmCalled):
                        spent.append(
                            Usage(
                                tokens_in=event.tokens_in,
                                tokens_out=event.tokens_out,
                                cost_usd=event.cost_usd,
                                llm_calls=1,
                            )
                        )
                    await reporter(event)

                ctx = await services.agent_context(item, reporter)
                ctx = replace(ctx, emit=emit)
                verdict = await llm_review(ctx, task, candidate)
                usage = sum(spent, Usage())
                result: dict[str, Any] = {
                    "verdict": verdict.verdict,
                    "feedback": verdict.feedback,
                    "model": ctx.model.name,
                }
                return _ok(item, result=result, usage=usage)
            value = function(task, candidate)
            if inspect.isawaitable(value):
                value = await value
            verdict = as_verdict(value, critic=name)
            return _ok(
                item,
                result={"verdict": verdict.verdict, "feedback": verdict.feedback, "model": None},
            )

        return await _guard(item, run)

    return handle
