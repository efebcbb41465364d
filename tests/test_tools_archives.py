"""Archive tools: list, extract and create, and the attacks an archive can carry."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from planweave.tools import ToolContext, ToolRegistry, ToolResult, builtin_tools, invoke

CANARY = "canary: must never change\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "a.txt").write_text("alpha\n")
    (ws / "src" / "sub").mkdir()
    (ws / "src" / "sub" / "b.txt").write_text("beta\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "canary.txt").write_text(CANARY)
    (ws / "src" / "to_outside").symlink_to(tmp_path / "outside", target_is_directory=True)
    return ws


@pytest.fixture
def ctx(ws: Path) -> ToolContext:
    return ToolContext(workspace=ws, max_extract_bytes=50_000, max_archive_members=50)


async def call(ctx: ToolContext, name: str, **args: object) -> ToolResult:
    return await invoke(ToolRegistry(builtin_tools()), name, args, ctx)


def outside(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*") if "ws" not in p.relative_to(tmp_path).parts)


def make_zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"pwned") -> None:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            if info.isreg():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


async def test_zip_round_trip(ctx: ToolContext, ws: Path) -> None:
    made = await call(ctx, "archive_create", path="out/src.zip", sources=["src"])
    assert made.ok, made.error
    assert made.value["file_count"] == 2  # the symlink out of the workspace is left out
    listed = await call(ctx, "archive_list", path="out/src.zip")
    assert listed.value["format"] == "zip"
    assert [m["name"] for m in listed.value["members"]] == ["src/a.txt", "src/sub/b.txt"]
    extracted = await call(ctx, "archive_extract", path="out/src.zip", destination="copy")
    assert extracted.ok, extracted.error
    assert extracted.value["file_count"] == 2
    assert (ws / "copy" / "src" / "sub" / "b.txt").read_text() == "beta\n"
    again = await call(ctx, "archive_extract", path="out/src.zip", destination="copy")
    assert not again.ok and "set overwrite" in (again.error or "")
    replaced = await call(
        ctx, "archive_extract", path="out/src.zip", destination="copy", overwrite=True
    )
    assert replaced.ok, replaced.error
    exists = await call(ctx, "archive_create", path="out/src.zip", sources=["src/a.txt"])
    assert not exists.ok and "already exists" in (exists.error or "")


async def test_tar_list_and_extract(ctx: ToolContext, ws: Path) -> None:
    make_tar(ws / "pack.tar.gz", [tar_member("dir", tarfile.DIRTYPE), tar_member("dir/f.txt")])
    listed = await call(ctx, "archive_list", path="pack.tar.gz")
    assert listed.value["format"] == "tar"
    assert [m["name"] for m in listed.value["members"]] == ["dir/", "dir/f.txt"]
    extracted = await call(ctx, "archive_extract", path="pack.tar.gz")
    assert extracted.ok, extracted.error
    assert (ws / "dir" / "f.txt").read_bytes() == b"pwned"


async def test_not_an_archive(ctx: ToolContext, ws: Path) -> None:
    result = await call(ctx, "archive_list", path="src/a.txt")
    assert not result.ok and "not a zip or tar archive" in (result.error or "")


ZIP_SLIPS = ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt", "C:/evil.txt", "..\\evil.txt"]


@pytest.mark.parametrize("name", ZIP_SLIPS)
async def test_zip_slip_is_refused_and_nothing_is_written(
    ctx: ToolContext, ws: Path, tmp_path: Path, name: str
) -> None:
    make_zip(ws / "slip.zip", {"good.txt": b"fine", name: b"pwned"})
    before = outside(tmp_path)
    result = await call(ctx, "archive_extract", path="slip.zip")
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert outside(tmp_path) == before
    assert not (ws / "good.txt").exists()  # a refused archive extracts nothing


async def test_zip_symlink_member_is_refused(ctx: ToolContext, ws: Path) -> None:
    make_zip(ws / "link.zip", {"good.txt": b"fine"}, symlink="passwd")
    result = await call(ctx, "archive_extract", path="link.zip")
    assert (result.ok, result.error_type) == (False, "policy")
    assert "symlink" in (result.error or "")
    assert not (ws / "good.txt").exists() and not (ws / "passwd").exists()


@pytest.mark.parametrize(
    "member",
    [
        tar_member("../evil.txt"),
        tar_member("/tmp/evil.txt"),
        tar_member("x/../../evil.txt"),
        tar_member("link", tarfile.SYMTYPE, "/etc/passwd"),
        tar_member("hard", tarfile.LNKTYPE, "/etc/passwd"),
        tar_member("dev", tarfile.CHRTYPE),
        tar_member("fifo", tarfile.FIFOTYPE),
    ],
    ids=lambda m: f"{m.name}-{m.type!r}",
)
async def test_tar_attacks_are_refused(
    ctx: ToolContext, ws: Path, tmp_path: Path, member: tarfile.TarInfo
) -> None:
    make_tar(ws / "bad.tar.gz", [tar_member("good.txt"), member])
    before = outside(tmp_path)
    result = await call(ctx, "archive_extract", path="bad.tar.gz")
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert outside(tmp_path) == before
    assert not (ws / "good.txt").exists()


async def test_extract_through_a_symlink_out_is_refused(
    ctx: ToolContext, ws: Path, tmp_path: Path
) -> None:
    make_zip(ws / "ok.zip", {"canary.txt": b"pwned"})
    for destination in ("src/to_outside", "../outside", "/tmp"):
        result = await call(ctx, "archive_extract", path="ok.zip", destination=destination)
        assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert (tmp_path / "outside" / "canary.txt").read_text() == CANARY
    make_zip(ws / "deep.zip", {"src/to_outside/canary.txt": b"pwned"})
    deep = await call(ctx, "archive_extract", path="deep.zip", overwrite=True)
    assert (deep.ok, deep.error_type) == (False, "policy"), deep.error
    assert (tmp_path / "outside" / "canary.txt").read_text() == CANARY


async def test_zip_bomb_ratio_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    make_zip(ws / "bomb.zip", {"zeros.bin": b"\0" * 20_000_000})
    assert (ws / "bomb.zip").stat().st_size < 200_000
    ctx = ToolContext(workspace=ws)  # the default limits: the size alone would pass
    result = await call(ctx, "archive_extract", path="bomb.zip")
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert "ratio" in (result.error or "")
    assert not (ws / "zeros.bin").exists()


async def test_archive_over_the_total_size_is_refused(ctx: ToolContext, ws: Path) -> None:
    members = {f"f{i}.bin": os.urandom(2000) for i in range(30)}  # 60 KB, incompressible
    make_zip(ws / "big.zip", members)
    result = await call(ctx, "archive_extract", path="big.zip")
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert "over the 50000 byte limit" in (result.error or "")
    assert not (ws / "f0.bin").exists()


async def test_archive_with_too_many_members_is_refused(ctx: ToolContext, ws: Path) -> None:
    make_zip(ws / "many.zip", {f"f{i}.txt": b"x" for i in range(60)})
    for name in ("archive_list", "archive_extract"):
        result = await call(ctx, name, path="many.zip")
        assert (result.ok, result.error_type) == (False, "policy"), result.error
        assert "more than 50 members" in (result.error or "")


async def test_lying_size_header_extracts_nothing(ctx: ToolContext, ws: Path) -> None:
    """A zip whose headers claim a member is 100 bytes while its data inflates to megabytes
    passes the size and ratio checks, but never writes more than the headers said, and the
    member it started is removed when the data turns out wrong."""
    make_zip(ws / "lie.zip", {"first.txt": b"fine", "big.bin": b"\0" * 5_000_000})
    data = bytearray((ws / "lie.zip").read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature, data.find(signature) + 1)  # the second member's header
        data[at + offset : at + offset + 4] = (100).to_bytes(4, "little")
    (ws / "lie.zip").write_bytes(bytes(data))
    listed = await call(ctx, "archive_list", path="lie.zip")
    assert listed.value["total_bytes"] == 104
    result = await call(ctx, "archive_extract", path="lie.zip")
    assert not result.ok
    assert not (ws / "big.bin").exists() and not (ws / "first.txt").exists()


async def test_create_refuses_sources_outside(ctx: ToolContext, ws: Path) -> None:
    for source in ("../outside/canary.txt", "src/to_outside/canary.txt", "/etc/passwd"):
        result = await call(ctx, "archive_create", path="x.zip", sources=[source])
        assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert not (ws / "x.zip").exists()
    wrong = await call(ctx, "archive_create", path="x.tar", sources=["src"])
    assert not wrong.ok and ".zip" in (wrong.error or "")
