"""Structured final answers: an agent's ``output_schema``, checked, with one repair round.

An agent given an output schema (a pydantic model class or a JSON schema) is told the schema in
its instructions, and its final answer must be one JSON value that validates. When it does not,
the model gets one repair call: its answer, what failed, and the schema again, asked as
structured output (so a grammar-constrained model can only write the right shape). An answer
still invalid after that fails the attempt with ``AnswerRejected(reason="output_invalid")``,
which is retryable: sampling differs, and another attempt may well do better.

The validated value is plain JSON data (a pydantic model's ``model_dump(mode="json")``), so it
can travel between processes; the answer text becomes its compact JSON encoding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from planweave._json import loads_bounded
from planweave.agents._context import AgentContext, call_model
from planweave.agents._text import truncate
from planweave.errors import AnswerRejected, ConfigError, ModelResponseError
from planweave.llm.base import ChatMessage, LlmRequest

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["OutputSchema", "SchemaLike"]

SchemaLike = type[BaseModel] | Mapping[str, Any]
"""What ``output_schema=`` accepts: a pydantic model class or a JSON schema."""

ERROR_MAX_CHARS = 600
"""Most of a validation error shown to the model (and kept in the failure)."""

_INSTRUCTIONS = (
    "Your final answer must be a single JSON value, with no other text around it, that "
    "matches this JSON schema:\n{schema}"
)
_REPAIR = (
    "Your final answer does not match the required JSON schema: {error}\n"
    "Reply with only the corrected JSON value."
)

PROMPT_TEXTS = (_INSTRUCTIONS, _REPAIR)
"""Every instruction written here (templates)."""


class OutputSchema:
    """A checked output schema.

    Args:
        schema: A pydantic model class or a JSON schema (a mapping).
        owner: The agent's name, for messages.

    Raises:
        ConfigError: ``schema`` is neither, or is not a valid JSON schema.
    """

    def __init__(self, schema: SchemaLike, *, owner: str) -> None:
        self._model: type[BaseModel] | None = None
        self._validator: Validator | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._model = schema
            self.json_schema: dict[str, Any] = schema.model_json_schema()
        elif isinstance(schema, Mapping):
            self.json_schema = dict(schema)
            self._validator = _validator(self.json_schema, owner)
        else:
            raise ConfigError(
                f"agent {owner!r}: output_schema must be a pydantic model class or a JSON "
                f"schema (a dict), not {type(schema).__name__}"
            )

    def instructions(self) -> str:
        """The system-prompt paragraph that tells the model the schema."""
        return _INSTRUCTIONS.format(schema=json.dumps(self.json_schema, ensure_ascii=False))

    def check(self, answer: str) -> tuple[Any, str | None]:
        """``(value, None)`` for an answer that validates, else ``(None, what failed)``."""
        try:
            value = loads_bounded(_unfenced(answer))
        except json.JSONDecodeError as exc:  # JsonTooDeep included
            return None, f"the answer is not JSON ({exc.msg})"
        return self.check_value(value)

    def check_value(self, value: Any) -> tuple[Any, str | None]:
        """Like :meth:`check`, for a value already parsed."""
        if self._model is not None:
            try:
                return self._model.model_validate(value).model_dump(mode="json"), None
            except ValidationError as exc:
                return None, truncate(_pydantic_errors(exc), ERROR_MAX_CHARS)
        assert self._validator is not None
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if not errors:
            return value, None
        text = "; ".join(
            f"{'/'.join(str(p) for p in error.path) or '(root)'}: {error.message}"
            for error in errors[:5]
        )
        return None, truncate(text, ERROR_MAX_CHARS)


async def checked_answer(
    output: OutputSchema,
    answer: str,
    *,
    messages: Sequence[ChatMessage],
    ctx: AgentContext,
    agent: str,
) -> tuple[str, Any, int]:
    """The answer as ``(JSON text, validated value, model calls made)``: after one repair
    round (one call) if the first answer does not validate.

    Raises:
        AnswerRejected: the repaired answer still does not validate, or is not JSON
            (retryable).
        ModelError: the repair call failed (other than with a malformed reply).
    """
    value, error = output.check(answer)
    if error is None:
        return _encoded(value), value, 0
    request = LlmRequest(
        messages=(
            *messages,
            ChatMessage(role="assistant", content=answer),
            ChatMessage(role="user", content=_REPAIR.format(error=error)),
        ),
        role="executor",
        agent=agent,
        response_schema=output.json_schema,
        schema_name="output",
    )
    try:
        response = await call_model(ctx, request)
    except ModelResponseError as exc:  # a reply that is not JSON at all: still invalid
        value, error = None, str(exc)
    else:
        if response.data is not None:
            value, error = output.check_value(response.data)
        else:
            value, error = output.check(response.content)
    if error is None:
        return _encoded(value), value, 1
    raise AnswerRejected(
        f"agent {agent!r}: the final answer does not match its output schema after one "
        f"repair round: {error}",
        reason="output_invalid",
    )


def _validator(schema: dict[str, Any], owner: str) -> Validator:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "(root)"
        raise ConfigError(
            f"agent {owner!r}: output_schema is not a valid JSON schema: at {where}: "
            f"{truncate(exc.message, 200)}"
        ) from None
    validator: Validator = cls(schema)
    return validator


def _pydantic_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
        for error in exc.errors()[:5]
    )


def _unfenced(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0].strip()
    return text


def _encoded(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
