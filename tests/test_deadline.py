"""The deadline watchdog: timeouts that behave as ``asyncio.timeout`` with one timer per loop."""

from __future__ import annotations

import asyncio

import pytest

from planweave._deadline import deadline


async def test_a_deadline_that_passes_raises_timeout_and_leaves_the_task_uncancelled() -> None:
    with pytest.raises(TimeoutError), deadline(0.05):
        await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation is left pending


async def test_a_block_that_finishes_in_time_is_left_alone() -> None:
    with deadline(5.0):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.06)  # nothing fires later
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def body() -> None:
        with deadline(5.0):
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_deadlines_each_fire_at_their_own_level() -> None:
    inner_fired = False
    with pytest.raises(TimeoutError), deadline(0.15):
        try:
            with deadline(0.03):
                await asyncio.sleep(5)
        except TimeoutError:
            inner_fired = True
        await asyncio.sleep(5)  # the outer deadline ends this
    assert inner_fired


async def test_an_outer_deadline_is_not_taken_for_an_inner_one() -> None:
    inner_saw: list[str] = []
    with pytest.raises(TimeoutError), deadline(0.03):
        try:
            with deadline(5.0):
                await asyncio.sleep(5)
        except asyncio.CancelledError:
            inner_saw.append("cancelled")
            raise
    assert inner_saw == ["cancelled"]


async def test_a_short_deadline_after_a_long_one_fires_on_time() -> None:
    async def hold() -> None:
        with deadline(30.0):
            await asyncio.sleep(10)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError), deadline(0.05):
        await asyncio.sleep(5)
    assert not holder.done()  # it fired long before the long deadline's block ended
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_many_quick_calls_behind_a_slow_one_all_finish_and_the_slow_one_still_expires() -> (
    None
):
    async def slow() -> str:
        try:
            with deadline(0.3):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "finished"

    slow_task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    for _ in range(3000):  # more than a lane holds before it is compacted
        with deadline(0.3):
            await asyncio.sleep(0)
    assert await slow_task == "timed out"


def test_a_deadline_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        deadline(1.0)
