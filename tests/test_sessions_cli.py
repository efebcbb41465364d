"""``planweave session new|add|remove|show`` as real processes on one SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import cli, only_json, store_args

PARTY = Path(__file__).resolve().parent.parent / "examples" / "party"


def test_session_new_add_remove_show(tmp_path: Path) -> None:
    model = ["--model", f"scripted:{PARTY / 'scripted.yaml'}"]
    args = store_args(tmp_path)
    proc = cli(tmp_path, "session", "new", str(PARTY / "party.yaml"), "--input",
               "jungle theme party", *model, *args, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    board = only_json(proc.stdout)
    assert board["settled"] and board["agents"]["theme"]["value"]["theme"] == "jungle"
    session = board["session_id"]

    proc = cli(tmp_path, "session", "add", session[:8], "budget is $1500", "--tag", "budget",
               *model, *args, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    board = only_json(proc.stdout)
    assert board["agents"]["budget"]["value"]["total"] == 1500
    assert board["agents"]["budget"]["runs"] == 2 and board["agents"]["cake"]["runs"] == 1
    theme_input = board["inputs"][0]["input_id"]

    proc = cli(tmp_path, "session", "add", session, "x", "--expected-version", "1", *model,
               *args)  # fmt: skip
    assert proc.returncode == 2
    assert "the current version is 2" in proc.stderr

    proc = cli(tmp_path, "session", "remove", session, theme_input, *model, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    assert only_json(proc.stdout)["agents"]["theme"]["status"] == "dropped"

    proc = cli(tmp_path, "session", "watch", session, "--until-settled", *args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["1", "session.created"]
    assert "agent.dropped theme" in proc.stdout and lines[-1].endswith("session.settled")
    proc = cli(tmp_path, "session", "watch", session, "--after", "3", "--until-settled", "--json",
               *args)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["seq"] == 4

    proc = cli(tmp_path, "session", "show", session, *args)
    assert proc.returncode == 0, proc.stderr
    assert "budget is $1500" in proc.stdout and "dropped" in proc.stdout
    assert "completion 17%" in proc.stdout


def test_session_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  - {name: a, instructions: x, depends_on: [a]}\n")
    proc = cli(tmp_path, "session", "new", str(bad), *store_args(tmp_path))
    assert proc.returncode == 2
    assert "depends on itself" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(tmp_path, "session", "show", "nope", *store_args(tmp_path))
    assert proc.returncode == 2
    assert "no session 'nope'" in proc.stderr


def test_the_party_example_runs_offline(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(PARTY / "party.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "added the theme: re-ran theme, venue, cake, vendor, catering, budget, planner"
    )
    assert lines[2] == "added a budget: re-ran budget, planner"
    assert lines[4] == "removed the theme: re-ran budget, planner"
    assert "completion 17%" in lines[5]
