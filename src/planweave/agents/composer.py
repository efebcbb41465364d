"""The composer: writes the answer to a goal, in Markdown, from the results of its tasks.

A composed answer must never be empty, because it becomes the job's result and its
``result.md`` artifact. Small local models do return empty text now and then, or echo the
instructions, so when the model gives no real answer the composer falls back to the results
themselves, each under its task's goal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planweave.agents._answers import answer_problem
from planweave.agents._context import AgentContext, call_model
from planweave.agents._text import (
    input_budget_chars,
    is_small_model,
    render_inputs,
    render_value,
)
from planweave.llm.base import ChatMessage, LlmRequest

__all__ = ["compose", "fallback_markdown"]

SMALL_MODEL_MAX_TOKENS = 400

_SYSTEM = (
    "You write the final answer to a goal, in Markdown, from the results of the tasks that "
    "worked on it. Use what the results say; do not mention the tasks or how the work was "
    "split. Start with a short heading, keep the answer focused on the goal, and reply with the "
    "Markdown only."
)
_NO_RESULTS = "No task results are available; answer the goal directly."
_WRITE = "Write the answer in Markdown."

PROMPT_TEXTS = (_SYSTEM, _NO_RESULTS, _WRITE)
"""Every instruction the composer writes."""


async def compose(
    ctx: AgentContext,
    *,
    goal: str,
    inputs: Mapping[str, Any],
    input_goals: Mapping[str, str],
) -> str:
    """Write a Markdown answer to ``goal`` from the labelled results in ``inputs``.

    Args:
        ctx: Model, events and ids.
        goal: The goal to answer.
        inputs: Results by task id.
        input_goals: Goals of those tasks (labels for ``inputs``).

    Returns:
        Non-empty Markdown: the model's answer, or the results under headings when the model
        returned nothing.

    Raises:
        ModelError: the model call failed.
    """
    parts = [f"Goal: {goal.strip()}"]
    if inputs:
        rendered = render_inputs(
            inputs, input_goals, max_chars=input_budget_chars(ctx.model), show_ids=False
        )
        parts.append(f"Results:\n\n{rendered}")
    else:
        parts.append(_NO_RESULTS)
    parts.append(_WRITE)
    request = LlmRequest(
        messages=(
            ChatMessage(role="system", content=_SYSTEM),
            ChatMessage(role="user", content="\n\n".join(parts)),
        ),
        role="composer",
        agent="composer",
        # A small model rambles until its token limit; keep its answers short (and quick).
        max_tokens=SMALL_MODEL_MAX_TOKENS
        if is_small_model(ctx.model) and ctx.max_tokens is None
        else None,
    )
    response = await call_model(ctx, request)
    text = _strip_fence(response.content.strip())
    if answer_problem(text) is not None:
        # Empty, or the instructions echoed back: the results themselves are a better answer.
        return fallback_markdown(goal, inputs, input_goals)
    return text


def fallback_markdown(goal: str, inputs: Mapping[str, Any], input_goals: Mapping[str, str]) -> str:
    """The results, unedited, each under a heading naming its task's goal."""
    lines = [f"# {' '.join(goal.split()) or 'Result'}", ""]
    if not inputs:
        lines.append("No results were produced.")
    for task_id, value in inputs.items():
        label = " ".join(input_goals.get(task_id, "").split()) or task_id
        body = render_value(value).strip() or "(empty result)"
        lines += [f"## {label}", "", body, ""]
    return "\n".join(lines).rstrip() + "\n"


def _strip_fence(text: str) -> str:
    """Unwrap a reply the model put inside a single ```markdown fence."""
    if text.startswith("```") and text.endswith("```") and text.count("```") == 2:
        inner = text[3:-3]
        first, _, rest = inner.partition("\n")
        return (rest if first.strip().isalpha() or not first.strip() else inner).strip()
    return text
