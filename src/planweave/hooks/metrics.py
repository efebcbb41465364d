"""Prometheus metrics of the work a process does: model calls, tokens, cost, tool calls, task
attempts and their latencies, by model, tool and agent.

They count in the process that does the work (a ``planweave worker`` counts its own calls), in
a registry of the hook's own: ``planweave serve`` adds it to ``/metrics``; elsewhere serve it
with ``prometheus_client.start_http_server(port, registry=hook.registry)`` or read
:meth:`MetricsHook.exposition`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from planweave.hooks._contexts import AfterModelCall, AfterTask, AfterToolCall
from planweave.hooks._hook import Hook

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from planweave.hooks._registry import HookRegistry

__all__ = ["LATENCY_BUCKETS_S", "MetricsHook", "hook_metrics"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class MetricsHook(Hook):
    """Counts model calls, tokens, cost, tool calls and task attempts, with latencies.

    Metrics (labels): ``planweave_model_calls_total`` (model, agent, outcome),
    ``planweave_model_tokens_total`` (model, agent, direction), ``planweave_model_cost_usd_total``
    (model, agent), ``planweave_model_call_seconds`` (model), ``planweave_tool_calls_total``
    (tool, agent, outcome), ``planweave_tool_call_seconds`` (tool),
    ``planweave_task_attempts_total`` (worker, status).

    Args:
        registry: Where the metrics live (default: a registry of this hook's own, so several
            engines in one process never clash).
    """

    name = "metrics"

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.model_calls = Counter(
            "planweave_model_calls", "Model calls", ["model", "agent", "outcome"], registry=r
        )
        self.model_tokens = Counter(
            "planweave_model_tokens", "Model tokens", ["model", "agent", "direction"], registry=r
        )
        self.model_cost = Counter(
            "planweave_model_cost_usd", "Model spend in dollars", ["model", "agent"], registry=r
        )
        self.model_latency = Histogram(
            "planweave_model_call_seconds",
            "Model call latency",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.tool_calls = Counter(
            "planweave_tool_calls", "Tool calls", ["tool", "agent", "outcome"], registry=r
        )
        self.tool_latency = Histogram(
            "planweave_tool_call_seconds",
            "Tool call latency",
            ["tool"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.task_attempts = Counter(
            "planweave_task_attempts", "Task attempts run", ["worker", "status"], registry=r
        )
        # Labelled children by label values: ``labels()`` is the costly part of a count.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)

    async def after_model_call(self, ctx: AfterModelCall) -> None:
        model, agent = ctx.model, ctx.agent or ""
        response = ctx.response
        outcome = "ok" if response is not None else "error"
        self._child(self.model_calls, model, agent, outcome).inc()
        self._child(self.model_latency, model).observe(ctx.latency_ms / 1000)
        if response is not None:
            if response.tokens_in:
                self._child(self.model_tokens, model, agent, "in").inc(response.tokens_in)
            if response.tokens_out:
                self._child(self.model_tokens, model, agent, "out").inc(response.tokens_out)
            if response.cost_usd:
                self._child(self.model_cost, model, agent).inc(response.cost_usd)

    async def after_tool_call(self, ctx: AfterToolCall) -> None:
        result = ctx.result
        outcome = "ok" if result.ok else "error"
        self._child(self.tool_calls, ctx.name, ctx.agent or "", outcome).inc()
        self._child(self.tool_latency, ctx.name).observe(result.latency_ms / 1000)

    async def after_task(self, ctx: AfterTask) -> None:
        self._child(self.task_attempts, ctx.item.worker, ctx.outcome.status).inc()


def hook_metrics(registry: HookRegistry) -> bytes:
    """The text exposition of every metrics hook an engine holds (``b""``: none), for
    ``/metrics``."""
    hooks = (*registry.always.hooks, *registry.by_name.values())
    return b"".join(h.exposition() for h in hooks if isinstance(h, MetricsHook))
