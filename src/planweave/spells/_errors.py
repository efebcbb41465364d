"""What a spell's failures look like to the host: typed errors with the script's own line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from planweave.errors import RunError, UsageError

if TYPE_CHECKING:
    from planweave.spells._lua import LuaLimits

__all__ = [
    "SpellError",
    "SpellLimitExceeded",
    "SpellNotFound",
    "SpellParamsInvalid",
    "SpellSyntaxError",
]

LimitKind = Literal["instructions", "memory", "wall_time", "host_calls", "cancelled"]


class SpellError(RunError):
    """A spell failed: the script raised an error (``main.lua:12: message``), or gave the host
    something it cannot take."""


class SpellSyntaxError(SpellError):
    """A spell's script does not compile; the message names the file and line."""


class SpellLimitExceeded(SpellError):
    """A spell went past one of its limits and was stopped.

    Attributes:
        limit: Which: ``instructions``, ``memory``, ``wall_time``, ``host_calls`` or
            ``cancelled``.
    """

    def __init__(self, limit: str, limits: LuaLimits | None = None) -> None:
        self.limit = limit
        detail = {
            "instructions": f"ran more than {limits.instructions:,} instructions"
            if limits
            else "ran too many instructions",
            "memory": f"used more than {limits.memory_bytes // (1024 * 1024)} MiB of memory"
            if limits
            else "used too much memory",
            "wall_time": f"ran longer than {limits.wall_s:g} s" if limits else "ran too long",
            "host_calls": f"made more than {limits.host_calls} host calls"
            if limits
            else "made too many host calls",
            "cancelled": "was cancelled",
        }.get(limit, f"went past its {limit} limit")
        super().__init__(f"the spell {detail} and was stopped")


class SpellParamsInvalid(UsageError):
    """A spell's parameters do not fit its ``spell.toml``: one is missing, unknown or of the
    wrong type. Nothing ran."""


class SpellNotFound(UsageError):
    """No spell of that name in the spell folders; the message lists the ones found."""
