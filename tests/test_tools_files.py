from __future__ import annotations

import os
from pathlib import Path

import pytest

from planweave.errors import PolicyViolation, ToolError
from planweave.tools import ToolContext, ToolRegistry, ToolResult, _paths, builtin_tools, invoke
from planweave.tools._paths import open_in_workspace, resolve_in_workspace

CANARY = "canary: must never change\n"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A workspace with traps around it: an outside dir, a canary file and a sibling dir."""
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    evil = tmp_path / "ws-evil"
    for directory in (ws / "docs", outside, evil):
        directory.mkdir(parents=True)
    (ws / "docs" / "a.txt").write_text("inside")
    (outside / "canary.txt").write_text(CANARY)
    (evil / "secret.txt").write_text("sibling secret")
    (ws / "to_outside").symlink_to(outside, target_is_directory=True)
    (ws / "to_canary").symlink_to(outside / "canary.txt")
    (ws / "to_evil").symlink_to(evil, target_is_directory=True)
    (ws / "dangling").symlink_to(outside / "new.txt")
    (ws / "alias").symlink_to(ws / "docs", target_is_directory=True)
    return {"ws": ws, "outside": outside, "evil": evil, "canary": outside / "canary.txt"}


@pytest.fixture
def ctx(layout: dict[str, Path]) -> ToolContext:
    return ToolContext(workspace=layout["ws"], max_file_bytes=1000)


async def call(ctx: ToolContext, name: str, **args: object) -> ToolResult:
    return await invoke(ToolRegistry(builtin_tools()), name, args, ctx)


def outside_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*") if "ws" not in p.relative_to(tmp_path).parts)


ATTACKS = [
    "../outside/canary.txt",
    "/etc/passwd",
    str(Path("/etc/passwd")),
    "a/../../outside/canary.txt",
    "docs/../../outside/canary.txt",
    "../ws-evil/secret.txt",
    "to_evil/secret.txt",
    "docs/a.txt\x00.png",
    "to_outside/canary.txt",
    "to_canary",
    "dangling",
    "alias/../../outside/canary.txt",
]


async def test_read_write_list_inside_the_workspace(
    ctx: ToolContext, layout: dict[str, Path]
) -> None:
    written = await call(ctx, "write_file", path="notes/today.md", content="héllo")
    assert written.ok, written.error
    assert written.value == "wrote 6 bytes to notes/today.md"
    assert (layout["ws"] / "notes" / "today.md").read_text() == "héllo"
    read = await call(ctx, "read_file", path="notes/today.md")
    assert (read.ok, read.value) == (True, "héllo")
    listed = await call(ctx, "list_files")
    assert listed.value == [
        "alias",
        "dangling",
        "docs/",
        "notes/",
        "to_canary",
        "to_evil",
        "to_outside",
    ]
    assert (await call(ctx, "list_files", path="notes")).value == ["today.md"]


async def test_symlink_inside_the_workspace_is_followed(ctx: ToolContext) -> None:
    result = await call(ctx, "read_file", path="alias/a.txt")
    assert (result.ok, result.value) == (True, "inside")


async def test_write_replaces_and_creates_the_workspace(tmp_path: Path) -> None:
    ctx = ToolContext(workspace=tmp_path / "new" / "ws")
    assert (await call(ctx, "write_file", path="f.txt", content="long content")).ok
    assert (await call(ctx, "write_file", path="f.txt", content="short")).ok
    assert (tmp_path / "new" / "ws" / "f.txt").read_text() == "short"


@pytest.mark.parametrize("path", ATTACKS)
async def test_read_attacks_are_refused(ctx: ToolContext, path: str) -> None:
    result = await call(ctx, "read_file", path=path)
    assert not result.ok
    assert result.error_type == "policy", result.error
    assert result.retryable is False
    assert CANARY not in (result.error or "")
    assert "sibling secret" not in (result.error or "")


@pytest.mark.parametrize("path", [*ATTACKS, "to_outside/new.txt", "to_outside/sub/new.txt"])
async def test_write_attacks_are_refused_and_nothing_changes_outside(
    ctx: ToolContext, layout: dict[str, Path], tmp_path: Path, path: str
) -> None:
    before = outside_files(tmp_path)
    result = await call(ctx, "write_file", path=path, content="pwned")
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert outside_files(tmp_path) == before
    assert layout["canary"].read_text() == CANARY
    assert (layout["evil"] / "secret.txt").read_text() == "sibling secret"
    assert not (layout["outside"] / "new.txt").exists()


@pytest.mark.parametrize("path", ["..", "/", "/tmp", "to_outside", "to_evil", "docs/../.."])
async def test_list_attacks_are_refused(ctx: ToolContext, path: str) -> None:
    result = await call(ctx, "list_files", path=path)
    assert (result.ok, result.error_type) == (False, "policy"), result.error


def test_resolve_in_workspace(layout: dict[str, Path]) -> None:
    ws = layout["ws"]
    assert resolve_in_workspace(ws, "docs/a.txt", must_exist=True) == ws.resolve() / "docs/a.txt"
    assert resolve_in_workspace(ws, "alias/a.txt", must_exist=True) == ws.resolve() / "docs/a.txt"
    assert resolve_in_workspace(ws, "", must_exist=True) == ws.resolve()
    assert resolve_in_workspace(ws, "later.txt", must_exist=False) == ws.resolve() / "later.txt"
    with pytest.raises(ToolError, match="no such file"):
        resolve_in_workspace(ws, "later.txt", must_exist=True)
    with pytest.raises(PolicyViolation, match="resolves outside the workspace"):
        resolve_in_workspace(ws, "to_evil/secret.txt", must_exist=False)
    with pytest.raises(PolicyViolation, match="NUL"):
        resolve_in_workspace(ws, "a\x00b", must_exist=False)


def test_sibling_prefix_workspace_is_not_inside(layout: dict[str, Path]) -> None:
    # "/ws-evil" starts with the string "/ws" but is not inside it.
    assert str(layout["evil"]).startswith(str(layout["ws"]))
    with pytest.raises(PolicyViolation):
        resolve_in_workspace(layout["ws"], "to_evil", must_exist=True)


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY | os.O_CREAT])
def test_symlink_swapped_in_after_the_check_is_not_followed(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch, flags: int
) -> None:
    """Simulate the race: the path checked clean, then a component became a symlink."""
    ws = layout["ws"].resolve()
    monkeypatch.setattr(_paths, "resolve_in_workspace", lambda w, rel, **_: ws / rel)
    for rel in ("to_outside/canary.txt", "to_canary", "to_outside/new.txt"):
        if flags == os.O_RDONLY and rel.endswith("new.txt"):
            continue
        with pytest.raises(PolicyViolation, match="symlink"):
            open_in_workspace(ws, rel, flags)
    assert layout["canary"].read_text() == CANARY
    assert not (layout["outside"] / "new.txt").exists()


async def test_hard_link_to_an_outside_file_is_refused(
    ctx: ToolContext, layout: dict[str, Path]
) -> None:
    os.link(layout["canary"], layout["ws"] / "hard.txt")
    for result in (
        await call(ctx, "read_file", path="hard.txt"),
        await call(ctx, "write_file", path="hard.txt", content="pwned"),
    ):
        assert (result.ok, result.error_type) == (False, "policy")
        assert "hard links" in (result.error or "")
    assert layout["canary"].read_text() == CANARY


async def test_size_caps(ctx: ToolContext, layout: dict[str, Path]) -> None:
    (layout["ws"] / "big.txt").write_text("x" * 1001)
    result = await call(ctx, "read_file", path="big.txt")
    assert (result.ok, result.error_type) == (False, "policy")
    assert "1000" in (result.error or "")
    result = await call(ctx, "write_file", path="huge.txt", content="y" * 1001)
    assert (result.ok, result.error_type) == (False, "policy")
    assert not (layout["ws"] / "huge.txt").exists()


async def test_not_found_and_wrong_kinds_are_plain_errors(
    ctx: ToolContext, layout: dict[str, Path]
) -> None:
    missing = await call(ctx, "read_file", path="missing.txt")
    assert (missing.ok, missing.error_type) == (False, "error")
    assert "no such file" in (missing.error or "")
    directory = await call(ctx, "read_file", path="docs")
    assert "not a regular file" in (directory.error or "")
    os.mkfifo(layout["ws"] / "pipe")
    fifo = await call(ctx, "read_file", path="pipe")  # must not block waiting for a writer
    assert "not a regular file" in (fifo.error or "")
    not_dir = await call(ctx, "list_files", path="docs/a.txt")
    assert not_dir.error_type == "error"
    assert "not a directory" in (not_dir.error or "")


async def test_refused_write_does_not_create_the_workspace(tmp_path: Path) -> None:
    ctx = ToolContext(workspace=tmp_path / "missing")
    result = await call(ctx, "write_file", path="../escape.txt", content="x")
    assert result.error_type == "policy"
    listed = await call(ctx, "list_files")
    assert (listed.ok, listed.error_type) == (False, "error")
    assert not (tmp_path / "missing").exists()
    assert not (tmp_path / "escape.txt").exists()
