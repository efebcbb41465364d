"""The commands a person gives a job, whichever process runs it: cancel, approve, reject; and
the tool calls waiting for a decision (mixed into ``Engine``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from planweave._approvals import PendingCall, decide, pending_calls
from planweave.errors import JobNotFound

if TYPE_CHECKING:
    from planweave.control.plane import ControlPlane
    from planweave.engine import Engine
    from planweave.state import JobState
    from planweave.store.base import Store

__all__ = ["CommandOps"]


class CommandOps:
    """``Engine.cancel``, ``approve``, ``reject`` and ``approvals``."""

    __slots__ = ()

    store: Store

    if TYPE_CHECKING:  # provided by ``Engine``
        plane: ControlPlane

        async def start(self) -> None: ...

    async def cancel(self, job_id: str, *, reason: str = "cancelled by the user") -> bool:
        """Cancel a job, whichever process runs it. Returns ``False`` if it already ended.

        A job this process runs is cancelled at once. So is a job nobody runs (its process
        died: no claim, an expired one, or a dead holder on this host): this process takes its
        claim and records the cancellation. A job another live process runs gets a command
        that its owner carries out within a fraction of a second; the command stays in the
        store until its effect is recorded, so it survives that owner's death and is carried
        out by whoever resumes the job.
        """
        await self.start()
        if await self.plane.cancel(job_id, reason=reason):
            return True
        state = await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        if state.terminal:
            return False
        cancelled = await self.plane.cancel_unowned(job_id, reason=reason)
        if cancelled is not None:
            return cancelled.status == "cancelled"
        await self.store.add_command(job_id, "cancel", {"reason": reason})
        return True

    async def approve(
        self, job_id: str, task_id: str, *, reason: str = "", by: str | None = None
    ) -> JobState:
        """Approve the tool call a task waits on: the task runs again and the call runs.

        Whichever process runs the job (see ``cancel``); ``by`` is recorded as who decided
        (default: the local user). Raises ``JobNotFound``, or ``UsageError`` when the task is
        not awaiting approval.
        """
        return await decide(
            cast("Engine", self), job_id, task_id, approved=True, by=by, reason=reason
        )

    async def reject(
        self, job_id: str, task_id: str, *, reason: str, by: str | None = None
    ) -> JobState:
        """Reject the tool call a task waits on: its agent reads ``rejected by <by>: <reason>``
        and carries on (a ``tool`` task fails with it). Raises as ``approve`` does."""
        return await decide(
            cast("Engine", self), job_id, task_id, approved=False, by=by, reason=reason
        )

    async def approvals(self, *, tenant: str | None = None) -> list[PendingCall]:
        """The tool calls waiting for a decision, across the running jobs (of ``tenant``)."""
        await self.start()
        found: list[PendingCall] = []
        for job in await self.store.list_jobs(status="running", tenant=tenant, limit=10_000):
            state = self.plane.job(job.job_id) or await self.store.load_job(job.job_id)
            if state is not None and not state.terminal:
                found.extend(pending_calls(state))
        return found
