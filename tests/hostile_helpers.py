"""Isolated tools for tests/test_hostile_tools.py: at the top level of a module of their own, so
the tool worker process imports them by name (and not the whole test module)."""

from __future__ import annotations

import os

from planweave.errors import PolicyViolation, RetryTask
from planweave.tools import ToolContext, tool


@tool(timeout_s=0.5, isolated=True)
def spin(n: int) -> int:
    """Add up the numbers below n in one C call, holding the GIL throughout.

    Args:
        n: How many numbers.
    """
    return sum(range(n))


@tool(isolated=True)
def misbehave(how: str, ctx: ToolContext) -> str:
    """Misbehave in the way asked.

    Args:
        how: "print", "exit", "policy", "retry" or "context".
    """
    if how == "print":
        print("noise on stdout")  # must not corrupt the reply
        return "printed"
    if how == "exit":
        os._exit(3)
    if how == "policy":
        raise PolicyViolation("not allowed here")
    if how == "retry":
        raise RetryTask("later", delay_s=2.5)
    return f"{ctx.job_id}:{ctx.task_id}:{ctx.workspace.name}:{ctx.model is None}"
