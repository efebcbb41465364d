"""Re-computation cost of reactive sessions: ``python -m bench.sessions [--agents 50] [--json]``
(``python -m bench --only sessions`` runs it as the ``sessions`` section).

Two sessions of N agents, a chain (each agent depends on the one before) and a fan-out (one
root, every other agent depends on it), each agent consuming inputs of its own tag, run through
the engine (memory store) with a Python agent that answers at once, so what is measured is the
engine's and the session's overhead. For each change it prints the agents re-run, the agents a
from-scratch run needs, their ratio, and the microseconds per re-run agent; and the cost of one
pure ``decide`` call on the settled board.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from typing import Any

from planweave import Engine
from planweave.agents import AgentResult, AgentTask
from planweave.agents._context import AgentContext
from planweave.sessions import Session, SessionSpec, decide

__all__ = ["main", "measure", "render", "report_of"]


class Echo:
    """Answers with the number of its prompt's list lines (its inputs and dependencies)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        lines = [line for line in task.goal.splitlines() if line.startswith("- ")]
        return AgentResult(output=json.dumps({"n": len(lines)}))


def spec_for(shape: str, agents: int) -> SessionSpec:
    items: list[dict[str, Any]] = []
    for i in range(agents):
        deps: list[str] = []
        if i and shape == "chain":
            deps = [f"a{i - 1}"]
        elif i:
            deps = ["a0"]
        items.append(
            {"name": f"a{i}", "agent": "echo", "consumes": {"tags": [f"t{i}"]}, "depends_on": deps}
        )
    return SessionSpec.from_data({"name": shape, "debounce_s": 0, "agents": items})


def _runs(s: Session) -> int:
    return sum(node.runs for node in s.state.agents.values())


async def _change(s: Session, text: str, tag: str) -> tuple[int, float]:
    before = _runs(s)
    started = time.perf_counter()
    await s.add_input(text, tags=[tag])
    await s.wait_settled(timeout_s=600)
    return _runs(s) - before, time.perf_counter() - started


async def measure(agents: int) -> list[dict[str, Any]]:
    """One row per (shape, change): agents re-run, agents from scratch, µs per re-run agent."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with Engine(
            store="memory://", data_dir=tmp, builtins=False, agents=[Echo("echo")]
        ) as engine:
            for shape in ("chain", "fanout"):
                spec = spec_for(shape, agents)
                started = time.perf_counter()
                s = await engine.sessions.create(spec, inputs=[{"text": "root", "tags": ["t0"]}])
                await s.wait_settled(timeout_s=600)
                scratch_s = time.perf_counter() - started
                scratch = _runs(s)
                rows.append(_row(shape, "from scratch", scratch, scratch, scratch_s))
                last = f"t{agents - 1}"
                ran, took = await _change(s, "leaf change", last)
                rows.append(_row(shape, "input of the last agent", ran, scratch, took))
                # The root re-runs on a second root input and answers differently (n=2), so
                # everything downstream re-runs: the worst case.
                ran, took = await _change(s, "root change", "t0")
                rows.append(_row(shape, "input of the root", ran, scratch, took))
                state = s.state
                calls = 200
                started = time.perf_counter()
                for _ in range(calls):
                    decide(state, spec, time.time())
                per_call_us = (time.perf_counter() - started) / calls * 1e6
                rows.append(
                    {"shape": shape, "change": "pure decide on a settled board",
                     "us_per_call": round(per_call_us, 1)}
                )  # fmt: skip
    return rows


def _row(shape: str, change: str, ran: int, scratch: int, took_s: float) -> dict[str, Any]:
    return {
        "shape": shape,
        "change": change,
        "agents_rerun": ran,
        "agents_from_scratch": scratch,
        "ratio": round(ran / scratch, 3) if scratch else None,
        "us_per_rerun_agent": round(took_s / ran * 1e6, 1) if ran else None,
    }


def report_of(agents: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The section's figures as ``results.json`` keeps them under ``"sessions"``: the rows, and
    per shape the re-run ratio and µs per re-run agent of each change."""
    shapes: dict[str, dict[str, Any]] = {}
    for row in rows:
        shape = shapes.setdefault(row["shape"], {})
        if "us_per_call" in row:
            shape["decide_us_per_call"] = row["us_per_call"]
        elif row["change"] == "input of the last agent":
            shape["leaf_ratio"] = row["ratio"]
            shape["leaf_us_per_rerun_agent"] = row["us_per_rerun_agent"]
        elif row["change"] == "input of the root":
            shape["root_ratio"] = row["ratio"]
            shape["root_us_per_rerun_agent"] = row["us_per_rerun_agent"]
        else:
            shape["scratch_us_per_agent"] = row["us_per_rerun_agent"]
    return {"agents": agents, "rows": rows, "shapes": shapes}


def render(report: dict[str, Any]) -> str:
    """The report as the lines ``python -m bench`` prints."""
    lines = [
        f"session re-computation, {report['agents']} agents (memory store)",
        f"  {'shape':<7} {'change':<32} {'re-run':>6} {'scratch':>7} {'ratio':>6} {'µs/agent':>10}",
    ]
    for row in report["rows"]:
        if "us_per_call" in row:
            lines.append(
                f"  {row['shape']:<7} {row['change']:<32} {row['us_per_call']:>34.1f} µs/call"
            )
            continue
        us = row["us_per_rerun_agent"]
        lines.append(
            f"  {row['shape']:<7} {row['change']:<32} {row['agents_rerun']:>6} "
            f"{row['agents_from_scratch']:>7} {row['ratio']:>6} "
            f"{'-' if us is None else f'{us:.1f}':>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = report_of(args.agents, asyncio.run(measure(args.agents)))
    print(json.dumps(report) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
