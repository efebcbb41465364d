"""Telling an agent's answer from junk: empty text, or the engine's own instructions echoed.

Small models under pressure (a step budget running out, a grammar forcing a ``final_answer``)
often copy the last instruction they were given into their answer: "You have used all your
steps. Give your final answer now…". Passed on, such text becomes a task's result and the job's
answer, and the job reports success. So an answer is checked against every prompt text the
engine writes (the agents' guides, nudges and observation footers, the planner's and composer's
system prompts); one that repeats a large part of one of them, or is empty, is rejected and the
attempt fails (retryably: another sample may do better).

The comparison works on word 5-grams (shingles), so it is linear in the answer's length and
insensitive to case, punctuation and line breaks. An answer is an echo when most of its
shingles come from the engine's prompts, or when it holds half of one prompt's shingles; an
answer too short for a shingle is an echo when it is a run of at least three words of a prompt.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from planweave.errors import AnswerProblem, AnswerRejected

__all__ = ["answer_problem", "check_answer", "echoes_instructions", "rejection"]

_SHINGLE_WORDS = 5
_MIN_SHORT_ECHO_WORDS = 3
_MOSTLY_ECHO = 0.6
"""Share of an answer's shingles found in the engine's prompts that makes it an echo."""
_LARGE_PART = 0.5
"""Share of one prompt's shingles found in an answer that makes it an echo."""

_WORD_RE = re.compile(r"[a-z0-9_]+")
_PLACEHOLDER_RE = re.compile(r"(?<!\{)\{[a-z_]+\}(?!\})")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _shingles(words: list[str]) -> frozenset[tuple[str, ...]]:
    n = _SHINGLE_WORDS
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


@dataclass(frozen=True, slots=True)
class _Prompt:
    joined: str  # " word word … " (padded, for whole-word substring tests)
    shingles: frozenset[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _Prompts:
    items: tuple[_Prompt, ...]
    shingles: frozenset[tuple[str, ...]]


def _fragments(template: str) -> list[str]:
    """The literal parts of a prompt template (placeholders cut out, escaped braces undone)."""
    parts = _PLACEHOLDER_RE.split(template)
    return [part.replace("{{", "{").replace("}}", "}") for part in parts]


@functools.cache
def _prompts() -> _Prompts:
    # Imported here: these modules import this one.
    from planweave.agents import _output, composer, planner, react

    items: list[_Prompt] = []
    templates = (
        *react.PROMPT_TEXTS,
        *planner.PROMPT_TEXTS,
        *composer.PROMPT_TEXTS,
        *_output.PROMPT_TEXTS,
    )
    for template in templates:
        for fragment in _fragments(template):
            words = _words(fragment)
            if len(words) >= _MIN_SHORT_ECHO_WORDS:
                items.append(_Prompt(joined=f" {' '.join(words)} ", shingles=_shingles(words)))
    union = frozenset().union(*(item.shingles for item in items))
    return _Prompts(items=tuple(items), shingles=union)


def echoes_instructions(answer: str) -> bool:
    """Whether ``answer`` repeats the engine's own instructions (all of one, or a large part)."""
    words = _words(answer)
    if not words:
        return False
    prompts = _prompts()
    if len(words) < _SHINGLE_WORDS:
        if len(words) < _MIN_SHORT_ECHO_WORDS:
            return False
        joined = f" {' '.join(words)} "
        return any(joined in prompt.joined for prompt in prompts.items)
    shingles = _shingles(words)
    if len(shingles & prompts.shingles) >= _MOSTLY_ECHO * len(shingles):
        return True
    return any(
        prompt.shingles and len(shingles & prompt.shingles) >= _LARGE_PART * len(prompt.shingles)
        for prompt in prompts.items
    )


def answer_problem(answer: str) -> AnswerProblem | None:
    """What is wrong with ``answer`` as a task's result, or ``None`` when it is a real answer."""
    if not answer.strip():
        return "empty_answer"
    if echoes_instructions(answer):
        return "echoed_instructions"
    return None


def rejection(answer: str, *, agent: str, detail: str = "") -> AnswerRejected:
    """The error that rejects ``answer`` (empty, or else an echo of the instructions).

    Args:
        answer: The rejected answer.
        agent: The agent's name, for the message.
        detail: Appended to the message (e.g. how many model calls were made).
    """
    where = f" {detail}" if detail else ""
    if not answer.strip():
        return AnswerRejected(f"agent {agent!r} gave an empty answer{where}", reason="empty_answer")
    excerpt = " ".join(answer.split())[:80]
    return AnswerRejected(
        f"agent {agent!r} answered with the engine's own instructions instead of a result"
        f"{where} ({excerpt!r})",
        reason="echoed_instructions",
    )


def check_answer(answer: str, *, agent: str) -> str:
    """Return ``answer`` when it is a real answer.

    Raises:
        AnswerRejected: it is empty or echoes the engine's instructions.
    """
    if answer_problem(answer) is not None:
        raise rejection(answer, agent=agent)
    return answer
