"""What the step journal costs: µs per recorded model or tool call, on a SQLite file.

One ``execute`` task runs an agent whose model asks for ``--calls`` no-op tool calls (at most
98) one after another, then answers: 2 * calls + 1 recorded steps (each model reply and each
tool result).
The same job runs with the journal on (the default: each step is written in the control plane's
group commit and the agent waits until it is durable) and with it off, on a fresh SQLite file
each run; the figure is the difference per recorded step, the median of ``--runs`` runs.

Run: ``.venv/bin/python bench/journal_step.py [--calls 60] [--runs 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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


async def main(calls: int, runs: int) -> None:
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
    print(f"journal step cost, SQLite, {calls} tool calls ({steps} recorded steps), {runs} runs")
    print(f"  journal on : {on_s * 1e6 / steps:8.1f} µs per step ({on_s * 1e3:.1f} ms per job)")
    print(f"  journal off: {off_s * 1e6 / steps:8.1f} µs per step ({off_s * 1e3:.1f} ms per job)")
    print(f"  cost       : {(on_s - off_s) * 1e6 / steps:8.1f} µs per recorded step")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.runs))
