"""Prometheus metrics of the work a process does: model calls, tokens, cost, tool calls, task
attempts and their latencies, by model, tool and agent.

They count in the process that does the work (a ``planweave worker`` counts its own calls), in
a registry of the hook's own: ``planweave serve`` adds it to ``/metrics``; elsewhere serve it
with ``prometheus_client.start_http_server(port, registry=hook.registry)`` or read
:meth:`MetricsHook.exposition`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from planweave.hooks._contexts import AfterModelCall, AfterTask, AfterToolCall
from planweave.hooks._hook import Hook

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from planweave.hooks._registry import HookRegistry

__all__ = ["LATENCY_BUCKETS_S", "MetricsHook", "hook_metrics"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Family:
    """One metric's samples by label values, counted with plain dict updates (a
    ``prometheus_client`` metric takes a lock and looks its child up on every count; this is
    read only when scraped)."""

    __slots__ = ("buckets", "doc", "labels", "name", "values")

    def __init__(
        self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...] = ()
    ) -> None:
        self.name = name
        self.doc = doc
        self.labels = labels
        self.buckets = buckets
        # Counter: label values -> total. Histogram: label values -> [count per bucket...,
        # count above the last bucket, sum].
        self.values: dict[tuple[str, ...], Any] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts = self.values.get(key)
        if counts is None:
            counts = self.values[key] = [0] * (len(self.buckets) + 1) + [0.0]
        counts[bisect_left(self.buckets, value)] += 1
        counts[-1] += value

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        if not self.buckets:
            counter = CounterMetricFamily(self.name, self.doc, labels=self.labels)
            for key, total in list(self.values.items()):
                counter.add_metric(key, total)
            return counter
        histogram = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for key, counts in list(self.values.items()):
            running, cumulative = 0, []
            for bound, count in zip(bounds, counts[:-1], strict=True):
                running += count
                cumulative.append((bound, running))
            histogram.add_metric(key, cumulative, counts[-1])
        return histogram


class _Collector:
    """Hands a registry the families at scrape time."""

    def __init__(self, families: tuple[_Family, ...]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        for family in self.families:
            yield family.family()


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
        from prometheus_client import CollectorRegistry

        self.registry = registry if registry is not None else CollectorRegistry()
        self.model_calls = _Family(
            "planweave_model_calls", "Model calls", ("model", "agent", "outcome")
        )
        self.model_tokens = _Family(
            "planweave_model_tokens", "Model tokens", ("model", "agent", "direction")
        )
        self.model_cost = _Family(
            "planweave_model_cost_usd", "Model spend in dollars", ("model", "agent")
        )
        self.model_latency = _Family(
            "planweave_model_call_seconds", "Model call latency", ("model",), LATENCY_BUCKETS_S
        )
        self.tool_calls = _Family(
            "planweave_tool_calls", "Tool calls", ("tool", "agent", "outcome")
        )
        self.tool_latency = _Family(
            "planweave_tool_call_seconds", "Tool call latency", ("tool",), LATENCY_BUCKETS_S
        )
        self.task_attempts = _Family(
            "planweave_task_attempts", "Task attempts run", ("worker", "status")
        )
        self.registry.register(
            _Collector(
                (
                    self.model_calls,
                    self.model_tokens,
                    self.model_cost,
                    self.model_latency,
                    self.tool_calls,
                    self.tool_latency,
                    self.task_attempts,
                )
            )
        )

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)

    async def after_model_call(self, ctx: AfterModelCall) -> None:
        model, agent = ctx.model, ctx.agent or ""
        response = ctx.response
        self.model_calls.inc((model, agent, "ok" if response is not None else "error"))
        self.model_latency.observe((model,), ctx.latency_ms / 1000)
        if response is not None:
            if response.tokens_in:
                self.model_tokens.inc((model, agent, "in"), response.tokens_in)
            if response.tokens_out:
                self.model_tokens.inc((model, agent, "out"), response.tokens_out)
            if response.cost_usd:
                self.model_cost.inc((model, agent), response.cost_usd)

    async def after_tool_call(self, ctx: AfterToolCall) -> None:
        result = ctx.result
        self.tool_calls.inc((ctx.name, ctx.agent or "", "ok" if result.ok else "error"))
        self.tool_latency.observe((ctx.name,), result.latency_ms / 1000)

    async def after_task(self, ctx: AfterTask) -> None:
        item = ctx.item
        self.task_attempts.inc((item.worker, ctx.outcome.status))


def hook_metrics(registry: HookRegistry) -> bytes:
    """The text exposition of every metrics hook an engine holds (``b""``: none), for
    ``/metrics``."""
    hooks = (*registry.always.hooks, *registry.by_name.values())
    return b"".join(h.exposition() for h in hooks if isinstance(h, MetricsHook))
