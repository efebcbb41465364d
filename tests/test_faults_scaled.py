"""Faults in the scaled deployment: ``planweave serve`` replicas on PostgreSQL and Redis, with
separate ``planweave worker`` processes, all real processes.

Each test injects a fault (kill -9 of a replica mid-job, a control plane that dies right after
committing an assignment and before its work item reaches Redis, a work item Redis loses while
its control plane lives) and checks what users rely on: every task reaches a terminal state,
exactly one committed outcome per task, no gap or duplicate in the job's event sequence, and the
job ends once, as it should.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.redis_server import RedisServer
from tests.test_faults_cluster import TOOLS, Workers

from planweave.constants import (
    DLQ_SUFFIX,
    OUTCOME_QUEUE_PREFIX,
    QUEUE_PREFIX,
    REDIS_LEASES_SUFFIX,
    REDIS_QUEUE_PREFIX,
)
from planweave.control.decider import WORKER_DIED

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 2.0
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
TOOL_STREAM = REDIS_QUEUE_PREFIX + QUEUE_PREFIX + "tool"
"""The Redis stream that holds the ``tool`` work items."""


@dataclass
class Replica:
    """One ``planweave serve`` process."""

    proc: subprocess.Popen[str]
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class Cluster:
    """``planweave serve`` replicas on one PostgreSQL database and one Redis server."""

    def __init__(self, tmp_path: Path, store_url: str, bus_url: str) -> None:
        self.tmp_path = tmp_path
        self.store_url = store_url
        self.bus_url = bus_url
        self.replicas: list[Replica] = []

    def serve(self, name: str, **env_extra: str) -> Replica:
        """Start a replica and return it once it listens (its claims last ``LEASE_S``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        env.update(env_extra)
        log = self.tmp_path / f"serve-{name}.log"
        with log.open("w") as stderr:  # the child keeps its own copy
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "planweave.cli",
                    "serve",
                    "--port",
                    "0",
                    "--store",
                    self.store_url,
                    "--bus",
                    self.bus_url,
                    "--tools",
                    str(self.tmp_path / "faulttools.py"),
                    "--data-dir",
                    str(self.tmp_path / "data"),
                    "--claim-lease-s",
                    str(LEASE_S),
                    "--work-lease-s",
                    str(LEASE_S),
                ],
                cwd=self.tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        assert proc.stdout is not None
        for line in proc.stdout:
            found = LISTENING.search(line)
            if found:
                replica = Replica(proc, found.group(1), log)
                self.replicas.append(replica)
                return replica
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        raise AssertionError(log.read_text())

    def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.proc.poll() is None:
                replica.proc.kill()
            replica.proc.wait(timeout=10)
            if replica.proc.stdout is not None:
                replica.proc.stdout.close()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    (tmp_path / "faulttools.py").write_text(TOOLS)
    started = Cluster(tmp_path, pg_url, redis_url)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def workers(tmp_path: Path, redis_url: str) -> Iterator[Workers]:
    (tmp_path / "faulttools.py").write_text(TOOLS)
    pool = Workers(tmp_path, redis_url)
    try:
        yield pool
    finally:
        pool.stop_all()


def _plan(count: int, seconds: float, *, wave: int = 0) -> dict[str, Any]:
    """``count`` tool tasks of ``seconds`` each; with ``wave``, in waves of that many tasks,
    each task waiting for the one ``wave`` places before it."""
    return {
        "tasks": [
            {
                "id": f"t{n}",
                "kind": "tool",
                "tool": "slow",
                "args": {"name": f"t{n}", "seconds": seconds},
                **({"depends_on": [f"t{n - wave}"]} if wave and n >= wave else {}),
            }
            for n in range(count)
        ]
    }


def _submit(client: httpx.Client, replica: Replica, plan: dict[str, Any]) -> str:
    created = client.post(f"{replica.url}/v1/jobs", json={"plan": plan})
    assert created.status_code == 201, created.text
    job_id: str = created.json()["job_id"]
    return job_id


def _wait_job(
    client: httpx.Client,
    replica: Replica,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        read = client.get(f"{replica.url}/v1/jobs/{job_id}")
        if read.status_code == 200:
            job: dict[str, Any] = read.json()
            if done(job):
                return job
            seen = f"{job['status']}, {job['tasks_done']}/{job['tasks_total']} tasks done"
        else:
            seen = read.text
        assert time.monotonic() < deadline, f"job {job_id}: {seen}\n{replica.log_text()[-6000:]}"
        time.sleep(0.1)


def _events(client: httpx.Client, replica: Replica, job_id: str) -> list[dict[str, Any]]:
    page = client.get(
        f"{replica.url}/v1/jobs/{job_id}/events", params={"format": "json", "limit": 1000}
    )
    assert page.status_code == 200, page.text
    events: list[dict[str, Any]] = page.json()["events"]
    return events


def assert_exactly_once(events: list[dict[str, Any]], task_ids: list[str]) -> None:
    """The invariants users rely on, read from the job's log."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a duplicate in the event log"
    ended = Counter(
        e["task_id"]
        for e in events
        if e["type"] in ("TaskCompleted", "TaskFailed", "TaskCancelled")
    )
    assert sorted(ended) == sorted(task_ids), "a task never reached a terminal state"
    assert set(ended.values()) == {1}, "a task ended more than once"
    completed = Counter(e["task_id"] for e in events if e["type"] == "TaskCompleted")
    assert completed == Counter(task_ids), "a task has no committed outcome, or two"
    types = Counter(e["type"] for e in events)
    assert types["JobCompleted"] == 1 and types["JobFailed"] == 0 and types["JobCancelled"] == 0


def test_kill_9_the_replica_that_took_the_jobs_and_the_other_finishes_them(
    cluster: Cluster, workers: Workers
) -> None:
    a = cluster.serve("a")
    b = cluster.serve("b")
    workers.start()
    task_ids = [f"t{n}" for n in range(12)]
    with httpx.Client(timeout=10) as client:
        job_ids = [_submit(client, a, _plan(12, 0.5, wave=3)) for _ in range(2)]
        _wait_job(client, a, job_ids[0], lambda j: j["tasks_done"] >= 3, 30)
        a.proc.send_signal(signal.SIGKILL)  # its workers' outcomes now go to a dead queue
        assert a.proc.wait(timeout=10) == -signal.SIGKILL
        # B reads the store at once; it finishes the jobs once A's claims have run out.
        jobs = [_wait_job(client, b, j, lambda j: j["status"] != "running") for j in job_ids]
        logs = [_events(client, b, j) for j in job_ids]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    for events in logs:
        assert_exactly_once(events, task_ids)
        # Each job was mid-wave when A died: B found the attempts A had out and ran them again.
        retried = [e for e in events if e["type"] == "TaskRetrying"]
        assert retried and all(e["error"] == WORKER_DIED for e in retried)
    assert b.proc.poll() is None, "the surviving replica crashed"
    assert all(w.poll() is None for w in workers.procs), "a worker crashed"
    # Replies sent to A after it died wait in its outcome queue until B removes the queue (an
    # empty one stays, if nothing was on its way); B's own queue goes when B stops cleanly.
    assert _wait_for(lambda: not any(_outcome_queues(cluster.bus_url).values()), 30)
    before = _outcome_queues(cluster.bus_url)
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(timeout=30) == 0
    after = _outcome_queues(cluster.bus_url)
    assert len(after) == len(before) - 1 and not any(after.values()), (before, after)


def _outcome_queues(bus_url: str) -> dict[str, int]:
    """The outcome queues on the bus, with the replies each holds (waiting or leased)."""
    client = redis.Redis.from_url(bus_url)
    try:
        keys = client.keys(REDIS_QUEUE_PREFIX + OUTCOME_QUEUE_PREFIX + "*")
        streams = [k for k in keys if not k.decode().endswith((DLQ_SUFFIX, REDIS_LEASES_SUFFIX))]
        return {key.decode(): int(client.xlen(key)) for key in streams}
    finally:
        client.close()


def _wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_crash_between_commit_and_send_and_another_plane_runs_the_tasks(
    cluster: Cluster, workers: Workers, redis_server: RedisServer
) -> None:
    doomed = cluster.serve("doomed", PLANWEAVE_FAILPOINT="after_commit")
    task_ids = [f"t{n}" for n in range(3)]
    with httpx.Client(timeout=30) as client:
        with pytest.raises(httpx.TransportError):  # it dies before it answers
            client.post(f"{doomed.url}/v1/jobs", json={"plan": _plan(3, 0.1)})
        assert doomed.proc.wait(timeout=30) == 137
        assert "failpoint after_commit: exiting before sending" in doomed.log_text()
        # The assignment is in the store; its work items never reached Redis.
        assert redis_server.command("XLEN", TOOL_STREAM) == b":0\r\n"

        survivor = cluster.serve("survivor")
        workers.start()
        (listed,) = client.get(f"{survivor.url}/v1/jobs").json()["jobs"]
        job_id = listed["job_id"]
        job = _wait_job(client, survivor, job_id, lambda j: j["status"] != "running")
        events = _events(client, survivor, job_id)
    assert job["status"] == "succeeded", job
    assert_exactly_once(events, task_ids)
    assigned = Counter((e["task_id"], e["attempt"]) for e in events if e["type"] == "TaskAssigned")
    # Attempt 1 was committed by the doomed plane and never started; attempt 2 ran.
    assert assigned == Counter([(t, 1) for t in task_ids] + [(t, 2) for t in task_ids])
    started = {(e["task_id"], e["attempt"]) for e in events if e["type"] == "TaskStarted"}
    assert started == {(t, 2) for t in task_ids}
    retried = [(e["task_id"], e["error"]) for e in events if e["type"] == "TaskRetrying"]
    assert sorted(retried) == [(t, WORKER_DIED) for t in task_ids]


def test_work_items_redis_lost_under_a_live_plane_are_sent_again(
    cluster: Cluster, workers: Workers, redis_url: str
) -> None:
    plane = cluster.serve("a")
    task_ids = [f"t{n}" for n in range(3)]
    with httpx.Client(timeout=10) as client, redis.Redis.from_url(redis_url) as raw:
        job_id = _submit(client, plane, _plan(3, 0.1))
        deadline = time.monotonic() + 30
        while raw.xlen(TOOL_STREAM) < 3:  # no worker yet: the items wait in the stream
            assert time.monotonic() < deadline, plane.log_text()
            time.sleep(0.05)
        entries = raw.xrange(TOOL_STREAM)
        assert raw.xdel(TOOL_STREAM, *[entry_id for entry_id, _ in entries]) == 3
        assert raw.xlen(TOOL_STREAM) == 0
        workers.start()  # nothing to take until the plane notices
        job = _wait_job(client, plane, job_id, lambda j: j["status"] != "running", 60)
        events = _events(client, plane, job_id)
    assert job["status"] == "succeeded", job
    assert_exactly_once(events, task_ids)
    resent = re.findall(
        r"task (t\d) of job \S+ \(attempt 1\) is no longer on the bus", plane.log_text()
    )
    assert set(resent) == set(task_ids)
    # The same attempt went out again: nothing in the log shows the loss.
    assigned = Counter((e["task_id"], e["attempt"]) for e in events if e["type"] == "TaskAssigned")
    assert assigned == Counter((t, 1) for t in task_ids)
    assert plane.proc.poll() is None


def test_an_unknown_failpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["PLANWEAVE_FAILPOINT"] = "before_lunch"
    done = subprocess.run(
        [sys.executable, "-m", "planweave.cli", "jobs", "--data-dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "PLANWEAVE_FAILPOINT" in done.stderr and "after_commit" in done.stderr
