"""A workflow of agents run as a job: research in parallel, then draft until approved.

Runs offline: the model is the scripted one (examples/workflow.yaml), so replies are fixed.
Swap in a real model by changing MODEL, e.g. "openai:gpt-4o-mini" (needs OPENAI_API_KEY).

    .venv/bin/python examples/workflow.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from planweave import Engine
from planweave.agents import Loop, Parallel, ReactAgent, Sequential

HERE = Path(__file__).resolve().parent
MODEL = f"scripted:{HERE / 'workflow.yaml'}"

researcher = ReactAgent("researcher", instructions="Find the facts.", tools=[])
critic = ReactAgent("critic", instructions="Find the pitfalls.", tools=[])
writer = ReactAgent("writer", instructions="Write a short report; end it with APPROVED when done.")

team = Sequential(
    "team",
    [
        Parallel("research", [researcher, critic], merge="concat"),
        Loop("editor", writer, until=lambda r: "APPROVED" in r.output, max_iterations=3),
    ],
    description="Research a topic and write a report",
)


async def main() -> None:
    async with Engine(model=MODEL, agents=[team]) as engine:
        result = await engine.run(agent="team", input="Go concurrency patterns")
        print(result.status, "-", result.tasks, "tasks,", result.usage.llm_calls, "LLM calls")
        print(result.result)
        # Each step is a task of the job, nested under the workflow it belongs to.
        tasks = (await engine.get(result.job_id)).tasks

        def show(parent: str | None, indent: str = "") -> None:
            for task in tasks.values():
                if task.parent == parent:
                    print(f"{indent}{task.id} [{task.spec.agent}] {task.status}")
                    show(task.id, indent + "  ")

        show(None)


if __name__ == "__main__":
    asyncio.run(main())
