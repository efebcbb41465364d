"""Keep file access inside a workspace directory, whatever path a model asks for.

Two layers, because either alone is not enough. First the path is checked as text (no absolute
paths, no ``..``, no NUL) and resolved with ``os.path.realpath``; the result must lie inside the
real workspace (a separator-aware check, so ``/ws-evil`` is not inside ``/ws``). Then the file is
opened one component at a time from a directory descriptor of the workspace with ``O_NOFOLLOW``,
so a symlink swapped in after the check makes the open fail instead of escaping, and the opened
descriptor is checked once more (its ``/proc/self/fd`` path, its type and its link count).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePosixPath

from planweave._text import truncate
from planweave.constants import DEFAULT_MAX_WORKSPACE_DEPTH
from planweave.errors import PolicyViolation, ToolError

__all__ = [
    "list_workspace_dir",
    "open_in_workspace",
    "read_workspace_file",
    "resolve_in_workspace",
    "write_workspace_file",
]

MAX_PATH_CHARS = 4096
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_PROC_FD = Path("/proc/self/fd")


def _check_text(rel: str) -> str:
    if not isinstance(rel, str):
        raise PolicyViolation(f"path must be a string, got {type(rel).__name__}")
    if "\x00" in rel:
        raise PolicyViolation("path contains a NUL byte")
    if len(rel) > MAX_PATH_CHARS:
        raise PolicyViolation(f"path is longer than {MAX_PATH_CHARS} characters")
    if rel.startswith(("/", "\\")) or PurePosixPath(rel).is_absolute():
        raise PolicyViolation(f"absolute paths are not allowed ({rel!r}): use a workspace path")
    if ".." in PurePosixPath(rel).parts:
        raise PolicyViolation(f"'..' is not allowed in paths ({rel!r})")
    return rel or "."


def resolve_in_workspace(workspace: Path, rel: str, *, must_exist: bool) -> Path:
    """Resolve ``rel`` against ``workspace``, refusing anything that ends up outside it.

    Args:
        workspace: The directory to stay in (need not exist yet when ``must_exist`` is false).
        rel: A relative path, as given by a model or a user.
        must_exist: Raise ``ToolError`` when nothing exists at the path.

    Returns:
        The real (symlink-free) absolute path, inside the real workspace.

    Raises:
        PolicyViolation: The path is absolute, has ``..`` or NUL, or resolves (through symlinks)
            outside the workspace.
        ToolError: ``must_exist`` is set and the path does not exist.
    """
    rel = _check_text(rel)
    real_ws = Path(os.path.realpath(workspace))
    target = Path(os.path.realpath(real_ws / rel))
    if not target.is_relative_to(real_ws):
        raise PolicyViolation(f"path {rel!r} resolves outside the workspace")
    if must_exist and not os.path.lexists(target):
        raise ToolError(f"no such file or directory in the workspace: {rel!r}")
    return target


def _verify_fd(fd: int, real_ws: Path, rel: str) -> os.stat_result:
    link = _PROC_FD / str(fd)
    if _PROC_FD.is_dir() and not Path(os.readlink(link)).is_relative_to(real_ws):
        raise PolicyViolation(f"path {rel!r} changed to point outside the workspace")
    return os.fstat(fd)


def _refuse_symlink(name: str, dir_fd: int, rel: str) -> None:
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return
    if is_link:
        raise PolicyViolation(f"path {rel!r} goes through a symlink that changed")


def _open_dir_at(name: str, dir_fd: int, rel: str, *, create: bool) -> int:
    """Open directory ``name`` under ``dir_fd`` (making it if ``create``), never via a symlink."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except NotADirectoryError:
        # O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR: tell the two apart.
        _refuse_symlink(name, dir_fd, rel)
        raise
    with contextlib.suppress(FileExistsError):  # made by someone else meanwhile: fine
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    return _open_dir_at(name, dir_fd, rel, create=False)


def open_in_workspace(
    workspace: Path,
    rel: str,
    flags: int,
    *,
    mode: int = 0o644,
    create_dirs: bool = False,
    max_depth: int = DEFAULT_MAX_WORKSPACE_DEPTH,
) -> int:
    """Open ``rel`` inside ``workspace`` without following any symlink after the check.

    Args:
        workspace: The directory to stay in.
        rel: A relative path.
        flags: ``os.open`` flags for the final component (``O_NOFOLLOW`` is always added).
        mode: Permissions of a file ``O_CREAT`` makes.
        create_dirs: Make missing parent directories (and the workspace).
        max_depth: With ``create_dirs``, the most folders the path may go down.

    Returns:
        An open file descriptor; the caller closes it.

    Raises:
        PolicyViolation: The path leaves the workspace, a symlink appeared in it, or (with
            ``create_dirs``) it is more than ``max_depth`` folders deep.
        ToolError: The path does not exist or is the wrong kind of file.
    """
    target = resolve_in_workspace(workspace, rel, must_exist=False)
    real_ws = Path(os.path.realpath(workspace))
    parts = target.relative_to(real_ws).parts
    if create_dirs and len(parts) - 1 > max_depth:
        raise PolicyViolation(
            f"path {truncate(rel, 80)!r} is {len(parts) - 1} folders deep, over the limit of "
            f"{max_depth}"
        )
    if create_dirs:
        real_ws.mkdir(parents=True, exist_ok=True)
    try:
        dir_fd = os.open(real_ws, _DIR_FLAGS)
    except FileNotFoundError:
        raise ToolError(f"the workspace {str(workspace)!r} does not exist") from None
    try:
        for part in parts[:-1]:
            next_fd = _open_dir_at(part, dir_fd, rel, create=create_dirs)
            os.close(dir_fd)
            dir_fd = next_fd
        if not parts:
            fd = os.dup(dir_fd)
        else:
            try:
                fd = os.open(parts[-1], flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=dir_fd)
            except NotADirectoryError:
                _refuse_symlink(parts[-1], dir_fd, rel)
                raise
    except FileNotFoundError:
        raise ToolError(f"no such file or directory in the workspace: {rel!r}") from None
    except IsADirectoryError:
        raise ToolError(f"{rel!r} is a directory") from None
    except NotADirectoryError:
        raise ToolError(f"{rel!r} or one of its parents is not a directory") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise PolicyViolation(f"path {rel!r} goes through a symlink that changed") from None
        raise
    finally:
        os.close(dir_fd)
    try:
        _verify_fd(fd, real_ws, rel)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_regular(st: os.stat_result, rel: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{rel!r} is not a regular file")
    if st.st_nlink > 1:
        # A hard link may share its contents with a file outside the workspace.
        raise PolicyViolation(f"{rel!r} has several hard links; refusing to use it")


def read_workspace_file(workspace: Path, rel: str, *, max_bytes: int) -> bytes:
    """Read a regular file inside ``workspace``, refusing files over ``max_bytes``."""
    fd = open_in_workspace(workspace, rel, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        _check_regular(st, rel)
        if st.st_size > max_bytes:
            raise PolicyViolation(f"{rel!r} is {st.st_size} bytes, over the {max_bytes} limit")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PolicyViolation(f"{rel!r} is over the {max_bytes} byte limit")
    return data


def write_workspace_file(
    workspace: Path,
    rel: str,
    data: bytes,
    *,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_WORKSPACE_DEPTH,
) -> Path:
    """Create or replace a regular file inside ``workspace``, making parent directories (at
    most ``max_depth`` folders deep)."""
    if len(data) > max_bytes:
        raise PolicyViolation(f"content is {len(data)} bytes, over the {max_bytes} limit")
    # No O_TRUNC: the file is checked (regular, one link) before anything in it changes.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK
    target = resolve_in_workspace(workspace, rel, must_exist=False)
    fd = open_in_workspace(workspace, rel, flags, create_dirs=True, max_depth=max_depth)
    with os.fdopen(fd, "wb") as fh:
        _check_regular(os.fstat(fh.fileno()), rel)
        fh.truncate(0)
        fh.write(data)
    return target


def list_workspace_dir(workspace: Path, rel: str = ".") -> list[str]:
    """Names in a directory inside ``workspace``, sorted, directories with a trailing ``/``."""
    fd = open_in_workspace(workspace, rel, _DIR_FLAGS)
    try:
        with os.scandir(fd) as entries:
            names = [e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in entries]
    finally:
        os.close(fd)
    return sorted(names)
