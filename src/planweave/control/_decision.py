"""How the decider builds a decision: ``Decision`` (the events and the commands that carry them
out) and ``_Out``, which numbers each event, makes the text it carries safe to store, applies it
to the job's state as it is produced, and notes the commands that go with it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from planweave._text import bound
from planweave.constants import (
    MAX_EVENT_ARG_CHARS,
    MAX_EVENT_ARG_DEPTH,
    MAX_EVENT_ARG_ITEMS,
    MAX_EVENT_ERROR_CHARS,
    MAX_EVENT_NAME_CHARS,
    MAX_EVENT_TEXT_CHARS,
)
from planweave.events import (
    ApprovalDecided,
    ApprovalRequested,
    ArtifactCreated,
    CriticVerdict,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    LlmCalled,
    PolicyDenied,
    ReplanRequested,
    SpellEvent,
    SubtasksPlanned,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskReady,
    TaskRetrying,
    TaskReviewing,
    ToolCalled,
    trusted,
)
from planweave.state import JobState, apply

__all__ = ["Decision"]


class Decision:
    """What follows from one input: events to record, and commands that carry them out.

    Attributes:
        events: The events, in order, already applied to the job's state.
        dispatch: Tasks that became ready, in order: hand each to a worker.
        ended: Tasks whose running attempt ended (done, failed, retrying, cancelled, or
            replaced by its sub-plan): their workers are free again.
        artifacts: Files the tasks wrote: record each in the job's artifact index.
        changed: Tasks whose stored rows changed.
        all_changed: Every task's row may have changed (a new job, a replan, a reopen).
        retry_due: A retry waits for a timer: re-arm it.
        finished: The event that ended the job: once it is durable, wake the job's waiters
            and release its claim.
        abandon: The job ended while work may still run: tell the workers (with ``finished``)
            to drop what they run of it.
    """

    __slots__ = (
        "abandon",
        "all_changed",
        "artifacts",
        "changed",
        "dispatch",
        "ended",
        "events",
        "finished",
        "retry_due",
    )

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dispatch: list[str] = []
        self.ended: list[str] = []
        self.artifacts: list[ArtifactCreated] = []
        self.changed: set[str] = set()
        self.all_changed = False
        self.retry_due = False
        self.finished: Event | None = None
        self.abandon = False

    def __bool__(self) -> bool:
        return bool(self.events)


_NOTHING = Decision()
"""The decision to do nothing (shared: never add to it)."""


_Clean = Callable[[Any], Any]


def _cleaner(
    *, max_chars: int | None = None, max_items: int | None = None, max_depth: int | None = None
) -> _Clean:
    """``bound`` with these limits, and a shortcut for what it would leave as it is: ASCII text
    within ``max_chars`` and an empty dict (a tool call's name, its result, no arguments)."""
    most = sys.maxsize if max_chars is None else max_chars
    cut = partial(bound, max_chars=max_chars, max_items=max_items, max_depth=max_depth)

    def clean(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            if len(value) <= most and value.isascii():
                return value
        elif kind is dict and not value:
            return value
        return cut(value)

    return clean


_scrub = _cleaner()
_name = _cleaner(max_chars=MAX_EVENT_NAME_CHARS)
_error = _cleaner(max_chars=MAX_EVENT_ERROR_CHARS)
_text = _cleaner(max_chars=MAX_EVENT_TEXT_CHARS)
_args = _cleaner(
    max_chars=MAX_EVENT_ARG_CHARS,
    max_items=MAX_EVENT_ARG_ITEMS,
    max_depth=MAX_EVENT_ARG_DEPTH,
)

_UNTRUSTED: dict[type[Any], tuple[tuple[str, _Clean], ...]] = {
    PolicyDenied: (
        ("tool", _name), ("agent", _name), ("rule", _name), ("reason", _error), ("args", _args),
    ),
    ToolCalled: (
        ("name", _name), ("agent", _name), ("args", _args), ("result", _text), ("error", _error),
    ),
    LlmCalled: (
        ("model", _name), ("role", _name), ("agent", _name),
        ("prompt", _text), ("reply", _text), ("error", _error),
    ),
    SpellEvent: (("spell", _name), ("name", _name), ("data", _args)),
    TaskCompleted: (("result", _scrub),),
    JobCompleted: (("result", _scrub),),
    SubtasksPlanned: (("tasks", _scrub),),
    TaskRetrying: (("error", _error),),
    TaskReviewing: (("candidate", _scrub), ("critic", _name)),
    CriticVerdict: (("feedback", _text), ("critic", _name), ("model", _name)),
    TaskFailed: (("error", _error),),
    TaskCancelled: (("reason", _error),),
    ReplanRequested: (("reason", _error), ("goal", _text)),
    JobFailed: (("reason", _error),),
    JobCancelled: (("reason", _error),),
    ArtifactCreated: (("name", _scrub), ("content_type", _name)),
    ApprovalRequested: (("tool", _name), ("args", _args), ("reason", _error)),
    ApprovalDecided: (("tool", _name), ("by", _name), ("reason", _error)),
}  # fmt: skip
"""The fields of each event that carry text from a model, a tool or a person, and how each is
made safe to store: lone surrogates replaced, sizes cut to the ``MAX_EVENT_*`` limits. Task
results are only scrubbed (their size is held by ``max_result_bytes`` where they are made)."""


class _Out:
    """Builds a decision: numbers and applies each event as it is produced, and notes the
    commands that go with it."""

    __slots__ = ("cause", "decision", "events", "now", "state")

    def __init__(self, state: JobState, now: float, cause: str | None) -> None:
        self.state = state
        self.now = now
        self.cause = cause
        self.decision = Decision()
        self.events = self.decision.events

    def emit(self, cls: type[Any], task_id: str | None = None, **fields: Any) -> Any:
        return self._emit(cls, task_id, fields)

    def _emit(self, cls: type[Any], task_id: str | None, fields: dict[str, Any]) -> Any:
        state = self.state
        seq = state.seq + 1
        fields["job_id"] = state.id
        fields["task_id"] = task_id
        fields["seq"] = seq
        fields["id"] = f"{state.id}:{seq}"
        fields["at"] = self.now
        fields["causation_id"] = self.cause
        untrusted = _UNTRUSTED.get(cls)
        if untrusted is not None:
            for name, clean in untrusted:
                value = fields.get(name)
                if value is not None:
                    fields[name] = clean(value)
        event = trusted(cls, fields)  # built from valid values, made safe above: nothing to check
        apply(state, event)
        self.events.append(event)
        if task_id is not None:
            self.decision.changed.add(task_id)
        return event

    def add(self, event: LlmCalled | ToolCalled | PolicyDenied | SpellEvent, task_id: str) -> None:
        """Number and apply a call event a worker built itself (a ``tool`` task's call)."""
        self._emit(type(event), task_id, dict(event.__dict__))  # the ids, number, time are set

    def ready(self, task_id: str) -> None:
        """The task may run now: record it, and dispatch it."""
        self.emit(TaskReady, task_id)
        self.decision.dispatch.append(task_id)

    def end(self, cls: type[Any], task_id: str, **fields: Any) -> None:
        """The task's attempt (if one runs) is over: record why, and free its worker."""
        self.emit(cls, task_id, **fields)
        self.decision.ended.append(task_id)

    def done(self) -> Decision:
        return self.decision
