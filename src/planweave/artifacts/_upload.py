"""A worker hands the files a task produced to the artifact store, before it reports the task.

Uploading before the outcome goes out is what makes "a recorded artifact can be downloaded"
true on every machine: the control plane records only what the outcome lists, and the outcome
lists only files the store has. A file that vanished (or turned into a symlink) since the task
wrote it is left out; a store that cannot be reached fails the attempt, retryably, keeping the
attempt's usage and tool calls, so another attempt stores the files once the store is back.

The other way: a task whose inputs refer to large results (``workers._results``) made on
another worker machine has those files fetched from the store into its own copy of the
workspace before it runs (``fetch_files``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from planweave.artifacts.base import ArtifactStore
from planweave.errors import ArtifactNotFound, ArtifactStoreUnavailable
from planweave.messages import Outcome, WorkItem

__all__ = ["fetch_files", "store_artifacts"]

log = logging.getLogger("planweave.worker")


async def store_artifacts(
    store: ArtifactStore, item: WorkItem, outcome: Outcome, workspace: Path
) -> Outcome:
    """``outcome`` once each artifact it lists is in ``store``; a failed outcome when the
    store cannot take them."""
    kept: list[tuple[str, int, str]] = []
    for name, size, content_type in outcome.artifacts:
        try:
            await store.put(item.job_id, name, workspace, content_type=content_type)
        except ArtifactNotFound:
            log.warning(
                "task %s of job %s: artifact %r is no longer a file in the workspace; left out",
                item.task_id,
                item.job_id,
                name,
            )
            continue
        except ArtifactStoreUnavailable as exc:
            return Outcome(
                job_id=item.job_id,
                task_id=item.task_id,
                attempt=item.attempt,
                status="failed",
                error=str(exc),
                error_type="error",
                retryable=True,
                calls=outcome.calls,
                usage=outcome.usage,
            )
        kept.append((name, size, content_type))
    if len(kept) == len(outcome.artifacts):
        return outcome
    return outcome.model_copy(update={"artifacts": tuple(kept)})


async def fetch_files(store: ArtifactStore, job_id: str, names: list[str], workspace: Path) -> None:
    """Copy the job's artifacts ``names`` from ``store`` into ``workspace``, each written whole
    (a temporary file renamed) so a reader never sees part of one. An artifact the store does
    not hold is skipped (what refers to it keeps its preview).

    Raises:
        ArtifactStoreUnavailable: The store cannot be reached.
    """
    for name in names:
        try:
            download = await store.get(job_id, name)
        except ArtifactNotFound:
            log.warning("job %s: artifact %r is in no artifact store; left out", job_id, name)
            continue
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with tmp.open("wb") as out:
                async for chunk in download.chunks:
                    out.write(chunk)
            tmp.replace(path)
        finally:
            await download.close()
            tmp.unlink(missing_ok=True)
