"""A job whose process died is shown as stalled, with the way out, and never hangs a follower."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.test_cli import (
    GOAL_REPLIES,
    clean_env,
    cli,
    only_json,
    slow_replies,
    start_slow_run,
    store_args,
    wait_for_job,
    write_yaml,
)


@pytest.mark.slow
def test_a_killed_jobs_process_leaves_it_stalled_and_resume_carries_it_on(tmp_path: Path) -> None:
    write_yaml(tmp_path / "slow.yaml", slow_replies(60))
    write_yaml(tmp_path / "fast.yaml", {"replies": GOAL_REPLIES})
    run = start_slow_run(tmp_path)
    try:
        job_id = wait_for_job(tmp_path)
        time.sleep(0.5)
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    finally:
        run.kill()
        run.communicate()

    listed = cli(tmp_path, "jobs", "--json", *store_args(tmp_path))
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "running" and row["stalled"] is True
    table = cli(tmp_path, "jobs", *store_args(tmp_path))
    assert "stalled" in table.stdout and "planweave resume JOB" in table.stdout

    shown = cli(tmp_path, "show", job_id, *store_args(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert f"run planweave resume {job_id} to carry it on" in " ".join(shown.stdout.split())
    assert only_json(cli(tmp_path, "show", job_id, "--json", *store_args(tmp_path)).stdout)[
        "stalled"
    ]

    # Following it ends after its stored events instead of waiting for ever.
    followed = subprocess.run(
        [sys.executable, "-m", "planweave.cli", "events", job_id, "--follow", "--json",
         *store_args(tmp_path)],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    seqs = [json.loads(line)["seq"] for line in followed.stdout.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs

    # Its owner is plainly dead (same host, no such pid): resume takes over at once.
    resumed = cli(
        tmp_path, "resume", job_id, "--model", "scripted:fast.yaml", *store_args(tmp_path),
        "--json",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert only_json(resumed.stdout)["status"] == "succeeded"
    after = json.loads(cli(tmp_path, "jobs", "--json", *store_args(tmp_path)).stdout)
    assert after[0]["status"] == "succeeded" and after[0]["stalled"] is False
