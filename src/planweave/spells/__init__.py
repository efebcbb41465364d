"""Spells: scripts in an embedded language that drive models, tools and agents through the host.

A spell runs sandboxed, with limits on instructions, memory, wall time and host calls; the
only way out of the sandbox is a host call, which the engine carries out (so a tool's
workspace confinement and network guard, and the job's policy and budget, still apply).
"""

from __future__ import annotations

from planweave.spells._agent import SpellAgent, run_spell
from planweave.spells._errors import SpellError, SpellLimitExceeded, SpellSyntaxError
from planweave.spells._host import OPS, OpFn, SpellHost, host_op
from planweave.spells._isolated import run_isolated, run_script
from planweave.spells._js import JsLimits, run_js
from planweave.spells._lua import HostCall, LuaLimits, run_lua

__all__ = [
    "OPS",
    "HostCall",
    "JsLimits",
    "LuaLimits",
    "OpFn",
    "SpellAgent",
    "SpellError",
    "SpellHost",
    "SpellLimitExceeded",
    "SpellSyntaxError",
    "host_op",
    "run_isolated",
    "run_js",
    "run_lua",
    "run_script",
    "run_spell",
]
