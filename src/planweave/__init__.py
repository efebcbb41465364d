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

from planweave.engine import Engine, JobResult
from planweave.errors import (
    ApprovalRequired,
    BudgetExceeded,
    ConfigError,
    JobBusy,
    JobFailed,
    JobNotFound,
    MissingDependency,
    ModelError,
    ModelUnavailable,
    PlanInvalid,
    PlanweaveError,
    PolicyViolation,
    RetryTask,
    RunError,
    Signal,
    ToolError,
    UnknownBackend,
    UsageError,
)
from planweave.events import Event, JobOptions, Usage, parse_event
from planweave.plan import Plan, TaskSpec, load_plan_file, validate_plan
from planweave.tools import Tool, ToolContext, tool

__version__ = "0.1.0"

__all__ = [
    "ApprovalRequired",
    "BudgetExceeded",
    "ConfigError",
    "Engine",
    "Event",
    "JobBusy",
    "JobFailed",
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
    "RetryTask",
    "RunError",
    "Signal",
    "TaskSpec",
    "Tool",
    "ToolContext",
    "ToolError",
    "UnknownBackend",
    "Usage",
    "UsageError",
    "__version__",
    "load_plan_file",
    "parse_event",
    "tool",
    "validate_plan",
]
