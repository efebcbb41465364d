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
DEFAULT_MAX_AGENT_STEPS: Final = 8
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

# Limits on input files and parsed data (see docs/security.md).
MAX_INPUT_FILE_BYTES: Final = 10_000_000
"""Largest plan file, scripted-model file or config file read (10 MB)."""
MAX_YAML_DEPTH: Final = 64
"""Deepest nesting of lists and mappings in a YAML file (aliases are refused outright)."""
MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects accepted in JSON from a model (a reply, a plan, tool
arguments) and in any tool call's arguments."""
DEFAULT_TOOL_PROCESSES: Final = 2
"""Worker processes an engine keeps for isolated tools (``@tool(isolated=True)``, the
calculator); started on first use."""
MAX_TOOL_REPLY_BYTES: Final = 16_000_000
"""Largest result (as JSON) an isolated tool may send back from its worker process."""
DEFAULT_MAX_WORKSPACE_DEPTH: Final = 32
"""Deepest folder ``write_file`` creates in a job's workspace (``ToolContext.max_dir_depth``)."""
