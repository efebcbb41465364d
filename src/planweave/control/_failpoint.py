"""Failpoints: a process that dies at a chosen moment, so fault tests can put a crash exactly
where the recovery code has to cope with it.

The one failpoint, ``after_commit``, kills the process (``os._exit(137)``, as SIGKILL would)
the first time a batch that assigns work is durable in the store and before any of that work
reaches the bus: the store then shows tasks out that no worker will ever get, the state that
adoption by another control plane (and, for a bus that lost items, the reconciler) must
repair. Nothing arms it but the ``planweave`` command line, from ``PLANWEAVE_FAILPOINT``, read
once at start; the engine itself reads no environment. Unarmed, the hook costs one attribute
read per flush.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Final, Literal, get_args

from planweave.errors import ConfigError

if TYPE_CHECKING:  # the command line arms it before any event loop or engine module loads
    import asyncio

    from planweave.control._pending import Pending

__all__ = ["FAILPOINT_EXIT_CODE", "Failpoint", "arm", "armed", "reached"]

Failpoint = Literal["after_commit"]
FAILPOINT_EXIT_CODE: Final = 137
"""The exit status of a process killed by a failpoint (that of a SIGKILL)."""

armed: Failpoint | None = None
"""The armed failpoint (``None``: none; the hook in ``GroupCommit`` checks this first)."""


def arm(name: str) -> None:
    """Arm the failpoint ``name`` for the rest of the process (``""``: disarm).

    Raises:
        ConfigError: ``name`` is no failpoint.
    """
    global armed
    names: tuple[Failpoint, ...] = get_args(Failpoint)
    if name == "":
        armed = None
        return
    for known in names:
        if name == known:
            armed = known
            return
    raise ConfigError(
        f"environment variable PLANWEAVE_FAILPOINT: expected one of {', '.join(names)}, "
        f"got {name!r}"
    )


async def reached(written: asyncio.Future[None] | None, pending: Pending) -> None:
    """A batch was handed to the store and its work is about to go out: with ``after_commit``
    armed and work in the batch, wait until the batch is durable, then die at once.

    A batch whose write fails does not fire it: the crash must follow a commit.
    """
    if armed != "after_commit" or written is None or not (pending.items or pending.late_items):
        return
    import asyncio

    with contextlib.suppress(Exception):
        await asyncio.shield(written)
    if written.cancelled() or written.exception() is not None:
        return
    tasks = ", ".join(
        sorted({f"{i.job_id}/{i.task_id}" for i in pending.items + pending.late_items})
    )
    os.write(2, f"planweave: failpoint after_commit: exiting before sending {tasks}\n".encode())
    os._exit(FAILPOINT_EXIT_CODE)
