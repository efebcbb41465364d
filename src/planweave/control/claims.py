"""Claims on jobs: who drives a job, and the commands other processes leave for it.

A claim is a lease in the store. It stops meaning anything when it expires, and also, sooner,
when the process that holds it is plainly gone: the claim records its host and pid, so a process
on the same host can check that pid and take over a job whose owner was killed (``kill -9``)
without waiting for the lease to run out.

A control plane keeps its claims in a ``Claims``: taken in the transaction that creates a job (or
here, on adoption), renewed every third of the lease, released on any stop. Commands (a cancel
from another process) are taken in once each, and deleted by the batch that records their
effect.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from planweave.errors import ClaimLost

if TYPE_CHECKING:
    from planweave.store.base import Claim, Store

__all__ = ["Claims", "holder_gone", "this_host"]

log = logging.getLogger("planweave.control")


class Claims:
    """The claims one control plane (``owner``) holds, and the commands left for its jobs."""

    def __init__(
        self, store: Store, owner: str, *, lease_s: float, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self.owner = owner
        self.lease_s = lease_s
        self._clock = clock
        self.renewed_at = clock()
        """When the claims held here were last confirmed by a renewal (or none was held)."""
        # Commands taken in whose effect is not yet durable, so none is taken twice.
        self._commands_seen: set[int] = set()

    async def take(self, job_id: str, *, force: bool = False) -> bool:
        """Take a job's claim; at once (forced) when its holder is a dead process on this host."""
        store = self._store
        if await store.claim_job(job_id, self.owner, lease_s=self.lease_s, force=force):
            return True
        if holder_gone(await store.read_claim(job_id)):
            return await store.claim_job(job_id, self.owner, lease_s=self.lease_s, force=True)
        return False

    async def take_if_free(self, job_id: str) -> bool:
        """Take a job's claim only when nobody drives the job (``holder_gone``)."""
        return holder_gone(await self._store.read_claim(job_id)) and await self.take(job_id)

    async def release(self, job_id: str) -> None:
        """Give a job's claim back (when it is still ours), so another process may take it."""
        with contextlib.suppress(Exception):
            await self._store.release_job(job_id, self.owner)

    def unsure(self, now: float) -> bool:
        """Whether the claims may have been lost: not renewed for a whole lease (this process
        was frozen, or the store unreachable)."""
        return now - self.renewed_at > self.lease_s

    async def renew(self, job_ids: Iterable[str]) -> list[tuple[str, ClaimLost]]:
        """Renew these jobs' claims; return the ones lost, each with its error.

        A claim that is no longer this plane's (another process took it, and may have finished
        and released it since) is lost even when it could be taken again: the job has moved on
        without this plane, whose state of it is stale.
        """
        store = self._store
        lost: list[tuple[str, ClaimLost]] = []
        for job_id in job_ids:
            error = ClaimLost((job_id,))
            try:
                claim = await store.read_claim(job_id)
                held = claim is not None and claim.owner == self.owner
                held = held and await store.claim_job(job_id, self.owner, lease_s=self.lease_s)
            except ClaimLost as exc:
                held, error = False, exc
            if not held:
                lost.append((job_id, error))
        return lost

    def take_command(self, command_id: int) -> bool:
        """Take in a command once: ``False`` when it was taken in and its effect is not yet
        written."""
        if command_id in self._commands_seen:
            return False
        self._commands_seen.add(command_id)
        return True

    def settled(self, command_ids: Iterable[int]) -> None:
        """These commands' batch was written (or failed): forget them."""
        self._commands_seen.difference_update(command_ids)


@functools.cache
def this_host() -> str:
    """This machine's host name, as the store records it with a claim."""
    return socket.gethostname()


def holder_gone(claim: Claim | None) -> bool:
    """Whether nobody drives the job: no claim, an expired one, or a dead holder on this host.

    A holder on another host is taken to be alive until its lease expires: its pid means nothing
    here.
    """
    if claim is None or claim.expired:
        return True
    if claim.host != this_host() or claim.pid <= 0:
        return False
    return not _alive(claim.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
