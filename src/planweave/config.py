"""Settings for the command line (and any other edge that builds an ``Engine`` from outside).

The engine itself never reads the environment or files: this module is the edge that does. One
``Settings`` object is merged from four layers, each overriding the one below it::

    command-line flags  >  PLANWEAVE_* environment variables  >  planweave.toml  >  defaults

A bad value names where it came from (the flag, the variable or the file and key) and what is
expected, so a user can fix it without reading code.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    ValidationError,
    field_validator,
)

from planweave._backends import scheme_of
from planweave._files import read_text_file
from planweave.constants import (
    DEFAULT_AUTH_FAILURE_BURST,
    DEFAULT_AUTH_FAILURE_RATE_PER_S,
    DEFAULT_DATA_DIR,
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_COST_USD,
    DEFAULT_MAX_EVENT_STREAMS_PER_TENANT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_JOB_TOKENS,
    DEFAULT_MAX_QUEUED_JOBS_PER_TENANT,
    DEFAULT_MAX_RUNNING_JOBS_PER_TENANT,
    DEFAULT_MAX_TENANT_SPEND_USD,
    DEFAULT_MAX_TENANT_STORAGE_BYTES,
    DEFAULT_MAX_USER_PLAN_TASKS,
    DEFAULT_REQUEST_BODY_TIMEOUT_S,
    DEFAULT_REQUEST_HEADER_TIMEOUT_S,
    DEFAULT_STORE_FILE,
    DEFAULT_TENANT_SPEND_WINDOW_S,
    DEFAULT_WORKER_GRACE_S,
)
from planweave.errors import ConfigError
from planweave.mcp._config import McpSettings
from planweave.policy._rules import Policy

if TYPE_CHECKING:
    from planweave._quotas import TenantQuotas
    from planweave.tools import WebSearchConfig

__all__ = ["CONFIG_FILE", "ENV_PREFIX", "Settings", "hash_token", "load_settings"]

CONFIG_FILE = "planweave.toml"
DEFAULT_AGENTS_DIR = "agents"
"""The folder of declarative agents a command loads when it exists (``agents_dir``)."""
"""The file read from the current directory when no ``--config`` is given."""

ENV_PREFIX = "PLANWEAVE_"

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_EXPECTED: dict[str, str] = {
    "store": "a store URL such as sqlite:///jobs.db or memory://",
    "bus": "a bus URL such as memory://",
    "artifact_store": "an artifact store URL such as file:///srv/artifacts or s3://bucket/prefix",
    "model": "a model URL such as local:, openai:gpt-4o-mini or scripted:replies.yaml",
    "data_dir": "a directory path",
    "agents_dir": "a directory path",
    "workspace": "a directory path",
    "local_threads": "a whole number of at least 1",
    "openai_base_url": "a URL such as http://localhost:8080/v1",
    "allow_private_network": "true or false",
    "private_network_tenants": "a list of tenant names",
    "web_search_provider": "one of searxng, brave, tavily",
    "web_search_url": "a URL such as http://searx.internal:8080",
    "web_search_api_key": "the search provider's API key",
    "shell_commands": 'a list of program names or absolute paths, such as ["git", "ls"]',
    "max_cost_usd": "a number of dollars, at least 0",
    "max_job_tokens": "a whole number of tokens, at least 1",
    "prices": (
        "a [prices] table of model = [dollars per million tokens in, out], such as "
        '"gpt-4o-mini" = [0.15, 0.6]'
    ),
    "approve_tools": "a list of tool names or glob patterns such as write_file, mcp_*",
    "approval_timeout_s": "a number of seconds greater than 0",
    "log_level": "one of " + ", ".join(_LOG_LEVELS),
    "host": "a host name or IP address to listen on, such as 127.0.0.1",
    "port": "a TCP port number from 0 to 65535",
    "tokens": (
        'a [tokens] table of tenant = "sha256:<64 hex digits>" (or a list of them), or '
        "PLANWEAVE_TOKENS=tenant1:token1,tenant2:token2"
    ),
    "max_body_bytes": "a whole number of bytes, at least 1024",
    "rate_limit_per_s": "requests per second per token (0 turns the limit off)",
    "rate_limit_burst": "a whole number of requests, at least 1",
    "api_models": "a list of model URLs",
    "metrics_token": "a token for /metrics (or its sha256:<64 hex digits> hash)",
    "auth_failure_rate_per_s": "failed logins per second per client address (0 turns the limit off)",
    "auth_failure_burst": "a whole number of failed logins, at least 1",
    "max_connections": "a whole number of connections, at least 1",
    "request_header_timeout_s": "a number of seconds greater than 0",
    "request_body_timeout_s": "a number of seconds greater than 0",
    "keep_alive_timeout_s": "a whole number of seconds, at least 1",
    "max_header_bytes": "a whole number of bytes, at least 1024",
    "max_event_streams_per_tenant": "a whole number of streams, at least 1",
    "max_user_plan_tasks": "a whole number of tasks, at least 1",
    "max_running_jobs_per_tenant": "a whole number of jobs, at least 0 (0 turns the limit off)",
    "max_queued_jobs_per_tenant": "a whole number of jobs, at least 0",
    "max_tenant_storage_bytes": "a whole number of bytes, at least 0 (0 turns the limit off)",
    "max_tenant_spend_usd": "a number of dollars, at least 0 (0 turns the limit off)",
    "tenant_spend_window_s": "a number of seconds greater than 0",
    "claim_lease_s": "a number of seconds greater than 0",
    "work_lease_s": "a number of seconds greater than 0",
    "serve_mcp": "true or false",
    "spell_isolation": "inprocess or subprocess",
    "mcp": "an [mcp.servers.NAME] table with command (and args, env) or url (and headers)",
}

_TENANT_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_HASH_RE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


def hash_token(token: str) -> str:
    """The form a token is stored in: ``sha256:`` and the hex SHA-256 of its text."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_token_env(text: str) -> dict[str, list[str]]:
    """``tenant1:token1,tenant2:token2`` (plaintext tokens) -> tenant -> token hashes."""
    out: dict[str, list[str]] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        tenant, sep, token = pair.strip().partition(":")
        if not sep or not token:
            raise ValueError("expected tenant:token pairs separated by commas")
        out.setdefault(tenant, []).append(hash_token(token))
    return out


class Settings(BaseModel):
    """Where jobs are stored, which model runs them, and how the command line behaves.

    Attributes:
        store: Store URL; ``None`` means a SQLite file ``planweave.db`` in ``data_dir``.
        bus: Bus URL.
        artifact_store: Where the files jobs produce are kept for download: ``file://DIR`` or
            ``s3://bucket/prefix?endpoint_url=...`` (``None``: each job's workspace).
        model: Default model URL for LLM calls.
        data_dir: Directory of the default store and of per-job workspaces.
        workspace: Folder the file tools of a job may read and write (a per-job folder in
            ``data_dir`` when ``None``).
        local_threads: CPU threads of the local model (its own default when ``None``).
        openai_base_url: Base URL of an OpenAI-compatible server.
        allow_private_network: Let ``http_fetch`` reach private and loopback addresses (jobs of
            this process; API jobs only for ``private_network_tenants``, or in open mode).
        private_network_tenants: API tenants whose jobs may reach private and loopback
            addresses (where ``allow_private_network`` lets the process do so at all).
        web_search_provider: The service the ``web_search`` tool asks: ``searxng``, ``brave`` or
            ``tavily`` (``None``: SearXNG when ``web_search_url`` is set, else Brave or Tavily
            when ``BRAVE_API_KEY`` or ``TAVILY_API_KEY`` is in the environment, else none, and
            the tool tells the model so).
        web_search_url: The search service's endpoint: a SearXNG instance's base URL, or
            another address for the Brave or Tavily API.
        web_search_api_key: The Brave or Tavily API key (``PLANWEAVE_WEB_SEARCH_API_KEY``;
            without it ``BRAVE_API_KEY`` or ``TAVILY_API_KEY`` is read). It is sent only to
            the provider, never shown in events, logs or ``repr``.
        shell_commands: The programs the built-in ``shell`` tool may run, by name (looked up
            in ``/usr/local/bin:/usr/bin:/bin``) or absolute path. Empty (the default): agents
            are not offered the ``shell`` tool at all.
        max_cost_usd: The dollar budget every job gets unless it sets its own (default $5).
        max_job_tokens: The token budget (in + out) every job gets unless it sets its own
            (default 2,000,000; it stops local and scripted models too, which cost $0).
        prices: Model prices in USD per million tokens, ``(in, out)``, by model name or name
            prefix (``[prices]`` in ``planweave.toml``: ``"gpt-4o-mini" = [0.15, 0.6]``,
            ``scripted = [1.0, 2.0]``). They override the built-in list prices and price any
            other model, local and scripted ones included, for the dollar budgets of every
            process that reads these settings (engine, server, worker).
        log_level: Level of the log written to stderr.
        host: Address ``planweave serve`` listens on.
        port: TCP port ``planweave serve`` listens on (0: any free port).
        tokens: API tokens by tenant, as ``sha256:<hex>`` hashes (the environment variable
            ``PLANWEAVE_TOKENS`` gives plaintext ``tenant:token`` pairs, hashed on reading).
            Tokens made by ``planweave token create`` live in ``data_dir/tokens.json``.
        max_body_bytes: Largest request body the API accepts.
        rate_limit_per_s: Requests per second each API token may make on average (0: no limit).
        rate_limit_burst: Requests a token may make at once before the rate limit applies.
        metrics_token: The bearer token a Prometheus scraper presents to read ``/metrics``, kept
            as a ``sha256:<hex>`` hash (give the token, or its hash). Without it ``/metrics``
            is refused (403) once tenant tokens exist; tenant tokens never read it, since its
            counts cover every tenant.
        auth_failure_rate_per_s: Failed authentications (a missing or unknown token) each
            client address may make per second on average; past the burst it is answered 429
            with ``Retry-After``, valid tokens included, until its budget refills (0: no limit).
        auth_failure_burst: Failed authentications a client address may make at once.
        max_connections: Open connections the API server keeps: at this many, requests are
            answered 503 and further connections are closed at once.
        request_header_timeout_s: Seconds a connection has to send a complete request line and
            headers (from when it opens, or from the end of its previous response); then the
            server closes it.
        request_body_timeout_s: Seconds a request has to send its whole body once its headers
            are in; then the server closes the connection.
        keep_alive_timeout_s: Seconds an idle keep-alive connection stays open.
        max_header_bytes: Largest request line plus headers the server reads (larger: 400).
        max_event_streams_per_tenant: Event streams (SSE and WebSocket together) a tenant may
            hold open at once; one more is answered 429.
        api_models: Model URLs an API client may choose for a job, besides ``model`` (a model
            costs money or loads gigabytes, so the server's operator decides).
        max_user_plan_tasks: Largest plan a user may submit (``run --plan``, the API, the
            Python ``Engine``); a planner's own plans are limited by the job option
            ``max_plan_tasks``.
        max_running_jobs_per_tenant: A tenant's jobs that run at once (0: no limit); its
            further jobs are accepted but wait, and start by themselves as earlier ones end.
        max_queued_jobs_per_tenant: A tenant's jobs that may wait beyond the running ones; a
            submission past running plus waiting is refused (API: 429 ``tenant_job_limit``).
            Only counted while ``max_running_jobs_per_tenant`` is on.
        max_tenant_storage_bytes: Bytes a tenant's stored jobs may hold, their recorded data
            and artifact files (0: no limit); a submission at it is refused (API: 429
            ``tenant_storage_limit``) until finished jobs are deleted.
        max_tenant_spend_usd: Dollars a tenant's jobs may spend in ``tenant_spend_window_s``
            (0: no limit); a submission at it is refused (API: 429 ``tenant_spend_limit``),
            and a job's dollar budget is at most what its tenant has left.
        tenant_spend_window_s: The rolling window a tenant's spend counts over (a day).
        claim_lease_s: How long a process's claim on a job lasts without renewal: after that
            another process may take the job over (the engine's default when ``None``).
        work_lease_s: How long a worker holds a work item without extending it: after that the
            item is handed out again (the engine's default when ``None``).
        workers: Whether ``serve`` and ``run`` run worker pools in their own process. ``None``
            (the default): yes with the in-process ``memory://`` bus, no with a shared bus
            (``redis://``), whose work the ``planweave worker`` processes take.
        worker_kinds: The kinds of work a ``planweave worker`` takes (default: every kind:
            planner, executor, composer, tool, critic).
        worker_concurrency: Work items a ``planweave worker`` runs at once per kind (the
            engine's per-kind defaults when ``None``).
        worker_grace_s: How long a stopping ``planweave worker`` (SIGTERM, Ctrl-C) lets running
            items finish before it gives the rest back to the bus.
        tools: Your tools, loaded by every command that runs or plans jobs: ``package.module``
            (every ``@tool`` in it), ``package.module:name`` (a tool or a list of tools) or a
            ``file.py``. Give every process of a cluster the same list.
        agents_dir: A folder of declarative agents (``*.yaml``) that every command running
            jobs loads; ``None``: ``./agents`` when that folder exists.
        hooks: Hooks every job runs with (``planweave.hooks``): a built-in (``logging``,
            ``metrics``, ``tracing``, ``redaction``), ``package.module:name`` or
            ``file.py:name``. Give every process of a cluster the same list.
        job_hooks: Hooks that run only for jobs whose ``hooks`` option names them, loaded
            like ``hooks``.
        mcp: MCP servers whose tools jobs may call (``[mcp.servers.NAME]`` tables, see
            ``docs/mcp.md``); a server's tools are offered once ``planweave mcp approve NAME``
            has pinned them.
        serve_mcp: Whether ``planweave serve`` also serves the job API as MCP tools, over
            streamable HTTP at ``/mcp``, behind the same tokens (``--mcp``).
        policy: Guardrails every job is held to (``[policy]`` in ``planweave.toml``, or JSON
            in ``PLANWEAVE_POLICY``): tool allow/deny lists, per agent too, argument
            constraints, an egress allowlist for network tools and content rules on results
            (``planweave.policy.Policy``; see ``docs/policy.md``). Give every process of a
            cluster the same policy.
        critics: Python critics jobs may name (``docs/critic.md``), each
            ``NAME=package.module:attr`` (or ``package.module:attr``, named ``attr``), so
            every process, ``planweave worker`` included, loads the same ones
            (``PLANWEAVE_CRITICS``, comma-separated).
        approve_tools: Names or glob patterns (``write_file``, ``mcp_*``) of tools whose
            calls wait for a person's approval in every job, besides high-impact tools
            (added to each job's own ``approve_tools``; see ``docs/approvals.md``).
        approval_timeout_s: How long a call waits for a decision before it is rejected, for
            jobs that set no ``approval_timeout_s`` of their own (``None``: no limit).
        spell_isolation: Where spells run: ``inprocess`` (the default: a sandboxed Lua
            runtime or V8 isolate in this process) or ``subprocess`` (each spell in a child
            process of its own, under resource limits and killed at its wall-clock limit; for
            spells you do not trust; see ``docs/spells.md``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: str | None = None
    bus: str = "memory://"
    artifact_store: str | None = None
    model: str = "local:"
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    workspace: Path | None = None
    local_threads: int | None = Field(default=None, ge=1)
    openai_base_url: str | None = None
    allow_private_network: bool = False
    private_network_tenants: tuple[str, ...] = ()
    web_search_provider: Literal["searxng", "brave", "tavily"] | None = None
    web_search_url: str | None = None
    web_search_api_key: str | None = Field(default=None, repr=False)
    shell_commands: tuple[str, ...] = ()
    max_cost_usd: float = Field(default=DEFAULT_MAX_COST_USD, ge=0, allow_inf_nan=False)
    max_job_tokens: int = Field(default=DEFAULT_MAX_JOB_TOKENS, ge=1)
    prices: dict[str, tuple[NonNegativeFloat, NonNegativeFloat]] = Field(default_factory=dict)
    log_level: str = "WARNING"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    tokens: dict[str, tuple[str, ...]] = Field(default_factory=dict, repr=False)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    rate_limit_per_s: float = Field(default=50.0, ge=0, allow_inf_nan=False)
    rate_limit_burst: int = Field(default=100, ge=1)
    metrics_token: str | None = Field(default=None, repr=False)
    auth_failure_rate_per_s: float = Field(
        default=DEFAULT_AUTH_FAILURE_RATE_PER_S, ge=0, allow_inf_nan=False
    )
    auth_failure_burst: int = Field(default=DEFAULT_AUTH_FAILURE_BURST, ge=1)
    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, ge=1)
    request_header_timeout_s: float = Field(
        default=DEFAULT_REQUEST_HEADER_TIMEOUT_S, gt=0, allow_inf_nan=False
    )
    request_body_timeout_s: float = Field(
        default=DEFAULT_REQUEST_BODY_TIMEOUT_S, gt=0, allow_inf_nan=False
    )
    keep_alive_timeout_s: int = Field(default=DEFAULT_KEEP_ALIVE_TIMEOUT_S, ge=1)
    max_header_bytes: int = Field(default=DEFAULT_MAX_HEADER_BYTES, ge=1024)
    max_event_streams_per_tenant: int = Field(default=DEFAULT_MAX_EVENT_STREAMS_PER_TENANT, ge=1)
    api_models: tuple[str, ...] = ()
    max_user_plan_tasks: int = Field(default=DEFAULT_MAX_USER_PLAN_TASKS, ge=1)
    max_running_jobs_per_tenant: int = Field(default=DEFAULT_MAX_RUNNING_JOBS_PER_TENANT, ge=0)
    max_queued_jobs_per_tenant: int = Field(default=DEFAULT_MAX_QUEUED_JOBS_PER_TENANT, ge=0)
    max_tenant_storage_bytes: int = Field(default=DEFAULT_MAX_TENANT_STORAGE_BYTES, ge=0)
    max_tenant_spend_usd: float = Field(
        default=DEFAULT_MAX_TENANT_SPEND_USD, ge=0, allow_inf_nan=False
    )
    tenant_spend_window_s: float = Field(
        default=DEFAULT_TENANT_SPEND_WINDOW_S, gt=0, allow_inf_nan=False
    )
    claim_lease_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    work_lease_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    workers: bool | None = None
    worker_kinds: tuple[str, ...] = ()
    worker_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    worker_grace_s: float = Field(default=DEFAULT_WORKER_GRACE_S, ge=0, allow_inf_nan=False)
    tools: tuple[str, ...] = ()
    agents_dir: Path | None = None
    hooks: tuple[str, ...] = ()
    job_hooks: tuple[str, ...] = ()
    mcp: McpSettings = Field(default_factory=McpSettings)
    serve_mcp: bool = False
    policy: Policy | None = None

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_json(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment
            import json

            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        return value

    critics: tuple[str, ...] = ()
    approve_tools: tuple[str, ...] = ()
    approval_timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    spell_isolation: Literal["inprocess", "subprocess"] = "inprocess"

    @field_validator("tokens", mode="before")
    @classmethod
    def _token_hashes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _parse_token_env(value)
        if not isinstance(value, dict):
            raise ValueError("expected a table of tenant = hash")
        out: dict[str, list[str]] = {}
        for tenant, hashes in value.items():
            items = [hashes] if isinstance(hashes, str) else hashes
            if not isinstance(items, list | tuple):
                raise ValueError(f"tenant {tenant!r}: expected a hash or a list of hashes")
            for item in items:
                match = _HASH_RE.match(item) if isinstance(item, str) else None
                if match is None:
                    raise ValueError(f"tenant {tenant!r}: expected sha256:<64 hex digits>")
                out.setdefault(str(tenant), []).append("sha256:" + match.group(1).lower())
        return out

    @field_validator("tokens")
    @classmethod
    def _tenant_names(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for tenant in value:
            if not _TENANT_RE.match(tenant):
                raise ValueError(f"bad tenant name {tenant!r}")
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_token_hash(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a token")
        match = _HASH_RE.match(value.strip())
        if match is not None and value.strip().startswith("sha256:"):
            return "sha256:" + match.group(1).lower()
        return hash_token(value.strip())

    @field_validator(
        "api_models",
        "private_network_tenants",
        "shell_commands",
        "worker_kinds",
        "tools",
        "hooks",
        "job_hooks",
        "critics",
        "approve_tools",
        mode="before",
    )
    @classmethod
    def _model_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # PLANWEAVE_API_MODELS=openai:gpt-4o-mini,local:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("shell_commands")
    @classmethod
    def _programs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.strip() or "\x00" in name or name != name.strip():
                raise ValueError(f"bad program name {name!r}")
            if "/" in name and not name.startswith("/"):
                raise ValueError(f"{name!r}: give a program name or an absolute path")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("store", "bus", "artifact_store", "model", "openai_base_url", "web_search_url")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if value is not None else None

    @field_validator("web_search_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def store_url(self) -> str:
        """The store URL, with the default SQLite file in ``data_dir`` filled in."""
        if self.store is not None:
            return self.store
        return f"sqlite:///{self.data_dir / DEFAULT_STORE_FILE}"

    def tenant_quotas(self) -> TenantQuotas:
        """The per-tenant quotas these settings give (a setting of 0 turns its limit off)."""
        from planweave._quotas import TenantQuotas

        running = self.max_running_jobs_per_tenant or None
        return TenantQuotas(
            max_running_jobs=running,
            max_queued_jobs=self.max_queued_jobs_per_tenant if running else None,
            max_storage_bytes=self.max_tenant_storage_bytes or None,
            max_spend_usd=self.max_tenant_spend_usd or None,
            spend_window_s=self.tenant_spend_window_s,
        )

    def agents_folder(self) -> Path | None:
        """The folder of declarative agents: ``agents_dir``, else ``./agents`` if it exists."""
        if self.agents_dir is not None:
            return self.agents_dir.expanduser()
        default = Path(DEFAULT_AGENTS_DIR)
        return default if default.is_dir() else None

    def mcp_tools(self) -> list[Any]:
        """The tools of the approved MCP servers (none configured: nothing imported)."""
        if not self.mcp.servers:
            return []
        from planweave.mcp import mcp_tools

        return list(mcp_tools(self.mcp, self.data_dir.expanduser()))

    def _web_search(self) -> WebSearchConfig | None:
        """The search service the ``web_search_*`` settings name (``None``: none named)."""
        named = (self.web_search_provider, self.web_search_url, self.web_search_api_key)
        if named == (None, None, None):
            return None  # and the tools package is not imported by commands that read jobs
        from planweave.tools._search import web_search_config

        return web_search_config(*named)

    def engine_kwargs(self, *, with_tools: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``Engine(...)`` built from these settings (``with_tools``:
        import the ``tools`` too; an engine that only reads jobs needs none)."""
        from planweave._plugins import load_tools
        from planweave.events import JobOptions
        from planweave.llm import ModelOptions

        # The leases are passed only when set, so the engine keeps the one home of their defaults.
        leases = {
            name: value
            for name, value in (
                ("claim_lease_s", self.claim_lease_s),
                ("work_lease_s", self.work_lease_s),
            )
            if value is not None
        }
        workers = self.workers
        if workers is None:
            workers = scheme_of("bus", self.bus) == "memory"
        artifacts = {} if self.artifact_store is None else {"artifact_store": self.artifact_store}
        search = self._web_search()
        folder = self.agents_folder() if with_tools else None
        agents = {} if folder is None else {"agents_dir": folder}
        shell = {"shell_commands": self.shell_commands} if self.shell_commands else {}
        if self.prices or "planweave.llm.pricing" in sys.modules:  # reading jobs needs none
            from planweave.llm.pricing import set_price_overrides

            set_price_overrides(self.prices)  # every model call of this process is priced so
        return {
            "store": self.store_url,
            "bus": self.bus,
            "run_workers": workers,
            "tools": [*load_tools(self.tools), *self.mcp_tools()] if with_tools else [],
            "model": self.model,
            "data_dir": self.data_dir,
            "model_options": ModelOptions(
                n_threads=self.local_threads, base_url=self.openai_base_url
            ),
            "allow_private_network": self.allow_private_network,
            "max_user_plan_tasks": self.max_user_plan_tasks,
            "job_defaults": JobOptions(
                max_cost_usd=self.max_cost_usd, max_job_tokens=self.max_job_tokens
            ),
            "tenant_quotas": self.tenant_quotas(),
            **({} if self.policy is None else {"policy": self.policy}),
            **({"approve_tools": self.approve_tools} if self.approve_tools else {}),
            **(
                {"approval_timeout_s": self.approval_timeout_s}
                if self.approval_timeout_s is not None
                else {}
            ),
            **(_hook_kwargs(self.hooks, self.job_hooks) if with_tools else {}),
            **(_critic_kwargs(self.critics) if with_tools else {}),
            **leases,
            **artifacts,
            **({} if search is None else {"web_search": search}),
            **agents,
            **shell,
        }


def _hook_kwargs(hooks: tuple[str, ...], job_hooks: tuple[str, ...]) -> dict[str, Any]:
    """``Engine`` keyword arguments for the hooks settings name (none: nothing imported)."""
    if not hooks and not job_hooks:
        return {}
    from planweave.hooks import load_hooks

    return {"hooks": load_hooks(hooks), "job_hooks": load_hooks(job_hooks)}


def _critic_kwargs(critics: tuple[str, ...]) -> dict[str, Any]:
    """``Engine`` keyword arguments for the critics settings name (none: nothing imported)."""
    if not critics:
        return {}
    from planweave.critic import load_critics

    return {"critics": load_critics(critics)}


def load_settings(
    overrides: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge settings from flags, environment, config file and defaults.

    Args:
        overrides: Values from command-line flags, by field name; ``None`` values are ignored.
        env: The environment (default ``os.environ``); ``PLANWEAVE_<FIELD>`` variables count.
        config_file: A TOML file to read; without it ``planweave.toml`` in the current
            directory is read if it exists. Keys are the field names, at the top level or in
            a ``[planweave]`` table; relative ``data_dir`` and ``workspace`` paths are
            resolved against the file's directory.

    Raises:
        ConfigError: The config file is missing, not TOML, or has an unknown key; or a value
            is malformed (the message names where it came from and what is expected).
    """
    fields = tuple(Settings.model_fields)
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    for key, (value, file) in _read_file(config_file, fields).items():
        values[key] = value
        sources[key] = f"{file}: key {key!r}"
    for key in fields:
        name = ENV_PREFIX + key.upper()
        raw = env.get(name)
        if raw is not None and raw != "":
            values[key] = raw
            sources[key] = f"environment variable {name}"
    for key, value in overrides.items():
        if key not in Settings.model_fields:
            raise ConfigError(f"unknown setting {key!r}: use one of {', '.join(fields)}")
        if value is not None:
            values[key] = value
            sources[key] = f"option --{key.replace('_', '-')}"

    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        where = sources.get(key, key or "settings")
        if key == "mcp":  # a nested table: say which part of it is wrong
            path = ".".join(str(part) for part in error["loc"])
            raise ConfigError(f"{where}: {path}: {error['msg']}") from None
        if key == "policy":
            where = sources.get(key, "settings").removesuffix(": key 'policy'")
            raise ConfigError(f"{where}: {_policy_problem(exc)}") from None
        got = "(hidden)" if key in ("tokens", "metrics_token") else values.get(key)
        raise ConfigError(
            f"{where}: expected {_EXPECTED.get(key, 'a valid value')}, got {got!r}"
        ) from None


def _policy_problem(exc: ValidationError) -> str:
    """The first mistake of a ``policy`` setting, naming its key (``policy.tools...``)."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] in ("model_type", "dict_type"):
        message = "expected a table"
    elif error["type"] == "tuple_type":
        message = "expected a list"
    return f"key {loc!r}: {message}"


def _read_file(config_file: Path | None, fields: tuple[str, ...]) -> dict[str, tuple[Any, str]]:
    """The file's settings as ``{key: (value, file name)}``; relative paths resolved against
    the file's directory."""
    if config_file is None:
        path = Path.cwd() / CONFIG_FILE
        if not path.is_file():
            return {}
    else:
        path = config_file.expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
    import tomllib  # here: most runs have no settings file

    try:
        data = tomllib.loads(read_text_file(path, what="config file"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"config file {str(path)!r} is nested too deeply") from None

    table = data.pop("planweave", None)
    if table is not None:
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: 'planweave' must be a table ([planweave])")
        data.update(table)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; the known keys are {', '.join(fields)}"
        )
    out: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        if key in ("data_dir", "workspace", "agents_dir") and isinstance(value, str):
            relative = Path(value).expanduser()
            value = relative if relative.is_absolute() else path.parent / relative
        out[key] = (value, str(path))
    return out
