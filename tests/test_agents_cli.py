"""``planweave agents list|show`` and ``planweave run --agent``, on an agents folder in tmp_path
with the scripted model; a bad folder is exit 2 with the file, field and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.test_cli import cli, only_json, store_args, work, write_yaml
from typer.testing import CliRunner

from planweave.cli import app

__all__ = ["work"]  # the fixture, re-used from the CLI tests

RESEARCHER = """\
name: researcher
description: Finds facts and cites a source for each.
instructions: Cite a URL for every fact.
tools: [calculator]
"""
TEAM = """\
name: team
kind: sequential
description: Research, then write.
agents: [researcher, executor]
"""


def agents_folder(root: Path, **files: str) -> Path:
    folder = root / "agents"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def test_agents_list_shows_name_kind_description_and_tools(work: Path) -> None:
    agents_folder(work, researcher=RESEARCHER, team=TEAM)  # ./agents: found by default
    result = CliRunner().invoke(app, ["agents", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert only_json(result.stdout) == [
        {
            "name": "executor",
            "kind": "react",
            "description": "The general agent: carries out any task with every tool.",
            "tools": ["(all)"],
        },
        {
            "name": "researcher",
            "kind": "react",
            "description": "Finds facts and cites a source for each.",
            "tools": ["calculator"],
        },
        {"name": "team", "kind": "sequential", "description": "Research, then write.", "tools": []},
    ]
    table = CliRunner().invoke(app, ["agents", "list"], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    line = next(row for row in table.stdout.splitlines() if row.startswith("researcher"))
    assert line.split()[:2] == ["researcher", "react"]
    assert "Finds facts and cites a source for each." in line and "calculator" in line


def test_agents_show_prints_the_full_definition(tmp_path: Path) -> None:
    folder = agents_folder(tmp_path, team=TEAM, researcher=RESEARCHER)
    proc = cli(tmp_path, "agents", "show", "researcher", "--agents-dir", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "instructions: Cite a URL for every fact." in proc.stdout
    assert "researcher.yaml" in proc.stdout
    shown = cli(tmp_path, "agents", "show", "team", "--agents-dir", str(folder), "--json")
    data = only_json(shown.stdout)
    assert data["kind"] == "sequential" and data["agents"] == ["researcher", "executor"]

    missing = cli(tmp_path, "agents", "show", "ghost", "--agents-dir", str(folder))
    assert missing.returncode == 2
    assert "unknown agent 'ghost'" in missing.stderr and "researcher" in missing.stderr


def test_a_bad_agents_folder_is_exit_2_naming_file_field_and_line(tmp_path: Path) -> None:
    agents_folder(tmp_path, researcher=RESEARCHER + "tools: [teleport]\n")
    listed = cli(tmp_path, "agents", "list")
    assert listed.returncode == 2
    assert "researcher.yaml" in listed.stderr and "line 4" in listed.stderr
    assert "Traceback" not in listed.stderr

    agents_folder(tmp_path, researcher=RESEARCHER.replace("calculator", "teleport"))
    ran = cli(tmp_path, "run", "--agent", "researcher", "hi", *store_args(tmp_path))
    assert ran.returncode == 2
    assert "researcher.yaml" in ran.stderr and "field 'tools'" in ran.stderr
    assert "unknown tool 'teleport'" in ran.stderr
    assert not (tmp_path / "jobs.db").exists()  # refused before anything ran


def test_run_agent_runs_the_input_with_that_agent(tmp_path: Path) -> None:
    folder = agents_folder(tmp_path, researcher=RESEARCHER)
    write_yaml(
        tmp_path / "replies.yaml",
        {
            "replies": [
                {"match": {"role": "researcher"}, "content": "Paris (https://paris.fr)."},
                {"match": {"role": "executor"}, "content": "the wrong agent answered"},
            ]
        },
    )
    proc = cli(
        tmp_path,
        "run",
        "--agent",
        "researcher",
        "What is the capital of France?",
        "--agents-dir",
        str(folder),
        "--model",
        "scripted:replies.yaml",
        *store_args(tmp_path),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = only_json(proc.stdout)
    assert data["status"] == "succeeded"
    assert data["result"] == "Paris (https://paris.fr)."
    assert [t["goal"] for t in data["tasks"]] == ["What is the capital of France?"]
    assert data["usage"]["llm_calls"] == 1


def test_run_agent_runs_a_yaml_workflow_as_a_job_of_its_steps(tmp_path: Path) -> None:
    folder = agents_folder(tmp_path, researcher=RESEARCHER, team=TEAM)
    write_yaml(
        tmp_path / "replies.yaml",
        {
            "replies": [
                {"match": {"role": "researcher"}, "content": "Paris (https://paris.fr)."},
                {"match": {"role": "executor", "contains": "Paris"}, "content": "Paris it is."},
            ]
        },
    )
    proc = cli(
        tmp_path,
        "run",
        "--agent",
        "team",
        "What is the capital of France?",
        "--agents-dir",
        str(folder),
        "--model",
        "scripted:replies.yaml",
        *store_args(tmp_path),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = only_json(proc.stdout)
    assert data["status"] == "succeeded", data
    steps = {t["agent"]: t for t in data["tasks"] if t.get("agent") in ("researcher", "executor")}
    assert set(steps) == {"researcher", "executor"}  # each step a task of the job, by its agent
    assert all(step["status"] == "succeeded" for step in steps.values())
    assert "Paris it is." in (data["result"] or "")
    assert data["usage"]["llm_calls"] == 2


def test_run_agent_refuses_an_unknown_agent_and_a_missing_input(tmp_path: Path) -> None:
    agents_folder(tmp_path, researcher=RESEARCHER)
    unknown = cli(tmp_path, "run", "--agent", "ghost", "hi", *store_args(tmp_path))
    assert unknown.returncode == 2
    assert "unknown agent 'ghost'" in unknown.stderr and "researcher" in unknown.stderr
    no_input = cli(tmp_path, "run", "--agent", "researcher", *store_args(tmp_path))
    assert no_input.returncode == 2
    assert "give a GOAL" in no_input.stderr


def test_the_agents_dir_setting_is_resolved_against_its_config_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    folder = project / "team-agents"
    folder.mkdir()
    (folder / "researcher.yaml").write_text(RESEARCHER, encoding="utf-8")
    config = project / "planweave.toml"
    config.write_text('agents_dir = "team-agents"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli(elsewhere, "agents", "list", "--config", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [row["name"] for row in only_json(proc.stdout)] == ["executor", "researcher"]


def test_agents_commands_load_no_engine_store_or_sql_toolkit(tmp_path: Path) -> None:
    from tests.test_cli_usage import loaded_modules

    agents_folder(tmp_path, researcher=RESEARCHER)
    ours = ("planweave.engine", "planweave.store", "planweave.workers")
    help_too = (*ours, "planweave.config", "planweave.events", "planweave.agents")
    assert loaded_modules(tmp_path, ["agents", "--help"], help_too) == []
    listed = loaded_modules(tmp_path, ["agents", "list"], ours)
    assert not [m for m in listed if m.split(".")[0] in ("sqlalchemy", "openai", "llama_cpp")]
    assert not [m for m in listed if m.startswith(ours)]


def test_serve_worker_and_resume_take_agents_dir_and_refuse_a_bad_folder(tmp_path: Path) -> None:
    bad = tmp_path / "elsewhere"
    bad.mkdir()
    (bad / "researcher.yaml").write_text(RESEARCHER.replace("calculator", "teleport"))
    runs = {
        "serve": cli(tmp_path, "serve", "--port", "0", "--agents-dir", str(bad), "--data-dir", "d"),
        "worker": cli(
            tmp_path, "worker", "--bus", "redis://127.0.0.1:9/0", "--agents-dir", str(bad)
        ),
        "resume": cli(tmp_path, "resume", "j1", "--agents-dir", str(bad), *store_args(tmp_path)),
    }
    for command, ran in runs.items():
        assert ran.returncode == 2, (command, ran.stderr)
        assert "researcher.yaml" in ran.stderr, (command, ran.stderr)
        assert "unknown tool 'teleport'" in ran.stderr, (command, ran.stderr)
        assert "Traceback" not in ran.stderr, (command, ran.stderr)
