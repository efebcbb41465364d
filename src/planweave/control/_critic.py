"""The decider's part of the critic (``docs/critic.md``): which critic checks a task, and what
a critic's verdict means for it. Pure functions of the job's state, like the rest of the
decider; ``decider`` records the events they describe.
"""

from __future__ import annotations

from typing import Any

from planweave.constants import CRITIC_LLM
from planweave.messages import Outcome
from planweave.state import JobState, TaskState

__all__ = ["critic_for", "verdict_of"]

_VERDICTS = frozenset({"pass", "revise", "replan", "reject"})


def critic_for(state: JobState, task: TaskState, agent_critic: str | None) -> str | None:
    """The critic that checks the task's answer (``None``: none does). The task's own choice
    comes first, then its agent's, then the job's."""
    if task.spec.kind != "execute":
        return None
    chosen = task.spec.critic
    if chosen is False:
        return None
    if isinstance(chosen, str):
        return chosen
    fallback = agent_critic or state.options.critic
    if chosen is True:
        return fallback or CRITIC_LLM
    return fallback


def verdict_of(
    state: JobState, task: TaskState, outcome: Outcome
) -> tuple[dict[str, Any] | None, str | None]:
    """A critic's outcome as the fields of its ``CriticVerdict`` event, and, when the verdict
    fails the task, the reason it fails with. No fields: the outcome held no valid verdict."""
    found = outcome.result if isinstance(outcome.result, dict) else {}
    verdict = found.get("verdict")
    if verdict not in _VERDICTS:
        return None, "the critic returned no valid verdict"
    feedback = found.get("feedback")
    feedback = feedback if isinstance(feedback, str) else ""
    model = found.get("model")
    revision = len(task.spec.feedback)
    fields: dict[str, Any] = {
        "attempt": task.attempt,
        "verdict": verdict,
        "feedback": feedback,
        "revision": revision,
        "critic": task.spec.critic if isinstance(task.spec.critic, str) else CRITIC_LLM,
        "model": model if isinstance(model, str) else None,
        "usage": outcome.usage,
    }
    why = feedback or "no reason given"
    limit = state.options.max_revisions
    if verdict == "pass" or (verdict == "revise" and revision < limit):
        return fields, None
    if verdict == "revise":
        return fields, (
            f"the critic still asked for changes after {revision} revisions "
            f"(max_revisions is {limit}): {why}"
        )
    if verdict == "reject":
        return fields, f"the critic rejected its answer: {why}"
    return fields, f"the critic asked for a new plan: {why}"
