"""Delete a job's workspace, however deep it is, without following a symlink out of it.

``shutil.rmtree`` recurses once per folder level (a ``RecursionError`` past about a thousand)
and works on full paths (which stop resolving past ``PATH_MAX``). A workspace written by a tool
may be thousands of folders deep, so this walks it iteratively, bottom-up, relative to open
directory descriptors: at most two descriptors are open at a time (a folder and its parent);
going down opens a child with ``O_NOFOLLOW`` and going back up opens ``..``, each checked by
device and inode against what was seen, so a folder swapped for a symlink (or moved) midway
stops the removal instead of deleting something outside.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["remove_tree"]

_DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _list(fd: int) -> list[str]:
    """Remove the non-folders in the open folder ``fd``; return its subfolders' names."""
    folders: list[str] = []
    with os.scandir(fd) as entries:
        names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in names:
        if is_dir:
            folders.append(name)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    return folders


def _open_child(name: str, parent_fd: int) -> int:
    seen = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(seen.st_mode):
        raise OSError(f"{name!r} changed from a folder to something else during removal")
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    if _identity(os.fstat(fd)) != _identity(seen):
        os.close(fd)
        raise OSError(f"{name!r} was replaced during removal")
    return fd


def remove_tree(root: Path) -> bool:
    """Remove ``root`` and everything in it; a symlink at ``root`` is removed, not followed.

    Returns:
        Whether anything was there to remove.

    Raises:
        OSError: Something could not be removed, or the tree changed shape underneath.
    """
    try:
        top = os.stat(root, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(top.st_mode):
        os.unlink(root)
        return True
    fd = os.open(root, _DIR_FLAGS)
    # One entry per open level below root: (name in its parent, parent's identity, folders
    # still to remove in that parent).
    stack: list[tuple[str, tuple[int, int], list[str]]] = []
    try:
        identity = _identity(os.fstat(fd))
        if identity != _identity(top):
            raise OSError(f"{str(root)!r} was replaced during removal")
        pending = _list(fd)
        while True:
            if pending:
                name = pending.pop()
                try:
                    child = _open_child(name, fd)
                except FileNotFoundError:
                    continue
                stack.append((name, identity, pending))
                os.close(fd)
                fd, identity = child, _identity(os.fstat(child))
                pending = _list(fd)
                continue
            if not stack:
                break
            name, parent_identity, pending = stack.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _identity(os.fstat(fd)) != parent_identity:
                raise OSError(f"a folder of {str(root)!r} was moved during removal")
            identity = parent_identity
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(root)
    return True
