"""Two ``planweave serve`` replicas on one store: kill -9 one mid-job, the other finishes it.

Real processes, a real SQLite file shared by both, each replica with its own workers. A replica
looks, every third of its claim lease, for active jobs whose owner is gone and takes them over;
the invariants users trust hold across the handover: the job ends once, every task ends exactly
once in the log, and the log has no gap or duplicate.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from planweave.store.sqlite import SqliteStore

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
REPLIES = """\
replies:
  - match: {role: executor}
    content: "step done"
    delay_s: 0.4
    repeat: true
  - match: {role: composer}
    content: "all steps done"
    repeat: true
"""
STEPS = 6


def _serve(tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy
        proc = _popen(tmp_path, env, log)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        found = LISTENING.search(line)
        if found:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError((tmp_path / f"{name}.log").read_text())


def _popen(tmp_path: Path, env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "planweave.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--model",
            f"scripted:{tmp_path / 'replies.yaml'}",
            "--claim-lease-s",
            "1.5",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    (tmp_path / "replies.yaml").write_text(REPLIES)
    started: list[tuple[subprocess.Popen[str], str]] = []
    try:
        for name in ("a", "b"):
            started.append(_serve(tmp_path, name))
        yield started
    finally:
        for proc, _ in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def _wait_for(client: httpx.Client, url: str, done: object, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, object] = client.get(url).json()
        if callable(done) and done(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_a_killed_replicas_job_is_finished_by_the_other(
    tmp_path: Path, replicas: list[tuple[subprocess.Popen[str], str]]
) -> None:
    (proc_a, url_a), (_proc_b, url_b) = replicas
    plan = {
        "tasks": [
            {"id": f"s{n}", "goal": f"step {n}", **({"depends_on": [f"s{n - 1}"]} if n else {})}
            for n in range(STEPS)
        ]
    }
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{url_a}/v1/jobs", json={"plan": plan})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]

        started = _wait_for(client, f"{url_a}/v1/jobs/{job_id}", lambda j: j["tasks_done"] >= 1, 30)
        assert started["status"] == "running"
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait(timeout=10)

        # B answers for the job at once (it reads the store) and finishes it.
        job = _wait_for(client, f"{url_b}/v1/jobs/{job_id}", lambda j: j["status"] != "running", 60)
    assert job["status"] == "succeeded", job

    async def log() -> list[object]:
        store = SqliteStore(f"sqlite:///{tmp_path / 'data' / 'planweave.db'}")
        await store.open()
        try:
            return list(await store.read_events(job_id))
        finally:
            await store.close()

    events = asyncio.run(log())
    seqs = [e.seq for e in events]  # type: ignore[attr-defined]
    assert seqs == list(range(1, len(seqs) + 1)), "the log has a gap or a duplicate"
    types = Counter(e.type for e in events)  # type: ignore[attr-defined]
    assert types["JobCompleted"] == 1 and types["JobFailed"] == 0
    completed = Counter(
        e.task_id  # type: ignore[attr-defined]
        for e in events
        if e.type == "TaskCompleted"  # type: ignore[attr-defined]
    )
    assert sorted(completed) == sorted(f"s{n}" for n in range(STEPS))
    assert set(completed.values()) == {1}, "a task ended more than once"
