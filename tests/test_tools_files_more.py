"""The workspace file tools beyond read/write/list: each one's happy path and its attacks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from planweave.tools import (
    ToolContext,
    ToolProcesses,
    ToolRegistry,
    ToolResult,
    builtin_tools,
    invoke,
)
from planweave.tools._tool import is_high_impact, sandbox_of

CANARY = "canary: must never change\n"

MY_TOOLS = {
    "append_file",
    "archive_create",
    "archive_extract",
    "archive_list",
    "copy_file",
    "delete_file",
    "file_info",
    "glob_files",
    "make_dir",
    "move_file",
    "python_eval",
    "replace_in_file",
    "search_files",
    "shell",
}


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A workspace with traps around it: an outside dir, a canary file and a sibling dir."""
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    evil = tmp_path / "ws-evil"
    for directory in (ws / "docs" / "deep", outside, evil):
        directory.mkdir(parents=True)
    (ws / "docs" / "a.txt").write_text("alpha\nneedle one\nbeta\n")
    (ws / "docs" / "deep" / "b.md").write_text("# title\nNeedle two\n")
    (ws / "top.py").write_text("print('needle')\n")
    (ws / "blob.bin").write_bytes(b"needle\x00\x01\x02")
    (outside / "canary.txt").write_text(CANARY + "needle outside\n")
    (evil / "secret.txt").write_text("sibling secret needle")
    (ws / "to_outside").symlink_to(outside, target_is_directory=True)
    (ws / "to_canary").symlink_to(outside / "canary.txt")
    (ws / "to_evil").symlink_to(evil, target_is_directory=True)
    (ws / "alias").symlink_to(ws / "docs", target_is_directory=True)
    return {"ws": ws, "outside": outside, "evil": evil, "canary": outside / "canary.txt"}


@pytest.fixture
async def processes() -> Any:
    pool = ToolProcesses(1)
    yield pool
    await pool.close()


@pytest.fixture
def ctx(layout: dict[str, Path], processes: ToolProcesses) -> ToolContext:
    return ToolContext(workspace=layout["ws"], max_file_bytes=1000, processes=processes)


async def call(ctx: ToolContext, name: str, **args: object) -> ToolResult:
    return await invoke(ToolRegistry(builtin_tools()), name, args, ctx)


def outside_state(tmp_path: Path) -> dict[str, str]:
    """Every file outside the workspace, with its contents."""
    return {
        str(p): p.read_text()
        for p in sorted(tmp_path.rglob("*"))
        if "ws" not in p.relative_to(tmp_path).parts and p.is_file() and not p.is_symlink()
    }


ATTACKS = [
    "../outside/canary.txt",
    "/etc/passwd",
    "docs/../../outside/canary.txt",
    "../ws-evil/secret.txt",
    "to_evil/secret.txt",
    "to_outside/canary.txt",
    "to_canary",
    "docs/a.txt\x00.png",
]


def test_builtin_tools_list_these_tools_with_valid_schemas() -> None:
    tools = {each.name: each for each in builtin_tools()}
    assert set(tools) >= MY_TOOLS
    for name in MY_TOOLS:
        each = tools[name]
        jsonschema.Draft202012Validator.check_schema(each.parameters)
        assert each.parameters["type"] == "object"
        assert each.description, name
        assert sandbox_of(each), name
    high = {name for name in MY_TOOLS if is_high_impact(tools[name], {})}
    assert high == {"delete_file", "shell"}


async def test_append_creates_then_appends(ctx: ToolContext, layout: dict[str, Path]) -> None:
    first = await call(ctx, "append_file", path="log/run.txt", content="one\n")
    assert first.ok, first.error
    second = await call(ctx, "append_file", path="log/run.txt", content="two\n")
    assert second.value == "appended 4 bytes to log/run.txt (now 8 bytes)"
    assert (layout["ws"] / "log" / "run.txt").read_text() == "one\ntwo\n"
    over = await call(ctx, "append_file", path="log/run.txt", content="x" * 995)
    assert (over.ok, over.error_type) == (False, "policy")
    assert (layout["ws"] / "log" / "run.txt").read_text() == "one\ntwo\n"


async def test_glob_finds_paths_and_never_follows_links(ctx: ToolContext) -> None:
    result = await call(ctx, "glob_files", pattern="**/*.md")
    assert result.value == {"paths": ["docs/deep/b.md"], "truncated": False}
    everything = await call(ctx, "glob_files", pattern="**")
    paths = everything.value["paths"]
    assert "docs/" in paths and "docs/deep/b.md" in paths and "to_outside" in paths
    assert not any(p.startswith(("to_outside/", "to_evil/", "alias/")) for p in paths)
    inside = await call(ctx, "glob_files", pattern="*.txt", path="docs")
    assert inside.value["paths"] == ["docs/a.txt"]
    capped = await call(ctx, "glob_files", pattern="**", max_results=2)
    assert capped.value["truncated"] is True and len(capped.value["paths"]) == 2


@pytest.mark.parametrize("path", ["..", "/", "to_outside", "to_evil", "../ws-evil"])
async def test_glob_outside_is_refused(ctx: ToolContext, path: str) -> None:
    result = await call(ctx, "glob_files", pattern="**", path=path)
    assert (result.ok, result.error_type) == (False, "policy"), result.error


async def test_search_finds_lines_in_the_workspace_only(ctx: ToolContext) -> None:
    result = await call(ctx, "search_files", pattern="needle", ignore_case=True)
    assert result.ok, result.error
    found = {(m["path"], m["line"], m["text"]) for m in result.value["matches"]}
    assert found == {
        ("docs/a.txt", 2, "needle one"),
        ("docs/deep/b.md", 2, "Needle two"),
        ("top.py", 1, "print('needle')"),
    }
    assert result.value["files_skipped"] == 1  # the binary file
    regex = await call(ctx, "search_files", pattern=r"^N\w+", regex=True, glob="**/*.md")
    assert [m["path"] for m in regex.value["matches"]] == ["docs/deep/b.md"]
    capped = await call(ctx, "search_files", pattern="e", max_matches=2)
    assert len(capped.value["matches"]) == 2 and capped.value["truncated"] is True
    bad = await call(ctx, "search_files", pattern="(", regex=True)
    assert not bad.ok and "invalid regular expression" in (bad.error or "")
    outside = await call(ctx, "search_files", pattern="needle", path="to_outside")
    assert (outside.ok, outside.error_type) == (False, "policy")


async def test_replace_exact_text(ctx: ToolContext, layout: dict[str, Path]) -> None:
    result = await call(ctx, "replace_in_file", path="docs/a.txt", old="beta", new="gamma")
    assert result.ok, result.error
    assert (layout["ws"] / "docs/a.txt").read_text() == "alpha\nneedle one\ngamma\n"
    (layout["ws"] / "twice.txt").write_text("x x")
    twice = await call(ctx, "replace_in_file", path="twice.txt", old="x", new="y")
    assert not twice.ok and "occurs 2 times" in (twice.error or "")
    every = await call(ctx, "replace_in_file", path="twice.txt", old="x", new="y", replace_all=True)
    assert every.ok and (layout["ws"] / "twice.txt").read_text() == "y y"
    missing = await call(ctx, "replace_in_file", path="twice.txt", old="zzz", new="")
    assert not missing.ok and "not found" in (missing.error or "")


async def test_replace_with_a_unified_diff(ctx: ToolContext, layout: dict[str, Path]) -> None:
    patch = (
        "--- a/docs/a.txt\n+++ b/docs/a.txt\n@@ -1,3 +1,3 @@\n alpha\n-needle one\n+thread one\n"
        " beta\n"
    )
    result = await call(ctx, "replace_in_file", path="docs/a.txt", patch=patch)
    assert result.ok, result.error
    assert (layout["ws"] / "docs/a.txt").read_text() == "alpha\nthread one\nbeta\n"
    again = await call(ctx, "replace_in_file", path="docs/a.txt", patch=patch)
    assert not again.ok and "does not apply" in (again.error or "")
    assert (layout["ws"] / "docs/a.txt").read_text() == "alpha\nthread one\nbeta\n"


async def test_move_copy_make_dir_and_info(ctx: ToolContext, layout: dict[str, Path]) -> None:
    ws = layout["ws"]
    assert (await call(ctx, "make_dir", path="out/2024")).value == "made out/2024/"
    assert (ws / "out" / "2024").is_dir()
    copied = await call(ctx, "copy_file", source="top.py", destination="out/2024/top.py")
    assert copied.ok, copied.error
    clash = await call(ctx, "copy_file", source="top.py", destination="out/2024/top.py")
    assert not clash.ok and "already exists" in (clash.error or "")
    moved = await call(ctx, "move_file", source="out/2024/top.py", destination="out/main.py")
    assert moved.value == "moved out/2024/top.py to out/main.py"
    assert (ws / "out" / "main.py").read_text() == "print('needle')\n"
    assert not (ws / "out" / "2024" / "top.py").exists()
    info = await call(ctx, "file_info", path="out/main.py")
    assert info.value["kind"] == "file" and info.value["size_bytes"] == 16
    assert (await call(ctx, "file_info", path="out")).value["kind"] == "directory"
    link = await call(ctx, "file_info", path="alias")
    assert link.value["kind"] == "symlink"
    renamed = await call(ctx, "move_file", source="out", destination="final")
    assert renamed.ok and (ws / "final" / "main.py").exists()


async def test_delete_is_high_impact_and_removes_only_the_workspace_entry(
    ctx: ToolContext, layout: dict[str, Path]
) -> None:
    ws = layout["ws"]
    tool = ToolRegistry(builtin_tools()).get("delete_file")
    assert is_high_impact(tool, {"path": "top.py"})
    assert (await call(ctx, "delete_file", path="top.py")).value == "deleted top.py"
    assert not (ws / "top.py").exists()
    not_empty = await call(ctx, "delete_file", path="docs")
    assert not not_empty.ok and "not empty" in (not_empty.error or "")
    # A link inside the workspace is removed itself; what it points to stays.
    assert (await call(ctx, "delete_file", path="alias")).ok
    assert (ws / "docs" / "a.txt").exists() and not (ws / "alias").exists()
    assert (await call(ctx, "delete_file", path="docs", recursive=True)).ok
    assert not (ws / "docs").exists()
    workspace_itself = await call(ctx, "delete_file", path=".", recursive=True)
    assert (workspace_itself.ok, workspace_itself.error_type) == (False, "policy")
    assert ws.is_dir()


ATTACK = object()  # where the attack path goes in a tool's arguments


@pytest.mark.parametrize("path", ATTACKS)
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("append_file", {"path": ATTACK, "content": "pwned"}),
        ("replace_in_file", {"path": ATTACK, "old": "canary", "new": "pwned"}),
        ("delete_file", {"path": ATTACK, "recursive": True}),
        ("file_info", {"path": ATTACK}),
        ("make_dir", {"path": ATTACK}),
        ("glob_files", {"pattern": "*", "path": ATTACK}),
        ("copy_file", {"source": ATTACK, "destination": "stolen.txt"}),
        ("move_file", {"source": ATTACK, "destination": "stolen.txt"}),
        ("copy_file", {"source": "top.py", "destination": ATTACK, "overwrite": True}),
        ("move_file", {"source": "top.py", "destination": ATTACK, "overwrite": True}),
    ],
)
async def test_attacks_are_refused_and_nothing_outside_changes(
    ctx: ToolContext,
    layout: dict[str, Path],
    tmp_path: Path,
    name: str,
    args: dict[str, Any],
    path: str,
) -> None:
    before = outside_state(tmp_path)
    filled = {key: path if value is ATTACK else value for key, value in args.items()}
    result = await call(ctx, name, **filled)
    assert not result.ok, (name, filled, result.value)
    assert result.error_type == "policy", result.error
    assert CANARY not in (result.error or "")
    assert outside_state(tmp_path) == before
    assert (layout["ws"] / "top.py").read_text() == "print('needle')\n"
    assert not (layout["ws"] / "stolen.txt").exists()
    assert (layout["ws"] / "to_canary").is_symlink()


async def test_hard_linked_file_is_not_edited(ctx: ToolContext, layout: dict[str, Path]) -> None:
    os.link(layout["canary"], layout["ws"] / "hard.txt")
    result = await call(ctx, "replace_in_file", path="hard.txt", old="canary", new="pwned")
    assert (result.ok, result.error_type) == (False, "policy")
    appended = await call(ctx, "append_file", path="hard.txt", content="pwned")
    assert (appended.ok, appended.error_type) == (False, "policy")
    assert layout["canary"].read_text().startswith(CANARY)
