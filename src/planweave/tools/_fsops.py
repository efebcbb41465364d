"""Workspace operations the file and archive tools share, built on ``_paths``.

Each works relative to an open descriptor of the folder that holds the entry (opened by
``open_in_workspace``, which refuses every symlink on the way), so the entry itself is never
reached through a symlink swapped in after the check: a rename, a ``mkdir`` or an unlink acts on
the name in that folder, and an entry that is a symlink is acted on as a link, not followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from planweave._text import truncate
from planweave.errors import PolicyViolation, ToolError
from planweave.tools._paths import (
    _open_dir_at,
    _verify_fd,
    open_in_workspace,
    resolve_in_workspace,
)

__all__ = [
    "DIR_FLAGS",
    "in_parent",
    "lstat_at",
    "normalized",
    "open_workspace_dir",
    "split_parent",
    "walk_workspace",
]

DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def normalized(rel: str) -> str:
    """``rel`` as the tools report it: POSIX separators, no ``.`` parts (``"."`` for the top)."""
    return str(PurePosixPath(os.path.normpath(rel or ".")))


def open_workspace_dir(
    workspace: Path, rel: str, *, create: bool = False, max_depth: int = 10_000
) -> int:
    """Open the folder ``rel`` of the workspace, never through a symlink; with ``create``,
    make it and its parents (at most ``max_depth`` folders below the workspace)."""
    if not create:
        return open_in_workspace(workspace, rel, DIR_FLAGS)
    target = resolve_in_workspace(workspace, rel, must_exist=False)
    real_ws = Path(os.path.realpath(workspace))
    parts = target.relative_to(real_ws).parts
    if len(parts) > max_depth:
        raise PolicyViolation(
            f"path {truncate(rel, 80)!r} is {len(parts)} folders deep, over the limit of "
            f"{max_depth}"
        )
    real_ws.mkdir(parents=True, exist_ok=True)
    fd = os.open(real_ws, DIR_FLAGS)
    try:
        for part in parts:
            next_fd = _open_dir_at(part, fd, rel, create=True)
            os.close(fd)
            fd = next_fd
        _verify_fd(fd, real_ws, rel)
    except NotADirectoryError:
        os.close(fd)
        raise ToolError(f"{rel!r} or one of its parents is not a directory") from None
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise PolicyViolation(f"path {rel!r} goes through a symlink that changed") from None
        raise
    except BaseException:
        os.close(fd)
        raise
    return fd


def split_parent(workspace: Path, rel: str) -> tuple[str, str]:
    """The real folder (relative to the real workspace) that holds ``rel``, and its name."""
    text = normalized(rel)
    if text == ".":
        return ".", ""
    pure = PurePosixPath(text)
    parent = resolve_in_workspace(workspace, str(pure.parent), must_exist=False)
    real_ws = Path(os.path.realpath(workspace))
    return str(parent.relative_to(real_ws)), pure.name


@contextlib.contextmanager
def in_parent(
    workspace: Path, rel: str, *, create: bool = False, max_depth: int = 10_000
) -> Iterator[tuple[int, str]]:
    """``with in_parent(ws, rel) as (dir_fd, name):`` the folder holding ``rel``, opened.

    ``rel`` is checked as a whole first: a symlink whose target leaves the workspace is
    refused with ``PolicyViolation`` (the tools act on links inside the workspace only), and so
    is the workspace itself (``"."``).
    """
    resolve_in_workspace(workspace, rel, must_exist=False)
    parent, name = split_parent(workspace, rel)
    if not name:
        raise PolicyViolation("this acts on an entry inside the workspace, not on the workspace")
    fd = open_workspace_dir(workspace, parent, create=create, max_depth=max_depth)
    try:
        yield fd, name
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry ``name`` of ``dir_fd`` itself (a link is not followed), or ``None``."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def walk_workspace(workspace: Path, rel: str = ".") -> Iterator[tuple[str, str, os.stat_result]]:
    """Every entry under the folder ``rel``: ``(workspace path, kind, lstat)``, top-down.

    ``kind`` is ``"file"``, ``"dir"``, ``"symlink"`` or ``"other"``. Symlinks are reported but
    never followed, so the walk cannot leave the workspace whatever links it meets.
    """
    fd = open_workspace_dir(workspace, rel)
    top = normalized(rel)
    try:
        walker = os.fwalk(".", dir_fd=fd, follow_symlinks=False)
        for dirpath, dirnames, filenames, dir_fd in walker:
            dirnames.sort()
            base = PurePosixPath(top) / dirpath
            for name in sorted([*dirnames, *filenames]):
                st = lstat_at(dir_fd, name)
                if st is None:
                    continue
                kind = (
                    "dir"
                    if stat.S_ISDIR(st.st_mode)
                    else "symlink"
                    if stat.S_ISLNK(st.st_mode)
                    else "file"
                    if stat.S_ISREG(st.st_mode)
                    else "other"
                )
                yield normalized(str(base / name)), kind, st
    finally:
        os.close(fd)
