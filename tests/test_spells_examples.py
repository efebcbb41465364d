"""The example spells (examples/spells/lua and examples/spells/js) pass their own tests offline,
through ``planweave spell test`` as a user runs it, and are listed with their parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "spells"
NAMES = ["analyze", "chat", "redact", "review", "summarize"]


def planweave(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("language", ["lua", "js"])
def test_every_example_spell_passes_its_tests(language: str) -> None:
    done = planweave(EXAMPLES / language, "spell", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in NAMES:
        assert f"ok   {name} test_{name}.{language}" in done.stdout, done.stdout
    assert f"{len(NAMES)} passed, 0 failed" in done.stdout


@pytest.mark.parametrize("language", ["lua", "js"])
def test_the_examples_are_listed_with_their_parameters(language: str) -> None:
    done = planweave(EXAMPLES / language, "spell", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = {item["name"]: item for item in json.loads(done.stdout)}
    assert sorted(listed) == NAMES
    assert all(item["language"] == language for item in listed.values())
    assert "questions" in json.dumps(listed["chat"])


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_job_task_runs_an_example_spell_by_name(tmp_path: Path, language: str) -> None:
    from planweave import Engine, Plan, TaskSpec
    from planweave.llm import ScriptedModel

    folder = EXAMPLES / language
    model = ScriptedModel.from_file(folder / "chat" / "tests" / "replies.yaml")
    questions = ["When should I visit Lisbon?", "What should I pack?"]
    task = TaskSpec(id="ask", kind="spell", spell="chat", args={"questions": questions})
    async with Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        data_dir=tmp_path / "data",
        spell_paths=[folder],
    ) as engine:
        result = await engine.run(plan=Plan(tasks=(task,)))
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert "walking shoes" in json.dumps(result.result)
    assert [e.type for e in events].count("LlmCalled") == 2


def test_a_spell_exposed_as_a_tool_is_one_of_the_engines_tools(tmp_path: Path) -> None:
    spell = tmp_path / "spells" / "shout"
    (spell / "tests").mkdir(parents=True)
    (spell / "spell.toml").write_text(
        '[spell]\nname = "shout"\nversion = "1.0.0"\nlanguage = "lua"\n'
        'description = "Says its input loudly."\nexpose = "tool"\n'
    )
    (spell / "main.lua").write_text("return string.upper(params.input)\n")
    done = planweave(tmp_path, "tools", "list", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = [row for row in json.loads(done.stdout) if row["name"] == "shout"]
    assert row["source"] == "spell" and row["description"] == "Says its input loudly."
