"""The hooks one engine (or worker process) knows: those that always run, and those a job
names in ``JobOptions.hooks``; how a task, a job's start and its end run them.

Job options travel in events and work items, so they must be plain data: a job names the
hooks it wants, and every process that runs the job's tasks looks the names up in its own
registry (give every process of a cluster the same ``hooks`` and ``job_hooks`` settings).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from planweave.errors import HookVeto, Signal, UsageError
from planweave.hooks._active import _ACTIVE
from planweave.hooks._contexts import AfterTask, BeforeTask, JobEnd, JobStart
from planweave.hooks._hook import Hook, HookSet

if TYPE_CHECKING:
    from planweave.messages import Outcome, WorkItem
    from planweave.state import JobState

__all__ = ["HookRegistry", "TraceSource"]

log = logging.getLogger("planweave.hooks")


@runtime_checkable
class TraceSource(Protocol):
    """A hook that gives each work item of a job the trace context its worker continues."""

    def work_item_trace(self, job_id: str) -> str | None:
        """The W3C ``traceparent`` of the job's trace (``None``: none)."""
        ...


class HookRegistry:
    """Hooks by scope: ``hooks`` run for every job; ``job_hooks`` only for the jobs whose
    ``JobOptions.hooks`` names them.

    Raises:
        UsageError: two job hooks share a name.
    """

    def __init__(self, hooks: Iterable[Hook] = (), job_hooks: Iterable[Hook] = ()) -> None:
        self.always = HookSet(hooks)
        self.by_name: dict[str, Hook] = {}
        for one in job_hooks:
            if one.name in self.by_name and self.by_name[one.name] is not one:
                raise UsageError(f"two job hooks are named {one.name!r}: give each its own name")
            self.by_name[one.name] = one
        self._sets: dict[tuple[str, ...], HookSet] = {(): self.always}
        self._tracers = tuple(
            h for h in (*self.always.hooks, *self.by_name.values()) if isinstance(h, TraceSource)
        )

    def __bool__(self) -> bool:
        return bool(self.always) or bool(self.by_name)

    def close(self) -> None:
        """Close every hook (each once); a failing one is logged."""
        for one in dict.fromkeys((*self.always.hooks, *self.by_name.values())):
            try:
                one.close()
            except Exception:
                log.exception("closing hook %r failed", one.name)

    def check(self, names: Iterable[str]) -> None:
        """Refuse job hook names this registry does not hold.

        Raises:
            UsageError: naming the unknown hooks and the known ones.
        """
        unknown = sorted(set(names) - set(self.by_name))
        if unknown:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise UsageError(
                f"unknown job hook {', '.join(map(repr, unknown))}: the registered job hooks "
                f"are {known} (register them with Engine(job_hooks=...) or the job_hooks setting)"
            )

    def for_job(self, names: tuple[str, ...]) -> HookSet:
        """The hooks of a job that names ``names``."""
        found = self._sets.get(names)
        if found is None:
            self.check(names)
            found = self._sets[names] = self.always.extended(self.by_name[n] for n in names)
        return found

    def stamp(self, item: WorkItem) -> WorkItem:
        """The work item with its job's trace context (unchanged without a tracing hook)."""
        for tracer in self._tracers:
            trace = tracer.work_item_trace(item.job_id)
            if trace is not None:
                return item.model_copy(update={"trace": trace})
        return item

    async def run_task(
        self, item: WorkItem, run: Callable[[WorkItem], Awaitable[Outcome]]
    ) -> Outcome:
        """Run one attempt with its job's hooks in force (for its model and tool calls too):
        ``before_task``, the attempt, ``after_task`` (which also sees an attempt vetoed before
        it ran). A veto fails the attempt for good."""
        try:
            hooks = self.for_job(item.hooks)
        except UsageError as exc:
            return _vetoed(item, str(exc), error_type="usage")
        token = _ACTIVE.set(hooks)
        try:
            if not hooks.tasks:
                return await run(item)
            try:
                item = (await hooks.run("before_task", BeforeTask(item=item))).item
            except HookVeto as veto:
                outcome = _vetoed(item, str(veto))  # the after hooks see it (end spans, count)
            else:
                outcome = await run(item)
            try:
                after = await hooks.run("after_task", AfterTask(item=item, outcome=outcome))
            except HookVeto as veto:
                return _vetoed(item, str(veto), calls=outcome.calls)
            return after.outcome
        finally:
            _ACTIVE.reset(token)

    async def job_start(self, state: JobState, *, resumed: bool = False) -> None:
        """Run the ``job_start`` hooks of a job this process starts driving."""
        hooks = self._job_hooks(state)
        if hooks is not None and hooks.serves("job_start"):
            ctx = JobStart(job_id=state.id, goal=state.goal, options=state.options, resumed=resumed)
            await _observe(hooks, "job_start", ctx)

    async def job_end(self, state: JobState) -> None:
        """Run the ``job_end`` hooks of a job that ended here."""
        hooks = self._job_hooks(state)
        if hooks is not None and hooks.serves("job_end"):
            ctx = JobEnd(job_id=state.id, goal=state.goal, status=state.status, error=state.error)
            await _observe(hooks, "job_end", ctx)

    def _job_hooks(self, state: JobState) -> HookSet | None:
        try:
            return self.for_job(state.options.hooks)
        except UsageError as exc:
            log.error("job %s: %s", state.id, exc)
            return None


async def _observe(hooks: HookSet, point: str, ctx: JobStart | JobEnd) -> None:
    """Run observe-only hooks: a veto or a signal cannot stop a job from here, so it is logged."""
    try:
        if isinstance(ctx, JobStart):
            await hooks.run("job_start", ctx)
        else:
            await hooks.run("job_end", ctx)
    except (HookVeto, Signal) as exc:
        log.error("job %s: a %s hook raised %s, which cannot stop a job", ctx.job_id, point, exc)


def _vetoed(
    item: WorkItem, error: str, *, error_type: str = "vetoed", calls: tuple[object, ...] = ()
) -> Outcome:
    from planweave.messages import Outcome

    return Outcome.model_validate(
        {
            "job_id": item.job_id,
            "task_id": item.task_id,
            "attempt": item.attempt,
            "status": "failed",
            "error": error,
            "error_type": error_type,
            "retryable": False,
            "calls": calls,
        }
    )
