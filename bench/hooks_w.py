"""What hooks cost: W2 (a chain of 200 tool tasks, store and bus ``memory://``) with no hooks,
with the logging and metrics hooks, and with OpenTelemetry tracing on (an SDK tracer provider
with no exporter), in µs per task and µs per task added over no hooks.

Each configuration gets its own started engine; only ``engine.run(plan=...)`` is timed, the
median of ``--runs`` runs after ``--warmup`` untimed ones. The logging hook writes its lines to
a file in a temporary folder, as it would in use.

    python -m bench.hooks_w [--runs 5] [--length 200] [--json]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._cli import w2_main
from bench.workloads import W2_LENGTH

__all__ = ["CONFIGS", "main", "measure"]

TARGET_ADDED_US = 10.0


def _none(folder: Path) -> list[Any]:
    return []


def _logging_metrics(folder: Path) -> list[Any]:
    from planweave.hooks import JsonLogHook, MetricsHook

    return [JsonLogHook(folder / "hooks.jsonl"), MetricsHook()]


def _tracing(folder: Path) -> list[Any]:
    from opentelemetry.sdk.trace import TracerProvider

    from planweave.hooks import TracingHook

    return [TracingHook(TracerProvider())]


CONFIGS: dict[str, Callable[[Path], list[Any]]] = {
    "no hooks": _none,
    "logging + metrics": _logging_metrics,
    "tracing (no exporter)": _tracing,
}


async def _median_s(hooks: list[Any], length: int, runs: int, warmup: int) -> float:
    from planweave import Engine, Plan, TaskSpec, tool

    @tool
    async def noop() -> None:
        return None

    tasks = [TaskSpec(id="t0", kind="tool", tool="noop")]
    tasks += [
        TaskSpec(id=f"t{i}", kind="tool", tool="noop", depends_on=(f"t{i - 1}",))
        for i in range(1, length)
    ]
    plan = Plan(tasks=tuple(tasks))
    times: list[float] = []
    async with Engine(store="memory://", bus="memory://", tools=[noop], hooks=hooks) as engine:
        for n in range(warmup + runs):
            started = time.perf_counter()
            result = await engine.run(plan=plan)
            took = time.perf_counter() - started
            if result.status != "succeeded":
                raise RuntimeError(f"the job ended {result.status!r}")
            if n >= warmup:
                times.append(took)
    return statistics.median(times)


def measure(*, length: int = W2_LENGTH, runs: int = 5, warmup: int = 1) -> dict[str, Any]:
    """µs per task of each configuration, and what each adds over no hooks."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pw-hooks-") as scratch:
        for name, make in CONFIGS.items():
            seconds = asyncio.run(_median_s(make(Path(scratch)), length, runs, warmup))
            rows.append({"config": name, "us_per_task": seconds / length * 1e6})
    base = rows[0]["us_per_task"]
    for row in rows:
        row["added_us_per_task"] = row["us_per_task"] - base
    return {
        "workload": f"W2 (chain of {length})",
        "runs": runs,
        "target_added_us_per_task": TARGET_ADDED_US,
        "rows": rows,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"hooks on {report['workload']}, median of {report['runs']} runs "
        f"(target: ≤ {report['target_added_us_per_task']:g} µs/task added)",
        f"{'configuration':<24}{'µs/task':>10}{'added':>10}",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['config']:<24}{row['us_per_task']:>10.1f}{row['added_us_per_task']:>+10.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return w2_main("python -m bench.hooks_w", __doc__, measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
