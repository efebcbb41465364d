"""Faults on a cluster: real ``planweave worker`` processes on a real Redis server.

A control plane runs in the test process (a SQLite store, the Redis bus, no workers of its own);
the workers are separate processes started with ``planweave worker --tools``. Each test injects
a fault (kill -9, SIGSTOP/SIGCONT, SIGTERM, a worker-killing task, a Redis restart) and then
checks what users rely on: every task reaches a terminal state, exactly one committed outcome per
task, and no gap or duplicate in any job's event sequence.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.postgres_server import PgServer
from tests.redis_server import RedisServer

from planweave import Engine, Plan, TaskSpec
from planweave._plugins import load_tools
from planweave.events import Event

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 2.0
TOOLS = '''
import asyncio, os
from planweave import tool

@tool(timeout_s=60)
async def slow(name: str, seconds: float) -> str:
    """Wait, then give the name back."""
    await asyncio.sleep(seconds)
    return name

@tool
def die(name: str) -> str:
    """Kill the worker process running it."""
    os._exit(1)
'''


class Workers:
    """``planweave worker`` processes on one bus, started and killed by the test."""

    def __init__(self, tmp_path: Path, bus_url: str) -> None:
        self.tmp_path = tmp_path
        self.bus_url = bus_url
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, concurrency: int = 64, kinds: str = "tool", *extra: str
    ) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        log = (self.tmp_path / f"worker-{len(self.procs)}.log").open("w")
        with log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "planweave.cli",
                    "worker",
                    "--bus",
                    self.bus_url,
                    "--kinds",
                    kinds,
                    *extra,
                    "--concurrency",
                    str(concurrency),
                    "--tools",
                    str(self.tmp_path / "faulttools.py"),
                    "--work-lease-s",
                    str(LEASE_S),
                    "--grace-s",
                    "5",
                    "--data-dir",
                    str(self.tmp_path / "data"),
                ],
                cwd=self.tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def workers(tmp_path: Path, redis_url: str) -> Iterator[Workers]:
    (tmp_path / "faulttools.py").write_text(TOOLS)
    pool = Workers(tmp_path, redis_url)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
async def plane(tmp_path: Path, redis_url: str) -> AsyncIterator[Engine]:
    (tmp_path / "faulttools.py").write_text(TOOLS)
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        bus=redis_url,
        data_dir=tmp_path / "data",
        tools=load_tools([str(tmp_path / "faulttools.py")]),
        run_workers=False,
        work_lease_s=LEASE_S,
    )
    async with engine:
        yield engine


def _plan(count: int, seconds: float, *, tool: str = "slow") -> Plan:
    return Plan(
        tasks=tuple(
            TaskSpec(id=f"t{n}", kind="tool", tool=tool, args={"name": f"t{n}", "seconds": seconds})
            for n in range(count)
        )
    )


async def _pending(engine: Engine, at_least: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while (await engine.bus.stats("pw:work:tool")).pending < at_least:
        assert time.monotonic() < deadline, "the worker did not take the work"
        await asyncio.sleep(0.05)


def assert_exactly_once(events: list[Event], task_ids: list[str]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a duplicate in the event log"
    ended = Counter(
        e.task_id  # type: ignore[attr-defined]
        for e in events
        if e.type in ("TaskCompleted", "TaskFailed", "TaskCancelled")
    )
    assert sorted(ended) == sorted(task_ids), "a task never reached a terminal state"
    assert set(ended.values()) == {1}, "a task ended more than once"


async def test_kill_9_a_worker_holding_50_items_and_the_rest_finish_after_the_lease(
    plane: Engine, workers: Workers
) -> None:
    job_id = await plane.submit(plan=_plan(60, 3.0))
    first = workers.start(concurrency=64)
    await _pending(plane, 50)
    first.kill()  # SIGKILL: its 60 leased items are left to expire
    first.wait(timeout=10)
    killed_at = time.monotonic()
    workers.start(concurrency=64)
    result = await asyncio.wait_for(plane.wait(job_id), LEASE_S + 10 + 3 + 30)
    took_s = time.monotonic() - killed_at
    assert result.ok, result.error
    events = await plane.events(job_id)
    assert_exactly_once(events, [f"t{n}" for n in range(60)])
    redelivered = {e.task_id for e in events if e.type == "TaskStarted" and e.delivery > 1}  # type: ignore[attr-defined]
    assert len(redelivered) >= 50
    assert took_s < LEASE_S + 10 + 3 + 15  # lease + 10 s, plus the tasks' own 3 s (and start-up)


async def test_sigstop_past_the_lease_then_sigcont_and_the_late_outcome_is_rejected(
    plane: Engine, workers: Workers
) -> None:
    job_id = await plane.submit(plan=_plan(1, 1.5))
    stalled = workers.start()
    await _pending(plane, 1)
    await asyncio.sleep(0.3)
    stalled.send_signal(signal.SIGSTOP)
    workers.start()  # takes the item once the stalled worker's lease ends
    result = await asyncio.wait_for(plane.wait(job_id), 30)
    assert result.ok, result.error
    rejected_before = plane.plane.rejected_reports
    stalled.send_signal(signal.SIGCONT)  # wakes, finishes its sleep, reports: too late
    deadline = time.monotonic() + 15
    while plane.plane.rejected_reports == rejected_before:
        assert time.monotonic() < deadline, "the stalled worker's late outcome never came"
        await asyncio.sleep(0.05)
    events = await plane.events(job_id)
    assert_exactly_once(events, ["t0"])
    assert [e.type for e in events].count("TaskCompleted") == 1


async def test_sigterm_stops_a_worker_cleanly_and_its_items_finish(
    plane: Engine, workers: Workers
) -> None:
    job_id = await plane.submit(plan=_plan(20, 1.0))
    first = workers.start()
    await _pending(plane, 20)
    first.send_signal(signal.SIGTERM)  # running items finish within the 5 s grace
    assert first.wait(timeout=20) == 0
    result = await asyncio.wait_for(plane.wait(job_id), 30)
    assert result.ok, result.error
    assert_exactly_once(await plane.events(job_id), [f"t{n}" for n in range(20)])


async def test_a_task_that_kills_every_worker_is_dead_lettered_and_the_rest_succeed(
    tmp_path: Path, plane: Engine, workers: Workers
) -> None:
    replies = tmp_path / "replies.yaml"
    replies.write_text('replies:\n  - {content: "done", delay_s: 0.2, repeat: true}\n')
    # More tries than the bus has deliveries: the bus's bound is met first.
    poison = Plan(
        tasks=(TaskSpec(id="p", kind="tool", tool="die", args={"name": "p"}, max_attempts=10),)
    )
    good = Plan(tasks=tuple(TaskSpec(id=f"e{n}", goal=f"step {n}") for n in range(5)))
    poison_id = await plane.submit(plan=poison)
    good_id = await plane.submit(plan=good, model=f"scripted:{replies}")
    workers.start(4, "executor")  # the other work runs beside the poison's workers
    tool_workers = [workers.start()]
    deadline = time.monotonic() + 90
    while not (await plane.get(poison_id)).terminal:
        if tool_workers[-1].poll() is not None:  # a supervisor starts a new worker
            tool_workers.append(workers.start())
        assert time.monotonic() < deadline, "the poison task never ended"
        await asyncio.sleep(0.1)
    done = await asyncio.wait_for(plane.wait(good_id), 30)
    assert done.ok, done.error
    failed = await plane.wait(poison_id)
    assert not failed.ok and "dead-lettered" in (failed.error or "")
    assert len(tool_workers) - 1 >= 4  # it killed a worker on each of its deliveries
    letters = await plane.dead_letters("pw:work:tool")
    assert [letter.message.task_id for letter in letters] == ["p"]  # type: ignore[union-attr]
    assert_exactly_once(await plane.events(poison_id), ["p"])
    assert_exactly_once(await plane.events(good_id), [f"e{n}" for n in range(5)])


async def test_a_task_that_kills_its_worker_fails_once_its_tries_are_used_up(
    plane: Engine, workers: Workers
) -> None:
    # Each delivery that ended with its worker dead counts as a failed try, as a crash of the
    # whole process does: with 2 tries, 2 workers die, and the third delivery is not run.
    poison = Plan(
        tasks=(TaskSpec(id="p", kind="tool", tool="die", args={"name": "p"}, max_attempts=2),)
    )
    poison_id = await plane.submit(plan=poison)
    tool_workers = [workers.start()]
    deadline = time.monotonic() + 90
    while not (await plane.get(poison_id)).terminal:
        if tool_workers[-1].poll() is not None:  # a supervisor starts a new worker
            tool_workers.append(workers.start())
        assert time.monotonic() < deadline, "the poison task never ended"
        await asyncio.sleep(0.1)
    failed = await plane.wait(poison_id)
    assert not failed.ok and "worker was lost" in (failed.error or ""), failed.error
    assert len(tool_workers) - 1 == 2, "a worker died past the task's tries"
    assert tool_workers[-1].poll() is None
    job = await plane.get(poison_id)
    task = job.tasks["p"]
    assert (task.status, task.attempt, task.failures) == ("failed", 1, 2)
    assert await plane.dead_letters("pw:work:tool") == []
    # The worker that got the spent delivery acknowledges it just after the job ended: it is
    # never delivered again.
    acked = time.monotonic() + 10
    stats = await plane.bus.stats("pw:work:tool")
    while stats.pending and time.monotonic() < acked:
        await asyncio.sleep(0.05)
        stats = await plane.bus.stats("pw:work:tool")
    assert (stats.depth, stats.pending) == (0, 0)
    assert_exactly_once(await plane.events(poison_id), ["p"])


async def test_a_redis_restart_mid_run_loses_nothing(tmp_path: Path, workers: Workers) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        workers.bus_url = server.url()
        (tmp_path / "faulttools.py").write_text(TOOLS)
        engine = Engine(
            store=f"sqlite:///{tmp_path / 'jobs.db'}",
            bus=server.url(),
            data_dir=tmp_path / "data",
            tools=load_tools([str(tmp_path / "faulttools.py")]),
            run_workers=False,
            work_lease_s=LEASE_S,
        )
        async with engine:
            job_id = await engine.submit(plan=_plan(100, 0.2))
            workers.start()
            await _pending(engine, 1)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.restart, 0.5)  # every key is gone
            result = await asyncio.wait_for(engine.wait(job_id), 60)
            events = await engine.events(job_id)
        assert result.ok, result.error
        assert_exactly_once(events, [f"t{n}" for n in range(100)])
        assert all(p.poll() is None for p in workers.procs), "a worker crashed"
    finally:
        server.stop()


async def test_status_lists_the_queues_the_workers_and_the_control_planes(
    tmp_path: Path, plane: Engine, workers: Workers, redis_url: str
) -> None:
    job_id = await plane.submit(plan=_plan(3, 5.0))
    workers.start()
    await _pending(plane, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "planweave.cli",
            "status",
            "--bus",
            redis_url,
            "--store",
            f"sqlite:///{tmp_path / 'jobs.db'}",
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    tool = next(q for q in report["queues"] if q["queue"] == "pw:work:tool")
    assert tool["pending"] == 3 and tool["depth"] == 0 and tool["dead_letters"] == 0
    assert tool["oldest_age_s"] is not None
    assert [c["pending"] for c in tool["consumers"]] == [3]
    assert tool["consumers"][0]["idle_s"] is not None
    assert any(q["queue"].startswith("pw:outcomes:") for q in report["queues"])
    assert report["control_planes"] == [{"owner": plane.plane.owner, "jobs": 1}]
    await plane.cancel(job_id)


def _serve(tmp_path: Path, store_url: str, bus_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    log = (tmp_path / "serve.log").open("w")
    with log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planweave.cli",
                "serve",
                "--port",
                "0",
                "--store",
                store_url,
                "--bus",
                bus_url,
                "--tools",
                str(tmp_path / "faulttools.py"),
                "--data-dir",
                str(tmp_path / "data"),
                "--claim-lease-s",
                "2",
                "--work-lease-s",
                str(LEASE_S),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening on " in line:
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    raise AssertionError((tmp_path / "serve.log").read_text())


def test_a_postgres_restart_mid_run_and_serve_finishes_the_job(
    tmp_path: Path, workers: Workers, redis_url: str, pg_server: PgServer, pg_url: str
) -> None:
    import httpx

    server, url = _serve(tmp_path, pg_url, redis_url)
    try:
        workers.start()
        plan = {
            "tasks": [
                {
                    "id": f"t{n}",
                    "kind": "tool",
                    "tool": "slow",
                    "args": {"name": f"t{n}", "seconds": 0.2},
                    **({"depends_on": [f"t{n - 1}"]} if n % 4 else {}),
                }
                for n in range(40)
            ]
        }
        with httpx.Client(timeout=10) as client:
            created = client.post(f"{url}/v1/jobs", json={"plan": plan})
            assert created.status_code == 201, created.text
            job_id = created.json()["job_id"]
            time.sleep(1.0)
            pg_server.stop("immediate")  # as a crash
            down = client.get(f"{url}/v1/jobs")  # a read of the store
            assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
            time.sleep(1.0)
            pg_server.start()
            deadline = time.monotonic() + 60
            while True:
                read = client.get(f"{url}/v1/jobs/{job_id}")
                if read.status_code == 200 and read.json()["status"] != "running":
                    break
                assert time.monotonic() < deadline, (
                    read.text + "\n" + (tmp_path / "serve.log").read_text()[-6000:]
                )
                time.sleep(0.2)
            assert read.json()["status"] == "succeeded", read.json()
            page = client.get(
                f"{url}/v1/jobs/{job_id}/events", params={"format": "json", "limit": 1000}
            ).json()
        assert server.poll() is None, "serve crashed"
        events = page["events"]
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
        ended = Counter(e["task_id"] for e in events if e["type"] == "TaskCompleted")
        assert sorted(ended) == sorted(f"t{n}" for n in range(40))
        assert set(ended.values()) == {1}
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


async def test_a_worker_waiting_for_work_is_listed_before_any_arrives(
    plane: Engine, workers: Workers
) -> None:
    workers.start()
    deadline = time.monotonic() + 30
    while not (await plane.bus.stats("pw:work:tool")).consumers:
        assert time.monotonic() < deadline, "the idle worker is not listed"
        await asyncio.sleep(0.1)
    (consumer,) = (await plane.bus.stats("pw:work:tool")).consumers
    assert consumer.name.startswith("tool-") and consumer.pending == 0


def test_an_unreachable_bus_stops_run_with_one_line_and_no_store_file(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(
        "tasks:\n  - {id: a, kind: tool, tool: current_time, args: {}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "planweave.cli",
            "run",
            "--plan",
            "plan.yaml",
            "--bus",
            "redis://127.0.0.1:1/0",
            "--data-dir",
            "data",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "redis" in done.stderr.lower()
    assert not (tmp_path / "data" / "planweave.db").exists()
