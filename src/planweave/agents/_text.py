"""Text helpers shared by the agents: truncation and labelled dependency results.

Prompts and events carry text of unknown size (tool output, earlier tasks' results), so every
piece is cut to a budget here, in one place. Small models (by their profile) get smaller
budgets because their context window is a few thousand tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from planweave._text import tail, truncate
from planweave.llm.base import Model, profile_of

__all__ = [
    "input_budget_chars",
    "is_small_model",
    "render_inputs",
    "render_value",
    "tail",
    "truncate",
]


def render_value(value: Any) -> str:
    """A task result as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def is_small_model(model: Model) -> bool:
    """Whether the model is a small one (short context, weak instruction following), as its
    profile says, however it is served."""
    return profile_of(model).small


def input_budget_chars(model: Model) -> int:
    """How many characters of dependency results fit in one prompt for this model."""
    return 3_000 if is_small_model(model) else 24_000


def render_inputs(
    inputs: Mapping[str, Any],
    input_goals: Mapping[str, str],
    *,
    max_chars: int,
    show_ids: bool = True,
) -> str:
    """Render earlier tasks' results, each under a heading naming its goal.

    The budget is shared evenly, so one long result cannot crowd out the others.
    """
    if not inputs:
        return ""
    each = max(200, max_chars // len(inputs))
    parts = []
    for task_id, value in inputs.items():
        goal = input_goals.get(task_id, "").strip() or task_id
        body = truncate(render_value(value).strip(), each) or "(empty result)"
        label = f"{truncate(goal, 200)} (task {task_id})" if show_ids else truncate(goal, 200)
        parts.append(f"### {label}\n{body}")
    return "\n\n".join(parts)
