"""The command line, in-process (CliRunner) and as real processes, on a SQLite file in tmp_path
with the scripted model."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from planweave.cli import app
from planweave.cli._live import render
from planweave.events import (
    Event,
    JobFailed,
    JobSubmitted,
    LlmCalled,
    SubtasksPlanned,
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskReady,
    TaskStarted,
)
from planweave.plan import TaskSpec
from planweave.state import JobState, apply

GOAL_REPLIES: list[dict[str, Any]] = [
    {
        "match": {"role": "planner"},
        "json": {
            "tasks": [
                {"id": "sum", "goal": "Compute 2+3", "depends_on": [], "kind": "execute"},
                {
                    "id": "square",
                    "goal": "Square the sum",
                    "depends_on": ["sum"],
                    "kind": "execute",
                },
            ]
        },
    },
    {
        "match": {"role": "executor", "contains": "Compute 2+3"},
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}],
    },
    {"match": {"role": "executor", "contains": "Compute 2+3"}, "content": "5"},
    {
        "match": {"role": "executor", "contains": "Square the sum"},
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "5**2"}}],
    },
    {"match": {"role": "executor", "contains": "Square the sum"}, "content": "25"},
    {
        "match": {"role": "composer"},
        "content": "# Answer\n\n2+3 squared is **25**.",
        "repeat": True,
    },
]

TOOL_PLAN = {
    "tasks": [
        {"id": "a", "kind": "tool", "tool": "calculator", "args": {"expression": "2+3"}},
        {
            "id": "b",
            "kind": "tool",
            "tool": "calculator",
            "args": {"expression": "10*4"},
            "depends_on": ["a"],
        },
    ]
}

FAILING_PLAN = {
    "tasks": [
        {"id": "ok", "kind": "tool", "tool": "calculator", "args": {"expression": "1+1"}},
        {
            "id": "boom",
            "kind": "tool",
            "tool": "calculator",
            "args": {"expression": "1/0"},
            "depends_on": ["ok"],
        },
    ]
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the current directory, with no PLANWEAVE_* variables set."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PLANWEAVE_"):
            monkeypatch.delenv(name)
    return tmp_path


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def store_args(tmp_path: Path) -> list[str]:
    return ["--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path / "data")]


def cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m planweave.cli ARGS`` as a real process in ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=tmp_path,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["COLUMNS"] = "160"
    return env


def only_json(stdout: str) -> Any:
    """The one JSON document ``stdout`` holds (fails if there is anything else)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


# --- run ------------------------------------------------------------------------------------


def test_run_json_prints_exactly_one_object_and_exits_0(tmp_path: Path) -> None:
    plan = write_yaml(tmp_path / "plan.yaml", TOOL_PLAN)
    proc = cli(
        tmp_path,
        "run",
        "--plan",
        str(plan),
        *store_args(tmp_path),
        "--json",
        env={"PLANWEAVE_LOG_LEVEL": "DEBUG"},  # logs go to stderr, never into the JSON
    )
    assert proc.returncode == 0, proc.stderr
    data = only_json(proc.stdout)
    assert data["status"] == "succeeded"
    assert data["result"] == 40
    assert data["error"] is None
    assert set(data["usage"]) == {"tokens_in", "tokens_out", "cost_usd", "llm_calls"}
    assert [(t["id"], t["status"], t["result"]) for t in data["tasks"]] == [
        ("a", "succeeded", 5),
        ("b", "succeeded", 40),
    ]
    assert len(data["job_id"]) == 32


def test_run_a_goal_with_the_scripted_model(work: Path) -> None:
    write_yaml(work / "replies.yaml", {"replies": GOAL_REPLIES})
    result = CliRunner().invoke(
        app,
        [
            "run",
            "What is 2+3, squared?",
            "--model",
            "scripted:replies.yaml",
            *store_args(work),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = only_json(result.stdout)
    assert data["status"] == "succeeded"
    assert "25" in data["result"]
    assert [Path(p).name for p in data["artifacts"]] == ["result.md"]
    assert Path(data["artifacts"][0]).read_text(encoding="utf-8") == data["result"]
    assert data["usage"]["llm_calls"] == 6
    assert {t["id"]: t["status"] for t in data["tasks"]} == {
        "root": "succeeded",
        "sum": "succeeded",
        "square": "succeeded",
        "compose": "succeeded",
    }


def test_run_shows_the_task_tree_and_the_answer(work: Path) -> None:
    write_yaml(work / "replies.yaml", {"replies": GOAL_REPLIES})
    result = CliRunner().invoke(
        app, ["run", "What is 2+3, squared?", "--model", "scripted:replies.yaml", *store_args(work)]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for task_id in ("root", "sum", "square", "compose"):
        assert f"✓ {task_id} " in out
    assert "4/4 tasks done" in out
    assert "2+3 squared is 25" in out  # the Markdown answer, rendered
    assert "result.md" in out
    assert "6 LLM calls" in out


def test_a_failing_plan_exits_1_with_status_failed(tmp_path: Path) -> None:
    plan = write_yaml(tmp_path / "plan.yaml", FAILING_PLAN)
    proc = cli(tmp_path, "run", "--plan", str(plan), *store_args(tmp_path), "--json")
    assert proc.returncode == 1
    data = only_json(proc.stdout)
    assert data["status"] == "failed"
    assert "division by zero" in data["error"]
    assert {t["id"]: t["status"] for t in data["tasks"]} == {"ok": "succeeded", "boom": "failed"}

    human = cli(tmp_path, "run", "--plan", str(plan), *store_args(tmp_path))
    assert human.returncode == 1
    assert "✗ boom" in human.stdout
    assert "failed" in human.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "a goal", "--model", "bogus:thing"], "unknown model URL 'bogus:thing'"),
        (["run", "a goal", "--model", "scripted:missing.yaml"], "missing.yaml does not exist"),
        (["run", "--plan", "nowhere.yaml"], "plan file 'nowhere.yaml' does not exist"),
        (["run"], "give a GOAL"),
        (["run", "a goal", "--store", "nosuch://x"], "unknown store URL"),
        (["run", "a goal", "--on-failure", "explode"], "--on-failure"),
        (["run", "a goal", "--bogus-option"], "No such option: --bogus-option"),
        (["show", "0123456789abcdef"], "no job '0123456789abcdef'"),
    ],
)
def test_usage_errors_are_one_red_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = cli(tmp_path, args[0], *store_args(tmp_path), *args[1:])  # args' own --store wins
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = cli(tmp_path, "--debug", "run", "a goal", "--model", "bogus:thing")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown model URL")


def test_workspace_option_is_where_file_tools_write(work: Path) -> None:
    plan = write_yaml(
        work / "plan.yaml",
        {
            "tasks": [
                {
                    "id": "w",
                    "kind": "tool",
                    "tool": "write_file",
                    "args": {"path": "notes/hello.txt", "content": "hi"},
                }
            ]
        },
    )
    result = CliRunner().invoke(
        app, ["run", "--plan", str(plan), "--workspace", "ws", *store_args(work), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert only_json(result.stdout)["status"] == "succeeded"
    assert (work / "ws" / "notes" / "hello.txt").read_text() == "hi"


# --- jobs / show / events -------------------------------------------------------------------


def run_plan(work: Path, plan: dict[str, Any]) -> str:
    path = write_yaml(work / "plan.yaml", plan)
    result = CliRunner().invoke(app, ["run", "--plan", str(path), *store_args(work), "--json"])
    job_id: str = only_json(result.stdout)["job_id"]
    return job_id


def test_jobs_lists_the_jobs(work: Path) -> None:
    ok = run_plan(work, TOOL_PLAN)
    bad = run_plan(work, FAILING_PLAN)
    runner = CliRunner()
    result = runner.invoke(app, ["jobs", *store_args(work)])
    assert result.exit_code == 0, result.output
    assert ok[:12] in result.stdout and bad[:12] in result.stdout
    assert "succeeded" in result.stdout and "failed" in result.stdout
    assert "2/2" in result.stdout

    listed = json.loads(runner.invoke(app, ["jobs", *store_args(work), "--json"]).stdout)
    assert [job["job_id"] for job in listed] == [bad, ok]  # newest first
    failed = json.loads(
        runner.invoke(app, ["jobs", "--status", "failed", *store_args(work), "--json"]).stdout
    )
    assert [job["job_id"] for job in failed] == [bad]


def test_show_prints_tasks_and_result(work: Path) -> None:
    job_id = run_plan(work, FAILING_PLAN)
    runner = CliRunner()
    result = runner.invoke(app, ["show", job_id[:8], *store_args(work)])  # a prefix will do
    assert result.exit_code == 0, result.output
    assert job_id in result.stdout
    assert "boom" in result.stdout and "division by zero" in result.stdout
    assert "ok" in result.stdout and "succeeded" in result.stdout

    data = only_json(runner.invoke(app, ["show", job_id, *store_args(work), "--json"]).stdout)
    assert data["job_id"] == job_id
    assert data["status"] == "failed"


def test_events_json_lines_are_contiguous(work: Path) -> None:
    job_id = run_plan(work, TOOL_PLAN)
    runner = CliRunner()
    result = runner.invoke(app, ["events", job_id, *store_args(work), "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "JobSubmitted" and events[-1]["type"] == "JobCompleted"

    later = runner.invoke(app, ["events", job_id, "--after", "3", *store_args(work), "--json"])
    assert next(json.loads(line)["seq"] for line in later.stdout.splitlines()) == 4

    text = runner.invoke(app, ["events", job_id, *store_args(work)])
    lines = text.stdout.splitlines()
    assert len(lines) == len(events)
    assert "JobSubmitted" in lines[0] and "TaskCompleted" in text.stdout
    assert lines[-1].split()[2:] == ["JobCompleted", "-", "40"]


def test_flag_beats_env_beats_toml_for_the_store(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_yaml(work / "plan.yaml", TOOL_PLAN)
    runner = CliRunner()
    for name in ("toml", "env", "flag"):
        result = runner.invoke(
            app, ["run", "--plan", str(plan), "--json", "--store", f"sqlite:///{work / name}.db"]
        )
        assert result.exit_code == 0, result.output

    stores: dict[str, str] = {}
    for name in ("toml", "env", "flag"):
        out = runner.invoke(app, ["jobs", "--json", "--store", f"sqlite:///{work / name}.db"])
        stores[name] = json.loads(out.stdout)[0]["job_id"]

    def which(*args: str) -> str:
        out = runner.invoke(app, ["jobs", "--json", *args])
        assert out.exit_code == 0, out.output
        job_id: str = json.loads(out.stdout)[0]["job_id"]
        return next(name for name, jid in stores.items() if jid == job_id)

    (work / "planweave.toml").write_text(f'store = "sqlite:///{work / "toml"}.db"\n')
    assert which() == "toml"
    monkeypatch.setenv("PLANWEAVE_STORE", f"sqlite:///{work / 'env'}.db")
    assert which() == "env"
    assert which("--store", f"sqlite:///{work / 'flag'}.db") == "flag"


def test_a_bad_toml_key_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text('[planweave]\nstroe = "memory://"\n')
    proc = cli(tmp_path, "jobs")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"error: {tmp_path / 'planweave.toml'}: unknown key 'stroe'; the known keys are store, "
    )


# --- across processes: interrupt, resume, follow, cancel ------------------------------------


def wait_for_job(tmp_path: Path, *, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc = cli(tmp_path, "jobs", "--json", *store_args(tmp_path))
        if proc.returncode == 0 and json.loads(proc.stdout):
            job_id: str = json.loads(proc.stdout)[0]["job_id"]
            return job_id
        time.sleep(0.2)
    raise AssertionError("no job appeared")


def slow_replies(delay_s: float) -> dict[str, Any]:
    replies = [{**reply} for reply in GOAL_REPLIES]
    replies[0]["delay_s"] = delay_s
    return {"replies": replies}


def start_slow_run(tmp_path: Path) -> subprocess.Popen[str]:
    """``planweave run --json`` in a subprocess, on the slow script in ``tmp_path``."""
    return subprocess.Popen(
        [sys.executable, "-m", "planweave.cli", "run", "What is 2+3, squared?",
         "--model", "scripted:slow.yaml", *store_args(tmp_path), "--json"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_finishes_the_job(tmp_path: Path) -> None:
    write_yaml(tmp_path / "slow.yaml", slow_replies(60))
    write_yaml(tmp_path / "fast.yaml", {"replies": GOAL_REPLIES})
    run = start_slow_run(tmp_path)
    try:
        job_id = wait_for_job(tmp_path)
        time.sleep(0.5)
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    assert f"planweave resume {job_id}" in stderr
    assert "Traceback" not in stderr
    assert only_json(stdout)["status"] == "running"

    resumed = cli(
        tmp_path,
        "resume",
        job_id[:10],
        "--model",
        "scripted:fast.yaml",
        *store_args(tmp_path),
        "--json",
    )
    assert resumed.returncode == 0, resumed.stderr
    data = only_json(resumed.stdout)
    assert data["job_id"] == job_id
    assert data["status"] == "succeeded"
    assert "25" in data["result"]


@pytest.mark.slow
def test_cancel_and_follow_from_other_processes(tmp_path: Path) -> None:
    write_yaml(tmp_path / "slow.yaml", slow_replies(60))
    run = start_slow_run(tmp_path)
    follow: subprocess.Popen[str] | None = None
    try:
        job_id = wait_for_job(tmp_path)
        follow = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planweave.cli",
                "events",
                job_id,
                "--follow",
                "--json",
                *store_args(tmp_path),
            ],
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        cancelled = cli(
            tmp_path, "cancel", job_id, "--reason", "changed my mind", *store_args(tmp_path)
        )
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"cancel requested for job {job_id}" in cancelled.stdout
        stdout, stderr = run.communicate(timeout=30)
        followed, follow_err = follow.communicate(timeout=30)
    finally:
        run.kill()
        if follow is not None:
            follow.kill()
    assert run.returncode == 1, stderr
    data = only_json(stdout)
    assert data["status"] == "cancelled"
    assert "changed my mind" in data["error"]
    assert follow.returncode == 0, follow_err
    events = [json.loads(line) for line in followed.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "JobCancelled"

    again = cli(tmp_path, "cancel", job_id, *store_args(tmp_path))
    assert again.returncode == 0
    assert "already ended (cancelled)" in again.stdout


# --- the live tree --------------------------------------------------------------------------


def text_of(renderable: Any, width: int = 140) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def goal_state() -> JobState:
    at = 1000.0
    state = apply(None, JobSubmitted(job_id="j1", seq=1, at=at, goal="Write a report"))
    events: list[Event] = [
        TaskReady(job_id="j1", task_id="root", seq=2, at=at),
        TaskAssigned(job_id="j1", task_id="root", seq=3, at=at, attempt=1, worker="planner"),
        TaskStarted(job_id="j1", task_id="root", seq=4, at=at, attempt=1),
        LlmCalled(
            job_id="j1",
            task_id="root",
            seq=5,
            at=at + 1,
            model="scripted",
            role="planner",
            tokens_in=1200,
            tokens_out=300,
            cost_usd=0.012,
        ),
        SubtasksPlanned(
            job_id="j1",
            task_id="root",
            seq=6,
            at=at + 1,
            depth=1,
            tasks=(
                TaskSpec(id="root.research", goal="Research the topic in depth"),
                TaskSpec(id="root.draft", goal="Draft the report", depends_on=("root.research",)),
                TaskSpec(id="root.check", goal="Check the facts", depends_on=("root.research",)),
            ),
        ),
        TaskCompleted(job_id="j1", task_id="root", seq=7, at=at + 1, attempt=1),
        TaskReady(job_id="j1", task_id="root.research", seq=8, at=at + 1),
        TaskAssigned(
            job_id="j1", task_id="root.research", seq=9, at=at + 1, attempt=1, worker="executor"
        ),
        TaskStarted(job_id="j1", task_id="root.research", seq=10, at=at + 2, attempt=1),
        TaskCompleted(
            job_id="j1", task_id="root.research", seq=11, at=at + 4, attempt=1, result="notes"
        ),
        TaskReady(job_id="j1", task_id="root.draft", seq=12, at=at + 4),
        TaskAssigned(
            job_id="j1", task_id="root.draft", seq=13, at=at + 4, attempt=1, worker="executor"
        ),
        TaskStarted(job_id="j1", task_id="root.draft", seq=14, at=at + 4, attempt=1),
        TaskReady(job_id="j1", task_id="root.check", seq=15, at=at + 4),
    ]
    for event in events:
        state = apply(state, event)
    return state


def test_render_shows_every_task_nested_under_its_plan() -> None:
    text = text_of(render(goal_state(), now=1010.0, spinners=False))
    lines = text.splitlines()
    assert "job j1" in lines[0] and "running" in lines[0]
    assert "10.0s" in lines[0]  # elapsed
    assert "1.5k/2.0M tokens" in lines[0] and "$0.012/$5.00" in lines[0]  # spent/budget
    assert "2/4 tasks done" in text
    assert "Write a report" in text

    def line(task_id: str) -> str:
        return next(x for x in lines if f" {task_id} " in x)

    assert "✓" in line("root") and "succeeded" in line("root") and "[plan]" in line("root")
    assert "1.5k tok" in line("root")
    assert "✓" in line("root.research") and "2.0s" in line("root.research")
    assert "running" in line("root.draft") and "6.0s" in line("root.draft")
    assert "◌" in line("root.check") and "ready" in line("root.check")
    # subtasks are indented under their plan task
    assert line("root.research").index("root.research") > line("root").index("root")


def test_render_marks_failures_and_the_job_outcome() -> None:
    state = goal_state()
    for event in (
        TaskFailed(
            job_id="j1",
            task_id="root.draft",
            seq=16,
            at=1006.0,
            attempt=1,
            error="the model gave up",
        ),
        JobFailed(job_id="j1", seq=17, at=1006.0, reason="task 'root.draft' failed"),
    ):
        state = apply(state, event)
    text = text_of(render(state, now=2000.0, spinners=False))
    draft = next(x for x in text.splitlines() if " root.draft " in x)
    assert "✗" in draft and "failed" in draft and "the model gave up" in draft
    assert "job j1  failed  6.0s" in text  # finished: elapsed stops at the end
    assert "failed: task 'root.draft' failed" in text
    succeeded = sum(1 for task in state.tasks.values() if task.status == "succeeded")
    assert f"{succeeded}/{len(state.tasks)} tasks done, job failed" in text


def test_render_running_tasks_spin_and_before_the_first_event() -> None:
    assert "waiting" in text_of(render(None, now=0.0))
    assert "root.draft" in text_of(render(goal_state(), now=1010.0, spinners=True))


def test_render_a_huge_job_keeps_the_interesting_tasks() -> None:
    specs = tuple(TaskSpec(id=f"t{i}", kind="tool", tool="calculator") for i in range(500))
    state = apply(None, JobSubmitted(job_id="big", seq=1, at=0.0, goal="many", plan=specs))
    seq = 1
    for i in range(500):
        seq += 1
        state = apply(state, TaskReady(job_id="big", task_id=f"t{i}", seq=seq, at=0.0))
    for i in range(490):
        seq += 1
        state = apply(
            state, TaskCompleted(job_id="big", task_id=f"t{i}", seq=seq, at=0.0, attempt=1)
        )
    text = text_of(render(state, now=1.0, spinners=False, max_tasks=20))
    assert "490/500 tasks done" in text
    assert " t495 " in text and " t5 " not in text
    assert "490 more tasks (490 succeeded)" in text


def test_an_openai_model_without_a_key_is_refused_before_any_job_starts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANWEAVE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "planweave.cli", "run", "a goal", "--model", "openai:gpt-4o-mini",
         "--store", f"sqlite:///{tmp_path / 'jobs.db'}", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "OPENAI_API_KEY is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
    jobs = subprocess.run(
        [sys.executable, "-m", "planweave.cli", "jobs", "--json",
         "--store", f"sqlite:///{tmp_path / 'jobs.db'}"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(jobs.stdout) == []
