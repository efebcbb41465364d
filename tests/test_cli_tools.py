"""``--tools`` (the ``tools`` setting): a user's tools, loaded by every command that runs jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planweave._plugins import load_tools
from planweave.errors import UsageError

TOOLS = '''
from planweave import tool

@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper() + "!"

@tool
def whisper(text: str) -> str:
    """Lower-case a text."""
    return text.lower()

NOT_A_TOOL = 3
'''
PLAN = """
tasks:
  - {id: a, kind: tool, tool: shout, args: {text: hello}}
  - {id: b, kind: tool, tool: whisper, args: {text: WORLD}, depends_on: [a]}
"""


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_plan_runs_the_tools_a_file_defines(tmp_path: Path) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS)
    (tmp_path / "plan.yaml").write_text(PLAN)
    done = _cli(tmp_path, "run", "--plan", "plan.yaml", "--tools", "mytools.py", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded"
    assert job["result"] == "world"
    without = _cli(tmp_path, "run", "--plan", "plan.yaml", "--json")
    assert without.returncode == 2
    assert "shout" in without.stderr


def test_tool_specs_name_modules_attributes_and_files(tmp_path: Path) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS)
    every = load_tools([str(tmp_path / "mytools.py")])
    assert sorted(t.name for t in every) == ["shout", "whisper"]
    one = load_tools([f"{tmp_path / 'mytools.py'}:whisper"])
    assert [t.name for t in one] == ["whisper"]
    builtins = load_tools(["planweave.tools.builtins"])
    assert "calculator" in {t.name for t in builtins}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz", "cannot import it"),
        ("mytools.py:missing", "has no 'missing'"),
        ("mytools.py:NOT_A_TOOL", "is not a tool"),
        ("nothere.py", "no such file"),
        ("json", "defines no tool"),
    ],
)
def test_a_bad_tool_spec_says_what_is_wrong(
    spec: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message):
        load_tools([spec])
