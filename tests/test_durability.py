"""kill -9 or SIGTERM in the middle of a job, then resume: finished tasks are not run again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from planweave import Engine

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from planweave import Engine, Plan, TaskSpec, tool

    LEDGER = Path(os.environ["PW_LEDGER"])

    @tool
    def record(name: str) -> str:
        "Append a name to the ledger."
        with LEDGER.open("a") as f:
            f.write(name + "\\n")
        return name

    @tool
    async def slow(name: str) -> str:
        "Record the start, then wait unless the fast marker exists."
        with LEDGER.open("a") as f:
            f.write(name + "-start\\n")
        if not Path(str(LEDGER) + ".fast").exists():
            await asyncio.sleep(120)
        return name

    PLAN = Plan(tasks=(
        TaskSpec(id="a", kind="tool", tool="record", args={"name": "a"}),
        TaskSpec(id="b", kind="tool", tool="record", args={"name": "b"}, depends_on=("a",)),
        TaskSpec(id="c", kind="tool", tool="slow", args={"name": "c"}, depends_on=("b",)),
        TaskSpec(id="d", kind="tool", tool="record", args={"name": "d"}, depends_on=("c",)),
    ))

    def engine():
        return Engine(store=sys.argv[1], model="scripted", tools=[record, slow],
                      data_dir=LEDGER.parent / "data")

    async def main():
        async with engine() as e:
            job_id = await e.submit(plan=PLAN)
            print(job_id, flush=True)
            await e.wait(job_id)

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


def _wait_for(path: Path, text: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def _wait_recorded(store: str, task_id: str, timeout_s: float = 20.0) -> None:
    """Wait until the store records ``task_id`` as succeeded (read as another process would)."""
    path = store.removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT status FROM pw_tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row is not None and row[0] == "succeeded":
                return
        time.sleep(0.05)
    raise AssertionError(f"task {task_id!r} was never recorded as succeeded")


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], str, Path, str]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    ledger = tmp_path / "ledger.txt"
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    proc = subprocess.Popen(
        [sys.executable, str(script), store],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PW_LEDGER": str(ledger)},
    )
    assert proc.stdout is not None
    job_id = proc.stdout.readline().strip()
    proc.stdout.close()
    assert job_id, "the job script printed no job id"
    return proc, job_id, ledger, store


def _resume(tmp_path: Path, store: str, job_id: str, ledger: Path) -> tuple[str, list[str]]:
    sys.path.insert(0, str(tmp_path))
    os.environ["PW_LEDGER"] = str(ledger)
    try:
        import job  # the same tools as the killed process

        Path(str(ledger) + ".fast").touch()

        async def resume() -> str:
            engine = Engine(
                store=store,
                model="scripted",
                tools=[job.record, job.slow],
                data_dir=tmp_path / "data",
            )
            async with engine:
                result = await engine.resume(job_id, force=True)
                return result.status

        status = asyncio.run(resume())
        return status, ledger.read_text().split()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("job", None)
        os.environ.pop("PW_LEDGER", None)


def test_kill_9_then_resume_finishes_without_rerunning_finished_tasks(tmp_path: Path) -> None:
    proc, job_id, ledger, store = _start(tmp_path)
    try:
        _wait_for(ledger, "c-start")
        _wait_recorded(store, "b")  # b's success is durable; c is running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    status, lines = _resume(tmp_path, store, job_id, ledger)
    assert status == "succeeded"
    assert lines.count("a") == 1 and lines.count("b") == 1
    assert lines.count("c-start") == 2  # the killed attempt, then the resumed one
    assert lines.count("d") == 1


SIGTERM_PLAN = {
    "tasks": [
        {"id": "a", "kind": "tool", "tool": "calculator", "args": {"expression": "2+3"}},
        {"id": "b", "kind": "execute", "goal": "Say ok", "depends_on": ["a"]},
        {
            "id": "c",
            "kind": "tool",
            "tool": "calculator",
            "args": {"expression": "5*5"},
            "depends_on": ["b"],
        },
    ]
}


def _cli(tmp_path: Path, *args: str) -> list[str]:
    store = ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]
    return [sys.executable, "-m", "planweave.cli", *args, *store, "--json"]


def _wait_running(store: Path, task_id: str, timeout_s: float = 30.0) -> str:
    """Wait until the store records ``task_id`` as running; return its job's id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(store)) as db:
            row = db.execute(
                "SELECT job_id FROM pw_tasks WHERE task_id = ? AND status = 'running'", (task_id,)
            ).fetchone()
            if row is not None:
                return str(row[0])
        time.sleep(0.05)
    raise AssertionError(f"task {task_id!r} was never recorded as running")


def test_sigterm_stops_cleanly_and_releases_the_claim(tmp_path: Path) -> None:
    """``planweave run`` stopped by SIGTERM exits 130 and gives its claim back (so ``resume``,
    from any host, needs no ``--force``); ``resume`` then finishes the job."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(SIGTERM_PLAN))
    slow = {"replies": [{"match": {"role": "executor"}, "content": "ok", "delay_s": 120}]}
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    fast = {"replies": [{"match": {"role": "executor"}, "content": "ok", "repeat": True}]}
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    run = subprocess.Popen(
        _cli(tmp_path, "run", "--plan", str(plan), "--model", f"scripted:{tmp_path / 'slow.json'}"),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        job_id = _wait_running(tmp_path / "jobs.db", "b")
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    assert f"planweave resume {job_id}" in stderr

    async def claim() -> object:
        async with Engine(store=f"sqlite:///{tmp_path / 'jobs.db'}", data_dir=tmp_path) as e:
            return await e.claim(job_id)

    assert asyncio.run(claim()) is None, "the stopped process kept its claim"
    resumed = subprocess.run(
        _cli(tmp_path, "resume", job_id, "--model", f"scripted:{tmp_path / 'fast.json'}"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert data["status"] == "succeeded"
    assert data["result"] == 25
