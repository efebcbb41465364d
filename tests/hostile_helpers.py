"""Isolated tools for tests/test_hostile_tools.py: at the top level of a module of their own, so
the tool worker process imports them by name (and not the whole test module)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from planweave.errors import PolicyViolation, RetryTask
from planweave.tools import ToolContext, tool


@tool(timeout_s=0.5, isolated=True)
def spin(n: int) -> int:
    """Add up the numbers below n in one C call, holding the GIL throughout.

    Args:
        n: How many numbers.
    """
    return sum(range(n))


@tool(timeout_s=60, isolated=True)
def hoard(mb: int) -> int:
    """Allocate ``mb`` megabytes, one at a time, and keep them all (each page is written).

    Args:
        mb: How many megabytes.
    """
    chunks = [bytearray(1 << 20) for _ in range(mb)]
    return len(chunks)


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


class Crunch:
    """A tool written to the ``Tool`` protocol, not with ``@tool``, that asks to be isolated."""

    name = "crunch"
    description = "Add up the numbers below n in one C call, or hold mb megabytes."
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "mb": {"type": "integer"}},
        "required": [],
        "additionalProperties": False,
    }
    timeout_s = 0.5
    isolated = True

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        held = bytearray(args.get("mb", 0) << 20)  # one allocation: refused at once
        return {
            "sum": sum(range(args.get("n", 0))),
            "pid": os.getpid(),
            "job": ctx.job_id,
            "held_mb": len(held) >> 20,
        }
