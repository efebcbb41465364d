"""Reconciling: the store, not the bus, decides what must run.

On a bus that can lose what it accepted (a Redis server restarted without persistence), a work
item the store shows as out (its task ``running``, its attempt current) may no longer be on the
bus, and nothing would ever run it: no worker holds it, so no lease expires and no redelivery
comes. An item that could not be sent at all (the bus was down when it was dispatched) is in the
same state. The control plane keeps, per task it has out, the item and the id the bus gave it,
and every ``reconcile_s`` asks the bus where those ids are (``Bus.locate``). An item missing on
two checks in a row is sent again, same attempt: the worker that may still run the first copy
and the one that runs the new copy both report, and the attempt number makes only the first
outcome count. Two checks, not one, because an item is also missing for the moment between a
worker's acknowledgement and the plane's reading of that worker's outcome.

An item found in the dead-letter list was delivered ``max_deliveries`` times without an outcome
(each holder died or stalled past its lease, as with a task that kills its worker): its task
fails for good, with that reason, and the letter stays listed for people to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

from planweave.bus.base import Bus
from planweave.constants import QUEUE_PREFIX
from planweave.messages import WorkItem

__all__ = ["Reconciler"]


@dataclass(slots=True)
class _Out:
    item: WorkItem
    message_id: str | None  # None: the send failed
    missed: int = 0


class Reconciler:
    """The work items a control plane has out on a bus that may lose them."""

    __slots__ = ("_out", "resent")

    def __init__(self) -> None:
        self._out: dict[tuple[str, str], _Out] = {}
        self.resent = 0

    def __len__(self) -> int:
        return len(self._out)

    def sent(self, item: WorkItem, message_id: str | None) -> None:
        """``item`` went out as ``message_id`` (``None``: sending it failed)."""
        self._out[(item.job_id, item.task_id)] = _Out(item, message_id)

    def ended(self, job_id: str, task_ids: list[str]) -> None:
        """These tasks' attempts are over: nothing of theirs is out any more."""
        out = self._out
        for task_id in task_ids:
            out.pop((job_id, task_id), None)

    def forget_job(self, job_id: str) -> None:
        for key in [key for key in self._out if key[0] == job_id]:
            del self._out[key]

    async def check(self, bus: Bus) -> tuple[list[WorkItem], list[WorkItem]]:
        """``(lost, dead)``: the items missing from the bus on this check and the one before
        (to send again), and the items in a dead-letter list (their tasks fail).

        Raises what the bus raises (it is down): the caller tries again on its next check.
        """
        by_queue: dict[str, list[_Out]] = {}
        for entry in self._out.values():
            by_queue.setdefault(QUEUE_PREFIX + entry.item.worker, []).append(entry)
        lost: list[WorkItem] = []
        dead: list[WorkItem] = []
        for queue, entries in by_queue.items():
            ids = [e.message_id for e in entries if e.message_id is not None]
            places = await bus.locate(queue, ids) if ids else {}
            for entry in entries:
                place = places.get(entry.message_id) if entry.message_id is not None else None
                if place == "dead":
                    dead.append(entry.item)
                elif place is not None:
                    entry.missed = 0
                else:
                    entry.missed += 1
                    if entry.missed >= 2 or entry.message_id is None:
                        lost.append(entry.item)
        for item in dead:
            self._out.pop((item.job_id, item.task_id), None)
        self.resent += len(lost)
        return lost, dead
