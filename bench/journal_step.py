"""What the step journal costs: µs per recorded model or tool call, on a SQLite file.

One ``execute`` task runs an agent whose model asks for ``--calls`` no-op tool calls (at most
98) one after another, then answers: 2 * calls + 1 recorded steps (each model reply and each
tool result).
The same job runs with the journal on (the default: each step is written in the control plane's
group commit and the agent waits until it is durable) and with it off, on a fresh SQLite file
each run; the figure is the difference per recorded step, the median of ``--runs`` runs.

Run: ``python -m bench.journal_step [--calls 60] [--runs 5] [--json]``, or as the ``journal``
section of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from planweave import Engine, Plan, TaskSpec, tool
from planweave.llm import LlmRequest, LlmResponse, ToolCall
from planweave.workers import _steps


@tool
def noop() -> str:
    """Do nothing."""
    return "ok"


class _Asker:
    """A model that asks for ``calls`` tool calls, then answers (no latency of its own)."""

    name = "asker"
    supports_tools = True

    def __init__(self, calls: int) -> None:
        self.calls = calls

    async def complete(self, request: LlmRequest) -> LlmResponse:
        done = sum(1 for m in request.messages if m.role == "tool")
        if done < self.calls:
            return LlmResponse(tool_calls=(ToolCall(id=f"c{done}", name="noop"),))
        return LlmResponse(content="done")

    async def aclose(self) -> None:
        pass


async def _one(folder: Path, calls: int) -> float:
    engine = Engine(
        store=f"sqlite:///{folder / 'jobs.db'}",
        model=_Asker(calls),
        tools=[noop],
        data_dir=folder / "data",
    )
    plan = Plan(tasks=(TaskSpec(id="work", kind="execute", goal="Call the tool"),))
    async with engine:
        started = time.perf_counter()
        result = await engine.run(plan=plan, max_tool_calls=calls + 1, max_agent_steps=calls + 2)
        elapsed = time.perf_counter() - started
    assert result.ok, result.error
    return elapsed


def _without_journal() -> Any:
    original = _steps.StepChannel.journal

    async def off(self: _steps.StepChannel, item: Any, *, redelivered: bool) -> Any:
        return None  # the pool runs the task with no journal

    _steps.StepChannel.journal = off
    return original


async def measure(calls: int, runs: int) -> dict[str, Any]:
    """The journal's cost: the job's time with it on and off, per recorded step."""
    steps = 2 * calls + 1
    on: list[float] = []
    off: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            on.append(await _one(Path(tmp), calls))
        original = _without_journal()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                off.append(await _one(Path(tmp), calls))
        finally:
            _steps.StepChannel.journal = original
    on_s, off_s = statistics.median(on), statistics.median(off)
    return {
        "calls": calls,
        "steps": steps,
        "runs": runs,
        "on_us_per_step": round(on_s * 1e6 / steps, 1),
        "off_us_per_step": round(off_s * 1e6 / steps, 1),
        "cost_us_per_step": round((on_s - off_s) * 1e6 / steps, 1),
    }


def render(report: dict[str, Any]) -> str:
    """The report as the lines ``python -m bench`` prints."""
    return "\n".join(
        [
            f"journal step cost, SQLite, {report['calls']} tool calls "
            f"({report['steps']} recorded steps), median of {report['runs']} runs",
            f"  journal on : {report['on_us_per_step']:8.1f} µs per step",
            f"  journal off: {report['off_us_per_step']:8.1f} µs per step",
            f"  cost       : {report['cost_us_per_step']:8.1f} µs per recorded step",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = asyncio.run(measure(args.calls, args.runs))
    print(json.dumps(report) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
