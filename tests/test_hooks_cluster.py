"""A job's trace continues in a real ``planweave worker`` process on a real Redis server: the
control plane (this process) opens the job's span, the work item carries its context, and the
worker's task and tool spans land in the same trace under it. The worker loads its hooks by
import path (``--hook file.py:name``), as any worker process must."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from planweave import Engine, Plan, TaskSpec
from planweave._plugins import load_tools
from planweave.hooks import TracingHook

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

TOOLS = '''
from planweave import tool

@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()
'''

# The worker's spans go to a file the test reads: the SDK's in-memory exporter, written out.
SPAN_HOOKS = """
import json, os
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from planweave.hooks import TracingHook

class ToFile(InMemorySpanExporter):
    def export(self, spans):
        with open(os.environ["SPANS_FILE"], "a") as out:
            for s in spans:
                parent = s.parent.span_id if s.parent is not None else None
                out.write(json.dumps({
                    "name": s.name, "trace_id": s.context.trace_id,
                    "span_id": s.context.span_id, "parent": parent, "pid": os.getpid(),
                    "attributes": dict(s.attributes or {}),
                }) + "\\n")
        return super().export(spans)

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ToFile()))
tracing = TracingHook(provider)
"""


def start_worker(tmp_path: Path, bus_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANWEAVE_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["SPANS_FILE"] = str(tmp_path / "worker-spans.jsonl")
    with (tmp_path / "worker.log").open("w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planweave.cli",
                "worker",
                "--bus",
                bus_url,
                "--kinds",
                "tool",
                "--tools",
                str(tmp_path / "tools.py"),
                "--hook",
                f"{tmp_path / 'spanhooks.py'}:tracing",
                "--data-dir",
                str(tmp_path / "data"),
                "--grace-s",
                "2",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_a_worker_process_continues_the_jobs_trace(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "spanhooks.py").write_text(SPAN_HOOKS)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    worker = start_worker(tmp_path, redis_url)
    try:
        async with Engine(
            store=f"sqlite:///{tmp_path / 'jobs.db'}",
            bus=redis_url,
            data_dir=tmp_path / "data",
            tools=load_tools([str(tmp_path / "tools.py")]),
            run_workers=False,
            hooks=[TracingHook(provider)],
        ) as plane:
            plan = Plan(tasks=(TaskSpec(id="t", kind="tool", tool="shout", args={"text": "hi"}),))
            job_id = await plane.submit(plan=plan)
            result = await asyncio.wait_for(plane.wait(job_id), 60)
            assert result.ok, result.error
            assert result.result == "HI"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    (job,) = [s for s in exporter.get_finished_spans() if s.name == "planweave.job"]
    spans = [
        json.loads(line) for line in (tmp_path / "worker-spans.jsonl").read_text().splitlines()
    ]
    # A tool task is one tool call: one span, the task's, stands for both.
    (task,) = spans
    assert task["name"] == "execute_tool shout"
    assert task["attributes"]["planweave.task_id"] == "t"
    assert task["attributes"]["gen_ai.tool.name"] == "shout"
    assert task["pid"] != os.getpid()
    assert task["trace_id"] == job.context.trace_id
    assert task["parent"] == job.context.span_id
