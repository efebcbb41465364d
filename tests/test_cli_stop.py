"""Ctrl-C and SIGTERM while ``planweave run`` drives a job whose tool blocks its thread.

The job runs through the command line's own run path (``planweave.cli._drive.drive``) in a real
subprocess, with a registered synchronous tool that sleeps; the signals are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = '''
import asyncio, sys, time
from pathlib import Path

from planweave import Plan, TaskSpec, tool
from planweave.cli._drive import drive, resume_job
from planweave.config import load_settings

HERE = Path(sys.argv[2])


@tool
def block(seconds: float) -> str:
    """Block the calling thread, as a synchronous tool that cannot be cancelled does.

    Args:
        seconds: How long to block.
    """
    with open(HERE / "ledger", "a") as ledger:
        ledger.write("start\\n")
    if not (HERE / "fast").exists():
        time.sleep(seconds)
    with open(HERE / "ledger", "a") as ledger:
        ledger.write("end\\n")
    return "done"


settings = load_settings(
    {"store": f"sqlite:///{HERE / 'jobs.db'}", "data_dir": HERE / "data"}, env={}
)
PLAN = Plan(tasks=(TaskSpec(id="slow", kind="tool", tool="block", args={"seconds": 120}),))


async def start(engine):
    if sys.argv[1] == "run":
        job_id = await engine.submit(plan=PLAN)
        return job_id, engine.wait(job_id)
    return sys.argv[3], resume_job(engine, sys.argv[3], False, None)


sys.exit(asyncio.run(drive(settings, start, json_out=True, tools=[block])))
'''


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "runner.py").write_text(SCRIPT, encoding="utf-8")
    stderr = tmp_path / "stderr.txt"
    stderr_file = stderr.open("w")
    proc = subprocess.Popen(
        [sys.executable, "runner.py", "run", str(tmp_path)], cwd=tmp_path, env=env(),
        stdout=subprocess.PIPE, stderr=stderr_file, text=True,
    )  # fmt: skip
    stderr_file.close()  # the child has its own copy
    wait_for(lambda: "start" in read(tmp_path / "ledger"), what="the tool to start")
    return proc, stderr


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def wait_for(check: object, *, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def resume_without_force(tmp_path: Path, job_id: str) -> dict[str, object]:
    (tmp_path / "fast").write_text("", encoding="utf-8")  # the resumed attempt returns at once
    proc = subprocess.run(
        [sys.executable, "runner.py", "resume", str(tmp_path), job_id], cwd=tmp_path, env=env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "--force" not in proc.stderr  # the stopped process released its claim
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), proc.stderr
    data: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_stops_within_the_grace_even_while_a_tool_blocks(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc, stderr = start_run(tmp_path)
    try:
        proc.send_signal(sig)
        # The tool blocks for 120 s: ending well before proves the process did not wait for it.
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    said = read(stderr)
    assert proc.returncode == 130, said
    assert "stopping: letting running work finish (up to 5 s)…" in said
    assert "work still running after the 5 s grace ends with this process" in said
    job_id = json.loads(stdout.strip().splitlines()[-1])["job_id"]
    assert f"planweave resume {job_id}" in said
    assert "Traceback" not in said
    # The process that said "resume" was gone: its attempt never finished.
    assert read(tmp_path / "ledger").splitlines() == ["start"]
    data = resume_without_force(tmp_path, job_id)
    assert data["status"] == "succeeded"


@pytest.mark.slow
def test_a_second_signal_releases_the_claim_says_so_and_exits_130(tmp_path: Path) -> None:
    proc, stderr = start_run(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping:" in read(stderr), what="the stopping message")
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    said = read(stderr)
    assert proc.returncode == 130, said
    job_id = json.loads(stdout.strip().splitlines()[-1])["job_id"]
    assert f"interrupted again: job {job_id} stopped without waiting" in said
    assert "its claim is released" in said
    assert "Traceback" not in said
    data = resume_without_force(tmp_path, job_id)
    assert data["status"] == "succeeded"
