"""Artifact stores: where the bytes of the files jobs produce live, chosen by URL.

``open_artifact_store("file:///srv/planweave-artifacts")`` or
``open_artifact_store("s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000")``; without one
the engine serves each artifact from its job's workspace. The backend module is imported only
when its scheme is used (see ``planweave._backends``), so boto3 is needed only for ``s3://``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from planweave._backends import backend_class
from planweave.artifacts._upload import fetch_files, store_artifacts
from planweave.artifacts.base import ArtifactDownload, ArtifactStore

__all__ = [
    "ArtifactDownload",
    "ArtifactStore",
    "fetch_files",
    "open_artifact_store",
    "store_artifacts",
    "workspace_artifact_store",
]


def open_artifact_store(url: str) -> ArtifactStore:
    """Create the artifact store for ``url``; the caller then awaits ``store.open()``.

    Args:
        url: ``file:///absolute/folder`` or ``s3://bucket/prefix`` (query parameters
            ``endpoint_url``, ``region``, ``addressing_style``).

    Raises:
        UnknownBackend: The URL's scheme is not one of the known ones.
        MissingDependency: The backend needs an optional package that is not installed
            (``pip install 'planweave[s3]'``).
        ConfigError: The URL is malformed.
    """
    return cast(ArtifactStore, backend_class("artifacts", url)(url))


def workspace_artifact_store(
    root: Path, workspace_of: Callable[[str], Awaitable[Path]]
) -> ArtifactStore:
    """The default store: each job's artifacts are served from its workspace, where its tasks
    wrote them (``workspace_of``: a job id -> that folder; ``root``: the default workspaces'
    folder, for the store's ``url``)."""
    from planweave.artifacts.files import FileArtifactStore

    return FileArtifactStore(f"file://{root}", workspace_of=workspace_of)
