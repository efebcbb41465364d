"""The step journal: every model call and tool call of a running task, recorded as it completes,
and replayed when the task runs again after a crash.

Why: an agent task is a chain of model and tool calls. Without a record of them, a task whose
process dies mid-way starts over and makes every call again, so a tool with side effects (it
sends a mail, writes a row, charges a card) acts twice. With the journal, each completed call is
written to the store (by the control plane that owns the job, in its group commit) before the
next call starts; an attempt that runs after a crash gets the recorded results and returns them
in order instead of calling again, and goes on live from the first call that has none. Only the
call that was in flight when the process died can run twice.

A call's place in the run is its *step*: ``"0"``, ``"1"``, … in the order the calls start, and
``"3.0"``, ``"3.1"`` for the calls made inside call ``"3"`` (a tool that calls the model), so a
replayed tool call skips the calls it made itself. Branches that run at once (a parallel
workflow inside one task) are numbered each on its own, below one step of the run
(``"4.0.0"``, ``"4.0.1"`` for the first branch, ``"4.1.0"`` for the second), so however their
calls interleave, each call keeps its step. Each step carries a *fingerprint* of what was
asked (the model and request, or the tool's name and arguments). Replay matches by step and
fingerprint: the first call whose fingerprint differs from the recorded one stops replay, and
it and every later call of the attempt run live (the run took another path, so what follows
was never recorded). An agent gets the same results by keeping to one rule: given the results
of its calls, it makes the same calls in the same order (no clock, no randomness, no outside
state in what it asks).

The worker runs each task inside :func:`activated` with the attempt's :class:`Journal`; the one
model-call path (``llm._record``) and the one tool-call path (``tools._runtime``) ask
:func:`begin` for their step. Outside a journaled task, ``begin`` returns ``None`` and calls run
as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Journal",
    "JournalStep",
    "Step",
    "StepKind",
    "activated",
    "begin",
    "branches",
    "fingerprint",
    "json_value",
]

log = logging.getLogger("planweave.journal")

StepKind = Literal["model", "tool"]


class JournalStep(BaseModel):
    """One recorded call, as it travels between a worker and the control plane.

    Attributes:
        step: The call's place in the run (``"3"``, ``"3.0"``).
        kind: ``model`` or ``tool``.
        fingerprint: A hash of what was asked.
        result: What the call returned, as JSON.
        attempt: The attempt that recorded it.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    step: str
    kind: StepKind
    fingerprint: str
    result: Any = None
    attempt: int = 0


Record = Callable[[JournalStep], Awaitable[None]]
"""Records one step; returns once it is durable (raises when it cannot be recorded)."""


def fingerprint(*parts: str) -> str:
    """A short hash of what a call asked."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def json_value(value: Any) -> Any:
    """``value`` as it will come back from the journal: its JSON form (text for what JSON
    cannot hold)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


class Journal:
    """The journal of one attempt of one task: the steps recorded before it, and where it
    records its own."""

    __slots__ = ("_record", "_recorded", "live", "mismatch", "replayed")

    def __init__(self, steps: Iterable[JournalStep], record: Record) -> None:
        self._recorded = {step.step: step for step in steps}
        self._record = record
        self.live = not self._recorded
        """Whether replay is over (nothing recorded, or a call differed from its record)."""
        self.replayed = 0
        """How many calls were answered from the journal."""
        self.mismatch: str | None = None
        """The step whose fingerprint differed from its record, if one did."""

    def _take(self, key: str, kind: StepKind, print_: str) -> JournalStep | None:
        if self.live:
            return None
        found = self._recorded.get(key)
        if found is None:
            return None  # the call that was in flight: it runs live
        if found.kind != kind or found.fingerprint != print_:
            self.live = True
            self.mismatch = key
            log.warning(
                "step %s differs from its record (%s call asked something else): replay stops "
                "and the task goes on live from here",
                key,
                kind,
            )
            return None
        self.replayed += 1
        return found

    async def record(self, step: JournalStep) -> None:
        await self._record(step)


class _Scope:
    """Where the next call of a run goes: the journal, the prefix of its step and its index."""

    __slots__ = ("count", "journal", "prefix")

    def __init__(self, journal: Journal, prefix: str) -> None:
        self.journal = journal
        self.prefix = prefix
        self.count = 0


_SCOPE: ContextVar[_Scope | None] = ContextVar("planweave_journal_scope", default=None)


@contextlib.contextmanager
def activated(journal: Journal | None) -> Iterator[None]:
    """Journal the model and tool calls made inside (``None``: none of them)."""
    token = _SCOPE.set(None if journal is None else _Scope(journal, ""))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def branches(count: int) -> list[contextlib.AbstractContextManager[None]]:
    """One numbering each for ``count`` branches that run at once: enter the ``i``-th inside
    branch ``i`` (in the branch's own task, so it holds there alone). Outside a journaled task
    they number nothing."""
    scope = _SCOPE.get()
    if scope is None:
        return [contextlib.nullcontext() for _ in range(count)]
    index = scope.count
    scope.count = index + 1
    journal = scope.journal
    return [_entered(_Scope(journal, f"{scope.prefix}{index}.{i}.")) for i in range(count)]


@contextlib.contextmanager
def _entered(scope: _Scope) -> Iterator[None]:
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


class Step:
    """One call's place in the journal: its recorded result, or how to record it."""

    __slots__ = ("journal", "key", "kind", "print_", "recorded")

    def __init__(
        self, journal: Journal, key: str, kind: StepKind, print_: str, recorded: JournalStep | None
    ) -> None:
        self.journal = journal
        self.key = key
        self.kind = kind
        self.print_ = print_
        self.recorded = recorded

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Number the calls made while this one runs below it (``"3.0"``, ``"3.1"``)."""
        token = _SCOPE.set(_Scope(self.journal, f"{self.key}."))
        try:
            yield
        finally:
            _SCOPE.reset(token)

    async def done(self, result: Any) -> None:
        """Record the call's result (JSON); returns once it is durable."""
        await self.journal.record(
            JournalStep(step=self.key, kind=self.kind, fingerprint=self.print_, result=result)
        )


def begin(kind: StepKind, print_of: Callable[[], str]) -> Step | None:
    """The step of a call about to start (``None`` outside a journaled task, without calling
    ``print_of``, which gives the call's fingerprint).

    Its ``recorded`` is the step's recorded result when replay holds: the caller returns that
    instead of calling.
    """
    scope = _SCOPE.get()
    if scope is None:
        return None
    print_ = print_of()
    index = scope.count
    scope.count = index + 1
    key = f"{scope.prefix}{index}"
    journal = scope.journal
    return Step(journal, key, kind, print_, journal._take(key, kind, print_))
