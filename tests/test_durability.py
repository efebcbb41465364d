"""kill -9 in the middle of a job, then resume: finished tasks are not run again."""

from __future__ import annotations

import asyncio
import contextlib
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


def test_sigterm_leaves_a_store_that_resume_finishes(tmp_path: Path) -> None:
    proc, job_id, ledger, store = _start(tmp_path)
    try:
        _wait_for(ledger, "c-start")
        _wait_recorded(store, "b")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    status, lines = _resume(tmp_path, store, job_id, ledger)
    assert status == "succeeded"
    assert lines.count("a") == 1 and lines.count("b") == 1 and lines.count("d") == 1
