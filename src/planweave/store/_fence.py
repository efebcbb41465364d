"""The fences of a batch, shared by every store: its owner, and jobs refused for bad data.

A batch that names an owner is written only if that owner holds the claim of every job it
touches; the jobs it creates (``new_jobs``) may be unclaimed. Each store supplies how it looks up
a job's current owner (one indexed lookup, cached for the rest of its transaction).

A batch refused because a job's data cannot be stored (``JobDataInvalid``) leaves that job's
log short of the events it held; batches queued after it carry the job's later events, which
would leave a gap. ``Refusals`` remembers such jobs and refuses their later batches too, until a
batch carries the job on from its last stored event again (its owner failing it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from planweave.store.base import Batch

__all__ = ["Refusals", "unheld_jobs"]


def unheld_jobs(batch: Batch, owner: str, owner_of: Callable[[str], str | None]) -> list[str]:
    """Ids of the jobs of ``batch`` that ``owner`` may not write, in the order first met.

    ``owner_of(job_id)`` is the job's claimed owner (expired or not), ``None`` when unclaimed.
    A job of ``new_jobs`` is refused only when another owner claims it; any other job the batch
    has a row, task, event or artifact of must be claimed by ``owner``.
    """
    lost: list[str] = []
    checked: set[str] = set()
    for job_id in batch.new_jobs:
        checked.add(job_id)
        held = owner_of(job_id)
        if held is not None and held != owner:
            lost.append(job_id)
    for source in (batch.jobs, batch.tasks):
        for row in source:
            job_id = row["job_id"]
            if job_id not in checked:
                checked.add(job_id)
                if owner_of(job_id) != owner:
                    lost.append(job_id)
    for items in (batch.events, batch.artifacts, batch.steps):
        for item in items:
            job_id = item.job_id
            if job_id not in checked:
                checked.add(job_id)
                if owner_of(job_id) != owner:
                    lost.append(job_id)
    for job_id, _ in batch.steps_cleared:
        if job_id not in checked:
            checked.add(job_id)
            if owner_of(job_id) != owner:
                lost.append(job_id)
    return lost


def _touched(batch: Batch) -> Iterator[str]:
    for source in (batch.jobs, batch.tasks):
        for row in source:
            yield row["job_id"]
    for items in (batch.events, batch.artifacts):
        for item in items:
            yield item.job_id


class Refusals:
    """Jobs whose data a store refused, each with the first event of the refused batch."""

    __slots__ = ("_first",)

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._first)

    def refuse(self, batch: Batch, job_ids: Iterator[str] | tuple[str, ...]) -> None:
        """Remember that ``batch`` was refused for the data of ``job_ids``."""
        for job_id in job_ids:
            seqs = [e.seq for e in batch.events if e.job_id == job_id]
            first = min(seqs) if seqs else sys.maxsize
            self._first[job_id] = min(first, self._first.get(job_id, sys.maxsize))

    def check(self, batch: Batch) -> dict[str, str]:
        """The refused jobs ``batch`` would go on writing past their gap, with why.

        A batch whose events of a refused job start at or before the refused batch's first one
        carries the job on from its stored state: that job is no longer refused.
        """
        first = self._first
        if not first:
            return {}
        refused = {j for j in _touched(batch) if j in first}
        if not refused:
            return {}
        for event in batch.events:
            job_id = event.job_id
            if job_id in refused and event.seq <= first[job_id]:
                refused.discard(job_id)
                del first[job_id]
        return {
            j: "an earlier batch of this job was refused, so its log would have a gap"
            for j in refused
        }
