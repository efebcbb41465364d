"""planweave versions of W1-W4.

Plans are built before the timer; the engine is started (``async with engine``) before it too, so
only ``engine.run(plan=...)`` is measured. W4 gets a fresh engine on a fresh SQLite file per run,
started untimed.

planweave is imported lazily: this module imports cleanly while the engine API is missing, and a
workload then raises ``ImportError``, which ``bench.run_one`` reports as "not installed".
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.workloads import (
    W1_WIDTH,
    W2_LENGTH,
    W3_RUNS,
    W3_SLEEP_S,
    W3_STEPS,
    W4_LENGTH,
    RunFn,
    Timer,
    WorkloadFactory,
)

__all__ = ["VARIANTS", "WORKLOADS", "available", "w1", "w2", "w3", "w4"]

VARIANTS = {
    "W1": "tool tasks, store+bus memory://",
    "W2": "tool tasks, store+bus memory://",
    "W3": "concurrent engine.run, store+bus memory://",
    "W4": "tool tasks, store sqlite:/// (fresh file per run), bus memory://",
}


@dataclass(frozen=True)
class _Api:
    Engine: Any
    Plan: Any
    TaskSpec: Any
    tools: list[Any]
    sleep_tool: str


@functools.cache
def _api() -> _Api:
    from planweave import Engine, Plan, TaskSpec, tool

    sleep_s = W3_SLEEP_S

    @tool
    async def noop() -> None:
        return None

    @tool
    async def sleep20() -> None:
        await asyncio.sleep(sleep_s)

    return _Api(Engine, Plan, TaskSpec, [noop, sleep20], "sleep20")


def available() -> str | None:
    """Return why the planweave engine cannot be benchmarked, or ``None`` when it can."""
    try:
        _api()
    except ImportError as exc:
        return str(exc)
    return None


def _engine(api: _Api, store: str) -> Any:
    return api.Engine(store=store, bus="memory://", tools=api.tools)


def _tool_task(api: _Api, task_id: str, tool_name: str, depends_on: tuple[str, ...] = ()) -> Any:
    return api.TaskSpec(id=task_id, kind="tool", tool=tool_name, depends_on=depends_on)


def _fan_out_plan(api: _Api, width: int) -> Any:
    fan = [f"f{i}" for i in range(width)]
    return api.Plan(
        tasks=(
            _tool_task(api, "src", "noop"),
            *(_tool_task(api, name, "noop", ("src",)) for name in fan),
            _tool_task(api, "sink", "noop", tuple(fan)),
        )
    )


def _chain_plan(api: _Api, length: int, tool_name: str = "noop") -> Any:
    tasks = [_tool_task(api, "t0", tool_name)]
    tasks += [_tool_task(api, f"t{i}", tool_name, (f"t{i - 1}",)) for i in range(1, length)]
    return api.Plan(tasks=tuple(tasks))


def _check(result: Any) -> None:
    if result.status != "succeeded":
        raise RuntimeError(f"the job ended {result.status!r}, not 'succeeded'")


@asynccontextmanager
async def _memory_engine(api: _Api) -> AsyncIterator[Any]:
    engine = _engine(api, "memory://")
    async with engine:
        yield engine


@asynccontextmanager
async def _plan_runs(api: _Api, plan: Any) -> AsyncIterator[RunFn]:
    """Runs of one plan on a started memory engine; only ``engine.run`` is timed."""
    async with _memory_engine(api) as engine:

        async def run(timer: Timer) -> None:
            with timer:
                result = await engine.run(plan=plan)
            _check(result)

        yield run


@asynccontextmanager
async def w1(width: int = W1_WIDTH) -> AsyncIterator[RunFn]:
    api = _api()
    async with _plan_runs(api, _fan_out_plan(api, width)) as run:
        yield run


@asynccontextmanager
async def w2(length: int = W2_LENGTH) -> AsyncIterator[RunFn]:
    api = _api()
    async with _plan_runs(api, _chain_plan(api, length)) as run:
        yield run


@asynccontextmanager
async def w3(
    runs: int = W3_RUNS, steps: int = W3_STEPS, sleep_s: float = W3_SLEEP_S
) -> AsyncIterator[RunFn]:
    if sleep_s != W3_SLEEP_S:
        raise ValueError(f"the planweave sleep tool sleeps {W3_SLEEP_S} s")
    api = _api()
    plan = _chain_plan(api, steps, api.sleep_tool)
    async with _memory_engine(api) as engine:

        async def run(timer: Timer) -> None:
            with timer:
                results = await asyncio.gather(*(engine.run(plan=plan) for _ in range(runs)))
            for result in results:
                _check(result)

        yield run


@asynccontextmanager
async def w4(length: int = W4_LENGTH) -> AsyncIterator[RunFn]:
    api = _api()
    plan = _chain_plan(api, length)
    with tempfile.TemporaryDirectory(prefix="bench-planweave-") as tmp:
        counter = 0

        async def run(timer: Timer) -> None:
            nonlocal counter
            counter += 1
            run_dir = Path(tmp) / f"run{counter}"  # a fresh database file per run
            run_dir.mkdir()
            engine = _engine(api, f"sqlite:///{run_dir}/bench.db")
            async with engine:
                with timer:
                    result = await engine.run(plan=plan)
            _check(result)

        yield run


WORKLOADS: dict[str, WorkloadFactory] = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}
