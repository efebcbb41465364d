"""``planweave spell new|list|run|test`` as a user runs them: real processes in a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env["COLUMNS"] = "160"
    return subprocess.run(
        [sys.executable, "-m", "planweave.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("lang", ["lua", "js"])
def test_new_then_test_then_run_round_trip(tmp_path: Path, lang: str) -> None:
    made = cli(tmp_path, "spell", "new", "ask", "--lang", lang)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "spells" / "ask"
    assert (folder / "spell.toml").is_file()
    assert (folder / f"main.{lang}").is_file()
    assert (folder / "tests" / f"test_ask.{lang}").is_file()

    tested = cli(tmp_path, "spell", "test", "ask")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert f"ok   ask test_ask.{lang}" in tested.stdout
    assert "1 passed, 0 failed" in tested.stdout

    replies = f"scripted:{folder / 'tests' / 'replies.yaml'}"
    ran = cli(
        tmp_path, "spell", "run", "ask", "--param", "question=sky?", "--model", replies, "--json"
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"question": "sky?", "answer": "Blue."}


def test_a_failing_spell_test_is_reported_and_exits_1(tmp_path: Path) -> None:
    assert cli(tmp_path, "spell", "new", "ask").returncode == 0
    test = tmp_path / "spells" / "ask" / "tests" / "test_ask.lua"
    test.write_text('local out = spell.run({ question = "sky" })\nexpect(out.answer, "Red.")\n')
    tested = cli(tmp_path, "spell", "test")
    assert tested.returncode == 1
    assert "FAIL ask test_ask.lua" in tested.stdout
    assert "test_ask.lua:2:" in tested.stdout
    assert "wanted Red., got Blue." in tested.stdout
    assert "0 passed, 1 failed" in tested.stdout


def test_list_shows_name_version_language_parameters(tmp_path: Path) -> None:
    assert cli(tmp_path, "spell", "new", "one", "--lang", "lua").returncode == 0
    assert cli(tmp_path, "spell", "new", "two", "--lang", "js").returncode == 0
    shown = cli(tmp_path, "spell", "list")
    assert shown.returncode == 0, shown.stderr
    assert "one 0.1.0 [lua] (question:string*, style:string)" in shown.stdout
    assert "two 0.1.0 [js]" in shown.stdout
    listed = json.loads(cli(tmp_path, "spell", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["one", "two"]
    assert listed[0]["parameters"]["style"]["default"] == "plain"


def test_configured_spell_paths_are_searched(tmp_path: Path) -> None:
    other = tmp_path / "more"
    assert cli(tmp_path, "spell", "new", "far", "--dir", str(other)).returncode == 0
    (tmp_path / "planweave.toml").write_text(f'spell_paths = ["{other}"]\n')
    shown = cli(tmp_path, "spell", "list")
    assert "far 0.1.0 [lua]" in shown.stdout


def test_bad_spell_toml_names_the_file_and_field(tmp_path: Path) -> None:
    assert cli(tmp_path, "spell", "new", "bad").returncode == 0
    toml = tmp_path / "spells" / "bad" / "spell.toml"
    toml.write_text(
        toml.read_text().replace('type = "string"\nrequired', 'type = "text"\nrequired')
    )
    shown = cli(tmp_path, "spell", "list")
    assert shown.returncode != 0
    assert "spell.toml: [params.question] type:" in shown.stderr
    assert "Traceback" not in shown.stderr

    toml.write_text('[spell]\nname = "bad"\nlanguage = "ruby"\n')
    shown = cli(tmp_path, "spell", "list")
    assert "spell.toml: [spell] language:" in shown.stderr


def test_missing_and_wrong_type_parameters_stop_before_the_script(tmp_path: Path) -> None:
    assert cli(tmp_path, "spell", "new", "ask").returncode == 0
    toml = tmp_path / "spells" / "ask" / "spell.toml"
    toml.write_text(toml.read_text() + '\n[params.count]\ntype = "integer"\ndefault = 2\n')
    model = "scripted:" + str(tmp_path / "spells" / "ask" / "tests" / "replies.yaml")

    missing = cli(tmp_path, "spell", "run", "ask", "--model", model)
    assert missing.returncode != 0
    assert "spell ask: missing parameter 'question'" in missing.stderr
    assert "Traceback" not in missing.stderr

    wrong = cli(
        tmp_path, "spell", "run", "ask", "-p", "question=x", "-p", "count=many", "--model", model
    )
    assert wrong.returncode != 0
    assert "parameter 'count' must be integer, got 'many'" in wrong.stderr

    unknown = cli(tmp_path, "spell", "run", "nope", "--model", model)
    assert "no spell named 'nope'" in unknown.stderr
    assert "found: ask" in unknown.stderr


@pytest.mark.parametrize(("lang", "bad"), [("lua", "local x = = 1\n"), ("js", "let x = ;\n")])
def test_a_syntax_error_shows_file_and_line(tmp_path: Path, lang: str, bad: str) -> None:
    assert cli(tmp_path, "spell", "new", "ask", "--lang", lang).returncode == 0
    main = tmp_path / "spells" / "ask" / f"main.{lang}"
    main.write_text("-- first line\n" + bad if lang == "lua" else "// first line\n" + bad)
    model = "scripted:" + str(tmp_path / "spells" / "ask" / "tests" / "replies.yaml")
    ran = cli(tmp_path, "spell", "run", "ask", "-p", "question=x", "--model", model)
    assert ran.returncode != 0
    assert f"main.{lang}:2" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_required_tool_the_engine_lacks_is_refused(tmp_path: Path) -> None:
    assert cli(tmp_path, "spell", "new", "ask").returncode == 0
    toml = tmp_path / "spells" / "ask" / "spell.toml"
    toml.write_text(toml.read_text().replace("tools = []", 'tools = ["no_such_tool"]'))
    model = "scripted:" + str(tmp_path / "spells" / "ask" / "tests" / "replies.yaml")
    ran = cli(tmp_path, "spell", "run", "ask", "-p", "question=x", "--model", model)
    assert ran.returncode != 0
    assert "tools: unknown tool 'no_such_tool'" in ran.stderr
