"""planweave from Python: a goal run by agents, and a plan run as written.

Runs offline: the model is the scripted one (examples/quickstart.yaml), so replies are fixed.
Swap in a real model by changing MODEL, e.g. "openai:gpt-4o-mini" (needs OPENAI_API_KEY).

    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from planweave import Engine, Plan, TaskSpec, tool

HERE = Path(__file__).resolve().parent
MODEL = f"scripted:{HERE / 'quickstart.yaml'}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


async def main() -> None:
    # Jobs are stored in .planweave/planweave.db (SQLite) under the current directory.
    async with Engine(model=MODEL, tools=[add]) as engine:
        # 1. A goal: the planner writes the plan, executors run it, the composer answers.
        result = await engine.run("What is 2+3, then squared?")
        print(result.status, "-", result.tasks, "tasks,", result.usage.llm_calls, "LLM calls")
        print(result.result)
        print("artifacts:", [str(path) for path in result.artifacts])

        # 2. A plan you write yourself: `tool` tasks call tools directly, no model involved.
        plan = Plan(
            goal="Add, then check the time",
            tasks=(
                TaskSpec(id="sum", kind="tool", tool="add", args={"a": 2, "b": 3}),
                TaskSpec(
                    id="clock",
                    kind="tool",
                    tool="current_time",
                    args={"timezone": "UTC"},
                    depends_on=("sum",),
                ),
            ),
        )
        result = await engine.run(plan=plan)
        print(result.status, "-", result.result)

        # Every step is an event in the job's log.
        for event in await engine.events(result.job_id):
            print(f"{event.seq:3} {event.type:<14} {event.task_id or '-'}")


if __name__ == "__main__":
    asyncio.run(main())
