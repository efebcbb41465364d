"""OpenTelemetry tracing: one trace per job, with spans for its tasks, model calls and tool
calls (a ``tool`` task is one tool call, so one span, ``execute_tool NAME``, stands for both).

The job's span opens in the process that drives the job (its control plane); every work item
carries the job's trace context (``WorkItem.trace``, a W3C ``traceparent``), so a worker in any
process opens its task span inside the same trace. Model-call spans follow the GenAI semantic
conventions (``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``,
``gen_ai.usage.output_tokens``, ...).

Spans go to the tracer provider given, or to the global one. :meth:`TracingHook.from_env` (what
``--hook tracing`` uses) exports over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(``pip install 'planweave[otlp]'``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from planweave.errors import MissingDependency
from planweave.hooks._contexts import (
    AfterModelCall,
    AfterStep,
    AfterTask,
    AfterToolCall,
    BeforeModelCall,
    BeforeStep,
    BeforeTask,
    BeforeToolCall,
    JobEnd,
    JobStart,
)
from planweave.hooks._hook import Hook

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["TracingHook"]

_MODEL_SPAN: ContextVar[Span | None] = ContextVar("planweave_model_span", default=None)
_TOOL_SPAN: ContextVar[Span | None] = ContextVar("planweave_tool_span", default=None)
_STEP_SPAN: ContextVar[Span | None] = ContextVar("planweave_step_span", default=None)
_OWN_SPAN: ContextVar[bool] = ContextVar("planweave_own_tool_span", default=True)

GOAL_ATTRIBUTE_CHARS = 300
MAX_KEPT_PARENTS = 1024


def _provider_of(model: str) -> str:
    """``openai:gpt-4o-mini`` -> ``openai`` (the GenAI convention's provider name)."""
    scheme, sep, _ = model.partition(":")
    return scheme if sep else "unknown"


class TracingHook(Hook):
    """Spans for jobs, tasks, workflow steps, model calls and tool calls.

    Args:
        tracer_provider: Where spans go (default: the global provider of
            ``opentelemetry.trace``).
    """

    name = "tracing"
    priority = 1000  # after the hooks that rewrite or redact: spans show what really ran

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as exc:
            raise MissingDependency("opentelemetry-api", "otel") from exc
        self._trace = trace
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracer_provider = provider
        self.tracer: Tracer = provider.get_tracer("planweave")
        self._propagator = TraceContextTextMapPropagator()
        self._jobs: dict[str, tuple[Span, str]] = {}  # job id -> its span and traceparent
        self._tasks: dict[tuple[str, str], Span] = {}  # (job id, task id) -> the task's span
        # The tool of each open ``tool`` task: its task span is the span of that tool's call.
        self._tool_tasks: dict[tuple[str, str], str] = {}
        self._parents: dict[str, Context] = {}  # traceparent -> its context, parsed once
        self._flush: Callable[[], object] | None = None

    @classmethod
    def from_env(cls) -> TracingHook:
        """The hook on an SDK tracer provider that exports over OTLP (HTTP) when
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; on the global provider otherwise."""
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise MissingDependency("opentelemetry-exporter-otlp-proto-http", "otlp") from exc
        service = os.environ.get("OTEL_SERVICE_NAME", "planweave")
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        hook = cls(provider)
        hook._flush = provider.force_flush
        return hook

    def close(self) -> None:
        """Send the spans still buffered (for the exporter :meth:`from_env` set up)."""
        if self._flush is not None:
            self._flush()

    # --- the job's trace -------------------------------------------------------------------

    def _job_span(self, job_id: str, goal: str = "") -> tuple[Span, str]:
        found = self._jobs.get(job_id)
        if found is None:
            span = self.tracer.start_span(
                "planweave.job",
                attributes={
                    "planweave.job_id": job_id,
                    "planweave.goal": goal[:GOAL_ATTRIBUTE_CHARS],
                },
            )
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
            found = self._jobs[job_id] = (span, carrier.get("traceparent", ""))
        return found

    def work_item_trace(self, job_id: str) -> str | None:
        """The traceparent of the job's span (opened here if the job started before the hook
        saw it)."""
        return self._job_span(job_id)[1] or None

    async def job_start(self, ctx: JobStart) -> None:
        span, _ = self._job_span(ctx.job_id, ctx.goal)
        span.set_attribute("planweave.resumed", ctx.resumed)

    async def job_end(self, ctx: JobEnd) -> None:
        found = self._jobs.pop(ctx.job_id, None)
        if found is None:
            return
        span = found[0]
        span.set_attribute("planweave.status", ctx.status)
        if ctx.status == "failed":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, ctx.error or ""))
        span.end()

    # --- tasks -----------------------------------------------------------------------------

    async def before_task(self, ctx: BeforeTask) -> None:
        item = ctx.item
        parent: Context | None = None
        if item.trace:
            parent = self._parents.get(item.trace)
            if parent is None:
                if len(self._parents) >= MAX_KEPT_PARENTS:
                    self._parents.clear()
                parent = self._parents[item.trace] = self._propagator.extract(
                    {"traceparent": item.trace}
                )
        elif item.job_id in self._jobs:
            parent = self._trace.set_span_in_context(self._jobs[item.job_id][0])
        attributes: dict[str, Any] = {
            "planweave.job_id": item.job_id,
            "planweave.task_id": item.task_id,
            "planweave.attempt": item.attempt,
            "planweave.worker": item.worker,
        }
        spec = item.spec
        if spec.agent:
            attributes["planweave.agent"] = spec.agent
        key = (item.job_id, item.task_id)
        name = f"planweave.task {item.worker}"
        if spec.tool:
            attributes["planweave.tool"] = spec.tool
            if spec.kind == "tool":
                # The task is one tool call: one span stands for both.
                name = f"execute_tool {spec.tool}"
                attributes["gen_ai.operation.name"] = "execute_tool"
                attributes["gen_ai.tool.name"] = spec.tool
                self._tool_tasks[key] = spec.tool
        self._tasks[key] = self.tracer.start_span(name, context=parent, attributes=attributes)

    async def after_task(self, ctx: AfterTask) -> None:
        key = (ctx.job_id, ctx.task_id)
        self._tool_tasks.pop(key, None)
        span = self._tasks.pop(key, None)
        if span is None:
            return
        outcome = ctx.outcome
        span.set_attribute("planweave.status", outcome.status)
        if outcome.status == "failed":
            span.set_attribute("error.type", outcome.error_type)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, outcome.error or ""))
        span.end()

    def _parent(self, job_id: str, task_id: str | None) -> Context | None:
        """The innermost open span of the call: a tool call's (a tool's own model call), a
        workflow step's, else the task's."""
        span = _TOOL_SPAN.get() or _STEP_SPAN.get()
        if span is None and task_id is not None:
            span = self._tasks.get((job_id, task_id))
        return None if span is None else self._trace.set_span_in_context(span)

    # --- workflow steps --------------------------------------------------------------------

    async def before_step(self, ctx: BeforeStep) -> None:
        span = self.tracer.start_span(
            f"planweave.step {ctx.step}",
            context=self._parent(ctx.job_id, ctx.task_id),
            attributes={"planweave.workflow": ctx.workflow, "planweave.step": ctx.step},
        )
        _STEP_SPAN.set(span)

    async def after_step(self, ctx: AfterStep) -> None:
        span = _STEP_SPAN.get()
        if span is not None:
            _STEP_SPAN.set(None)
            span.end()

    # --- model calls -----------------------------------------------------------------------

    async def before_model_call(self, ctx: BeforeModelCall) -> None:
        request = ctx.request
        model_name = ctx.model.partition(":")[2] or ctx.model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _provider_of(ctx.model),
            "gen_ai.system": _provider_of(ctx.model),
            "gen_ai.request.model": model_name,
            "planweave.job_id": ctx.job_id,
        }
        if ctx.task_id is not None:
            attributes["planweave.task_id"] = ctx.task_id
        if ctx.agent:
            attributes["gen_ai.agent.name"] = ctx.agent
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        span = self.tracer.start_span(
            f"chat {model_name}",
            context=self._parent(ctx.job_id, ctx.task_id),
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        _MODEL_SPAN.set(span)

    async def after_model_call(self, ctx: AfterModelCall) -> None:
        span = _MODEL_SPAN.get()
        if span is None:
            return
        _MODEL_SPAN.set(None)
        response = ctx.response
        if response is None:
            span.set_attribute("error.type", (ctx.error or "error").partition(":")[0])
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, ctx.error or ""))
        else:
            span.set_attribute("gen_ai.usage.input_tokens", response.tokens_in)
            span.set_attribute("gen_ai.usage.output_tokens", response.tokens_out)
            if response.model:
                span.set_attribute("gen_ai.response.model", response.model)
            if response.finish_reason:
                span.set_attribute("gen_ai.response.finish_reasons", (response.finish_reason,))
            if response.cost_usd:
                span.set_attribute("planweave.cost_usd", response.cost_usd)
        span.end()

    # --- tool calls ------------------------------------------------------------------------

    async def before_tool_call(self, ctx: BeforeToolCall) -> None:
        if ctx.task_id is not None:
            key = (ctx.job_id, ctx.task_id)
            if self._tool_tasks.get(key) == ctx.name:
                del self._tool_tasks[key]  # the task's one call; a second one gets its own span
                _TOOL_SPAN.set(self._tasks[key])
                _OWN_SPAN.set(False)
                return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": ctx.name,
            "planweave.job_id": ctx.job_id,
        }
        if ctx.agent:
            attributes["gen_ai.agent.name"] = ctx.agent
        span = self.tracer.start_span(
            f"execute_tool {ctx.name}",
            context=self._parent(ctx.job_id, ctx.task_id),
            attributes=attributes,
        )
        _TOOL_SPAN.set(span)
        _OWN_SPAN.set(True)

    async def after_tool_call(self, ctx: AfterToolCall) -> None:
        span = _TOOL_SPAN.get()
        if span is None:
            return
        _TOOL_SPAN.set(None)
        result = ctx.result
        if not result.ok:
            span.set_attribute("error.type", result.error_type or "error")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, result.error or ""))
        if _OWN_SPAN.get():
            span.end()  # a tool task's span ends with the task
