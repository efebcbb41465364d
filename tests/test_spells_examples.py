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
