"""``planweave run`` shows the reply a running task's model is writing, as it is written."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from planweave.cli._live import render
from planweave.cli._replies import ReplyView
from planweave.events import (
    JobSubmitted,
    LlmDelta,
    TaskAssigned,
    TaskCompleted,
    TaskReady,
    TaskStarted,
)
from planweave.plan import TaskSpec
from planweave.state import JobState, apply

WORDS = ["alpha1", "bravo2", "charlie3", "delta4", "echo5", "foxtrot6"]


def text_of(renderable: Any) -> str:
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def running_job() -> JobState:
    plan = (TaskSpec(id="write", goal="Write it"),)
    state = apply(None, JobSubmitted(job_id="j1", seq=1, at=1.0, goal="Write it", plan=plan))
    for event in (
        TaskReady(job_id="j1", task_id="write", seq=2, at=1.0),
        TaskAssigned(job_id="j1", task_id="write", seq=3, at=1.0, attempt=1, worker="executor"),
        TaskStarted(job_id="j1", task_id="write", seq=4, at=1.0, attempt=1),
    ):
        state = apply(state, event)
    return state


def delta(text: str, *, call: int = 1, index: int = 0, attempt: int = 1) -> LlmDelta:
    return LlmDelta(
        job_id="j1",
        task_id="write",
        model="scripted",
        role="executor",
        call=call,
        index=index,
        text=text,
        attempt=attempt,
    )


def test_the_tree_shows_a_running_tasks_reply_and_drops_it_when_done() -> None:
    replies = ReplyView()
    replies.add(delta("The report "))
    replies.add(delta("begins here", index=1))
    state = running_job()
    text = text_of(render(state, now=2.0, spinners=False, replies=replies.as_dict()))
    lines = text.splitlines()
    task_line = next(i for i, line in enumerate(lines) if "write" in line and "running" in line)
    assert "The report begins here" in lines[task_line + 1]

    replies.add(delta("A second call", call=2))  # the next call starts afresh
    text = text_of(render(state, now=2.0, spinners=False, replies=replies.as_dict()))
    assert "A second call" in text and "The report" not in text
    replies.add(delta(" late piece", call=1, index=2))  # of the earlier call: ignored
    assert replies.text("write") == "A second call"

    done = apply(state, TaskCompleted(job_id="j1", task_id="write", seq=5, at=3.0, attempt=1))
    assert "A second call" not in text_of(render(done, now=3.0, replies=replies.as_dict()))


def test_planweave_run_writes_the_reply_while_the_model_writes_it(tmp_path: Path) -> None:
    replies = {
        "replies": [
            {"match": {"role": "executor"}, "content": " ".join(WORDS), "delta_delay_s": 0.4}
        ]
    }
    (tmp_path / "replies.yaml").write_text(yaml.safe_dump(replies), encoding="utf-8")
    plan = {"tasks": [{"id": "write", "goal": "Write the words"}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan), encoding="utf-8")
    args = [
        sys.executable,
        "-m",
        "planweave.cli",
        "run",
        "--plan",
        "plan.yaml",
        "--model",
        "scripted:replies.yaml",
        "--store",
        f"sqlite:///{tmp_path / 'jobs.db'}",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env.update({"COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color"})
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        os.close(primary)
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text[-2000:]
    lines = text.replace("\r", "\n").splitlines()
    # Lines drawn mid-call show part of the reply, without its last word yet.
    partial = [
        line for line in lines if any(w in line for w in WORDS[:-1]) and WORDS[-1] not in line
    ]
    assert partial, text[-2000:]
    assert any(" ".join(WORDS) in line for line in lines)  # the answer, printed at the end
