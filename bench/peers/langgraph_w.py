"""LangGraph versions of W1-W4.

Nodes are ``async def`` no-ops that add 1 to a summed ``count`` channel, so each run can be
checked afterwards (every node ran once). W1 fans out with ``Send`` (LangGraph's map step) and
joins in one node; W4 uses ``AsyncSqliteSaver`` with LangGraph's default durability (``async``:
a checkpoint per super-step, written while the next one runs) and ``PRAGMA synchronous=NORMAL``
on the saver's connection (journal_mode=WAL is set by the saver itself).
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

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

__all__ = ["VARIANTS", "WORKLOADS", "w1", "w2", "w3", "w4"]

VARIANTS = {
    "W1": "Send to one node N times + join node",
    "W2": "StateGraph, one node per step",
    "W3": "concurrent ainvoke, one node per step",
    "W4": "AsyncSqliteSaver, durability=async (default), WAL, synchronous=NORMAL",
}


class _Count(TypedDict):
    count: Annotated[int, operator.add]


async def _one(state: Any) -> dict[str, int]:
    return {"count": 1}


def _check(out: dict[str, Any], expected: int) -> None:
    if out.get("count") != expected:
        raise RuntimeError(f"expected {expected} nodes to run, counted {out.get('count')}")


def _chain(length: int, node: Any = _one) -> StateGraph[Any]:
    graph: StateGraph[Any] = StateGraph(_Count)
    names = [f"n{i}" for i in range(length)]
    for name in names:
        graph.add_node(name, node)
    graph.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], END)
    return graph


def _config(steps: int, thread_id: str | None = None) -> RunnableConfig:
    # Each node is a super-step; LangGraph's default limit is 25.
    configurable = {"thread_id": thread_id} if thread_id else {}
    return RunnableConfig(recursion_limit=steps + 10, configurable=configurable)


@asynccontextmanager
async def w1(width: int = W1_WIDTH) -> AsyncIterator[RunFn]:
    def fan_out(state: Any) -> list[Send]:
        return [Send("f", {"count": 0}) for _ in range(width)]

    graph: StateGraph[Any] = StateGraph(_Count)
    graph.add_node("src", _one)
    graph.add_node("f", _one)
    graph.add_node("sink", _one)
    graph.add_edge(START, "src")
    graph.add_conditional_edges("src", fan_out, ["f"])
    graph.add_edge("f", "sink")
    graph.add_edge("sink", END)
    app: CompiledStateGraph[Any, Any, Any, Any] = graph.compile()
    config = _config(4)

    async def run(timer: Timer) -> None:
        with timer:
            out = await app.ainvoke({"count": 0}, config)
        _check(out, width + 2)

    yield run


@asynccontextmanager
async def w2(length: int = W2_LENGTH) -> AsyncIterator[RunFn]:
    app = _chain(length).compile()
    config = _config(length)

    async def run(timer: Timer) -> None:
        with timer:
            out = await app.ainvoke({"count": 0}, config)
        _check(out, length)

    yield run


@asynccontextmanager
async def w3(
    runs: int = W3_RUNS, steps: int = W3_STEPS, sleep_s: float = W3_SLEEP_S
) -> AsyncIterator[RunFn]:
    async def sleepy(state: Any) -> dict[str, int]:
        await asyncio.sleep(sleep_s)
        return {"count": 1}

    app = _chain(steps, sleepy).compile()
    config = _config(steps)

    async def run(timer: Timer) -> None:
        with timer:
            outs = await asyncio.gather(*(app.ainvoke({"count": 0}, config) for _ in range(runs)))
        for out in outs:
            _check(out, steps)

    yield run


@asynccontextmanager
async def w4(length: int = W4_LENGTH) -> AsyncIterator[RunFn]:
    graph = _chain(length)
    with tempfile.TemporaryDirectory(prefix="bench-langgraph-") as tmp:
        counter = 0

        async def run(timer: Timer) -> None:
            nonlocal counter
            counter += 1
            path = Path(tmp) / f"run{counter}.db"  # a fresh database file per run
            async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
                await saver.setup()
                await saver.conn.execute("PRAGMA synchronous=NORMAL")
                app = graph.compile(checkpointer=saver)
                config = _config(length, thread_id=f"run{counter}")
                with timer:
                    out = await app.ainvoke({"count": 0}, config)
                _check(out, length)
                saved = await saver.aget_tuple(config)
                if saved is None or saved.checkpoint["channel_values"].get("count") != length:
                    raise RuntimeError("the last checkpoint does not hold the finished run")

        yield run


WORKLOADS: dict[str, WorkloadFactory] = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}
