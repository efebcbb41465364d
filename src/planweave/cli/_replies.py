"""The replies models are writing, by task, for the live view of ``planweave run``.

The CLI follows the job with deltas on; each ``LlmDelta`` is added here, and the live tree shows
the tail of a running task's current reply under its line (the composer's answer, as it is
written, included). Only the latest call of a task's latest attempt is kept: a new call starts
its text afresh.
"""

from __future__ import annotations

from rich.text import Text

from planweave.events import LlmDelta

__all__ = ["REPLY_LINES", "ReplyView", "reply_tail"]

REPLY_LINES = 4
"""Lines of a reply shown under its task."""
_KEPT_CHARS = 4_000


class ReplyView:
    """The text of each task's reply being written, built from its deltas."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._calls: dict[str, tuple[int, int]] = {}

    def add(self, delta: LlmDelta) -> None:
        """Add a delta to its task's reply (a later call or attempt replaces the text)."""
        task_id = delta.task_id
        if task_id is None:
            return
        call = (delta.attempt, delta.call)
        current = self._calls.get(task_id)
        if current is not None and call < current:
            return  # a late piece of an earlier call
        text = self._texts.get(task_id, "") if current == call else ""
        self._calls[task_id] = call
        self._texts[task_id] = (text + delta.text)[-_KEPT_CHARS:]

    def text(self, task_id: str) -> str:
        """The task's reply so far ("" when none is being written)."""
        return self._texts.get(task_id, "")

    def as_dict(self) -> dict[str, str]:
        return dict(self._texts)


def reply_tail(text: str, *, lines: int = REPLY_LINES, width: int = 100) -> Text:
    """The last ``lines`` lines of ``text`` (each cut to ``width``), dim, for the tree."""
    shown = [
        line if len(line) <= width else "…" + line[-(width - 1) :] for line in text.splitlines()
    ]
    shown = [line for line in shown if line.strip()][-lines:]
    return Text("\n".join(shown), style="dim italic")
