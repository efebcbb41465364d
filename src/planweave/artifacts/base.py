"""The artifact store protocol: where the bytes of the files a job produced live.

A task writes files into its job's workspace on whatever machine its worker runs. The worker
hands each file the task produced to the artifact store (``put``) before it reports the outcome,
so an artifact the control plane records is always there to download; the API reads it back
from the store (``open``), on any machine, and deleting a job deletes its files
(``delete_job``). The store is chosen by URL: ``file://DIR`` (the default: the job's workspace
is the store) or ``s3://bucket/prefix`` (any S3-compatible object storage).

The contract (tests/test_artifacts.py checks it against every backend):

* ``put`` stores the file ``name`` of a workspace under ``(job_id, name)``, replacing what was
  stored under that name. The file is opened inside the workspace without following symlinks:
  a name that leaves it, or a symlink, is refused with ``ArtifactNotFound``.
* ``open`` returns the stored bytes with their size; a name never stored (or one that would
  leave the job's folder) raises ``ArtifactNotFound``.
* ``delete_job`` removes every file stored for the job; a job with none is not an error.
* A store that cannot be reached raises ``ArtifactStoreUnavailable``, from ``open()`` at start-up
  as from any call after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from planweave.errors import ArtifactNotFound

__all__ = ["ArtifactDownload", "ArtifactStore", "check_name"]


@dataclass(slots=True)
class ArtifactDownload:
    """An artifact opened for reading.

    Attributes:
        size_bytes: How many bytes ``chunks`` yields in all.
        content_type: The type the store recorded for it, if any.
        chunks: The bytes, in pieces; iterate it to the end or call ``aclose``.
        close: Releases what reading holds (a file, a connection) when not read to the end.
    """

    size_bytes: int
    content_type: str | None
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]

    async def read(self) -> bytes:
        """All the bytes at once (for small artifacts and tests)."""
        parts = [chunk async for chunk in self.chunks]
        return b"".join(parts)


@runtime_checkable
class ArtifactStore(Protocol):
    """Stores the files tasks produced, by job and name."""

    url: str
    """Where the store keeps files, as given (credentials never appear in it)."""

    async def open(self) -> None:
        """Connect and check the store is usable (an S3 bucket exists and can be reached).

        Raises:
            ArtifactStoreUnavailable: The store cannot be reached.
            ConfigError: The store is misconfigured (no such bucket, no credentials).
        """

    async def close(self) -> None:
        """Release connections."""

    async def put(
        self, job_id: str, name: str, workspace: Path, *, content_type: str | None = None
    ) -> None:
        """Store the file ``name`` of ``workspace`` as the job's artifact ``name``.

        Raises:
            ArtifactNotFound: No regular file of that name inside the workspace.
            ArtifactStoreUnavailable: The store cannot be reached or refused the write.
        """

    async def get(self, job_id: str, name: str) -> ArtifactDownload:
        """Open the job's artifact ``name`` for reading.

        Raises:
            ArtifactNotFound: The store holds no such artifact.
            ArtifactStoreUnavailable: The store cannot be reached.
        """

    async def delete_job(self, job_id: str) -> None:
        """Delete every artifact stored for the job.

        Raises:
            ArtifactStoreUnavailable: The store cannot be reached or refused the deletion.
        """


def check_name(job_id: str, name: str) -> str:
    """``name`` as a relative POSIX path that stays inside the job's folder.

    Raises:
        ArtifactNotFound: The name is empty, absolute, has ``..``, ``.``, empty or hidden
            parts, a backslash or a NUL (no task's artifact is named so), or the job id is not
            a single path part.
    """
    path = PurePosixPath(name)
    if (
        not job_id
        or job_id in (".", "..")
        or any(char in job_id for char in "/\\\x00")
        or not name
        or "\x00" in name
        or "\\" in name
        or path.is_absolute()
        or name.endswith("/")
        or any(part in ("", ".", "..") or part.startswith(".") for part in name.split("/"))
    ):
        raise ArtifactNotFound(job_id, name)
    return name
