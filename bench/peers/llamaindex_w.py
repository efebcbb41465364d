"""LlamaIndex Workflows (``llama-index-workflows``, imported as ``workflows``) versions of W1-W3.

W1 fans out with ``ctx.send_event`` and joins with ``ctx.collect_events``; the fan-out step gets
one worker per event so all N may run at once, as they do on the other engines. W2 is one step
that loops on its own event N times, the faster of the two chain shapes in the research (N
distinct steps cost about 5.6 times more per step). There is no W4: the core runtime has no durable
store (durability is the separate ``llama-agents-dbos`` runtime), so it is reported as n/a.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from bench.workloads import (
    W1_WIDTH,
    W2_LENGTH,
    W3_RUNS,
    W3_SLEEP_S,
    W3_STEPS,
    RunFn,
    Timer,
    WorkloadFactory,
)

__all__ = ["NOT_APPLICABLE", "VARIANTS", "WORKLOADS", "w1", "w2", "w3"]

VARIANTS = {
    "W1": "send_event N times + collect_events, num_workers=N",
    "W2": "one step looping N times",
    "W3": "concurrent Workflow.run, one step per stage",
}
NOT_APPLICABLE = {
    "W4": "no durable store in the core runtime (durability is llama-agents-dbos)",
}


class _Fan(Event):
    pass


class _Done(Event):
    pass


class _Loop(Event):
    i: int


class _S1(Event):
    pass


class _S2(Event):
    pass


class _S3(Event):
    pass


class _S4(Event):
    pass


def _fan_out_workflow(width: int) -> Workflow:
    class FanOut(Workflow):
        @step
        async def src(self, ctx: Context, ev: StartEvent) -> _Fan | None:
            for _ in range(width):
                ctx.send_event(_Fan())
            return None

        @step(num_workers=width)
        async def f(self, ev: _Fan) -> _Done:
            return _Done()

        @step
        async def sink(self, ctx: Context, ev: _Done) -> StopEvent | None:
            done = ctx.collect_events(ev, [_Done] * width)
            if done is None:
                return None
            return StopEvent(result=len(done))

    return FanOut(timeout=None)


def _loop_workflow(length: int) -> Workflow:
    class Loop(Workflow):
        @step
        async def start(self, ev: StartEvent) -> _Loop:
            return _Loop(i=0)

        @step
        async def again(self, ev: _Loop) -> _Loop | StopEvent:
            if ev.i + 1 == length:
                return StopEvent(result=ev.i + 1)
            return _Loop(i=ev.i + 1)

    return Loop(timeout=None)


def _five_step_workflow(sleep_s: float) -> Workflow:
    class FiveSteps(Workflow):
        @step
        async def s1(self, ev: StartEvent) -> _S1:
            await asyncio.sleep(sleep_s)
            return _S1()

        @step
        async def s2(self, ev: _S1) -> _S2:
            await asyncio.sleep(sleep_s)
            return _S2()

        @step
        async def s3(self, ev: _S2) -> _S3:
            await asyncio.sleep(sleep_s)
            return _S3()

        @step
        async def s4(self, ev: _S3) -> _S4:
            await asyncio.sleep(sleep_s)
            return _S4()

        @step
        async def s5(self, ev: _S4) -> StopEvent:
            await asyncio.sleep(sleep_s)
            return StopEvent(result=5)

    return FiveSteps(timeout=None)


def _check(result: Any, expected: int) -> None:
    if result != expected:
        raise RuntimeError(f"expected the workflow to return {expected}, got {result!r}")


@asynccontextmanager
async def w1(width: int = W1_WIDTH) -> AsyncIterator[RunFn]:
    wf = _fan_out_workflow(width)

    async def run(timer: Timer) -> None:
        with timer:
            result = await wf.run()
        _check(result, width)

    yield run


@asynccontextmanager
async def w2(length: int = W2_LENGTH) -> AsyncIterator[RunFn]:
    wf = _loop_workflow(length)

    async def run(timer: Timer) -> None:
        with timer:
            result = await wf.run()
        _check(result, length)

    yield run


@asynccontextmanager
async def w3(
    runs: int = W3_RUNS, steps: int = W3_STEPS, sleep_s: float = W3_SLEEP_S
) -> AsyncIterator[RunFn]:
    if steps != 5:
        raise ValueError("the LlamaIndex W3 workflow has exactly 5 steps")
    wf = _five_step_workflow(sleep_s)

    async def run(timer: Timer) -> None:
        with timer:
            results = await asyncio.gather(*(wf.run() for _ in range(runs)))
        for result in results:
            _check(result, steps)

    yield run


WORKLOADS: dict[str, WorkloadFactory] = {"W1": w1, "W2": w2, "W3": w3}
