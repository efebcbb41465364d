"""Guardrails on what a job's agents and tools may do: the policy gate.

Rules are plain data (:class:`Policy`), written in ``planweave.toml`` (``[policy]``), in Python
(``Engine(policy=Policy(...))``) or in a job's options (``JobOptions.policy``). They are
checked before every tool call (the built-in ``policy`` hook: a refused call comes back to the
agent as an observation naming the rule, and is a ``PolicyDenied`` event), on every connection
a network tool makes (the egress allowlist, enforced by the SSRF guard), and on every task
result (content rules). See ``docs/policy.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planweave._lazy import lazy_exports as _lazy_exports
from planweave.policy._rules import AgentRules, ArgRule, OutputRule, Policy, ToolRules

if TYPE_CHECKING:
    from planweave.policy._check import CompiledPolicy, Denial, PolicySet
    from planweave.policy._task import PolicyHook, TaskPolicies, offered_tools

_LAZY: dict[str, str] = {
    "CompiledPolicy": "planweave.policy._check",
    "Denial": "planweave.policy._check",
    "PolicySet": "planweave.policy._check",
    "PolicyHook": "planweave.policy._task",
    "TaskPolicies": "planweave.policy._task",
    "offered_tools": "planweave.policy._task",
}

__getattr__, __dir__ = _lazy_exports("planweave.policy", _LAZY, globals())

__all__ = [
    "AgentRules",
    "ArgRule",
    "CompiledPolicy",
    "Denial",
    "OutputRule",
    "Policy",
    "PolicyHook",
    "PolicySet",
    "TaskPolicies",
    "ToolRules",
    "offered_tools",
]
