"""planweave: turn a goal into a plan DAG and carry it out, durably and visibly.

Quick start::

    from planweave import Engine, tool

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two integers.\"\"\"
        return a + b

    engine = Engine(store="sqlite:///jobs.db", model="openai:gpt-4o-mini", tools=[add])
    result = await engine.run("What is 2+3, then squared?")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planweave._lazy import lazy_exports as _lazy_exports
from planweave.errors import (
    ApprovalRequired,
    BudgetExceeded,
    ConfigError,
    HookVeto,
    JobBusy,
    JobNotFound,
    MissingDependency,
    ModelError,
    ModelUnavailable,
    PlanInvalid,
    PlanweaveError,
    PolicyViolation,
    QuotaExceeded,
    RetryTask,
    RunError,
    Signal,
    ToolError,
    UnknownBackend,
    UsageError,
)

if TYPE_CHECKING:
    from planweave._quotas import TenantQuotas
    from planweave.engine import Engine, JobResult
    from planweave.events import Event, JobOptions, Usage, parse_event
    from planweave.hooks import Hook, hook
    from planweave.plan import Plan, TaskSpec, load_plan_file, validate_plan
    from planweave.tools import Tool, ToolContext, tool

# Imported on first use, so that ``import planweave.cli`` (and ``planweave --help``) does not
# pay for the engine, its pydantic models and its optional backends.
_LAZY: dict[str, str] = {
    "Engine": "planweave.engine",
    "JobResult": "planweave.engine",
    "Event": "planweave.events",
    "JobOptions": "planweave.events",
    "Usage": "planweave.events",
    "parse_event": "planweave.events",
    "Plan": "planweave.plan",
    "TaskSpec": "planweave.plan",
    "load_plan_file": "planweave.plan",
    "validate_plan": "planweave.plan",
    "Tool": "planweave.tools",
    "ToolContext": "planweave.tools",
    "tool": "planweave.tools",
    "TenantQuotas": "planweave._quotas",
    "Hook": "planweave.hooks",
    "hook": "planweave.hooks",
}


__getattr__, __dir__ = _lazy_exports("planweave", _LAZY, globals())


__version__ = "0.1.0"

__all__ = [
    "ApprovalRequired",
    "BudgetExceeded",
    "ConfigError",
    "Engine",
    "Event",
    "Hook",
    "HookVeto",
    "JobBusy",
    "JobNotFound",
    "JobOptions",
    "JobResult",
    "MissingDependency",
    "ModelError",
    "ModelUnavailable",
    "Plan",
    "PlanInvalid",
    "PlanweaveError",
    "PolicyViolation",
    "QuotaExceeded",
    "RetryTask",
    "RunError",
    "Signal",
    "TaskSpec",
    "TenantQuotas",
    "Tool",
    "ToolContext",
    "ToolError",
    "UnknownBackend",
    "Usage",
    "UsageError",
    "__version__",
    "hook",
    "load_plan_file",
    "parse_event",
    "tool",
    "validate_plan",
]
