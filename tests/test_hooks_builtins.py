"""The built-in hooks on whole jobs: metrics counters move (and reach ``/metrics``), JSON log
lines, OpenTelemetry spans with GenAI attributes in one trace per job, and a canary secret that
never reaches events, logs or the API."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from planweave import Engine, MissingDependency, Plan, TaskSpec, tool
from planweave.config import Settings
from planweave.hooks import (
    AfterToolCall,
    JsonLogHook,
    MetricsHook,
    RedactionHook,
    Redactor,
    TracingHook,
    hook,
)
from planweave.llm import ScriptedModel
from planweave.server.testing import running_server

MODEL = "scripted:test"
REPLIES: list[dict[str, Any]] = [
    {
        "match": {"role": "executor", "contains": "Echo"},
        "tool_calls": [{"name": "echo", "arguments": {"text": "hello"}}],
    },
    {"match": {"role": "executor"}, "content": "done"},
]
PLAN = Plan(tasks=(TaskSpec(id="t", kind="execute", goal="Echo hello"),))


@tool
def echo(text: str) -> str:
    """Give the text back."""
    return f"echo:{text}"


def engine_for(tmp_path: Path, replies: list[dict[str, Any]], **kwargs: Any) -> Engine:
    kwargs.setdefault("tools", [echo])
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies, name=MODEL),
        data_dir=tmp_path / "data",
        **kwargs,
    )


# --- metrics ----------------------------------------------------------------------------------


async def test_metrics_count_model_calls_tokens_tool_calls_and_tasks(tmp_path: Path) -> None:
    metrics = MetricsHook()
    sample = metrics.registry.get_sample_value
    async with engine_for(tmp_path, REPLIES, hooks=[metrics]) as engine:
        result = await engine.run(plan=PLAN)
        assert result.ok, result.error
    labels = {"model": MODEL, "agent": "executor"}
    assert sample("planweave_model_calls_total", {**labels, "outcome": "ok"}) == 2
    tokens_in = sample("planweave_model_tokens_total", {**labels, "direction": "in"})
    assert tokens_in == result.usage.tokens_in > 0
    assert sample("planweave_model_call_seconds_count", {"model": MODEL}) == 2
    assert (
        sample("planweave_tool_calls_total", {"tool": "echo", "agent": "executor", "outcome": "ok"})
        == 1
    )
    assert sample("planweave_tool_call_seconds_count", {"tool": "echo"}) == 1
    attempts = {"worker": "executor", "status": "succeeded"}
    assert sample("planweave_task_attempts_total", attempts) == 1


def test_latency_histograms_count_each_observation_in_its_bucket_and_above() -> None:
    metrics = MetricsHook()
    for seconds in (0.003, 0.2, 0.25, 500.0):
        metrics.tool_latency.observe(("echo",), seconds)
    sample = metrics.registry.get_sample_value

    def bucket(le: str) -> float | None:
        return sample("planweave_tool_call_seconds_bucket", {"tool": "echo", "le": le})

    assert bucket("0.005") == 1
    assert bucket("0.1") == 1
    assert bucket("0.25") == 3  # a bucket counts what is at most its bound
    assert bucket("120.0") == 3
    assert bucket("+Inf") == 4
    assert sample("planweave_tool_call_seconds_count", {"tool": "echo"}) == 4
    assert sample("planweave_tool_call_seconds_sum", {"tool": "echo"}) == pytest.approx(500.453)


async def test_the_servers_metrics_include_the_hooks_metrics(tmp_path: Path) -> None:
    metrics = MetricsHook()
    engine = engine_for(tmp_path, REPLIES, hooks=[metrics])
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "metrics_token": "scrape"})
    try:
        async with running_server(engine, settings) as api:
            result = await engine.run(plan=PLAN)
            assert result.ok, result.error
            async with httpx.AsyncClient(base_url=api.url) as client:
                response = await client.get("/metrics", headers={"Authorization": "Bearer scrape"})
    finally:
        await engine.close()
    assert response.status_code == 200
    assert 'planweave_tool_calls_total{agent="executor",outcome="ok",tool="echo"} 1.0' in (
        response.text
    )
    assert "planweave_jobs{" in response.text  # the server's own metrics are still there


# --- structured logging -----------------------------------------------------------------------


async def test_json_log_lines_for_each_call_task_and_job(tmp_path: Path) -> None:
    path = tmp_path / "hooks.jsonl"
    log_hook = JsonLogHook(path)
    async with engine_for(tmp_path, REPLIES, hooks=[log_hook]) as engine:
        result = await engine.run(plan=PLAN)
        assert result.ok, result.error
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [line["event"] for line in lines]
    assert kinds == ["job_start", "model_call", "tool_call", "model_call", "task", "job_end"]
    model_call = lines[1]
    assert model_call["job_id"] == result.job_id and model_call["task_id"] == "t"
    assert model_call["model"] == MODEL and model_call["agent"] == "executor"
    assert model_call["tokens_in"] > 0 and model_call["outcome"] == "ok"
    assert lines[2]["tool"] == "echo" and lines[2]["outcome"] == "ok"
    assert lines[4]["status"] == "succeeded" and lines[5]["status"] == "succeeded"


async def test_json_log_lines_go_to_a_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="planweave.hooks.log")
    async with engine_for(tmp_path, REPLIES, hooks=[JsonLogHook()]) as engine:
        result = await engine.run(plan=PLAN)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "planweave.hooks.log"]
    assert {line["event"] for line in lines} >= {"model_call", "tool_call", "task"}
    assert all(line["job_id"] == result.job_id for line in lines)


# --- tracing ----------------------------------------------------------------------------------


def by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_one_trace_per_job_with_task_model_and_tool_spans(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with engine_for(tmp_path, REPLIES, hooks=[TracingHook(provider)]) as engine:
        result = await engine.run(plan=PLAN)
        assert result.ok, result.error
    spans = exporter.get_finished_spans()
    (job,) = by_name(spans, "planweave.job")
    (task,) = by_name(spans, "planweave.task")
    chats = by_name(spans, "chat ")
    (tool_span,) = by_name(spans, "execute_tool echo")
    assert len(chats) == 2
    assert {s.context.trace_id for s in spans} == {job.context.trace_id}
    assert job.parent is None
    assert job.attributes is not None and job.attributes["planweave.job_id"] == result.job_id
    assert job.attributes["planweave.status"] == "succeeded"
    assert task.parent is not None and task.parent.span_id == job.context.span_id
    for span in (*chats, tool_span):
        assert span.parent is not None and span.parent.span_id == task.context.span_id
    attributes = chats[0].attributes
    assert attributes is not None
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "test"
    assert attributes["gen_ai.provider.name"] == "scripted"
    assert attributes["gen_ai.agent.name"] == "executor"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert tool_span.attributes is not None
    assert tool_span.attributes["gen_ai.tool.name"] == "echo"


async def test_a_failed_model_call_is_an_error_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    replies = [{"error": {"type": "unavailable", "message": "down"}}]
    async with engine_for(tmp_path, replies, hooks=[TracingHook(provider)]) as engine:
        result = await engine.run(plan=PLAN, max_attempts=1)
        assert not result.ok
    (chat,) = by_name(exporter.get_finished_spans(), "chat ")
    assert not chat.status.is_ok
    (job,) = by_name(exporter.get_finished_spans(), "planweave.job")
    assert job.attributes is not None and job.attributes["planweave.status"] == "failed"


# --- redaction --------------------------------------------------------------------------------

CANARY = "canary-7f3a9c2e51d04b68"


async def test_a_canary_secret_never_reaches_events_logs_traces_or_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CANARY_SERVICE_TOKEN", CANARY)
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    leaky_log = logging.getLogger("tests.leaky")

    @tool
    def read_config() -> str:
        """Read the service configuration."""
        leaky_log.warning("using token %s", CANARY)
        return f"endpoint=https://api.example.com token={CANARY}"

    replies = [
        {
            "match": {"role": "executor", "contains": "config"},
            "tool_calls": [{"name": "read_config", "arguments": {}}],
        },
        {"match": {"role": "executor"}, "content": f"The token is {CANARY}."},
    ]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    log_path = tmp_path / "hooks.jsonl"
    log_hook = JsonLogHook(log_path)
    hooks = [TracingHook(provider), log_hook, RedactionHook()]
    caplog.set_level(logging.INFO)
    engine = engine_for(tmp_path, replies, tools=[read_config], hooks=hooks)
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "tokens": "alice:t0ken-alice"}
    )
    try:
        async with running_server(engine, settings) as api:
            job_id = await engine.submit(
                "Read the config",
                plan=Plan(tasks=(TaskSpec(id="t", kind="execute", goal="Read the config"),)),
                tenant="alice",
            )
            result = await engine.wait(job_id)
            assert result.ok, result.error
            headers = {"Authorization": "Bearer t0ken-alice"}
            async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
                payloads = [
                    (await client.get(f"/v1/jobs/{job_id}")).text,
                    (await client.get(f"/v1/jobs/{job_id}/tasks/t")).text,
                    (await client.get(f"/v1/jobs/{job_id}/events")).text,
                ]
    finally:
        await engine.close()  # closes the log hook's file
    stored = json.dumps([e.model_dump(mode="json") for e in await _events(tmp_path, job_id)])
    assert "[REDACTED]" in stored and "The token is [REDACTED]." in stored
    assert CANARY not in stored
    for payload in payloads:
        assert "[REDACTED]" in payload
        assert CANARY not in payload
    assert CANARY not in log_path.read_text()
    assert any("using token [REDACTED]" in r.getMessage() for r in caplog.records)
    assert all(CANARY not in r.getMessage() for r in caplog.records)
    spans = json.dumps([s.to_json() for s in exporter.get_finished_spans()])
    assert CANARY not in spans


async def _events(tmp_path: Path, job_id: str) -> list[Any]:
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}", data_dir=tmp_path / "data"
    ) as engine:
        return await engine.events(job_id)


def test_the_redactor_masks_known_secrets_and_key_shapes() -> None:
    redactor = Redactor(["s3cr3t-value-123", "short"], patterns=None)
    text = "a s3cr3t-value-123 b sk-abcdefghijklmnopqrstuvwx c short Bearer abcdefghijklmnopqrst"
    assert redactor.text(text) == "a [REDACTED] b [REDACTED] c short [REDACTED]"
    value = {"k": ["s3cr3t-value-123", ("x", 1)], "s3cr3t-value-123": None}
    assert redactor.value(value) == {"k": ["[REDACTED]", ("x", 1)], "[REDACTED]": None}
    custom = Redactor([], patterns=[r"ID-\d{6}"])
    assert custom.text("user ID-123456 sk-abcdefghijklmnopqrstuvwx") == (
        "user [REDACTED] sk-abcdefghijklmnopqrstuvwx"
    )


def test_tracing_by_name_exports_over_otlp_when_an_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert isinstance(TracingHook.from_env(), TracingHook)  # the global provider
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    if importlib.util.find_spec("opentelemetry.exporter") is None:  # planweave[otlp] absent
        with pytest.raises(MissingDependency, match=r"planweave\[otlp\]"):
            TracingHook.from_env()
    else:
        hook = TracingHook.from_env()
        assert isinstance(hook.tracer_provider, TracerProvider)


async def test_an_api_job_names_the_job_hooks_it_runs_with(tmp_path: Path) -> None:
    audited: list[str] = []

    @hook("after_tool_call", name="audit")
    async def audit(ctx: AfterToolCall) -> None:
        audited.append(ctx.job_id)

    engine = engine_for(tmp_path, REPLIES, job_hooks=[audit])
    settings = Settings.model_validate({"data_dir": tmp_path / "data", "tokens": "alice:t0ken-a"})
    plan = {"tasks": [{"id": "t", "kind": "tool", "tool": "echo", "args": {"text": "x"}}]}
    try:
        async with running_server(engine, settings) as api:
            headers = {"Authorization": "Bearer t0ken-a"}
            async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
                named = await client.post(
                    "/v1/jobs", json={"plan": plan, "options": {"hooks": ["audit"]}}
                )
                plain = await client.post("/v1/jobs", json={"plan": plan})
                unknown = await client.post(
                    "/v1/jobs", json={"plan": plan, "options": {"hooks": ["nope"]}}
                )
            assert named.status_code == 201, named.text
            assert plain.status_code == 201, plain.text
            for created in (named, plain):
                assert (await engine.wait(created.json()["job_id"])).ok
    finally:
        await engine.close()
    assert audited == [named.json()["job_id"]]
    assert unknown.status_code == 422
    assert "unknown job hook 'nope'" in unknown.text


async def test_a_tool_task_is_one_span_that_names_the_task_and_the_tool(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plan = Plan(tasks=(TaskSpec(id="e", kind="tool", tool="echo", args={"text": "hi"}),))
    async with engine_for(tmp_path, REPLIES, hooks=[TracingHook(provider)]) as engine:
        result = await engine.run(plan=plan)
        assert result.ok, result.error
    spans = exporter.get_finished_spans()
    (job,) = by_name(spans, "planweave.job")
    (task,) = [s for s in spans if s is not job]
    assert task.name == "execute_tool echo"
    assert task.parent is not None and task.parent.span_id == job.context.span_id
    attributes = task.attributes or {}
    assert attributes["planweave.task_id"] == "e"
    assert attributes["gen_ai.tool.name"] == "echo"
    assert attributes["planweave.status"] == "succeeded"
