"""Commands other processes leave for a job's owner: cancel it, approve or reject a call.

A process that does not drive a job (a CLI, another API replica) cannot change its state: it
leaves a command in the store (``Store.add_command``), and the plane that owns the job carries
it out through the decider. A command is deleted by the batch that records its effect, so it
survives the owner's death and is carried out by whoever resumes the job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from planweave.control import decider
from planweave.errors import UsageError
from planweave.store.base import Command

if TYPE_CHECKING:
    from planweave.control.plane import ControlPlane

__all__ = ["APPROVE", "CANCEL", "REJECT", "apply_commands"]

log = logging.getLogger("planweave.control")

CANCEL = "cancel"
APPROVE = "approve"
REJECT = "reject"


def apply_commands(plane: ControlPlane, commands: list[Command]) -> None:
    """Carry out commands left for jobs ``plane`` drives; each is deleted by the batch that
    records its effect (``Batch.commands_done``), so none is forgotten without effect."""
    for command in commands:
        state = plane._jobs.get(command.job_id)
        if state is None or not plane._claims.take_command(command.id):
            continue
        plane._pending.commands_done.append((state.id, command.id))
        plane._pending.dirty_jobs.add(state.id)
        args = command.args
        if command.name == CANCEL:
            reason = str(args.get("reason", "cancelled"))
            plane._take(state, decider.cancel(state, reason=reason, now=plane._clock()))
        elif command.name in (APPROVE, REJECT):
            try:
                decision = decider.decide_approval(
                    state,
                    str(args.get("task", "")),
                    approved=command.name == APPROVE,
                    by=str(args.get("by", "")),
                    reason=str(args.get("reason", "")),
                    now=plane._clock(),
                )
            except UsageError as exc:  # decided meanwhile, or the job moved on
                log.warning(
                    "control plane: %s of job %s not carried out: %s", command.name, state.id, exc
                )
                continue
            plane._take(state, decision)
        else:
            log.warning("control plane: unknown command %r for job %s", command.name, state.id)
