"""Whether a job's claim still means someone drives the job.

A claim is a lease in the store. It stops meaning anything when it expires, and also, sooner,
when the process that holds it is plainly gone: the claim records its host and pid, so a process
on the same host can check that pid and take over a job whose owner was killed (``kill -9``)
without waiting for the lease to run out.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planweave.store.base import Claim

__all__ = ["holder_gone", "this_host"]


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
