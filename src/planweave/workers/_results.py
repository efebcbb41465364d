"""Large task results live in the job's workspace, not in events, rows and messages.

A result is copied into its ``TaskCompleted`` event, its task row, every work item of the tasks
that depend on it and every read of the job; one 500 KB file read by 400 tasks would be kept
hundreds of times over. So a result whose JSON is larger than the job's ``max_result_bytes`` is
written once, as ``results/<task id>.txt`` (a string) or ``.json`` (any other value), in the
job's workspace, becomes an artifact of the task, and the task's result is a small reference to
it with a preview. A dependent task gets the whole value back: its worker reads the file before
it runs the task, so what a task sees as its inputs does not depend on their size.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from planweave.constants import RESULT_PREVIEW_CHARS, RESULTS_FOLDER
from planweave.messages import Outcome, WorkItem

__all__ = [
    "REFERENCE_KEY",
    "has_references",
    "load_inputs",
    "may_spill",
    "missing_references",
    "spill_result",
]

REFERENCE_KEY: Final = "result_artifact"
"""The key that marks a result as a reference to its artifact file."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _size(value: Any) -> tuple[int, bytes]:
    if isinstance(value, str):
        data = value.encode("utf-8", "replace")
    else:
        data = json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "replace")
    return len(data), data


def spill_result(item: WorkItem, outcome: Outcome, workspace: Path) -> Outcome:
    """The outcome with its result moved to an artifact file when it is over the job's cap."""
    if not may_spill(item, outcome):
        return outcome
    result = outcome.result
    size, data = _size(result)
    if size <= item.max_result_bytes:
        return outcome
    suffix = ".txt" if isinstance(result, str) else ".json"
    name = f"{RESULTS_FOLDER}/{_UNSAFE.sub('_', item.task_id)}{suffix}"
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    preview = result if isinstance(result, str) else data.decode("utf-8", "replace")
    reference = {
        REFERENCE_KEY: name,
        "bytes": size,
        "preview": preview[:RESULT_PREVIEW_CHARS],
    }
    content_type = "text/plain" if suffix == ".txt" else "application/json"
    artifacts = (*(a for a in outcome.artifacts if a[0] != name), (name, size, content_type))
    return outcome.model_copy(update={"result": reference, "artifacts": artifacts})


def may_spill(item: WorkItem, outcome: Outcome) -> bool:
    """Whether the outcome's result may be over the cap (cheap: no encoding)."""
    result = outcome.result
    if outcome.status != "succeeded" or result is None or isinstance(result, bool | int | float):
        return False
    return not isinstance(result, str) or len(result) * 4 > item.max_result_bytes


def has_references(inputs: dict[str, Any]) -> bool:
    """Whether any input is a reference to a result artifact."""
    return any(_is_reference(v) for v in inputs.values())


def _is_reference(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get(REFERENCE_KEY), str)
        and set(value) <= {REFERENCE_KEY, "bytes", "preview"}
    )


def missing_references(inputs: dict[str, Any], workspace: Path) -> list[str]:
    """The names of the result files ``inputs`` refer to that this machine's copy of the
    workspace lacks (the task that made them ran on another worker machine)."""
    folder = (workspace / RESULTS_FOLDER).resolve()
    missing: list[str] = []
    for value in inputs.values():
        if not _is_reference(value):
            continue
        name = value[REFERENCE_KEY]
        path = (workspace / name).resolve()
        if path.is_relative_to(folder) and not path.is_file():
            missing.append(name)
    return missing


def load_inputs(inputs: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """``inputs`` with each reference to a result artifact replaced by the stored value.

    Only files under the workspace's ``results`` folder are read; a reference that points
    elsewhere, or whose file is gone, stays as it is (its preview is what the task sees).
    """
    if not has_references(inputs):
        return inputs
    folder = (workspace / RESULTS_FOLDER).resolve()
    loaded = dict(inputs)
    for key, value in inputs.items():
        if not _is_reference(value):
            continue
        name = value[REFERENCE_KEY]
        path = (workspace / name).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            continue
        text = path.read_text("utf-8", errors="replace")
        if name.endswith(".json"):
            try:
                loaded[key] = json.loads(text)
            except ValueError:
                loaded[key] = text
        else:
            loaded[key] = text
    return loaded
