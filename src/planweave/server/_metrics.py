"""``/metrics`` in the Prometheus text format.

Counters and histograms are computed from the event stream (a background task subscribed to all
events), so they count what this process's control plane decided; gauges (jobs by status, tasks
by state, queue depths) are read at scrape time from the store and the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from planweave.constants import JOB_STATUSES, TASK_STATUSES, TERMINAL_EVENT_TYPES
from planweave.events import Event, LlmCalled, ToolCalled
from planweave.hooks.metrics import hook_metrics
from planweave.server._context import AppContext, Ctx
from planweave.server._errors import error_responses

__all__ = ["Metrics", "router"]

log = logging.getLogger("planweave.server")

router = APIRouter(tags=["metrics"], responses=error_responses(401, 403, 429))

COUNT_CAP = 1_000_000
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
DURATION_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """The app's metrics, in a registry of their own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Gauge("planweave_jobs", "Jobs in the store by status", ["status"], registry=r)
        self.tasks = Gauge(
            "planweave_tasks", "Tasks of active jobs by state", ["status"], registry=r
        )
        self.queue_depth = Gauge(
            "planweave_queue_depth", "Messages waiting per queue", ["queue"], registry=r
        )
        self.dead_letters = Gauge(
            "planweave_dead_letters", "Dead letters per queue", ["queue"], registry=r
        )
        self.events = Counter("planweave_events", "Events by type", ["type"], registry=r)
        self.llm_tokens = Counter(
            "planweave_llm_tokens", "LLM tokens by direction", ["direction"], registry=r
        )
        self.llm_cost = Counter("planweave_llm_cost_usd", "LLM spend in dollars", registry=r)
        self.llm_latency = Histogram(
            "planweave_llm_call_latency_seconds",
            "LLM call latency",
            ["outcome"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.tool_latency = Histogram(
            "planweave_tool_call_latency_seconds",
            "Tool call latency",
            ["outcome"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.task_duration = Histogram(
            "planweave_task_duration_seconds",
            "Duration of task attempts, from start to their end",
            ["outcome"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self._started: dict[str, dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def observe(self, event: Event) -> None:
        """Count one event."""
        self.events.labels(event.type).inc()
        if isinstance(event, LlmCalled):
            self.llm_tokens.labels("in").inc(event.tokens_in)
            self.llm_tokens.labels("out").inc(event.tokens_out)
            self.llm_cost.inc(max(event.cost_usd, 0.0))
            outcome = "error" if event.error else "ok"
            self.llm_latency.labels(outcome).observe(event.latency_ms / 1000)
        elif isinstance(event, ToolCalled):
            self.tool_latency.labels(event.outcome).observe(event.latency_ms / 1000)
        elif event.type == "TaskStarted" and event.task_id is not None:
            self._started.setdefault(event.job_id, {})[event.task_id] = event.at
        elif event.type in ("TaskCompleted", "TaskFailed", "TaskRetrying"):
            started = self._started.get(event.job_id, {}).pop(event.task_id or "", None)
            if started is not None:
                outcome = "succeeded" if event.type == "TaskCompleted" else "failed"
                self.task_duration.labels(outcome).observe(max(event.at - started, 0.0))
        elif event.type in TERMINAL_EVENT_TYPES:
            self._started.pop(event.job_id, None)

    def start(self, ctx: AppContext) -> None:
        """Count events from now on, in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self._consume(ctx), name="planweave-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _consume(self, ctx: AppContext) -> None:
        async with ctx.engine.subscribe() as sub:
            async for event in sub:
                try:
                    self.observe(event)
                except Exception:  # a metric must never stop the counting
                    log.exception("metrics: cannot count %s", event.type)

    async def scrape(self, ctx: AppContext) -> bytes:
        """Refresh the gauges and render every metric."""
        engine = ctx.engine
        for status in JOB_STATUSES:
            self.jobs.labels(status).set(await _count_jobs(ctx, status))
        counts = dict.fromkeys(TASK_STATUSES, 0)
        for state in await engine.running():
            for task in state.tasks.values():
                counts[task.status] = counts.get(task.status, 0) + 1
        for status, count in counts.items():
            self.tasks.labels(status).set(count)
        for queue in await engine.queues():
            self.queue_depth.labels(queue.name).set(queue.depth)
            self.dead_letters.labels(queue.name).set(queue.dead_letters)
        return generate_latest(self.registry) + hook_metrics(engine.hooks)


async def _count_jobs(ctx: AppContext, status: str) -> int:
    # The store has no count query yet: page through the summaries (bounded).
    total, page = 0, 1000
    while total < COUNT_CAP:
        batch = await ctx.engine.list_jobs(status=status, limit=page, offset=total)
        total += len(batch)
        if len(batch) < page:
            break
    return total


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def metrics(ctx: Ctx) -> Response:
    """Metrics in the Prometheus text format, server-wide: they take the metrics token (the
    setting ``metrics_token``), never a tenant's token (403)."""
    metrics_: Metrics = ctx.metrics
    return Response(await metrics_.scrape(ctx), media_type=CONTENT_TYPE_LATEST)
