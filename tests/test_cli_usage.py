"""The command line as a new user meets it: usage problems refused before a job exists, resume
on the job's own model, fast start-up, messages that say what happened, one-pass plan checks and
the settings that reach the engine. Real processes on a SQLite file in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.test_cli import (
    GOAL_REPLIES,
    TOOL_PLAN,
    clean_env,
    cli,
    goal_state,
    only_json,
    run_plan,
    slow_replies,
    start_slow_run,
    store_args,
    text_of,
    wait_for_job,
    work,
    write_yaml,
)

from planweave.cli._live import render
from planweave.state import apply

__all__ = ["work"]  # the fixture, used by name


# --- usage problems are refused before a job exists -----------------------------------------


def no_jobs(tmp_path: Path) -> bool:
    proc = cli(tmp_path, "jobs", "--json", *store_args(tmp_path))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--model", "anthropic:claude-sonnet-4-5"], {}, "ANTHROPIC_API_KEY is not set"),
        (["--model", "openai:gpt-4o-mini"], {}, "OPENAI_API_KEY is not set"),
        (["--model", "local:/nope.gguf"], {}, "local model file /nope.gguf does not exist"),
        (
            ["--model", "local:"],
            {"PLANWEAVE_LOCAL_MODEL_PATH": "/nope.gguf"},
            "PLANWEAVE_LOCAL_MODEL_PATH=/nope.gguf",
        ),
        (["--data-dir", "afile/data"], {}, "cannot create the data folder (--data-dir)"),
    ],
)
def test_usage_problems_exit_2_before_a_job_is_created(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    write_yaml(tmp_path / "replies.yaml", {"replies": GOAL_REPLIES})
    no_keys = {k: "" for k in os.environ if k.startswith(("OPENAI_", "ANTHROPIC_"))}
    proc = cli(
        tmp_path,
        "run",
        "What is 2+3, squared?",
        *store_args(tmp_path),
        "--model",
        "scripted:replies.yaml",
        *args,
        env={**no_keys, **env},
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert no_jobs(tmp_path)


def test_a_store_in_a_folder_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    proc = cli(tmp_path, "jobs", "--store", f"sqlite:///{tmp_path / 'afile' / 'jobs.db'}")
    assert proc.returncode == 2, proc.stderr
    assert f"cannot create the store's folder {tmp_path / 'afile'}" in proc.stderr


# --- resume uses the job's model ------------------------------------------------------------


@pytest.mark.slow
def test_resume_carries_on_with_the_model_the_job_was_started_with(tmp_path: Path) -> None:
    write_yaml(tmp_path / "slow.yaml", slow_replies(60))
    run = start_slow_run(tmp_path)
    try:
        job_id = wait_for_job(tmp_path)
        time.sleep(0.5)
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130
    # The same file, now fast: the job's own model URL is what resume must load.
    write_yaml(tmp_path / "slow.yaml", {"replies": GOAL_REPLIES})
    resumed = cli(tmp_path, "resume", job_id, *store_args(tmp_path), "--json")
    assert resumed.returncode == 0, resumed.stderr
    data = only_json(resumed.stdout)
    assert data["status"] == "succeeded"
    assert "25" in data["result"]


def test_resume_of_a_finished_job_says_so_and_checks_the_model_url(work: Path) -> None:
    job_id = run_plan(work, TOOL_PLAN)
    bad = cli(work, "resume", job_id, "--model", "foo:bar", *store_args(work))
    assert bad.returncode == 2
    assert "unknown model URL 'foo:bar'" in bad.stderr
    done = cli(work, "resume", job_id, *store_args(work))
    assert done.returncode == 2
    assert f"job {job_id} already finished (succeeded)" in done.stderr


# --- start-up -------------------------------------------------------------------------------

HEAVY = ("sqlalchemy", "openai", "anthropic", "httpx", "fastapi", "uvicorn", "llama_cpp", "yaml")
"""Packages no command that only reads jobs may import: each costs tens of milliseconds."""


def loaded_modules(cwd: Path, args: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """Run ``planweave ARGS`` in a fresh interpreter; the modules it had imported at the end
    whose top-level package is one of ``HEAVY`` or whose name starts with one of ``prefixes``."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['planweave', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('planweave.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"heavy, ours = {HEAVY!r}, {prefixes!r}\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(ours)]\n"
        "sys.stderr.write('loaded: ' + repr(sorted(loaded)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    found: list[str] = eval(proc.stderr.rpartition("loaded: ")[2])
    return found


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["jobs", "--help"]])
def test_help_imports_neither_the_engine_nor_its_backends(tmp_path: Path, args: list[str]) -> None:
    ours = ("planweave.engine", "planweave.events", "planweave.store", "planweave.config")
    # Nor the event loop: --help only draws text.
    assert loaded_modules(tmp_path, args, (*ours, "asyncio")) == []


@pytest.mark.parametrize("command", ["jobs", "show", "events", "cancel"])
def test_reading_a_job_imports_no_sql_toolkit_agent_tool_or_model(work: Path, command: str) -> None:
    job_id = run_plan(work, TOOL_PLAN)
    args = [command] if command == "jobs" else [command, job_id[:8]]
    unused = (
        "planweave.agents",
        "planweave.tools",
        "planweave.workers",
        "planweave.llm.",  # the package itself is there, for ModelOptions; no provider is
        "planweave.server",
        "planweave.store._schema",
        "planweave.store._sqlgen",
    )
    found = loaded_modules(work, [*args, *store_args(work)], unused)
    assert [m for m in found if m != "planweave.llm._registry"] == []


# --- messages a new user reads --------------------------------------------------------------


def test_help_shows_the_defaults_of_store_config_host_and_port(tmp_path: Path) -> None:
    env = {"COLUMNS": "250"}
    serve = cli(tmp_path, "serve", "--help", env=env).stdout
    for default in (
        "127.0.0.1",
        "8000",
        "./planweave.toml if present",
        "sqlite:///",
        "memory://",
    ):
        assert f"[default: ({default}" in serve or f"[default: {default}" in serve, default
    run = cli(tmp_path, "run", "--help", env=env).stdout
    assert "sqlite:///<data dir>/planweave.db" in run and "(local:)" in run


def test_a_yaml_error_names_the_plan_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("tasks:\n  - id: a\n    goal: x\n   bad: [\n")
    proc = cli(tmp_path, "run", "--plan", "bad.yaml", *store_args(tmp_path))
    assert proc.returncode == 2
    assert "plan file 'bad.yaml', line 4, column 4: not valid YAML" in proc.stderr
    assert "<unicode string>" not in proc.stderr


def test_an_unknown_store_url_suggests_only_stores_that_exist(tmp_path: Path) -> None:
    proc = cli(tmp_path, "jobs", "--store", "nosuch://x")
    assert proc.returncode == 2
    assert "use one of the schemes memory://, postgresql://, sqlite://" in proc.stderr
    assert "redis" not in proc.stderr


def test_the_live_view_of_a_cancelled_job_says_it_was_cancelled(work: Path) -> None:
    from planweave.events import JobCancelled

    state = goal_state()
    state = apply(state, JobCancelled(job_id="j1", seq=16, at=1006.0, reason="by you"))
    text = text_of(render(state, now=2000.0, spinners=False))
    succeeded = sum(1 for task in state.tasks.values() if task.status == "succeeded")
    assert f"{succeeded}/{len(state.tasks)} tasks done, job cancelled" in text


def test_the_readme_sync_example_prints_why_a_job_failed(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Python\n\n```python\n", 1)[1].split("```", 1)[0]
    assert "run_sync" in block
    env = {k: v for k, v in clean_env().items() if not k.startswith("OPENAI_")}
    proc = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("failed ")
    assert "OPENAI_API_KEY is not set" in proc.stdout


# --- plan checks and the user plan limit ----------------------------------------------------


def test_a_plan_with_bad_tool_arguments_is_refused_before_a_job_exists(tmp_path: Path) -> None:
    plan = {
        "tasks": [
            {"id": "a", "kind": "tool", "tool": "calculator", "args": {"expr": "2+3"}},
            {"id": "b", "kind": "tool", "tool": "nosuch", "depends_on": ["a", "b"]},
        ]
    }
    write_yaml(tmp_path / "plan.yaml", plan)
    proc = cli(tmp_path, "run", "--plan", "plan.yaml", *store_args(tmp_path))
    assert proc.returncode == 2, proc.stderr
    for problem in (
        "tool 'calculator' needs argument 'expression'",
        "task 'b' depends on itself",
        "task 'b' names unknown tool 'nosuch'",
    ):
        assert problem in proc.stderr
    assert no_jobs(tmp_path)


def test_run_plan_takes_big_plans_up_to_the_one_settable_limit(tmp_path: Path) -> None:
    tasks = [
        {"id": f"t{i}", "kind": "tool", "tool": "calculator", "args": {"expression": f"{i}+1"}}
        for i in range(60)
    ]
    write_yaml(tmp_path / "big.yaml", {"tasks": tasks})
    ok = cli(tmp_path, "run", "--plan", "big.yaml", *store_args(tmp_path), "--json")
    assert ok.returncode == 0, ok.stderr
    assert only_json(ok.stdout)["status"] == "succeeded"
    flag = cli(
        tmp_path, "run", "--plan", "big.yaml", "--max-user-plan-tasks", "59", *store_args(tmp_path)
    )
    assert flag.returncode == 2
    assert "the plan has 60 tasks; at most 59 are allowed" in flag.stderr
    env = cli(
        tmp_path,
        "run",
        "--plan",
        "big.yaml",
        *store_args(tmp_path),
        env={"PLANWEAVE_MAX_USER_PLAN_TASKS": "10"},
    )
    assert env.returncode == 2
    assert "at most 10 are allowed" in env.stderr


def test_the_lease_flags_reach_the_engine(tmp_path: Path) -> None:
    write_yaml(tmp_path / "plan.yaml", TOOL_PLAN)
    proc = cli(
        tmp_path, "run", "--plan", "plan.yaml", "--claim-lease-s", "5", "--work-lease-s", "7",
        *store_args(tmp_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert only_json(proc.stdout)["status"] == "succeeded"
