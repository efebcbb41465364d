"""Hooks: the one seam for cross-cutting behaviour (logging, metrics, tracing, redaction,
guardrails, your own code).

A hook runs at named points (before and after each model call, tool call, task and workflow
step; when a job starts and ends), sees a typed, frozen context, and may observe it, return a
changed copy, or refuse with :class:`~planweave.errors.HookVeto`. Register hooks on the engine
(``Engine(hooks=[...])``), on an agent (``ReactAgent(..., hooks=[...])``) or for some jobs
(``Engine(job_hooks=[...])`` with ``JobOptions(hooks=("name",))``); worker processes load them
by import path (``planweave worker --hook module:obj``, ``PLANWEAVE_HOOKS``).

The built-in hooks (:class:`JsonLogHook`, :class:`MetricsHook`, :class:`TracingHook`,
:class:`RedactionHook`) import their dependencies only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planweave._lazy import lazy_exports as _lazy_exports
from planweave.errors import HookVeto
from planweave.hooks._active import active_hooks, run_step_hooks, using_hooks, with_agent_hooks
from planweave.hooks._contexts import (
    AfterModelCall,
    AfterStep,
    AfterTask,
    AfterToolCall,
    BeforeModelCall,
    BeforeStep,
    BeforeTask,
    BeforeToolCall,
    HookContext,
    HookPoint,
    JobEnd,
    JobStart,
)
from planweave.hooks._hook import POINTS, FunctionHook, Hook, HookFunction, HookSet, hook
from planweave.hooks._loading import load_hooks
from planweave.hooks._registry import HookRegistry, TraceSource

if TYPE_CHECKING:
    from planweave.hooks.jsonlog import JsonLogHook
    from planweave.hooks.metrics import MetricsHook
    from planweave.hooks.redaction import RedactionHook, Redactor
    from planweave.hooks.tracing import TracingHook

_LAZY: dict[str, str] = {
    "JsonLogHook": "planweave.hooks.jsonlog",
    "MetricsHook": "planweave.hooks.metrics",
    "RedactionHook": "planweave.hooks.redaction",
    "Redactor": "planweave.hooks.redaction",
    "TracingHook": "planweave.hooks.tracing",
}

__getattr__, __dir__ = _lazy_exports("planweave.hooks", _LAZY, globals())

__all__ = [
    "POINTS",
    "AfterModelCall",
    "AfterStep",
    "AfterTask",
    "AfterToolCall",
    "BeforeModelCall",
    "BeforeStep",
    "BeforeTask",
    "BeforeToolCall",
    "FunctionHook",
    "Hook",
    "HookContext",
    "HookFunction",
    "HookPoint",
    "HookRegistry",
    "HookSet",
    "HookVeto",
    "JobEnd",
    "JobStart",
    "JsonLogHook",
    "MetricsHook",
    "RedactionHook",
    "Redactor",
    "TraceSource",
    "TracingHook",
    "active_hooks",
    "hook",
    "load_hooks",
    "run_step_hooks",
    "using_hooks",
    "with_agent_hooks",
]
