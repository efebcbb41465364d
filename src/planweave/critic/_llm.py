"""The LLM critic (``llm``): a model reviews a task's answer and replies with a JSON verdict.

The reply is asked for as structured output (the ``Verdict`` schema); a reply that is not a
valid verdict is a retryable ``ModelResponseError``: the critic's attempt fails and is tried
again within the task's ``max_attempts``, and is never taken as a pass.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from planweave.agents._context import AgentContext, call_model
from planweave.agents._text import input_budget_chars, render_inputs, render_value, truncate
from planweave.critic import CriticTask, Verdict
from planweave.errors import ModelResponseError
from planweave.llm.base import ChatMessage, LlmRequest

__all__ = ["VERDICT_SCHEMA", "llm_review"]

_SYSTEM = (
    "You are a critic: you check the answer an assistant gave to a task before it is "
    "accepted. Judge only whether the answer achieves the task, correctly and completely. "
    'Reply with JSON only: {"verdict": ..., "feedback": ...}, where verdict is one of: '
    '"pass" (the answer is good; feedback may be empty), "revise" (the answer can be fixed: '
    'say exactly what to change), "replan" (the task cannot be done as it is set: say why), '
    '"reject" (the answer is wrong or unsafe and cannot be fixed: say why).'
)

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "revise", "replan", "reject"]},
        "feedback": {"type": "string"},
    },
    "required": ["verdict", "feedback"],
    "additionalProperties": False,
}
"""The JSON schema the critic's reply follows."""


async def llm_review(ctx: AgentContext, task: CriticTask, candidate: Any) -> Verdict:
    """Ask the context's model for a verdict on ``candidate``, the answer to ``task``.

    Raises:
        ModelError: the model call failed, or its reply is not a valid verdict.
    """
    budget = input_budget_chars(ctx.model)
    parts = [f"Task: {task.goal.strip()}"]
    if task.job_goal.strip() and task.job_goal.strip() != task.goal.strip():
        parts.append(f"Overall goal: {task.job_goal.strip()}")
    if task.inputs:
        parts.append(
            "Results it was given:\n\n" + render_inputs(task.inputs, {}, max_chars=budget // 2)
        )
    if task.feedback:
        earlier = "\n".join(f"- {truncate(text, 600)}" for text in task.feedback)
        parts.append(f"Your feedback on its earlier answers:\n{earlier}")
    parts.append(f"Answer to check:\n{truncate(render_value(candidate), budget)}")
    parts.append("Reply with the JSON verdict.")
    request = LlmRequest(
        messages=(
            ChatMessage(role="system", content=_SYSTEM),
            ChatMessage(role="user", content="\n\n".join(parts)),
        ),
        role="critic",
        agent="critic",
        response_schema=VERDICT_SCHEMA,
        schema_name="verdict",
    )
    response = await call_model(ctx, request)
    data = response.data
    if data is None:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
    if not isinstance(data, dict):
        raise ModelResponseError(
            f"the critic's reply is not a JSON verdict: {truncate(response.content, 200)!r}",
            retryable=True,
        )
    try:
        return Verdict.model_validate(
            {"verdict": data.get("verdict"), "feedback": str(data.get("feedback") or "")}
        )
    except ValidationError as exc:
        raise ModelResponseError(
            f"the critic's reply is not a valid verdict: {exc.errors()[0]['msg']}",
            retryable=True,
        ) from None
