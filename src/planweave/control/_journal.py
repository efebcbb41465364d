"""The control plane's side of the step journal (``planweave._journal``).

Workers never write the store: a worker reports each completed model or tool call of a task as
a ``StepReport`` on the plane's reply queue, and the plane that owns the job writes it in its
group commit and answers with a ``StepAck`` once it is durable (the worker waits for that
before its next call). A report from an attempt that is not the task's current one is refused,
as its outcome would be. The plane keeps the journal of each task it runs in memory (read from
the store when it adopts a job), hands it out with the task's next work item, and forgets it,
in the store too, once an attempt reports its end: a task that failed is tried again live, not
replayed into the same failure. An attempt that ended without an outcome (its process died, or
its worker: the item is delivered again) keeps its journal for the run that carries it on.
"""

from __future__ import annotations

import time

from planweave._journal import JournalStep
from planweave.control._pending import Pending
from planweave.messages import Outcome, StepAck, StepReport
from planweave.state import JobState
from planweave.store.base import StepRow, Store

__all__ = ["PlaneJournal"]


class PlaneJournal:
    """The journals of the tasks a plane runs, by job and task."""

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: dict[str, dict[str, dict[str, JournalStep]]] = {}

    async def load(self, store: Store, job_id: str) -> None:
        """Read a job's journals from the store (when the plane takes the job over)."""
        found = await store.read_steps(job_id)
        tasks: dict[str, dict[str, JournalStep]] = {}
        for row in found:
            tasks.setdefault(row.task_id, {})[row.step] = JournalStep(
                step=row.step,
                kind="model" if row.kind == "model" else "tool",
                fingerprint=row.fingerprint,
                result=row.result,
                attempt=row.attempt,
            )
        if tasks:
            self._steps[job_id] = tasks
        else:
            self._steps.pop(job_id, None)

    def steps_of(self, job_id: str, task_id: str) -> tuple[JournalStep, ...]:
        """A task's journal, in step order."""
        tasks = self._steps.get(job_id)
        steps = tasks.get(task_id) if tasks is not None else None
        if not steps:
            return ()
        return tuple(steps[key] for key in sorted(steps, key=_order))

    def on_report(self, state: JobState, report: StepReport, pending: Pending) -> bool:
        """Journal a reported step (answered once the batch is durable), or refuse it.
        Returns whether it was accepted."""
        task = state.tasks.get(report.task_id)
        current = (
            not state.terminal
            and task is not None
            and task.status == "running"
            and task.attempt == report.attempt
        )
        ack = {"job_id": report.job_id, "task_id": report.task_id, "attempt": report.attempt}
        step = report.step
        if not current:
            answer = StepAck(**ack, step=step.step if step else None, accepted=False)
        elif step is None:
            answer = StepAck(**ack, steps=self.steps_of(state.id, report.task_id))
        else:
            step = step.model_copy(update={"attempt": report.attempt})
            tasks = self._steps.setdefault(state.id, {})
            tasks.setdefault(report.task_id, {})[step.step] = step
            pending.steps.append(
                StepRow(
                    job_id=state.id,
                    task_id=report.task_id,
                    step=step.step,
                    attempt=report.attempt,
                    kind=step.kind,
                    fingerprint=step.fingerprint,
                    result=step.result,
                    at=time.time(),
                )
            )
            answer = StepAck(**ack, step=step.step)
        pending.step_acks.append((report.ack_to, answer))
        return current

    def refuse(self, report: StepReport, pending: Pending) -> None:
        """Answer a report of a job this plane does not run: refused."""
        answer = StepAck(
            job_id=report.job_id,
            task_id=report.task_id,
            attempt=report.attempt,
            step=report.step.step if report.step else None,
            accepted=False,
        )
        pending.step_acks.append((report.ack_to, answer))

    def on_outcome(self, outcome: Outcome, pending: Pending) -> None:
        """An accepted outcome ended the attempt: forget its task's journal (a task that failed
        is tried again live, not replayed into the same failure). An attempt that stopped for
        want of budget, or at a call waiting for approval, keeps it: the run after the grant or
        the decision replays it."""
        if outcome.error_type == "budget_needed" or outcome.status == "awaiting_approval":
            return
        tasks = self._steps.get(outcome.job_id)
        if tasks is not None and tasks.pop(outcome.task_id, None) is not None:
            pending.steps_cleared.append((outcome.job_id, outcome.task_id))
            if not tasks:
                del self._steps[outcome.job_id]

    def on_job_end(self, job_id: str, pending: Pending) -> None:
        """A job ended: its journals are of no more use (written with the job's end)."""
        tasks = self._steps.pop(job_id, None)
        if tasks:
            pending.steps_cleared.extend((job_id, task_id) for task_id in tasks)

    def forget(self, job_id: str) -> None:
        """Stop keeping a job's journals in memory (the store keeps them)."""
        self._steps.pop(job_id, None)


def _order(step: str) -> tuple[int, ...]:
    return tuple(int(part) for part in step.split(".") if part.isdigit())
