"""The dispatcher: tenants take turns for workers; priority orders one tenant's own tasks."""

from __future__ import annotations

from planweave.control import decider
from planweave.control._dispatch import Dispatcher
from planweave.events import JobOptions
from planweave.plan import TaskSpec
from planweave.state import JobState


def job(job_id: str, tenant: str, tasks: int, priority: int = 0) -> JobState:
    plan = tuple(TaskSpec(id=f"t{i}", kind="tool", tool="noop") for i in range(tasks))
    state, _ = decider.submit(
        job_id,
        goal="g",
        plan=plan,
        options=JobOptions(priority=priority),
        now=1.0,
        tenant=tenant,
    )
    return state


def test_a_flooding_tenant_with_top_priority_cannot_hold_back_the_others() -> None:
    flood = [job(f"flood{n}", "mallory", 10, priority=1_000_000) for n in range(5)]
    quiet = job("quiet", "alice", 3)
    other = job("other", "bob", 3, priority=-5)
    jobs = {state.id: state for state in (*flood, quiet, other)}
    dispatcher = Dispatcher({"tool": 6})
    for state in (*flood, quiet, other):  # the flood is queued first
        for task_id in state.tasks:
            dispatcher.push(state, task_id)
    first = [(state.tenant, task) for state, task, _ in dispatcher.take(jobs)]
    assert [tenant for tenant, _ in first] == ["mallory", "alice", "bob"] * 2
    for state, task in [(jobs["quiet"], "t0"), (jobs["other"], "t0")]:
        dispatcher.ended(state.id, [task])
    # Two slots free: the turn goes on where it stopped, so both tenants get one each again.
    second = [(state.tenant, task) for state, task, _ in dispatcher.take(jobs)]
    assert [tenant for tenant, _ in second] == ["mallory", "alice"]


def test_priority_orders_the_tasks_of_one_tenant() -> None:
    low = job("low", "alice", 2, priority=0)
    high = job("high", "alice", 2, priority=10)
    jobs = {"low": low, "high": high}
    dispatcher = Dispatcher({"tool": 10})
    for state in (low, high):
        for task_id in state.tasks:
            dispatcher.push(state, task_id)
    order = [(state.id, task) for state, task, _ in dispatcher.take(jobs)]
    assert order == [("high", "t0"), ("high", "t1"), ("low", "t0"), ("low", "t1")]


def test_tasks_of_ended_jobs_give_their_turn_to_the_next_task() -> None:
    gone = job("gone", "mallory", 3)
    live = job("live", "alice", 1)
    dispatcher = Dispatcher({"tool": 1})
    for state in (gone, live):
        for task_id in state.tasks:
            dispatcher.push(state, task_id)
    out = [(state.id, task) for state, task, _ in dispatcher.take({"live": live})]
    assert out == [("live", "t0")]


def test_a_tenant_at_its_running_job_limit_waits_while_others_run() -> None:
    first, second, third = (job(f"a{n}", "alice", 2) for n in range(3))
    bobs = job("b0", "bob", 2)
    jobs = {state.id: state for state in (first, second, third, bobs)}
    dispatcher = Dispatcher({"tool": 100}, max_running_jobs_per_tenant=1)
    for state in (first, second, third, bobs):
        for task_id in state.tasks:
            dispatcher.push(state, task_id)

    out = [(state.id, task) for state, task, _ in dispatcher.take(jobs)]
    # alice runs one job (both its tasks); her others are held back, bob's job is not.
    assert sorted(out) == [("a0", "t0"), ("a0", "t1"), ("b0", "t0"), ("b0", "t1")]
    assert [dispatcher.queued(s) for s in (first, second, third, bobs)] == [
        False,
        True,
        True,
        False,
    ]
    assert list(dispatcher.take(jobs)) == []  # still held while a0 runs

    for task_id in first.tasks:
        first.tasks[task_id].status = "succeeded"
    first.status = "succeeded"
    assert dispatcher.forget(first) is True  # a0 ended: its slot goes to the oldest waiting job
    out = [(state.id, task) for state, task, _ in dispatcher.take(jobs)]
    assert out == [("a1", "t0"), ("a1", "t1")]
    assert (dispatcher.queued(second), dispatcher.queued(third)) == (False, True)
    assert dispatcher.forget(bobs) is False  # bob held nothing back


def test_without_a_running_job_limit_nothing_is_held_back() -> None:
    states = [job(f"a{n}", "alice", 1) for n in range(5)]
    jobs = {state.id: state for state in states}
    dispatcher = Dispatcher({"tool": 100})
    for state in states:
        dispatcher.push(state, "t0")
    assert len(list(dispatcher.take(jobs))) == 5
    assert not any(dispatcher.queued(state) for state in states)
