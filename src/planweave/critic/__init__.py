"""Critics: checks of an ``execute`` task's answer before the job accepts it.

A critic returns a structured ``Verdict``: ``pass`` (the answer is accepted), ``revise`` (the
task runs again with the feedback), ``replan`` (the planner plans the unfinished work anew) or
``reject`` (the task fails with the reason). The built-in critic ``llm`` asks a model; a Python
critic is a function ``(task, answer) -> Verdict`` registered by name (``Engine(critics=...)``
or the ``critics`` setting, by import path, so ``planweave worker`` processes load it too).
Critics run in workers of the ``critic`` kind: the control plane sends a task there when its
answer needs checking, and the verdict comes back as the attempt's outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planweave.constants import CRITIC_LLM
from planweave.errors import ConfigError, UsageError
from planweave.events import VerdictKind

__all__ = [
    "CRITIC_LLM",
    "CriticFunction",
    "CriticRegistry",
    "CriticTask",
    "Verdict",
    "load_critics",
]


class Verdict(BaseModel):
    """A critic's decision about one answer.

    Attributes:
        verdict: ``pass``, ``revise``, ``replan`` or ``reject``.
        feedback: For ``revise``, what to change (required); for ``replan`` and ``reject``,
            why (the task's failure reason names it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: VerdictKind
    feedback: str = Field(default="", max_length=8000)

    @model_validator(mode="after")
    def _feedback_for_revise(self) -> Verdict:
        if self.verdict == "revise" and not self.feedback.strip():
            raise ValueError("a 'revise' verdict needs feedback saying what to change")
        return self


@dataclass(frozen=True, kw_only=True)
class CriticTask:
    """The task whose answer a critic checks.

    Attributes:
        job_id: The job.
        task_id: The task.
        goal: The task's goal.
        job_goal: The goal of the whole job.
        inputs: Results of the tasks it depends on, by task id.
        feedback: The critic's feedback on its earlier answers, oldest first.
    """

    job_id: str
    task_id: str
    goal: str
    job_goal: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    feedback: tuple[str, ...] = ()

    @property
    def revision(self) -> int:
        """Revisions of the task so far (0: this is its first answer)."""
        return len(self.feedback)


CriticFunction = Callable[[CriticTask, Any], "Verdict | Mapping[str, Any] | Awaitable[Any]"]
"""A Python critic: called with the task and its answer; returns a ``Verdict`` (or a mapping
with its fields), or an awaitable of one."""


def as_verdict(value: Any, *, critic: str) -> Verdict:
    """``value`` as a ``Verdict``.

    Raises:
        UsageError: it is neither a ``Verdict`` nor a mapping of a valid one.
    """
    if isinstance(value, Verdict):
        return value
    if isinstance(value, Mapping):
        try:
            return Verdict.model_validate(dict(value))
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise UsageError(
                f"critic {critic!r} returned an invalid verdict: {problem['msg']}"
            ) from None
    raise UsageError(
        f"critic {critic!r} returned {type(value).__name__}, not a Verdict "
        "(return planweave.critic.Verdict(verdict=..., feedback=...))"
    )


class CriticRegistry:
    """Python critics by name (the built-in ``llm`` critic is always there)."""

    def __init__(self, critics: Mapping[str, CriticFunction | str] | None = None) -> None:
        self._critics: dict[str, CriticFunction] = {}
        for name, value in (critics or {}).items():
            self.register(name, value)

    def register(self, name: str, critic: CriticFunction | str) -> None:
        """Add a critic under ``name``: a function, or the import path of one
        (``package.module:name`` or ``file.py:name``).

        Raises:
            ConfigError: the name is taken, is ``llm``, or the value is not callable.
        """
        if not name or name == CRITIC_LLM:
            raise ConfigError(
                f"a critic cannot be named {name!r} (the built-in LLM critic is 'llm')"
            )
        if name in self._critics:
            raise ConfigError(f"a critic named {name!r} is already registered")
        function = _load(critic) if isinstance(critic, str) else critic
        if not callable(function):
            raise ConfigError(f"critic {name!r} is not callable: {function!r}")
        self._critics[name] = function

    def names(self) -> list[str]:
        """Every critic a job may name: ``llm`` and the registered ones."""
        return [CRITIC_LLM, *sorted(self._critics)]

    def __contains__(self, name: object) -> bool:
        return name == CRITIC_LLM or name in self._critics

    def get(self, name: str) -> CriticFunction | None:
        """The Python critic called ``name`` (``None`` for ``llm``, the model's critic).

        Raises:
            UsageError: no critic has that name; the message lists the known ones.
        """
        if name == CRITIC_LLM:
            return None
        found = self._critics.get(name)
        if found is None:
            raise UsageError(f"unknown critic {name!r}; known critics: {', '.join(self.names())}")
        return found


def _load(spec: str) -> Any:
    from planweave._plugins import _module

    target, sep, attr = spec.strip().rpartition(":")
    if not sep or not target or not attr:
        raise UsageError(f"critic {spec!r}: name it as package.module:name or file.py:name")
    module = _module(target)
    if not hasattr(module, attr):
        raise UsageError(f"critic {spec!r}: {target} has no {attr!r}")
    return getattr(module, attr)


def load_critics(specs: Iterable[str]) -> dict[str, str]:
    """The critics the ``critics`` setting names, by name: each ``name=package.module:attr``
    (or ``package.module:attr``, named ``attr``), as import paths for ``Engine(critics=...)``.

    Raises:
        UsageError: an entry without an import path.
    """
    found: dict[str, str] = {}
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        name, sep, path = spec.partition("=")
        if not sep:
            path = spec
            name = spec.rpartition(":")[2]
        if ":" not in path or not name.strip():
            raise UsageError(
                f"critic {spec!r}: name it as NAME=package.module:attr or package.module:attr"
            )
        found[name.strip()] = path.strip()
    return found
