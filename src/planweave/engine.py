"""The engine: one object that wires a store, a bus, a control plane and workers together.

``Engine`` is the Python entry point: ``await engine.run(goal)`` plans and carries out a goal,
``await engine.run(plan=...)`` runs a user-written DAG. Backends are chosen by URL; everything
runs in the calling process on the embedded default (SQLite file + in-process bus).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from planweave._approvals import with_approval_settings
from planweave._cluster import ClusterOps
from planweave._follow import FollowOps
from planweave._job_commands import CommandOps
from planweave._quotas import TenantQuotas, submit_within_quotas
from planweave._results import JobResult, QueueInfo
from planweave._submit import check_critics, checked_job_plan
from planweave.bus import Bus, open_bus
from planweave.bus.base import Subscription
from planweave.constants import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DATA_DIR,
    DEFAULT_LEASE_S,
    DEFAULT_MAX_USER_PLAN_TASKS,
    DEFAULT_STORE_FILE,
    DEFAULT_TOOL_MEMORY_BYTES,
    DEFAULT_TOOL_PROCESSES,
    EVENT_TOPIC_ALL,
    MIN_TOOL_MEMORY_BYTES,
    WORKER_TOOL,
)
from planweave.control.plane import ControlPlane, PlaneSettings
from planweave.critic import CriticFunction, CriticRegistry
from planweave.errors import (
    JobNotFound,
    UsageError,
)
from planweave.events import Event, JobOptions, Usage, new_id
from planweave.hooks import Hook, HookRegistry
from planweave.plan import Plan, TaskSpec
from planweave.state import JobState
from planweave.store import Store, open_store
from planweave.store.base import ArtifactRow, JobSummary

if TYPE_CHECKING:
    # Imported when a job needs them (see ``Engine.tools``), so that an engine that only reads
    # jobs (``planweave jobs``) loads no agent, tool, model provider or HTTP client.
    from planweave.agents import Agent, AgentRegistry
    from planweave.artifacts import ArtifactStore
    from planweave.llm import Model, ModelOptions
    from planweave.policy import Policy
    from planweave.sessions import SessionManager
    from planweave.tools import Tool, ToolProcesses, ToolRegistry, WebSearchConfig
    from planweave.workers.handlers import ModelCache
    from planweave.workers.pool import WorkerPool

__all__ = ["Engine", "JobResult", "QueueInfo"]

log = logging.getLogger("planweave.engine")


T = TypeVar("T")


class Engine(ClusterOps, FollowOps, CommandOps):
    """Plans and runs jobs.

    Args:
        store: Store URL (``sqlite:///jobs.db``, ``memory://``) or a ``Store``. Default: a SQLite
            file in ``data_dir``.
        bus: Bus URL (``memory://``) or a ``Bus``.
        model: Default model URL (``openai:gpt-4o-mini``, ``local:``, ``scripted:file.yaml``) or a
            ``Model``. Default: the offline local model.
        tools: Extra tools (``@tool`` functions) the agents and ``tool`` tasks may use.
        agents: Extra agents, by name, for ``execute`` tasks that name them and for
            ``run(agent=...)`` (a workflow registers the agents it is made of too).
        builtins: Include the built-in tools (calculator, files, http_fetch, current_time).
        data_dir: Where the default store and per-job workspaces live.
        model_options: Provider options (base URL, threads, timeouts).
        concurrency: Items run at once per worker kind (planner, executor, composer, tool,
            critic).
        allow_private_network: Let ``http_fetch`` reach private and loopback addresses.
        shell_commands: The programs the built-in ``shell`` tool may run (by name or absolute
            path); empty (the default): the ``shell`` tool is not registered.
        spell_paths: Folders of spell packages that ``kind: spell`` tasks find by name (after
            the job workspace's ``spells``).
        run_workers: Run worker pools in this process (``False`` for a control plane whose
            workers run elsewhere).
        run_plane: Drive jobs in this process (``False`` for a worker process: it opens only the
            bus and runs worker pools; the control planes of other processes drive the jobs, so
            ``submit`` and ``resume`` are refused).
        worker_kinds: The worker kinds whose pools run here (default: every kind in
            ``concurrency``).
        claim_lease_s: How long this process's claim on a job lasts unrenewed (renewed every
            third of it): after that, another process may take the job over without force.
            A session's lease (``engine.sessions``) lasts as long.
        work_lease_s: How long a worker holds a work item unextended before it is redelivered.
        max_user_plan_tasks: Largest plan ``submit`` accepts from a caller (a planner's plans
            are limited by the job option ``max_plan_tasks``).
        tool_processes: Worker processes for isolated tools (``@tool(isolated=True)``, the
            calculator): started on first use, killed at a call's deadline, stopped by
            ``close``.
        tool_memory_bytes: Address space each of those worker processes may use (default
            1 GiB; ``None``: no limit): a call that allocates past it fails with an
            out-of-memory ``ToolError`` and its worker is replaced.
        job_defaults: The options a job gets where its submitter sets none (default:
            ``JobOptions()``, whose budgets are ``max_cost_usd`` $5 and ``max_job_tokens``
            2,000,000).
        tenant_quotas: Limits on each tenant's running and queued jobs, storage and spend,
            enforced by ``submit`` and the control plane (``TenantQuotas``). ``None`` (the
            default for a Python program, which is one user) sets none; ``planweave serve``
            and ``planweave run`` set the ``TenantQuotas`` defaults unless configured.
        artifact_store: Where the files tasks produce are kept for download: an artifact store
            URL (``file:///shared/folder``, ``s3://bucket/prefix?endpoint_url=...``) or an
            ``ArtifactStore``. Default: each job's workspace. Workers store each file a task
            produced before reporting the task done; ``delete`` deletes a job's files.
        agents_dir: A folder of declarative agents (``*.yaml``, one agent a file; see
            ``docs/agents-yaml.md``), checked and added to ``agents`` when the engine is made.
        hooks: Hooks that run for every job (``planweave.hooks``): at model and tool calls,
            tasks and workflow steps in the workers here, at job start and end in the control
            plane here.
        job_hooks: Hooks that run only for the jobs whose ``JobOptions.hooks`` names them.
        web_search: The search service the ``web_search`` tool asks (``WebSearchConfig``;
            ``None``: Brave or Tavily when their key is in the environment, else none).
        policy: Guardrails every job's tool calls, connections and task results are held to
            (``planweave.policy.Policy``; ``docs/policy.md``), besides each job's own
            ``JobOptions.policy``.
        critics: Python critics by name (``planweave.critic``): functions ``(task, answer) ->
            Verdict``, or their import paths (``package.module:name``), which jobs, tasks and
            agents name beside the built-in ``llm`` critic (``docs/critic.md``).
        approve_tools: Names or glob patterns of tools whose calls wait for a person's
            approval in every job, added to each job's ``approve_tools`` when it is submitted.
        approval_timeout_s: How long a waiting call may wait before it is rejected, for jobs
            that set none themselves (``None``: no limit).
    """

    def __init__(
        self,
        *,
        store: str | Store | None = None,
        bus: str | Bus = "memory://",
        model: str | Model | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        agents: Iterable[Agent] = (),
        builtins: bool = True,
        data_dir: str | Path | None = None,
        model_options: ModelOptions | None = None,
        concurrency: dict[str, int] | None = None,
        allow_private_network: bool = False,
        shell_commands: Iterable[str] = (),
        spell_paths: Iterable[str | Path] = (),
        run_workers: bool = True,
        run_plane: bool = True,
        worker_kinds: Iterable[str] | None = None,
        claim_lease_s: float = DEFAULT_LEASE_S,
        work_lease_s: float = DEFAULT_LEASE_S,
        max_user_plan_tasks: int = DEFAULT_MAX_USER_PLAN_TASKS,
        tool_processes: int = DEFAULT_TOOL_PROCESSES,
        tool_memory_bytes: int | None = DEFAULT_TOOL_MEMORY_BYTES,
        job_defaults: JobOptions | None = None,
        tenant_quotas: TenantQuotas | None = None,
        artifact_store: str | ArtifactStore | None = None,
        agents_dir: str | Path | None = None,
        hooks: Iterable[Hook] = (),
        job_hooks: Iterable[Hook] = (),
        web_search: WebSearchConfig | None = None,
        policy: Policy | None = None,
        critics: dict[str, CriticFunction | str] | None = None,
        approve_tools: Iterable[str] = (),
        approval_timeout_s: float | None = None,
    ) -> None:
        # Absolute, so workspace and artifact paths mean the same from any directory.
        self.data_dir = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).resolve()
        if store is None:
            store = f"sqlite:///{self.data_dir / DEFAULT_STORE_FILE}"
        self.store: Store = open_store(store) if isinstance(store, str) else store
        self.bus: Bus = open_bus(bus) if isinstance(bus, str) else bus
        self._builtins = builtins
        self._extra_tools = tuple(tools)
        self._extra_agents = tuple(agents)
        self._agents_dir = Path(agents_dir) if agents_dir is not None else None
        self._tools: ToolRegistry | None = None
        self._agents: AgentRegistry | None = None
        self._models: ModelCache | None = None
        self._model = model
        self._model_options = model_options
        self._default_model = (
            model.name if model is not None and not isinstance(model, str) else model or "local:"
        )
        self.concurrency = {**DEFAULT_CONCURRENCY, **(concurrency or {})}
        self.allow_private_network = allow_private_network
        self.web_search = web_search
        self.shell_commands = tuple(shell_commands)
        self.spell_paths = tuple(Path(p).expanduser().resolve() for p in spell_paths)
        self.run_workers = run_workers
        self.run_plane = run_plane
        kinds = tuple(dict.fromkeys(worker_kinds)) if worker_kinds is not None else None
        unknown = sorted(set(kinds or ()) - set(DEFAULT_CONCURRENCY))
        if unknown:
            raise UsageError(
                f"unknown worker kind {', '.join(unknown)}: the kinds are "
                f"{', '.join(DEFAULT_CONCURRENCY)}"
            )
        self.worker_kinds = kinds if kinds is not None else tuple(self.concurrency)
        self.claim_lease_s = claim_lease_s
        self.work_lease_s = work_lease_s
        self.max_user_plan_tasks = max_user_plan_tasks
        if tool_processes < 1:
            raise UsageError(f"tool_processes must be at least 1, got {tool_processes}")
        self.tool_processes = tool_processes
        if tool_memory_bytes is not None and tool_memory_bytes < MIN_TOOL_MEMORY_BYTES:
            raise UsageError(
                f"tool_memory_bytes must be at least {MIN_TOOL_MEMORY_BYTES}, got "
                f"{tool_memory_bytes}"
            )
        self.tool_memory_bytes = tool_memory_bytes
        self._tool_processes: ToolProcesses | None = None
        self.job_defaults = job_defaults or JobOptions()
        self.approve_tools = tuple(approve_tools)
        self.approval_timeout_s = approval_timeout_s
        self.tenant_quotas = tenant_quotas
        self._submitting: dict[str, int] = {}  # tenant -> submissions between check and store
        self.artifact_store: ArtifactStore = _artifact_store(
            artifact_store, self.data_dir / "workspaces", self.workspace
        )
        self.plane = ControlPlane(
            store=self.store,
            bus=self.bus,
            settings=PlaneSettings(
                max_inflight=dict(self.concurrency),
                claim_lease_s=claim_lease_s,
                workspace_root=self.data_dir / "workspaces",
                default_model=self._default_model,
                known_tools=(),  # set with the tool registry (``tools``)
                reconcile_s=work_lease_s / 3,
                max_running_jobs_per_tenant=(
                    None if tenant_quotas is None else tenant_quotas.max_running_jobs
                ),
            ),
        )
        self.hooks = HookRegistry(hooks, job_hooks)
        self.policy = policy
        self.critics = CriticRegistry(critics)
        self.plane.hooks = self.hooks or None
        if self._extra_tools or self._extra_agents or self._agents_dir is not None:
            # A caller's tools and agents are checked now, so a bad one fails here.
            self._parts()
        self._pools: list[WorkerPool] = []
        self._unadoptable: set[str] = set()  # jobs that failed to resume: not retried on a timer
        self._start_lock: asyncio.Lock | None = None
        self._started = False
        self._closing = False
        self._sessions: SessionManager | None = None

    @property
    def sessions(self) -> SessionManager:
        """Reactive sessions (``planweave.sessions``): ``await engine.sessions.create(spec)``."""
        if self._sessions is None:
            from planweave.sessions import SessionManager

            self._sessions = SessionManager(self)
        return self._sessions

    # --- what jobs run on -----------------------------------------------------------------

    @property
    def tools(self) -> ToolRegistry:
        """The tools the agents and ``tool`` tasks may use: the built-ins and the caller's."""
        if self._tools is None:
            from planweave.tools import ToolRegistry, builtin_tools

            builtins = builtin_tools() if self._builtins else []
            if not self.shell_commands:  # no program allowed: not offered at all
                builtins = [each for each in builtins if each.name != "shell"]
            registry = ToolRegistry(builtins)
            for item in self._extra_tools:
                registry.register(item)
            self._tools = registry
            # Planners are told the tools by name on every work item the plane hands out.
            self.plane.settings.known_tools = tuple(registry.names())
        return self._tools

    @property
    def agents(self) -> AgentRegistry:
        """The agents ``execute`` tasks may name: the ReAct executor and the caller's."""
        if self._agents is None:
            from planweave.agents import AgentRegistry, ReactAgent
            from planweave.agents.react import DEFAULT_AGENT_DESCRIPTION

            registry = AgentRegistry()
            registry.register(ReactAgent(description=DEFAULT_AGENT_DESCRIPTION))
            for agent in self._extra_agents:
                registry.register(agent)
            if self._agents_dir is not None:
                from planweave.agents._declared import register_folder

                register_folder(registry, self._agents_dir, known_tools=self.tools.names())
            self._agents = registry
        return self._agents

    @property
    def models(self) -> ModelCache:
        """The models jobs call, by URL, each loaded on first use."""
        if self._models is None:
            from planweave.workers.handlers import ModelCache

            model = self._model
            if model is None or isinstance(model, str):
                self._models = ModelCache(default=self._default_model, options=self._model_options)
            else:
                self._models = ModelCache(
                    default=model.name, options=self._model_options, models={model.name: model}
                )
        return self._models

    def _parts(self) -> None:
        """Load the tools, agents and models: before this engine drives a job or runs workers.

        An engine that only reads and cancels jobs never needs them, and never imports them.
        """
        _ = self.tools, self.agents, self.models

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and bus and start the control plane and workers (idempotent)."""
        if self._started:
            return
        # Callers may start the engine from several coroutines at once (``resume`` beside
        # ``follow``): one of them starts it, the others wait for that.
        lock = self._start_lock
        if lock is None:
            lock = self._start_lock = asyncio.Lock()
        async with lock:
            if not self._started:
                await self._start()

    async def _start(self) -> None:
        # First: an artifact store that cannot be reached stops the start with nothing open.
        await self.artifact_store.open()
        # The bus before the store: a bus that cannot be reached leaves no store file behind.
        await self.bus.open()
        if self.run_plane:
            try:
                await self.store.open()
            except BaseException:
                await self.bus.close()
                raise
        if self.run_plane:
            await self.plane.start()
        if self.run_workers:
            from planweave.policy._task import TaskPolicies
            from planweave.tools import ToolProcesses
            from planweave.workers.handlers import WorkerServices, handler_for
            from planweave.workers.pool import WorkerPool

            self._tool_processes = ToolProcesses(
                self.tool_processes, max_memory_bytes=self.tool_memory_bytes
            )
            services = WorkerServices(
                tools=self.tools,
                agents=self.agents,
                models=self.models,
                allow_private_network=self.allow_private_network,
                shell_commands=self.shell_commands,
                tool_processes=self._tool_processes,
                tool_context_options=(
                    {} if self.web_search is None else {"web_search": self.web_search}
                ),
                artifact_store=self.artifact_store,
                hooks=self.hooks or None,
                policies=TaskPolicies(self.policy),
                critics=self.critics,
                spell_paths=self.spell_paths,
                spell_state_dir=self.data_dir / "spell-state",
            )
            for kind in self.worker_kinds:
                size = self.concurrency[kind]
                pool = WorkerPool(
                    bus=self.bus,
                    kind=kind,
                    handler=handler_for(kind, services),
                    concurrency=size,
                    lease_s=self.work_lease_s,
                    report_started_after_s=0.05 if kind == WORKER_TOOL else 0.0,
                )
                await pool.start()
                self._pools.append(pool)
        self._started = True

    async def close(self, *, grace_s: float = 5.0) -> None:
        """Stop cleanly: running work finishes or is released, everything decided is written."""
        if not self._started or self._closing:
            return
        self._closing = True
        try:
            if self._sessions is not None:
                await self._sessions.close()
            # All pools stop taking work at once and share one grace period.
            await asyncio.gather(*(pool.stop(grace_s=grace_s) for pool in self._pools))
            self._pools = []
            if self._tool_processes is not None:
                await self._tool_processes.close()
                self._tool_processes = None
            if self._tools is not None:
                await self._tools.aclose()  # MCP servers: stopped with the engine
            if self.run_plane:
                await self.plane.stop()
            self.hooks.close()  # after the last job end: its lines and spans are out
            if self._models is not None:
                await self._models.aclose()
            await self.bus.close()
            if self.run_plane:
                await self.store.close()
            await self.artifact_store.close()
        finally:
            self._started = False
            self._closing = False
            self._start_lock = None  # a later start may run on another event loop

    async def abandon(self, job_id: str, *, timeout_s: float = 5.0) -> bool:
        """Stop driving jobs now, without waiting for running work: write what was decided and
        release this process's claims (``job_id``'s included), so ``resume`` needs no force.

        For a second interrupt, when the clean ``close`` was cut short. Returns ``False`` when
        the claims could not be released within ``timeout_s`` each step.
        """
        stopped = True
        try:
            await asyncio.wait_for(self.plane.stop(), timeout_s)
        except Exception:
            stopped = False
            log.warning("stopping the control plane failed", exc_info=True)
        try:
            await asyncio.wait_for(self.store.release_job(job_id, self.plane.owner), timeout_s)
        except Exception:
            # A store closed by the interrupted close was closed after the plane released it.
            log.debug("releasing the claim of job %s failed", job_id, exc_info=True)
            return stopped
        return True

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- jobs -----------------------------------------------------------------------------

    async def submit(
        self,
        goal: str | None = None,
        *,
        plan: Plan | Sequence[TaskSpec] | None = None,
        options: JobOptions | None = None,
        tenant: str = "default",
        idempotency_key: str | None = None,
        job_id: str | None = None,
        agent: str | None = None,
        input: str | None = None,
        **option_fields: Any,
    ) -> str:
        """Start a job and return its id without waiting for it.

        Give a ``goal`` (a planner decomposes it) or a ``plan`` (run as written), or both (the
        goal then describes the plan). Or give a registered ``agent`` and its ``input``: the
        job runs that agent with no planner (the steps of a sequential, parallel or conditional
        workflow become the job's tasks). Extra keyword arguments set ``JobOptions`` fields. A
        repeated ``idempotency_key`` (per ``tenant``) returns the first job's id, starting nothing.
        ``job_id`` names the new job (default: a fresh id).

        With ``tenant_quotas`` the tenant's quotas are checked first, and the job's dollar
        budget is at most what the tenant has left of its spend quota. A job beyond the
        tenant's ``max_running_jobs`` is accepted but waits (``queued``) until one of the
        tenant's running jobs ends.

        Raises:
            UsageError: neither a goal nor a plan, or bad options.
            PlanInvalid: the plan does not validate.
            QuotaExceeded: the tenant is at a quota (``code`` names which); nothing started.
        """
        self._need_plane("submit jobs")
        await self.start()
        self._parts()
        opts = _options(options or self.job_defaults, option_fields)
        self.hooks.check(opts.hooks)
        if opts.model is None:  # recorded, so a resume in another process uses the same model
            opts = opts.model_copy(update={"model": self._default_model})
        if opts.allow_private_network is None:  # recorded like the model
            opts = opts.model_copy(update={"allow_private_network": self.allow_private_network})
        if self.approve_tools or (self.approval_timeout_s and not opts.approval_timeout_s):
            opts = with_approval_settings(opts, self.approve_tools, self.approval_timeout_s)
        specs: tuple[TaskSpec, ...] | None = None
        if agent is not None:
            from planweave.agents._workflows import agent_job_plan

            plan = agent_job_plan(self.agents, agent, input, goal, plan)
            goal = goal or input
        if plan is not None:
            specs, opts, goal = checked_job_plan(
                plan,
                opts,
                goal,
                keep_on_failure="on_failure" in option_fields,
                max_user_plan_tasks=self.max_user_plan_tasks,
                tools=self.tools,
                agents=self.agents,
            )
        elif not goal or not goal.strip():
            raise UsageError("give a goal, or a plan to run")
        check_critics(self.critics, self.agents, opts, specs)
        submit = functools.partial(
            self.plane.submit,
            goal=goal,
            plan=specs,
            job_id=job_id,
            tenant=tenant,
            idempotency_key=idempotency_key,
        )
        if self.tenant_quotas is None:
            return await submit(options=opts)
        return await submit_within_quotas(
            self.store, self.tenant_quotas, self._submitting, tenant, idempotency_key, opts, submit
        )

    def queued(self, job_id: str) -> bool:
        """Whether a job this engine drives waits for one of its tenant's running jobs to end
        (``TenantQuotas.max_running_jobs``) before its tasks go to workers; it starts by itself.

        ``False`` for a job driven by another process, or not at all."""
        return self.plane.queued(job_id)

    async def wait(self, job_id: str) -> JobResult:
        """Wait for a job running in this engine to finish."""
        state = await self.plane.wait(job_id)
        return await self._result(state)

    async def run(
        self,
        goal: str | None = None,
        *,
        plan: Plan | Sequence[TaskSpec] | None = None,
        options: JobOptions | None = None,
        agent: str | None = None,
        input: str | None = None,
        **option_fields: Any,
    ) -> JobResult:
        """Run a job to its end and return how it ended (see ``submit`` for the arguments)."""
        job_id = await self.submit(
            goal, plan=plan, options=options, agent=agent, input=input, **option_fields
        )
        return await self.wait(job_id)

    def run_sync(self, goal: str | None = None, **kwargs: Any) -> JobResult:
        """``run`` for scripts: starts the engine, runs the job, closes the engine."""
        return _run_sync(self._run_and_close(goal, **kwargs))

    async def _run_and_close(self, goal: str | None, **kwargs: Any) -> JobResult:
        try:
            return await self.run(goal, **kwargs)
        finally:
            await self.close()

    async def resume(
        self, job_id: str, *, force: bool = False, model: str | None = None
    ) -> JobResult:
        """Carry on a job that stopped (its process was killed): finished tasks are kept.

        Args:
            job_id: The job.
            force: Take the job over even while another process's claim on it is live.
            model: Model URL to carry on with, in place of the one the job recorded (in this
                engine, every call for the recorded model goes to this one).
        """
        self._need_plane("resume jobs")
        await self.start()
        self._parts()
        if model is not None:
            recorded = (await self.get(job_id)).options.model or self._default_model
            self.models.substitute(recorded, model)
        state = await self.plane.adopt(job_id, force=force)
        if state.terminal:
            return await self._result(state)
        return await self.wait(job_id)

    async def retry(self, job_id: str, *, task_id: str | None = None) -> str:
        """Run a failed or cancelled job again: its failed task(s) and everything cancelled.

        Returns the job id once the job runs again; ``wait`` for its end.
        """
        await self.start()
        self._parts()
        await self.plane.reopen(job_id, task_ids=None if task_id is None else [task_id])
        return job_id

    async def replan(self, job_id: str) -> str:
        """Ask the planner for a new plan around a failed job's failed task, keeping the rest."""
        await self.start()
        self._parts()
        await self.plane.reopen(job_id, replan=True)
        return job_id

    async def get(self, job_id: str) -> JobState:
        """The stored state of a job."""
        await self.start()
        state = self.plane.job(job_id) or await self.store.load_job(job_id)
        if state is None:
            raise JobNotFound(job_id)
        return state

    async def events(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """A job's recorded events after ``after_seq`` (the first ``limit`` of them)."""
        await self.start()
        return await self.store.read_events(job_id, after_seq=after_seq, limit=limit)

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Live events this process publishes: one job's, or every job's (no history).

        Use it as ``async with engine.subscribe() as sub: async for event in sub: ...``. Events
        of jobs that other processes run do not arrive here; ``follow`` covers those. One job's
        subscription also gets the ``LlmDelta`` pieces of its model replies (live only, never
        stored, ``seq`` 0).
        """
        return self.bus.subscribe(
            EVENT_TOPIC_ALL if job_id is None else f"{EVENT_TOPIC_ALL}:{job_id}"
        )

    def runs_here(self, job_id: str) -> bool:
        """Whether this process's control plane runs the job now."""
        return self.plane.job(job_id) is not None

    async def running(self) -> list[JobState]:
        """The live state of every job this process runs (read-only: do not change it)."""
        states = map(self.plane.job, await self.active_jobs())
        return [state for state in states if state is not None]

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobSummary]:
        """Jobs, newest first.

        Args:
            status: Only jobs in this status (``running``, ``succeeded``, ``failed`` or
                ``cancelled``; any other matches none).
            tenant: Only this tenant's jobs.
            limit: At most this many.
            offset: Skip this many (for paging).
        """
        await self.start()
        return await self.store.list_jobs(status=status, tenant=tenant, limit=limit, offset=offset)

    async def find_prefix(self, prefix: str, *, limit: int = 1000) -> list[str]:
        """Ids of the newest ``limit`` jobs that start with ``prefix`` (for short ids)."""
        return [s.job_id for s in await self.list_jobs(limit=limit) if s.job_id.startswith(prefix)]

    async def delete(self, job_id: str) -> None:
        """Delete a finished job with its tasks, events, artifacts and workspace.

        Goes through the control plane, which takes the job's claim first: a job that this or
        another live process runs is refused. A workspace the job was given
        (``JobOptions.workspace``) belongs to the user and is kept. The job's files in the
        artifact store go first, so a job whose files cannot be deleted stays listed.

        Raises:
            JobNotFound: no such job.
            JobBusy: the job has not ended (cancel it first), or a process runs it.
            ArtifactStoreUnavailable: the artifact store could not delete the job's files.
        """
        await self.start()
        state = await self.get(job_id)
        if state.terminal and not self.runs_here(job_id):
            await self.artifact_store.delete_job(job_id)
        await self.plane.delete(job_id)

    async def artifacts(self, job_id: str) -> list[ArtifactRow]:
        """The files a job produced, oldest first (a name written twice appears twice)."""
        await self.start()
        return await self.store.artifacts(job_id)

    async def workspace(self, job_id: str) -> Path:
        """The folder a job's file tools and artifacts live in: the job's ``workspace`` option
        if it has one, else its own folder under the data dir.

        Raises:
            JobNotFound: no such job.
        """
        state = await self.get(job_id)
        if state.options.workspace:
            return Path(state.options.workspace)
        return self.plane.settings.workspace_root / job_id

    def allowed_models(self, configured: Iterable[str] = ()) -> list[str]:
        """The models a job may name: the engine's default model, then ``configured`` ones
        (a server's ``api_models``), without repeats."""
        return list(dict.fromkeys((self._default_model, *configured)))

    async def submit_once(
        self,
        goal: str | None = None,
        *,
        idempotency_key: str | None,
        tenant: str = "default",
        **kwargs: Any,
    ) -> tuple[str, bool]:
        """``submit``, telling whether this call created the job.

        With an ``idempotency_key`` the tenant already used, nothing starts and the first job's
        id comes back with ``False``. The control plane does the lookup, so two concurrent
        submissions with one key still create one job.
        """
        fresh = new_id()
        job_id = await self.submit(
            goal, tenant=tenant, idempotency_key=idempotency_key, job_id=fresh, **kwargs
        )
        return job_id, job_id == fresh

    def _need_plane(self, what: str) -> None:
        if not self.run_plane:
            raise UsageError(
                f"this engine runs workers only (run_plane=False): it cannot {what}; "
                "use an engine that drives jobs (planweave serve or run)"
            )

    def _is_open(self) -> bool:
        return self._started and not self._closing

    async def _result(self, state: JobState) -> JobResult:
        artifacts = tuple(Path(a.path) for a in await self.store.artifacts(state.id))
        return JobResult(
            job_id=state.id,
            status=state.status,
            result=state.result,
            error=state.error,
            artifacts=artifacts,
            usage=Usage(
                tokens_in=state.tokens_in,
                tokens_out=state.tokens_out,
                cost_usd=state.cost_usd,
                llm_calls=state.llm_calls,
            ),
            tasks=len(state.tasks),
        )


def _artifact_store(
    given: str | ArtifactStore | None, root: Path, workspace_of: Callable[[str], Awaitable[Path]]
) -> ArtifactStore:
    from planweave.artifacts import open_artifact_store, workspace_artifact_store

    if given is None:
        return workspace_artifact_store(root, workspace_of)
    return open_artifact_store(given) if isinstance(given, str) else given


def _options(options: JobOptions | None, fields: dict[str, Any]) -> JobOptions:
    base = options or JobOptions()
    if not fields:
        return base
    try:
        return JobOptions.model_validate({**base.model_dump(), **fields})
    except Exception as exc:
        raise UsageError(f"bad job options: {exc}") from None


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise UsageError("run_sync cannot be called from a running event loop; await run() instead")
