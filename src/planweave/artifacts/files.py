"""Artifacts as files in a folder: ``file://DIR``, and the default, where the workspace is the store.

``file://DIR`` keeps each job's artifacts in ``DIR/<job id>/<name>``: a worker copies a file its
task produced there (a folder every machine mounts makes it reachable from all of them). The
default store (no ``artifact_store`` set) is the job's own workspace: a file is already where it
is served from, so ``put`` does nothing, and ``delete_job`` leaves the workspace to the control
plane, which removes a default workspace and keeps one the job was given.

Every file is opened one folder at a time without following symlinks (``open_in_workspace``),
and only a regular file with one link is read, so neither ``..`` in a name nor a symlink or hard
link a tool left in its workspace reaches any other file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from planweave.artifacts.base import ArtifactDownload, check_name
from planweave.constants import ARTIFACT_CHUNK_BYTES
from planweave.errors import (
    ArtifactNotFound,
    ArtifactStoreUnavailable,
    ConfigError,
    PlanweaveError,
)

__all__ = ["FileArtifactStore"]

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK
_DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_TMP_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)

WorkspaceOf = Callable[[str], Awaitable[Path]]
"""A job id -> the folder of its workspace."""


def _path_of(url: str) -> Path:
    if not url.lower().startswith("file://"):
        raise ConfigError(f"a file artifact store URL starts with file://, got {url!r}")
    text = url[len("file://") :]
    if not text:
        raise ConfigError(f"{url!r} names no folder: use file:///absolute/folder")
    return Path(text).expanduser().resolve()


def _open_regular(folder: Path, job_id: str, name: str) -> tuple[int, os.stat_result]:
    """An open descriptor of the regular, singly linked file ``name`` inside ``folder``."""
    from planweave.tools._paths import open_in_workspace  # loads the tools package

    try:
        fd = open_in_workspace(folder, name, _READ_FLAGS)
    except (PlanweaveError, OSError):
        raise ArtifactNotFound(job_id, name) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise ArtifactNotFound(job_id, name)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _open_folder(base: Path, parent: str) -> int:
    """A descriptor of the folder ``parent`` (a checked name's parent) inside ``base``, made
    where missing, one folder at a time, never through a symlink (``O_NOFOLLOW`` fails on one)."""
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, _DIR_FLAGS)
    try:
        for part in parent.split("/") if parent else ():
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy(source_fd: int, folder_fd: int, leaf: str) -> None:
    """Write the open file into ``folder_fd`` as ``leaf``, atomically (a temporary file, then a
    rename), so a reader never sees half a file."""
    tmp = f".{leaf}.{uuid.uuid4().hex}.tmp"
    out = os.open(tmp, _TMP_FLAGS, 0o644, dir_fd=folder_fd)
    try:
        with os.fdopen(out, "wb") as sink, os.fdopen(os.dup(source_fd), "rb") as source:
            while chunk := source.read(ARTIFACT_CHUNK_BYTES * 16):
                sink.write(chunk)
        os.replace(tmp, leaf, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder_fd)
        raise


async def _chunks(fh: BinaryIO, size: int) -> AsyncGenerator[bytes, None]:
    with fh:
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(fh.read, min(ARTIFACT_CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


class FileArtifactStore:
    """Artifacts as files: in ``DIR/<job id>/`` (``file://DIR``), or in each job's workspace.

    Args:
        url: ``file:///absolute/folder`` (``~`` is expanded, a relative folder is taken from
            the current directory).
        workspace_of: Makes this the default store, where a job's workspace holds its
            artifacts: the folder of a job's workspace (the engine's ``workspace``). ``put``
            does nothing and ``delete_job`` leaves the workspace alone.
    """

    def __init__(self, url: str, *, workspace_of: WorkspaceOf | None = None) -> None:
        self.url = url
        self.root = _path_of(url)
        self._workspace_of = workspace_of

    async def open(self) -> None:
        if self._workspace_of is not None:
            return
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactStoreUnavailable(
                f"cannot use the artifact folder {str(self.root)!r}: {exc.strerror or exc}"
            ) from None

    async def close(self) -> None:
        return None

    async def _folder(self, job_id: str) -> Path:
        if self._workspace_of is not None:
            return await self._workspace_of(job_id)
        return self.root / job_id

    async def put(
        self, job_id: str, name: str, workspace: Path, *, content_type: str | None = None
    ) -> None:
        check_name(job_id, name)
        if self._workspace_of is not None:
            return  # the file is already where it is served from
        await asyncio.to_thread(self._put, job_id, name, workspace)

    def _put(self, job_id: str, name: str, workspace: Path) -> None:
        fd, st = _open_regular(workspace, job_id, name)
        try:
            base = self.root / job_id
            parent, leaf = str(PurePosixPath(name).parent), PurePosixPath(name).name
            parent = "" if parent == "." else parent
            try:
                there = os.stat(base / name, follow_symlinks=False)
                if (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino):
                    return  # the workspace is this store's folder: nothing to copy
            except OSError:
                pass
            folder_fd = _open_folder(base, parent)
            try:
                _copy(fd, folder_fd, leaf)
            finally:
                os.close(folder_fd)
        except OSError as exc:
            raise ArtifactStoreUnavailable(
                f"cannot write artifact {name!r} of job {job_id} to {str(self.root)!r}: "
                f"{exc.strerror or exc}"
            ) from None
        finally:
            os.close(fd)

    async def get(self, job_id: str, name: str) -> ArtifactDownload:
        check_name(job_id, name)
        folder = await self._folder(job_id)
        fd, st = await asyncio.to_thread(_open_regular, folder, job_id, name)
        fh = os.fdopen(fd, "rb")
        chunks = _chunks(fh, st.st_size)

        async def close() -> None:
            await chunks.aclose()
            fh.close()  # also when reading never started

        return ArtifactDownload(
            size_bytes=st.st_size, content_type=None, chunks=chunks, close=close
        )

    async def delete_job(self, job_id: str) -> None:
        if self._workspace_of is not None:
            return  # the control plane removes a default workspace and keeps a given one
        check_name(job_id, "x")
        from planweave.tools._remove import remove_tree  # loads the tools package

        try:
            await asyncio.to_thread(remove_tree, self.root / job_id)
        except OSError as exc:
            raise ArtifactStoreUnavailable(
                f"cannot delete the artifacts of job {job_id} in {str(self.root)!r}: "
                f"{exc.strerror or exc}"
            ) from None
