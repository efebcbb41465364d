"""Names shared by every backend: tables, queues, topics, defaults. One place, so a rename is one edit."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1
"""Version of the wire format of events, work items and outcomes."""

STORE_SCHEMA_VERSION: Final = 5
"""Version of the SQL schema; migrations bring an older file up to it."""
STORE_SCHEMA_VERSION_KEY: Final = "schema_version"
"""Key of the schema version's row in the ``pw_meta`` table."""

# Tables (SQL stores).
TABLE_PREFIX: Final = "pw_"
TABLE_JOBS: Final = "pw_jobs"
TABLE_TASKS: Final = "pw_tasks"
TABLE_EVENTS: Final = "pw_events"
TABLE_ARTIFACTS: Final = "pw_artifacts"
TABLE_COMMANDS: Final = "pw_commands"
TABLE_CLAIMS: Final = "pw_claims"
TABLE_META: Final = "pw_meta"
TABLE_STEPS: Final = "pw_steps"
TABLE_SESSIONS: Final = "pw_sessions"
TABLE_SESSION_EVENTS: Final = "pw_session_events"
TABLE_SESSION_LEASES: Final = "pw_session_leases"
PG_COMMANDS_CHANNEL: Final = "pw_commands"
"""The Postgres ``NOTIFY`` channel a command left for a job is announced on (payload: job id)."""
PG_MIGRATION_LOCK: Final = 0x70770001
"""The Postgres advisory lock key held while a store brings the schema up to date."""

# Bus names.
QUEUE_PREFIX: Final = "pw:work:"
OUTCOME_QUEUE_PREFIX: Final = "pw:outcomes:"
JOURNAL_QUEUE_PREFIX: Final = "pw:journal:"
"""A worker pool's queue for the control plane's answers to its journal steps (+ worker id)."""
"""Each control plane receives its jobs' reports on its own queue: this prefix + its owner id
(work items name it in ``reply_to``), so two planes on one bus never take each other's reports."""
EVENT_TOPIC_ALL: Final = "pw:events"
CONTROL_TOPIC: Final = "pw:control"
"""Where the control plane announces jobs that ended, so workers drop their unfinished work."""
DLQ_SUFFIX: Final = ":dlq"

# Redis bus keys: a queue is a stream read through one consumer group, a sorted set of its lease
# deadlines and a dead-letter stream; a topic is a pub/sub channel. The prefixes keep planweave's
# keys apart from anything else in the same Redis database.
REDIS_QUEUE_PREFIX: Final = "planweave:queue:"
"""Stream of a work queue: this prefix + the queue's name."""
REDIS_LEASES_SUFFIX: Final = ":leases"
"""Sorted set of the queue's pending entries by lease deadline: the stream's key + this suffix."""
REDIS_TOPIC_PREFIX: Final = "planweave:topic:"
"""Pub/sub channel of a topic: this prefix + the topic's name."""
REDIS_GROUP: Final = "planweave"
"""The one consumer group of every queue's stream."""
REDIS_MIN_VERSION: Final = (7, 0)
"""Oldest Redis server the bus runs on (stream commands and script semantics it relies on)."""
DEFAULT_BUS_RETRY_S: Final = 30.0
"""Seconds the Redis bus keeps retrying, with backoff, after losing its connection, before it
raises ``BusUnavailable``."""

# Worker kinds: a work item goes to the queue of the worker kind that runs it.
WORKER_PLANNER: Final = "planner"
WORKER_EXECUTOR: Final = "executor"
WORKER_COMPOSER: Final = "composer"
WORKER_TOOL: Final = "tool"
WORKER_CRITIC: Final = "critic"
CRITIC_LLM: Final = "llm"
"""The name of the built-in critic: a model reviews the answer (``docs/critic.md``)."""

# Statuses and the events that end a job: the one list of each (``state`` types them).
JOB_STATUSES: Final = ("running", "succeeded", "failed", "cancelled")
TASK_STATUSES: Final = (
    "pending",
    "ready",
    "running",
    "awaiting_approval",
    "succeeded",
    "failed",
    "cancelled",
)
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
DEFAULT_MAX_REVISIONS: Final = 2
"""Times a critic may send one task back for revision (the job option ``max_revisions``)."""
DEFAULT_MAX_COST_USD: Final = 5.0
"""Dollars one job may spend by default (the job option ``max_cost_usd``)."""
DEFAULT_REPLY_TOKENS_ESTIMATE: Final = 1024
"""The largest reply a model call that sets no ``max_tokens`` is counted at, when a budget
check must know the most a call may use before it is made."""
DEFAULT_TOOL_TIMEOUT_S: Final = 30.0
DEFAULT_MODEL_TIMEOUT_S: Final = 120.0
DEFAULT_CONCURRENCY: Final = {
    WORKER_PLANNER: 2,
    WORKER_EXECUTOR: 4,
    WORKER_COMPOSER: 2,
    WORKER_TOOL: 512,
    WORKER_CRITIC: 2,
}
"""Work items run at once per worker kind, by default (also the plane's in-flight limits)."""
DEFAULT_WORKER_GRACE_S: Final = 30.0
"""How long a stopping ``planweave worker`` lets running items finish before it gives the rest
back to the bus (the setting ``worker_grace_s``)."""
DEFAULT_DATA_DIR: Final = ".planweave"
DEFAULT_STORE_FILE: Final = "planweave.db"
ROOT_TASK_ID: Final = "root"
COMPOSE_TASK_ID: Final = "compose"
RESULT_ARTIFACT: Final = "result.md"

# API server limits (``planweave serve``): each is a setting of the same name, documented in the
# README. They hold whether or not a reverse proxy sits in front.
DEFAULT_MAX_CONNECTIONS: Final = 500
"""Open connections the API server keeps; requests past it are answered 503, connections past
it are closed at once."""
DEFAULT_REQUEST_HEADER_TIMEOUT_S: Final = 10.0
"""Seconds a connection has to send a complete request line and headers."""
DEFAULT_REQUEST_BODY_TIMEOUT_S: Final = 30.0
"""Seconds a request has to send its whole body once its headers are in."""
DEFAULT_KEEP_ALIVE_TIMEOUT_S: Final = 5
"""Seconds an idle keep-alive connection stays open between requests."""
DEFAULT_MAX_HEADER_BYTES: Final = 16 * 1024
"""Largest request line plus headers the API server reads (larger ones get 400)."""
DEFAULT_AUTH_FAILURE_RATE_PER_S: Final = 0.5
"""Failed authentications per second a client address may make on average."""
DEFAULT_AUTH_FAILURE_BURST: Final = 20
"""Failed authentications a client address may make at once before it is answered 429."""
DEFAULT_MAX_EVENT_STREAMS_PER_TENANT: Final = 20
"""Event streams (SSE and WebSocket together) a tenant may hold open at once."""

# Sizes of what models and tools put into events (``decider`` cuts each field to these; a cut
# is marked with "…"). Results of tasks are not cut here: see ``DEFAULT_MAX_RESULT_BYTES``.
MAX_EVENT_NAME_CHARS: Final = 256
"""Names from a model or a tool in an event: a tool's name, a model's, an agent's, a role."""
MAX_EVENT_ERROR_CHARS: Final = 4_000
"""An error message or a reason (``ToolCalled.error``, ``TaskFailed.error``, ``JobFailed.reason``)."""
MAX_EVENT_TEXT_CHARS: Final = 8_000
"""Free text in an event: a model's prompt and reply, a tool's result, a replan's goal."""
MAX_EVENT_ARG_CHARS: Final = 4_000
"""Each string inside a tool call's arguments (``ToolCalled.args``)."""
MAX_EVENT_ARG_ITEMS: Final = 100
"""Entries kept of each list or dict inside a tool call's arguments."""
MAX_EVENT_ARG_DEPTH: Final = 16
"""Nesting kept of a tool call's arguments; deeper parts become "…"."""

# Sizes of what a job keeps (job options ``max_result_bytes``, ``max_job_events``).
DEFAULT_MAX_RESULT_BYTES: Final = 64 * 1024
"""Largest task result kept in events and rows; a larger one goes to an artifact file."""
RESULTS_FOLDER: Final = "results"
"""Folder of a job's workspace that holds results over ``max_result_bytes``."""
RESULT_PREVIEW_CHARS: Final = 1_000
"""How much of a result moved to a file its reference shows."""
DEFAULT_MAX_JOB_EVENTS: Final = 100_000
"""Most events one job may record; past it the job fails with code ``job_too_large``."""
DEFAULT_MAX_JOB_BYTES: Final = 64 * 1024 * 1024
"""Most bytes of data one job may record (the job option ``max_job_bytes``, 64 MiB): the text of
its goals, plans, results, answers, errors and tool calls, and a fixed share per event; past it
the job fails with code ``job_too_large``."""
EVENT_BASE_BYTES: Final = 160
"""What one event counts toward ``max_job_bytes`` besides its text: about the size of the ids,
numbers and names every stored event carries."""

# Per-tenant quotas (``TenantQuotas``; settings of the same names for ``planweave serve``).
DEFAULT_MAX_RUNNING_JOBS_PER_TENANT: Final = 64
"""A tenant's jobs that run at once; the tenant's further jobs wait (queued) for one to end."""
DEFAULT_MAX_QUEUED_JOBS_PER_TENANT: Final = 1_000
"""A tenant's jobs that may wait beyond the running ones; a submission past it is refused."""
DEFAULT_MAX_TENANT_STORAGE_BYTES: Final = 10 * 1024 * 1024 * 1024
"""Bytes a tenant's stored jobs may hold (their recorded data and artifact files), 10 GiB."""
DEFAULT_MAX_TENANT_SPEND_USD: Final = 100.0
"""Dollars a tenant's jobs may spend in one spend window."""
DEFAULT_TENANT_SPEND_WINDOW_S: Final = 86_400.0
"""The rolling window a tenant's spend is counted over (a day)."""

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
DEFAULT_TOOL_MEMORY_BYTES: Final = 1024 * 1024 * 1024
"""Address space each isolated tool's worker process may use (``Engine(tool_memory_bytes=)``):
a call that allocates past it fails with "out of memory" and its worker is replaced."""
MIN_TOOL_MEMORY_BYTES: Final = 128 * 1024 * 1024
"""Smallest ``tool_memory_bytes``: a worker needs some 50 MB of address space to start."""
MAX_TOOL_REPLY_BYTES: Final = 16_000_000
"""Largest result (as JSON) an isolated tool may send back from its worker process."""
DEFAULT_MAX_WORKSPACE_DEPTH: Final = 32
"""Deepest folder ``write_file`` creates in a job's workspace (``ToolContext.max_dir_depth``)."""
ARTIFACT_CHUNK_BYTES: Final = 64 * 1024
"""Size of the pieces an artifact is read and streamed in, from a file or an object store."""

WORKER_LOST: Final = "its worker was lost (died, or stalled past its lease) on every allowed try"
"""The error of a task whose every try ended without an outcome: its worker died each time."""

DEFAULT_MAX_HANDOFFS: Final = 3
"""Times one task may be handed from agent to agent before it fails (``max_handoffs``)."""
