"""The owner fence of a batch, shared by every store.

A batch that names an owner is written only if that owner holds the claim of every job it
touches; the jobs it creates (``new_jobs``) may be unclaimed. Each store supplies how it looks up
a job's current owner (one indexed lookup, cached for the rest of its transaction).
"""

from __future__ import annotations

from collections.abc import Callable

from planweave.store.base import Batch

__all__ = ["unheld_jobs"]


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
    for items in (batch.events, batch.artifacts):
        for item in items:
            job_id = item.job_id
            if job_id not in checked:
                checked.add(job_id)
                if owner_of(job_id) != owner:
                    lost.append(job_id)
    return lost
