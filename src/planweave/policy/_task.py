"""How a worker holds a task to its job's policies: the built-in ``policy`` hook at
``before_tool_call``, the tools its agent is offered, and the check of its result.

The worker puts the task's policies in force for the time the task runs (a context variable,
as hooks are), so every tool call of the task, whoever makes it, meets the hook, and an agent
asks which tools it may offer its model without being handed anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planweave.errors import PolicyVeto
from planweave.hooks._active import using_hooks
from planweave.hooks._contexts import BeforeToolCall
from planweave.hooks._hook import Hook, HookSet
from planweave.policy._check import CompiledPolicy, PolicySet
from planweave.policy._rules import Policy

if TYPE_CHECKING:
    from planweave.messages import Outcome, WorkItem

__all__ = ["POLICY_HOOK", "PolicyHook", "TaskPolicies", "active_policies", "offered_tools"]

_ACTIVE: ContextVar[tuple[PolicySet, Path | None] | None] = ContextVar(
    "planweave_policy", default=None
)


def active_policies() -> PolicySet | None:
    """The policies the running task is held to (``None``: none)."""
    active = _ACTIVE.get()
    return None if active is None else active[0]


def offered_tools(agent: str | None, names: Iterable[str]) -> list[str]:
    """Those of ``names`` the running task's policies let ``agent`` call (all without any)."""
    active = _ACTIVE.get()
    if active is None or not active[0].checks_calls:
        return list(names)
    policies = active[0]
    return [name for name in names if policies.offers(agent, name)]


class PolicyHook(Hook):
    """Refuses, before it runs, every tool call the running task's policies deny; the agent
    reads the refusal (which names the rule) as the call's result."""

    name = "policy"
    priority = -500  # after redaction (-1000), before the hooks of users

    async def before_tool_call(self, ctx: BeforeToolCall) -> None:
        active = _ACTIVE.get()
        if active is None:
            return
        policies, workspace = active
        denial = policies.call_denial(ctx.agent, ctx.name, ctx.args, workspace)
        if denial is not None:
            reason = f"denied by policy rule {denial.rule}: {denial.reason}"
            raise PolicyVeto(denial.rule, reason, call_args=ctx.args)


POLICY_HOOK = PolicyHook()
_ONLY_POLICY = HookSet([POLICY_HOOK])


class TaskPolicies:
    """The policies of the tasks one worker process runs: the engine's, and each job's own
    (compiled once per distinct job policy)."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.base = CompiledPolicy(policy) if policy else None
        self._alone = PolicySet([self.base]) if self.base is not None else None
        self._jobs: dict[str, PolicySet] = {}
        self._last: tuple[Policy, PolicySet] | None = None

    def for_item(self, item: WorkItem) -> PolicySet | None:
        """The policies ``item``'s task is held to (``None``: none)."""
        job = item.policy
        if job is None:
            return self._alone
        last = self._last
        if last is not None and last[0] is job:
            return last[1]
        key = job.model_dump_json()
        found = self._jobs.get(key)
        if found is None:
            own = CompiledPolicy(job, prefix="job.policy")
            found = PolicySet([self.base, own] if self.base is not None else [own])
            if len(self._jobs) >= 256:
                self._jobs.clear()
            self._jobs[key] = found
        self._last = (job, found)
        return found

    async def run(
        self,
        item: WorkItem,
        policies: PolicySet,
        workspace: Path | None,
        run: Callable[[WorkItem], Awaitable[Outcome]],
    ) -> Outcome:
        """Run one attempt held to ``policies``; a result a content rule refuses fails it."""
        token = _ACTIVE.set((policies, workspace))
        try:
            if policies.checks_calls:
                with using_hooks(_ONLY_POLICY):
                    outcome = await run(item)
            else:
                outcome = await run(item)
        finally:
            _ACTIVE.reset(token)
        if outcome.status != "succeeded" or not policies.checks_outputs or outcome.subtasks:
            return outcome
        denial = policies.output_denial(outcome.result)
        if denial is None:
            return outcome
        return _refused(item, outcome, denial.rule, denial.reason)


def _refused(item: WorkItem, outcome: Outcome, rule: str, reason: str) -> Outcome:
    from planweave.events import PolicyDenied
    from planweave.messages import Outcome

    event = PolicyDenied(
        job_id=item.job_id, task_id=item.task_id, point="output", rule=rule, reason=reason
    )
    fields: dict[str, Any] = {
        "status": "failed",
        "result": None,
        "error": reason,
        "error_type": "policy",
        "retryable": False,
        "artifacts": (),
        "calls": (*outcome.calls, event),
    }
    return Outcome.model_validate({**outcome.model_dump(), **fields})
