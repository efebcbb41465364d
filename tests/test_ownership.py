"""One owner per job, with real processes: frozen owners, forced takeovers, kill -9, tasks that
kill their process, and cancelling or following a job nobody drives.

Each test runs ``tests/owner_job.py`` as real processes on one SQLite file and checks the store
afterwards as a user would: the event log has no gap and no duplicate, every task completed at
most once, and the stored state equals the replayed log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planweave import Engine
from planweave.control.decider import WORKER_DIED
from planweave.errors import StoreUnavailable
from planweave.events import Event, TaskAssigned
from planweave.state import replay

SCRIPT = Path(__file__).with_name("owner_job.py")
pytestmark = pytest.mark.slow


class Job:
    """The processes of one job, its ledger and its store."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = f"sqlite:///{tmp_path / 'jobs.db'}"
        self.ledger = tmp_path / "ledger.txt"
        self.job_id = ""

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), self.store, str(self.ledger), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def submit(
        self, plan: str, *, claim_lease_s: float, max_attempts: int = 3
    ) -> subprocess.Popen[str]:
        proc = self.start("submit", plan, str(claim_lease_s), str(max_attempts))
        assert proc.stdout is not None
        self.job_id = proc.stdout.readline().strip()
        assert self.job_id, proc.stderr.read() if proc.stderr else "no job id"
        return proc

    def orphan(self, *, max_attempts: int = 3) -> None:
        """Submit the ``slow`` plan and kill -9 its process while it runs ``b`` (its claim,
        of a long lease, is left to a dead process)."""
        proc = self.submit("slow", claim_lease_s=300.0, max_attempts=max_attempts)
        try:
            self.wait_line(f"b-start:{proc.pid}")
        finally:
            kill(proc)

    def resume(self, *, claim_lease_s: float, force: bool = False) -> subprocess.Popen[str]:
        return self.start("resume", self.job_id, str(claim_lease_s), *(["force"] if force else []))

    def go(self) -> None:
        """Let the ``slow`` tasks end."""
        self.ledger.with_suffix(".go").touch()

    def lines(self) -> list[str]:
        return self.ledger.read_text().split() if self.ledger.exists() else []

    def wait_line(self, line: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if line in self.lines():
                return
            time.sleep(0.02)
        raise AssertionError(f"{line!r} never appeared in the ledger: {self.lines()}")

    def check_log(self) -> list[str]:
        """Check the stored log and state; return the event types."""
        return [e.type for e in self.checked_events()]

    def checked_events(self) -> list[Event]:
        """Check the stored log and state; return the events."""

        async def read() -> list[Event]:
            async with Engine(store=self.store, data_dir=self.tmp_path / "data") as engine:
                events = await engine.events(self.job_id)
                stored = await engine.store.load_job(self.job_id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            completed = [e.task_id for e in events if e.type == "TaskCompleted"]
            assert len(completed) == len(set(completed)), "a task completed twice"
            rebuilt = replay(events)
            assert stored is not None
            assert rebuilt.to_row() == stored.to_row()
            assert {k: t.to_row(self.job_id) for k, t in rebuilt.tasks.items()} == {
                k: t.to_row(self.job_id) for k, t in stored.tasks.items()
            }
            return events

        return asyncio.run(read())


def finish(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    finally:
        proc.kill()
    return proc.returncode, stdout, stderr


def kill(proc: subprocess.Popen[str]) -> None:
    """kill -9, and reap it (a dead process no longer has a pid) and close its pipes."""
    proc.kill()
    with contextlib.suppress(ValueError):  # its pipes were already read to the end
        proc.communicate(timeout=10)


def by(pid: int, lines: list[str]) -> list[str]:
    return [line.rsplit(":", 1)[0] for line in lines if line.endswith(f":{pid}")]


@pytest.mark.timeout(180)
def test_an_owner_frozen_past_its_lease_stops_when_it_wakes(tmp_path: Path) -> None:
    job = Job(tmp_path)
    old = job.submit("slow", claim_lease_s=1.0)
    new: subprocess.Popen[str] | None = None
    try:
        job.wait_line(f"b-start:{old.pid}")
        old.send_signal(signal.SIGSTOP)
        time.sleep(3.0)  # three leases: the claim has expired by the store's clock
        new = job.resume(claim_lease_s=30.0)  # no force: an expired claim may be taken
        job.wait_line(f"b-start:{new.pid}")
        job.go()
        old.send_signal(signal.SIGCONT)
        code, _, stderr = finish(old)
        new_code, new_out, new_err = finish(new)
    finally:
        old.send_signal(signal.SIGCONT)
        old.kill()
        if new is not None:
            new.kill()
    assert code == 1, stderr
    assert "another process" in stderr and "Traceback" not in stderr
    assert new_code == 0, new_err
    assert new_out.split()[0] == "succeeded"
    lines = job.lines()
    # Woken, the old owner wrote nothing and started nothing: its claim had lapsed, so its
    # next work would have gone out only once the store accepted the batch, which it refused.
    assert by(old.pid, lines) in (["a-run", "b-start"], ["a-run", "b-start", "b-end"])
    assert by(new.pid, lines) == [
        "b-start", "b-end", "c-start", "c-end", "d-start", "d-end", "e-run",
    ]  # fmt: skip
    types = job.check_log()
    assert types.count("TaskCompleted") == 5
    assert types[-1] == "JobCompleted"


@pytest.mark.timeout(180)
def test_a_forced_takeover_stops_the_live_owner(tmp_path: Path) -> None:
    job = Job(tmp_path)
    old = job.submit("slow", claim_lease_s=30.0)
    new: subprocess.Popen[str] | None = None
    try:
        job.wait_line(f"b-start:{old.pid}")
        new = job.resume(claim_lease_s=30.0, force=True)
        job.wait_line(f"b-start:{new.pid}")
        job.go()
        code, _, stderr = finish(old)
        new_code, new_out, new_err = finish(new)
    finally:
        old.kill()
        if new is not None:
            new.kill()
    assert code == 1, stderr
    assert "another process" in stderr and "Traceback" not in stderr
    assert new_code == 0, new_err
    assert new_out.split()[0] == "succeeded"
    old_lines = by(old.pid, job.lines())
    # The old owner may have handed out the next task before the store refused its batch;
    # it abandoned it at once, so nothing after b ran to its end there.
    assert old_lines[:2] == ["a-run", "b-start"]
    assert not {"c-end", "d-start", "d-end", "e-run"} & set(old_lines), (old_lines, stderr)
    types = job.check_log()
    assert types.count("TaskCompleted") == 5
    assert types[-1] == "JobCompleted"


@pytest.mark.timeout(120)
def test_after_kill_9_on_this_host_resume_takes_over_at_once(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.orphan()
    job.go()
    code, out, err = finish(job.resume(claim_lease_s=300.0))  # no force, the lease is far from over
    assert code == 0, err
    assert out.split()[0] == "succeeded"
    assert job.check_log()[-1] == "JobCompleted"


@pytest.mark.timeout(240)
def test_a_task_that_kills_its_process_fails_after_max_attempts(tmp_path: Path) -> None:
    job = Job(tmp_path)
    code, _, err = finish(job.submit("die", claim_lease_s=30.0))
    assert code == 1, err  # the tool's os._exit(1)
    outcome = ""
    for _ in range(10):
        code, out, err = finish(job.resume(claim_lease_s=30.0, force=True))
        if code == 0:
            outcome = out
            break
        assert code == 1 and "error:" not in err, err
    assert outcome.startswith("failed"), job.lines()
    assert WORKER_DIED in outcome
    runs = [line for line in job.lines() if line.startswith("x-start")]
    events = job.checked_events()
    types = [e.type for e in events]
    recorded = [e.attempt for e in events if isinstance(e, TaskAssigned) and e.task_id == "x"]
    assert recorded == [1, 2, 3], (recorded, types)
    # The first run's assignment may not have been on record yet when the tool killed the
    # process (work overlaps the write); every later one went out only once recorded.
    assert len(runs) in (3, 4), runs
    assert types[-2:] == ["TaskFailed", "JobFailed"]


@pytest.mark.timeout(240)
def test_start_up_adoption_outlives_a_job_that_kills_its_process(tmp_path: Path) -> None:
    """``serve`` takes over every stored job at start-up: a job whose task kills the process
    costs one attempt per start and then fails, and the other jobs on the store carry on."""
    crashing = Job(tmp_path)
    code, _, err = finish(crashing.submit("die", claim_lease_s=30.0))
    assert code == 1, err  # the tool's os._exit(1)
    steady = Job(tmp_path)  # the same store and ledger
    steady.orphan(max_attempts=10)
    steady.go()
    ended: dict[str, str] = {}
    starts = 0
    while not ended and starts < 6:
        starts += 1
        code, out, err = finish(crashing.start("adopt", "-", "30"))
        if code == 0:
            ended = dict(line.split(" ", 1) for line in out.splitlines())
        else:
            assert code == 1 and "error:" not in err, err  # x killed this start too
    assert ended.get(steady.job_id, "").strip() == "succeeded", (starts, out, err)
    assert starts <= 4, starts  # x's two attempts left (three if the first went unrecorded)
    # The crashing job failed as the last start took it over (its last attempt was used up).
    events = crashing.checked_events()
    assert [e.type for e in events][-2:] == ["TaskFailed", "JobFailed"]
    assert WORKER_DIED in getattr(events[-1], "reason", "")
    assert steady.check_log()[-1] == "JobCompleted"


@pytest.mark.timeout(120)
def test_cancel_of_a_job_whose_process_died_cancels_it_at_once(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.orphan()

    async def cancel() -> tuple[bool, str, object]:
        async with Engine(store=job.store, data_dir=tmp_path / "data") as engine:
            assert await engine.stalled(job.job_id)
            done = await engine.cancel(job.job_id, reason="nobody runs it")
            state = await engine.get(job.job_id)
            return done, state.status, await engine.claim(job.job_id)

    done, status, claim = asyncio.run(cancel())
    assert done and status == "cancelled"
    assert claim is None  # released: retry or replan may start at once
    assert job.check_log()[-1] == "JobCancelled"


@pytest.mark.timeout(120)
def test_a_cancel_left_for_a_dead_owner_is_carried_out_by_the_next_one(tmp_path: Path) -> None:
    job = Job(tmp_path)
    old = job.submit("slow", claim_lease_s=300.0)
    try:
        job.wait_line(f"b-start:{old.pid}")

        async def cancel() -> bool:
            async with Engine(store=job.store, data_dir=tmp_path / "data") as engine:
                return await engine.cancel(job.job_id, reason="stop it")

        cancelled = False
        for _ in range(10):
            old.send_signal(signal.SIGSTOP)  # alive, holding its claim, deaf to commands
            try:
                cancelled = asyncio.run(cancel())
            except StoreUnavailable as exc:
                # Frozen in the middle of a write, it holds SQLite's write lock: thaw it for a
                # moment and freeze it again between two writes.
                assert "locked" in str(exc), exc
                old.send_signal(signal.SIGCONT)
                time.sleep(0.2)
                continue
            break
        assert cancelled  # left as a command: the owner is alive
    finally:
        kill(old)
    new = job.resume(claim_lease_s=300.0)
    code, out, err = finish(new)
    assert code == 0, err
    assert out.split()[0] == "cancelled" and "stop it" in out
    assert by(new.pid, job.lines()) == []  # the cancel took effect before any work went out
    assert job.check_log()[-1] == "JobCancelled"


@pytest.mark.timeout(120)
def test_follow_of_a_job_nobody_drives_ends_after_its_stored_events(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.orphan()

    async def follow() -> list[int]:
        async with Engine(store=job.store, data_dir=tmp_path / "data") as engine:
            seqs = [event.seq async for event in engine.follow(job.job_id)]
            stored = await engine.events(job.job_id)
        assert seqs == [e.seq for e in stored]
        return seqs

    assert len(asyncio.run(asyncio.wait_for(follow(), 30))) > 0


def _cli(tmp_path: Path, *args: str) -> list[str]:
    store = ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]
    return [sys.executable, "-m", "planweave.cli", *args, *store, "--json"]


def _running_job(tmp_path: Path, task_id: str, timeout_s: float = 30.0) -> str:
    import sqlite3

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(sqlite3.Error),
            contextlib.closing(sqlite3.connect(tmp_path / "jobs.db")) as db,
        ):
            row = db.execute(
                "SELECT job_id FROM pw_tasks WHERE task_id = ? AND status = 'running'", (task_id,)
            ).fetchone()
            if row is not None:
                return str(row[0])
        time.sleep(0.05)
    raise AssertionError(f"task {task_id!r} was never recorded as running")


@pytest.mark.timeout(180)
def test_planweave_run_that_lost_its_job_says_so_in_one_line(tmp_path: Path) -> None:
    """``resume --force`` against a live ``planweave run``: the old one stops within its claim
    renewal period, exits 1 with one line saying another process took the job; the new one
    finishes it."""
    import json

    plan = {
        "tasks": [
            {"id": "a", "kind": "execute", "goal": "Say ok"},
            {"id": "b", "kind": "tool", "tool": "calculator", "args": {"expression": "6*7"},
             "depends_on": ["a"]},
        ]
    }  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    slow = {"replies": [{"match": {"role": "executor"}, "content": "ok", "delay_s": 120}]}
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    fast = {"replies": [{"match": {"role": "executor"}, "content": "ok", "repeat": True}]}
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    old = subprocess.Popen(
        _cli(tmp_path, "run", "--plan", str(tmp_path / "plan.json"),
             "--model", f"scripted:{tmp_path / 'slow.json'}"),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        job_id = _running_job(tmp_path, "a")
        new = subprocess.run(
            _cli(tmp_path, "resume", job_id, "--force",
                 "--model", f"scripted:{tmp_path / 'fast.json'}"),
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        _, stderr = old.communicate(timeout=60)
    finally:
        kill(old)
    assert new.returncode == 0, new.stderr
    assert json.loads(new.stdout.strip().splitlines()[-1])["result"] == 42
    assert old.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "another process" in last, stderr
    assert "Traceback" not in stderr
