"""Names shared by every backend: tables, queues, topics, defaults. One place, so a rename is one edit."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1
"""Version of the wire format of events, work items and outcomes."""

STORE_SCHEMA_VERSION: Final = 2
"""Version of the SQL schema; migrations bring an older file up to it."""

# Tables (SQL stores).
TABLE_PREFIX: Final = "pw_"
TABLE_JOBS: Final = "pw_jobs"
TABLE_TASKS: Final = "pw_tasks"
TABLE_EVENTS: Final = "pw_events"
TABLE_ARTIFACTS: Final = "pw_artifacts"
TABLE_COMMANDS: Final = "pw_commands"
TABLE_CLAIMS: Final = "pw_claims"
TABLE_META: Final = "pw_meta"

# Bus names.
QUEUE_PREFIX: Final = "pw:work:"
OUTCOME_QUEUE_PREFIX: Final = "pw:outcomes:"
"""Each control plane receives its jobs' reports on its own queue: this prefix + its owner id
(work items name it in ``reply_to``), so two planes on one bus never take each other's reports."""
EVENT_TOPIC_ALL: Final = "pw:events"
CONTROL_TOPIC: Final = "pw:control"
"""Where the control plane announces jobs that ended, so workers drop their unfinished work."""
DLQ_SUFFIX: Final = ":dlq"

# Worker kinds: a work item goes to the queue of the worker kind that runs it.
WORKER_PLANNER: Final = "planner"
WORKER_EXECUTOR: Final = "executor"
WORKER_COMPOSER: Final = "composer"
WORKER_TOOL: Final = "tool"

# Statuses and the events that end a job: the one list of each (``state`` types them).
JOB_STATUSES: Final = ("running", "succeeded", "failed", "cancelled")
TASK_STATUSES: Final = ("pending", "ready", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
TERMINAL_EVENT_TYPES: Final = frozenset({"JobCompleted", "JobFailed", "JobCancelled"})
"""Event types that end a job (a retried job goes on past an earlier one)."""
ABANDON_EVENT_TYPES: Final = frozenset({"JobCancelled", "JobFailed"})
"""Job ends after which workers drop the job's unfinished work."""

# Defaults.
DEFAULT_LEASE_S: Final = 30.0
DEFAULT_MAX_DELIVERIES: Final = 5
DEFAULT_MAX_ATTEMPTS: Final = 3
DEFAULT_RETRY_BASE_S: Final = 0.5
DEFAULT_RETRY_MAX_S: Final = 30.0
DEFAULT_MAX_PLAN_DEPTH: Final = 2
DEFAULT_MAX_PLAN_TASKS: Final = 50
DEFAULT_MAX_USER_PLAN_TASKS: Final = 10_000
"""Largest plan a person may submit (``max_user_plan_tasks``); a planner's own plans are held
to the job option ``max_plan_tasks``."""
DEFAULT_MAX_JOB_TASKS: Final = 1_000
"""Most tasks one job may hold in all, its sub-plans' and replans' tasks included (the job
option ``max_job_tasks``): nested sub-plans cannot multiply without end."""
MAX_TASK_DEPENDENCIES: Final = 1_000
"""Most dependencies one task of a plan may list."""
MAX_TASK_GOAL_CHARS: Final = 20_000
"""Longest goal one task of a plan may have."""
MAX_PLAN_PROBLEMS: Final = 10
"""Problems of a plan listed in full (in errors and in a planner's repair prompt); the rest are
counted in one closing line."""
DEFAULT_MAX_AGENT_STEPS: Final = 8
DEFAULT_MAX_TOOL_CALLS_PER_STEP: Final = 16
"""Tool calls run from one model reply (the job option ``max_tool_calls_per_step``); the calls
past it are refused, and the model is told so."""
DEFAULT_MAX_TOOL_CALLS: Final = 64
"""Tool calls one task's agent may make in all (the job option ``max_tool_calls``); past it the
agent's tool calls are refused and it must answer."""
DEFAULT_MAX_JOB_TOKENS: Final = 2_000_000
"""Tokens (in + out) one job may spend on model calls by default (the job option
``max_tokens``); a user raises it explicitly. Local and scripted models cost $0, so this is the
ceiling that stops their runaway jobs."""
DEFAULT_MAX_COST_USD: Final = 5.0
"""Dollars one job may spend by default (the job option ``max_cost_usd``)."""
DEFAULT_TOOL_TIMEOUT_S: Final = 30.0
DEFAULT_MODEL_TIMEOUT_S: Final = 120.0
DEFAULT_CONCURRENCY: Final = {
    WORKER_PLANNER: 2,
    WORKER_EXECUTOR: 4,
    WORKER_COMPOSER: 2,
    WORKER_TOOL: 512,
}
"""Work items run at once per worker kind, by default (also the plane's in-flight limits)."""
DEFAULT_DATA_DIR: Final = ".planweave"
DEFAULT_STORE_FILE: Final = "planweave.db"
ROOT_TASK_ID: Final = "root"
COMPOSE_TASK_ID: Final = "compose"
RESULT_ARTIFACT: Final = "result.md"
