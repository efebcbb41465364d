"""Approval from the command line, as real processes: ``planweave approvals``, ``approve`` and
``reject``, and a pause that survives ``kill -9`` of the process running the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

TOOLS = textwrap.dedent(
    '''
    import os
    from pathlib import Path
    from planweave import tool

    @tool(high_impact=True, sandbox="Appends to the ledger file.")
    def remove_report(name: str) -> str:
        """Remove a report for good."""
        with Path(os.environ["PW_LEDGER"]).open("a") as f:
            f.write(name + "\\n")
        return "removed " + name
    '''
)

REPLIES: list[dict[str, Any]] = [
    {
        "match": {"contains": "Remove the old report"},
        "tool_calls": [{"name": "remove_report", "arguments": {"name": "old"}}],
    },
    {"match": {"contains": "Remove the old report"}, "content": "the agent is done"},
    {"match": {"contains": "Write a summary"}, "content": "summary written"},
]

PLAN = {
    "tasks": [
        {"id": "risky", "kind": "execute", "goal": "Remove the old report"},
        {"id": "safe", "kind": "execute", "goal": "Write a summary"},
    ]
}


def _setup(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "planweave.toml").write_text('tools = ["tools.py"]\n')
    (tmp_path / "replies.yaml").write_text(yaml.safe_dump({"replies": REPLIES}))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(PLAN))
    return {**os.environ, "PW_LEDGER": str(tmp_path / "ledger.txt"), "PYTHONUNBUFFERED": "1"}


def _store(tmp_path: Path) -> list[str]:
    return ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]


def _cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _start_run(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    args = ["run", "--plan", "plan.yaml", "--model", "scripted:replies.yaml", *_store(tmp_path)]
    with (tmp_path / "run.out").open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "planweave.cli", *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _waiting(
    tmp_path: Path, env: dict[str, str], run: subprocess.Popen[str]
) -> list[dict[str, Any]]:
    """Poll ``planweave approvals --json`` until a call waits."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and run.poll() is None:
        listed = _cli(tmp_path, env, "approvals", "--json", *_store(tmp_path))
        assert listed.returncode == 0, listed.stderr
        found: list[dict[str, Any]] = json.loads(listed.stdout)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("no call ever waited for approval: " + (tmp_path / "run.out").read_text())


def test_a_pause_survives_kill_9_and_the_job_finishes_once_resumed_and_approved(
    tmp_path: Path,
) -> None:
    env = _setup(tmp_path)
    run = _start_run(tmp_path, env)
    try:
        (waiting,) = _waiting(tmp_path, env, run)
        assert (waiting["task_id"], waiting["tool"], waiting["args"]) == (
            "risky",
            "remove_report",
            {"name": "old"},
        )
        job_id = waiting["job_id"]
        run.send_signal(signal.SIGKILL)
        assert run.wait(30) == -signal.SIGKILL
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    ledger = tmp_path / "ledger.txt"
    assert not ledger.exists()

    # Still waiting in the store after the process died.
    (still,) = json.loads(_cli(tmp_path, env, "approvals", "--json", *_store(tmp_path)).stdout)
    assert still["job_id"] == job_id

    approved = _cli(tmp_path, env, "approve", job_id, "risky", "--reason", "ok", *_store(tmp_path))
    assert approved.returncode == 0, approved.stderr
    assert f"planweave resume {job_id}" in approved.stdout

    # The resumed run replays the model call that asked for the tool: only the answer is left.
    (tmp_path / "replies.yaml").write_text(yaml.safe_dump({"replies": REPLIES[1:2]}))
    resumed = _cli(tmp_path, env, "resume", job_id, *_store(tmp_path))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert ledger.read_text().split() == ["old"]
    shown = _cli(tmp_path, env, "events", job_id, "--json", *_store(tmp_path))
    kinds = [json.loads(line)["type"] for line in shown.stdout.splitlines() if line.strip()]
    assert "ApprovalDecided" in kinds and kinds[-1] == "JobCompleted"


def test_cli_errors_name_what_is_wrong(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    run = _start_run(tmp_path, env)
    try:
        (waiting,) = _waiting(tmp_path, env, run)
        job_id = waiting["job_id"]
        unknown = _cli(tmp_path, env, "approve", "nosuchjob", "risky", *_store(tmp_path))
        assert unknown.returncode == 2
        assert "nosuchjob" in unknown.stderr
        not_waiting = _cli(tmp_path, env, "approve", job_id, "safe", *_store(tmp_path))
        assert not_waiting.returncode == 2
        assert "not awaiting approval" in not_waiting.stderr
        no_reason = _cli(tmp_path, env, "reject", job_id, "risky", *_store(tmp_path))
        assert no_reason.returncode == 2
        assert "needs a reason" in no_reason.stderr
        rejected = _cli(
            tmp_path, env, "reject", job_id, "risky", "--reason", "keep it", *_store(tmp_path)
        )
        assert rejected.returncode == 0, rejected.stderr
        assert run.wait(90) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    assert not (tmp_path / "ledger.txt").exists()
    output = (tmp_path / "run.out").read_text()
    assert "succeeded" in output
