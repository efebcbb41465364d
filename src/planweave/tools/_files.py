"""Workspace file tools beyond read, write and list: append, find, search, edit, move, copy,
make folders, describe and delete.

Every path is a workspace path and goes through ``_paths`` (no absolute paths, no ``..``, no
symlink out of the workspace, no file with several hard links); walks never follow a symlink.
``delete_file`` is high impact: by default a person approves each call before it runs.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import os
import re
import shutil
import stat
from collections.abc import Sequence
from typing import Any

import whatthepatch  # type: ignore[import-untyped]
from whatthepatch.exceptions import HunkApplyException  # type: ignore[import-untyped]

from planweave._text import truncate
from planweave.errors import PolicyViolation, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import tool
from planweave.tools._fsops import (
    in_parent,
    lstat_at,
    normalized,
    open_workspace_dir,
    walk_workspace,
)
from planweave.tools._paths import (
    _check_regular,
    _check_text,
    open_in_workspace,
    read_workspace_file,
    resolve_in_workspace,
    write_workspace_file,
)

__all__ = [
    "append_file",
    "copy_file",
    "delete_file",
    "file_info",
    "glob_files",
    "make_dir",
    "move_file",
    "replace_in_file",
    "search_files",
]

MAX_RESULTS = 1000
"""Most paths ``glob_files`` and matches ``search_files`` return in one call."""
MAX_LINE_CHARS = 300
"""Longest line ``search_files`` quotes (longer ones are cut with an ellipsis)."""
MAX_PATTERN_CHARS = 1000

_WORKSPACE_ONLY = "workspace paths only: no absolute paths, '..' or symlinks out of the workspace"


def _pattern_parts(pattern: str) -> list[str]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    _check_text(pattern)
    parts = [p for p in pattern.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise ToolError("the pattern is empty: use e.g. '**/*.py'")
    return parts


def _glob_match(parts: Sequence[str], path: Sequence[str]) -> bool:
    """Whether ``path`` (its parts) matches the glob ``parts``: ``**`` spans any number of
    folders, ``*``, ``?`` and ``[...]`` stay within one name."""

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(parts):
            return j == len(path)
        if parts[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(path) + 1))
        return j < len(path) and fnmatch.fnmatchcase(path[j], parts[i]) and match(i + 1, j + 1)

    return match(0, 0)


def _relative_parts(path: str, base: str) -> list[str]:
    rel = os.path.relpath(path, base) if base != "." else path
    return [p for p in rel.split("/") if p != "."]


@tool(sandbox=f"Lists the workspace only ({_WORKSPACE_ONLY}); never follows a symlink.")
def glob_files(
    pattern: str, ctx: ToolContext, path: str = ".", max_results: int = 200
) -> dict[str, Any]:
    """Find workspace files and folders whose path matches a glob pattern.

    "*" matches within one name, "**" any number of folders, "?" one character and [abc] one
    of a set; folders are returned with a trailing "/". Symlinks are listed, never followed.

    Args:
        pattern: Glob relative to `path`, e.g. "**/*.py" or "docs/*.md".
        path: Folder to search in, relative to the workspace; the whole workspace by default.
        max_results: Most paths to return (at most 1000).
    """
    parts = _pattern_parts(pattern)
    limit = max(1, min(max_results, MAX_RESULTS))
    base = normalized(path)
    found: list[str] = []
    truncated = False
    for rel, kind, _ in walk_workspace(ctx.workspace, path):
        if _glob_match(parts, _relative_parts(rel, base)):
            if len(found) == limit:
                truncated = True
                break
            found.append(rel + "/" if kind == "dir" else rel)
    return {"paths": found, "truncated": truncated}


def _compile(pattern: str, *, regex: bool, ignore_case: bool) -> re.Pattern[str]:
    if not pattern:
        raise ToolError("the search pattern is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolError(f"the search pattern is longer than {MAX_PATTERN_CHARS} characters")
    flags = re.IGNORECASE if ignore_case else 0
    try:
        return re.compile(pattern if regex else re.escape(pattern), flags)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {truncate(pattern, 80)!r}: {exc}") from None


@tool(
    timeout_s=30.0,
    isolated=True,
    sandbox=(
        f"Reads workspace files only ({_WORKSPACE_ONLY}), skips binary files and files over "
        "the job's file size limit, and runs in a worker process killed at its deadline."
    ),
)
def search_files(
    pattern: str,
    ctx: ToolContext,
    path: str = ".",
    glob: str = "**/*",
    regex: bool = False,
    ignore_case: bool = False,
    max_matches: int = 100,
) -> dict[str, Any]:
    """Search the text of workspace files and return the matching lines with their numbers.

    Binary files and files over the job's size limit are skipped.

    Args:
        pattern: Text to look for (or a Python regular expression when `regex` is true).
        path: Folder to search in, relative to the workspace.
        glob: Only files whose path (relative to `path`) matches this glob, e.g. "**/*.md".
        regex: Treat `pattern` as a regular expression.
        ignore_case: Match regardless of upper and lower case.
        max_matches: Most matching lines to return (at most 1000).
    """
    compiled = _compile(pattern, regex=regex, ignore_case=ignore_case)
    parts = _pattern_parts(glob)
    limit = max(1, min(max_matches, MAX_RESULTS))
    base = normalized(path)
    matches: list[dict[str, Any]] = []
    searched = skipped = 0
    truncated = False
    for rel, kind, st in walk_workspace(ctx.workspace, path):
        if kind != "file" or not _glob_match(parts, _relative_parts(rel, base)):
            continue
        if st.st_size > ctx.max_file_bytes or st.st_nlink > 1:
            skipped += 1
            continue
        try:
            data = read_workspace_file(ctx.workspace, rel, max_bytes=ctx.max_file_bytes)
        except ToolError:
            skipped += 1
            continue
        if b"\x00" in data[:8192]:
            skipped += 1
            continue
        searched += 1
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if compiled.search(line):
                if len(matches) == limit:
                    truncated = True
                    break
                matches.append(
                    {"path": rel, "line": number, "text": truncate(line, MAX_LINE_CHARS)}
                )
        if truncated:
            break
    return {
        "matches": matches,
        "files_searched": searched,
        "files_skipped": skipped,
        "truncated": truncated,
    }


@tool(sandbox=f"Appends to workspace files only ({_WORKSPACE_ONLY}), within the file size limit.")
def append_file(path: str, content: str, ctx: ToolContext) -> str:
    """Add text at the end of a workspace file, creating it (and its folders) if missing.

    Args:
        path: Path relative to the workspace.
        content: The text to add (UTF-8); include a final newline if you want one.
    """
    data = content.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK
    fd = open_in_workspace(
        ctx.workspace, path, flags, create_dirs=True, max_depth=ctx.max_dir_depth
    )
    with os.fdopen(fd, "ab") as fh:
        st = os.fstat(fh.fileno())
        _check_regular(st, path)
        if st.st_size + len(data) > ctx.max_file_bytes:
            raise PolicyViolation(
                f"{path!r} would be {st.st_size + len(data)} bytes, over the "
                f"{ctx.max_file_bytes} byte limit"
            )
        fh.write(data)
    return f"appended {len(data)} bytes to {normalized(path)} (now {st.st_size + len(data)} bytes)"


def _read_text(ctx: ToolContext, path: str) -> str:
    data = read_workspace_file(ctx.workspace, path, max_bytes=ctx.max_file_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{path!r} is not UTF-8 text") from None


def _apply_patch(text: str, patch: str, path: str) -> str:
    diffs = [d for d in whatthepatch.parse_patch(patch) if d.changes]
    if len(diffs) != 1:
        raise ToolError(
            f"the patch must be a unified diff of one file, found {len(diffs)} file diffs"
        )
    try:
        lines = whatthepatch.apply_diff(diffs[0], text)
    except HunkApplyException as exc:
        raise ToolError(f"the patch does not apply to {path!r}: {exc}") from None
    if lines is None:
        raise ToolError("the patch is not a unified diff")
    out = "\n".join(lines)
    return out + "\n" if text.endswith("\n") or (not text and out) else out


@tool(sandbox=f"Edits workspace files only ({_WORKSPACE_ONLY}), within the file size limit.")
def replace_in_file(
    path: str,
    ctx: ToolContext,
    old: str | None = None,
    new: str = "",
    replace_all: bool = False,
    patch: str | None = None,
) -> str:
    """Edit a workspace text file: replace an exact piece of text, or apply a unified diff.

    Give either `old` (and `new`) or `patch`. `old` must occur exactly once unless
    `replace_all` is true; include enough surrounding text to make it unique.

    Args:
        path: Path relative to the workspace.
        old: The exact text to replace.
        new: The text to put in its place.
        replace_all: Replace every occurrence of `old`.
        patch: A unified diff of this one file ("@@ -1,2 +1,2 @@" hunks), applied exactly.
    """
    if (old is None) == (patch is None):
        raise ToolError("give either old (with new) or patch")
    text = _read_text(ctx, path)
    if patch is not None:
        result = _apply_patch(text, patch, path)
        summary = "applied the patch to"
    else:
        assert old is not None
        if not old:
            raise ToolError("old must not be empty")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"the text to replace was not found in {path!r}")
        if count > 1 and not replace_all:
            raise ToolError(
                f"the text to replace occurs {count} times in {path!r}: include more "
                "surrounding text, or set replace_all"
            )
        result = text.replace(old, new)
        summary = f"replaced {count if replace_all else 1} occurrence(s) in"
    write_workspace_file(
        ctx.workspace,
        path,
        result.encode("utf-8"),
        max_bytes=ctx.max_file_bytes,
        max_depth=ctx.max_dir_depth,
    )
    return f"{summary} {normalized(path)}"


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


@tool(sandbox=f"Moves within the workspace only ({_WORKSPACE_ONLY}).")
def move_file(source: str, destination: str, ctx: ToolContext, overwrite: bool = False) -> str:
    """Move or rename a file or folder inside the workspace.

    Args:
        source: The file or folder to move, relative to the workspace.
        destination: Its new path, relative to the workspace; missing folders are created.
        overwrite: Replace a file already at `destination`.
    """
    with in_parent(ctx.workspace, source) as (src_fd, src_name):
        if lstat_at(src_fd, src_name) is None:
            raise ToolError(f"no such file or directory in the workspace: {source!r}")
        with in_parent(ctx.workspace, destination, create=True, max_depth=ctx.max_dir_depth) as (
            dst_fd,
            dst_name,
        ):
            existing = lstat_at(dst_fd, dst_name)
            if existing is not None and (not overwrite or stat.S_ISDIR(existing.st_mode)):
                what = "a folder" if stat.S_ISDIR(existing.st_mode) else "a file"
                hint = "" if stat.S_ISDIR(existing.st_mode) else " (set overwrite to replace it)"
                raise ToolError(f"{destination!r} is already {what}{hint}")
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except OSError as exc:
                raise ToolError(
                    f"cannot move {source!r} to {destination!r}: {exc.strerror}"
                ) from None
    return f"moved {normalized(source)} to {normalized(destination)}"


@tool(
    sandbox=(
        f"Copies regular files within the workspace only ({_WORKSPACE_ONLY}), within the file "
        "size limit."
    )
)
def copy_file(source: str, destination: str, ctx: ToolContext, overwrite: bool = False) -> str:
    """Copy a file inside the workspace.

    Args:
        source: The file to copy, relative to the workspace.
        destination: Path of the copy, relative to the workspace; missing folders are created.
        overwrite: Replace a file already at `destination`.
    """
    data = read_workspace_file(ctx.workspace, source, max_bytes=ctx.max_file_bytes)
    target = resolve_in_workspace(ctx.workspace, destination, must_exist=False)
    if os.path.lexists(target) and not overwrite:
        raise ToolError(f"{destination!r} already exists (set overwrite to replace it)")
    write_workspace_file(
        ctx.workspace, destination, data, max_bytes=ctx.max_file_bytes, max_depth=ctx.max_dir_depth
    )
    return f"copied {normalized(source)} to {normalized(destination)} ({len(data)} bytes)"


@tool(sandbox=f"Creates folders in the workspace only ({_WORKSPACE_ONLY}), within the depth limit.")
def make_dir(path: str, ctx: ToolContext) -> str:
    """Create a folder in the workspace, with any missing parent folders (no error if it exists).

    Args:
        path: Folder path relative to the workspace, e.g. "reports/2024".
    """
    fd = open_workspace_dir(ctx.workspace, path, create=True, max_depth=ctx.max_dir_depth)
    os.close(fd)
    return f"made {normalized(path)}/"


@tool(sandbox=f"Describes workspace entries only ({_WORKSPACE_ONLY}).")
def file_info(path: str, ctx: ToolContext) -> dict[str, Any]:
    """Describe a workspace entry: its kind (file, directory, symlink), size and modification time.

    Args:
        path: Path relative to the workspace.
    """
    if normalized(path) == ".":
        resolve_in_workspace(ctx.workspace, path, must_exist=True)
        st = os.stat(os.path.realpath(ctx.workspace))
    else:
        with in_parent(ctx.workspace, path) as (fd, name):
            found = lstat_at(fd, name)
        if found is None:
            raise ToolError(f"no such file or directory in the workspace: {path!r}")
        st = found
    info: dict[str, Any] = {
        "path": normalized(path),
        "kind": _kind(st),
        "size_bytes": st.st_size,
        "modified": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(timespec="seconds"),
    }
    if stat.S_ISDIR(st.st_mode):
        info.pop("size_bytes")
    return info


@tool(
    high_impact=True,
    sandbox=(
        f"Deletes workspace entries only ({_WORKSPACE_ONLY}); a symlink is removed itself, its "
        "target is left alone; needs a person's approval by default."
    ),
)
def delete_file(path: str, ctx: ToolContext, recursive: bool = False) -> str:
    """Delete a workspace file, symlink or empty folder (a whole folder with `recursive`).

    Args:
        path: Path relative to the workspace.
        recursive: Delete a folder with everything in it.
    """
    with in_parent(ctx.workspace, path) as (fd, name):
        st = lstat_at(fd, name)
        if st is None:
            raise ToolError(f"no such file or directory in the workspace: {path!r}")
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=fd)
            return f"deleted {normalized(path)}"
        if recursive:
            # rmtree with dir_fd works on descriptors and never follows a symlink inside.
            shutil.rmtree(name, dir_fd=fd)
            return f"deleted {normalized(path)}/ and everything in it"
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            raise ToolError(
                f"{path!r} is a folder that is not empty: set recursive to delete it all"
            ) from None
    return f"deleted {normalized(path)}/"
