"""Zip and tar archives in the workspace: list them, extract them safely, zip workspace files.

An archive is untrusted input. Before anything is written, every member is checked: its name
must be a plain relative path (no absolute path, drive letter, ``..`` or NUL), it must be a
regular file or a folder (symlinks, hard links and device files are refused), and the archive
must stay within the bomb limits (member count, total uncompressed bytes, compression ratio).
A refused archive extracts nothing. While members are written the bytes are counted again, so
a header that lies about a size stops the extraction too, and what was written is removed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from planweave._text import truncate
from planweave.errors import PolicyViolation, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import tool
from planweave.tools._fsops import in_parent, normalized, open_workspace_dir, walk_workspace
from planweave.tools._paths import (
    _check_regular,
    open_in_workspace,
    read_workspace_file,
    resolve_in_workspace,
)

__all__ = ["MAX_COMPRESSION_RATIO", "archive_create", "archive_extract", "archive_list"]

MAX_COMPRESSION_RATIO = 100
"""Most uncompressed bytes per archive byte an archive (or a zip member) may unpack to."""
RATIO_FLOOR_BYTES = 1 << 20
"""Archives (and members) that unpack to less than this are not held to the ratio."""
MAX_LISTED = 1000
_CHUNK = 1 << 16

_SANDBOX = (
    "Reads archives in the workspace and writes inside the workspace only; refuses absolute, "
    "'..' and symlink or hard-link members (zip-slip) and archives over the member count, "
    "total size or compression ratio limits."
)


@dataclass(frozen=True, slots=True)
class _Member:
    name: str  # the checked workspace-relative name
    is_dir: bool
    size: int
    packed: int | None  # compressed size (zip members only)
    source: zipfile.ZipInfo | tarfile.TarInfo


def _member_name(raw: str) -> str:
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise PolicyViolation(f"archive member {truncate(raw, 80)!r} has a NUL byte in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise PolicyViolation(f"archive member {truncate(raw, 80)!r} has an absolute path")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise PolicyViolation(f"archive member {truncate(raw, 80)!r} goes up with '..'")
    return "/".join(parts)


def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        mode = (info.external_attr >> 16) & 0o170000
        if mode == stat.S_IFLNK:
            raise PolicyViolation(f"archive member {truncate(info.filename, 80)!r} is a symlink")
        if mode not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise PolicyViolation(
                f"archive member {truncate(info.filename, 80)!r} is not a file or a folder"
            )
        yield _Member(
            _member_name(info.filename), info.is_dir(), info.file_size, info.compress_size, info
        )


def _tar_members(tf: tarfile.TarFile, max_members: int) -> Iterator[_Member]:
    for count, info in enumerate(tf, start=1):
        if count > max_members:
            raise PolicyViolation(f"the archive has more than {max_members} members")
        if info.issym() or info.islnk():
            kind = "symlink" if info.issym() else "hard link"
            raise PolicyViolation(f"archive member {truncate(info.name, 80)!r} is a {kind}")
        if not (info.isreg() or info.isdir()):
            raise PolicyViolation(
                f"archive member {truncate(info.name, 80)!r} is not a file or a folder"
            )
        yield _Member(_member_name(info.name), info.isdir(), info.size, None, info)


@dataclass(slots=True)
class _Archive:
    kind: str  # "zip" or "tar"
    members: list[_Member]
    packed_bytes: int
    zf: zipfile.ZipFile | None = None
    tf: tarfile.TarFile | None = None

    def open_member(self, member: _Member) -> IO[bytes]:
        if self.zf is not None:
            assert isinstance(member.source, zipfile.ZipInfo)
            return self.zf.open(member.source)
        assert self.tf is not None and isinstance(member.source, tarfile.TarInfo)
        fh = self.tf.extractfile(member.source)
        if fh is None:
            raise ToolError(f"cannot read archive member {member.name!r}")
        return fh


@contextlib.contextmanager
def _open_archive(ctx: ToolContext, path: str) -> Iterator[_Archive]:
    """Open and check the archive at ``path``: every member and the bomb limits."""
    fd = open_in_workspace(ctx.workspace, path, os.O_RDONLY | os.O_NONBLOCK)
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(os.fdopen(fd, "rb"))
        st = os.fstat(fh.fileno())
        _check_regular(st, path)
        archive = _read_archive(stack, fh, path, ctx.max_archive_members)
        archive.packed_bytes = st.st_size
        _check_limits(archive, ctx)
        yield archive


def _read_archive(
    stack: contextlib.ExitStack, fh: IO[bytes], path: str, max_members: int
) -> _Archive:
    if zipfile.is_zipfile(fh):
        fh.seek(0)
        try:
            zf = stack.enter_context(zipfile.ZipFile(fh))
        except (zipfile.BadZipFile, OSError) as exc:
            raise ToolError(f"{path!r} is not a readable zip archive: {exc}") from None
        if len(zf.infolist()) > max_members:
            raise PolicyViolation(f"the archive has more than {max_members} members")
        return _Archive("zip", list(_zip_members(zf)), 0, zf=zf)
    fh.seek(0)
    try:
        tf = stack.enter_context(tarfile.TarFile.open(fileobj=fh, mode="r:*"))
    except (tarfile.TarError, OSError, EOFError):
        raise ToolError(f"{path!r} is not a zip or tar archive") from None
    try:
        return _Archive("tar", list(_tar_members(tf, max_members)), 0, tf=tf)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ToolError(f"{path!r} is a damaged tar archive: {exc}") from None


def _check_limits(archive: _Archive, ctx: ToolContext) -> None:
    total = sum(m.size for m in archive.members)
    if total > ctx.max_extract_bytes:
        raise PolicyViolation(
            f"the archive unpacks to {total} bytes, over the {ctx.max_extract_bytes} byte limit"
        )
    packed = max(archive.packed_bytes, 1)
    if total > RATIO_FLOOR_BYTES and total / packed > MAX_COMPRESSION_RATIO:
        raise PolicyViolation(
            f"the archive unpacks to {total // packed} times its size, over the ratio limit of "
            f"{MAX_COMPRESSION_RATIO} (a zip bomb?)"
        )
    for member in archive.members:
        if member.packed is None or member.size <= RATIO_FLOOR_BYTES:
            continue
        if member.size / max(member.packed, 1) > MAX_COMPRESSION_RATIO:
            raise PolicyViolation(
                f"archive member {member.name!r} unpacks to {member.size // max(member.packed, 1)} "
                f"times its size, over the ratio limit of {MAX_COMPRESSION_RATIO} (a zip bomb?)"
            )


@tool(timeout_s=60.0, sandbox=_SANDBOX)
def archive_list(path: str, ctx: ToolContext) -> dict[str, Any]:
    """List the members of a zip or tar archive (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz).

    Args:
        path: The archive, relative to the workspace.
    """
    with _open_archive(ctx, path) as archive:
        members = [
            {"name": m.name + "/" if m.is_dir else m.name, "size_bytes": m.size}
            for m in archive.members
            if m.name
        ]
    return {
        "format": archive.kind,
        "members": members[:MAX_LISTED],
        "member_count": len(members),
        "total_bytes": sum(m.size for m in archive.members),
        "truncated": len(members) > MAX_LISTED,
    }


def _join(destination: str, name: str) -> str:
    base = normalized(destination)
    return name if base == "." else f"{base}/{name}"


def _extract_file(
    archive: _Archive, member: _Member, rel: str, ctx: ToolContext, budget: int
) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK
    fd = open_in_workspace(ctx.workspace, rel, flags, create_dirs=True, max_depth=ctx.max_dir_depth)
    written = 0
    with os.fdopen(fd, "wb") as out, archive.open_member(member) as src:
        _check_regular(os.fstat(out.fileno()), rel)
        out.truncate(0)
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > member.size or written > budget:
                raise PolicyViolation(
                    f"archive member {member.name!r} unpacks to more than its header says "
                    "(a zip bomb?)"
                )
            out.write(chunk)
    return written


def _remove_quietly(ctx: ToolContext, rel: str) -> None:
    with contextlib.suppress(OSError, ToolError), in_parent(ctx.workspace, rel) as (fd, name):
        os.unlink(name, dir_fd=fd)


@tool(timeout_s=120.0, sandbox=_SANDBOX)
def archive_extract(
    path: str, ctx: ToolContext, destination: str = ".", overwrite: bool = False
) -> dict[str, Any]:
    """Extract a zip or tar archive into a workspace folder.

    The whole archive is refused, and nothing written, when a member would land outside the
    folder, is a symlink or hard link, or the archive is over the size, member or ratio limits.

    Args:
        path: The archive, relative to the workspace.
        destination: Folder to extract into, relative to the workspace (made if missing).
        overwrite: Replace files that already exist in the destination.
    """
    with _open_archive(ctx, path) as archive:
        targets: list[tuple[_Member, str]] = []
        clashes: list[str] = []
        for member in archive.members:
            if not member.name:
                continue
            rel = _join(destination, member.name)
            target = resolve_in_workspace(ctx.workspace, rel, must_exist=False)
            if not member.is_dir and os.path.lexists(target) and not overwrite:
                clashes.append(rel)
            targets.append((member, rel))
        if clashes:
            shown = ", ".join(clashes[:5]) + (" ..." if len(clashes) > 5 else "")
            raise ToolError(f"extracting would replace existing files ({shown}): set overwrite")
        os.close(
            open_workspace_dir(ctx.workspace, destination, create=True, max_depth=ctx.max_dir_depth)
        )
        written: list[str] = []
        folders = total = 0
        try:
            for member, rel in targets:
                if member.is_dir:
                    depth = ctx.max_dir_depth
                    os.close(open_workspace_dir(ctx.workspace, rel, create=True, max_depth=depth))
                    folders += 1
                    continue
                written.append(rel)  # before writing: a member that fails halfway goes too
                total += _extract_file(archive, member, rel, ctx, ctx.max_extract_bytes - total)
        except BaseException:
            for rel in written:
                _remove_quietly(ctx, rel)
            raise
    return {
        "destination": normalized(destination),
        "files": written[:MAX_LISTED],
        "file_count": len(written),
        "folder_count": folders,
        "total_bytes": total,
    }


def _sources(ctx: ToolContext, paths: list[str], archive_rel: str) -> list[tuple[str, str]]:
    """``(workspace path, name in the zip)`` of every file the sources name."""
    out: list[tuple[str, str]] = []
    for rel in paths:
        target = resolve_in_workspace(ctx.workspace, rel, must_exist=True)
        if target.is_dir():
            for found, kind, _ in walk_workspace(ctx.workspace, rel):
                if kind == "file" and found != archive_rel:
                    out.append((found, found))
        else:
            out.append((rel, normalized(rel)))
    return out


@tool(
    timeout_s=120.0,
    sandbox=(
        "Zips workspace files into the workspace only (no absolute paths, '..' or symlinks out "
        "of it; symlinks inside folders are left out), within the job's size limits."
    ),
)
def archive_create(
    path: str, sources: list[str], ctx: ToolContext, overwrite: bool = False
) -> dict[str, Any]:
    """Make a zip archive of workspace files and folders (folders are added with their contents).

    Args:
        path: The zip file to write, relative to the workspace; it must end in ".zip".
        sources: Files and folders to put in it, relative to the workspace.
        overwrite: Replace the zip file if it exists.
    """
    if not path.lower().endswith(".zip"):
        raise ToolError("the archive path must end in .zip")
    if not sources:
        raise ToolError("give at least one file or folder in sources")
    archive_rel = normalized(path)
    target = resolve_in_workspace(ctx.workspace, path, must_exist=False)
    if os.path.lexists(target) and not overwrite:
        raise ToolError(f"{path!r} already exists (set overwrite to replace it)")
    files = _sources(ctx, sources, archive_rel)
    if len(files) > ctx.max_archive_members:
        raise PolicyViolation(
            f"that is {len(files)} files, over the {ctx.max_archive_members} limit"
        )
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK
    fd = open_in_workspace(
        ctx.workspace, path, flags, create_dirs=True, max_depth=ctx.max_dir_depth
    )
    total = 0
    with os.fdopen(fd, "wb") as out:
        _check_regular(os.fstat(out.fileno()), path)
        out.truncate(0)
        try:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for rel, arcname in files:
                    data = read_workspace_file(ctx.workspace, rel, max_bytes=ctx.max_file_bytes)
                    total += len(data)
                    if total > ctx.max_extract_bytes:
                        raise PolicyViolation(
                            f"the files add up to more than the {ctx.max_extract_bytes} byte limit"
                        )
                    zf.writestr(arcname, data)
        except BaseException:
            out.close()
            _remove_quietly(ctx, path)
            raise
        size = out.tell()
    return {"path": archive_rel, "file_count": len(files), "total_bytes": total, "size_bytes": size}
