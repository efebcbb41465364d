"""Helpers shared by the model backends: JSON replies, retries, token estimates, tool messages.

Kept private so that each backend module stays a thin translation between the provider's wire
format and ``LlmRequest``/``LlmResponse``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from planweave._json import JsonTooDeep, loads_bounded
from planweave.errors import ModelError, ModelResponseError
from planweave.llm.base import ChatMessage

__all__ = [
    "SMALL_MODEL_REPEAT_PENALTY",
    "backoff_s",
    "estimate_tokens",
    "flatten_tool_messages",
    "last_user_message",
    "parse_json_reply",
    "parse_retry_after",
    "with_retries",
]

T = TypeVar("T")

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 20.0
RETRY_AFTER_MAX_S = 60.0

Translate = Callable[[Exception], tuple[ModelError, float | None] | None]
"""Maps a provider exception to our error and an optional server-requested delay (Retry-After);
``None`` means the exception is not the provider's and must propagate unchanged."""

SMALL_MODEL_REPEAT_PENALTY = 1.3
"""Repeat penalty on small models' free text, which otherwise loops on one sentence."""


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token), never 0 for non-empty text."""
    return (len(text) + 3) // 4


def last_user_message(messages: Iterable[ChatMessage]) -> str:
    """The content of the last ``user`` message, or ``""``."""
    text = ""
    for message in messages:
        if message.role == "user":
            text = message.content
    return text


def parse_json_reply(text: str, *, model: str, finish_reason: str | None, max_tokens: int) -> Any:
    """Parse a structured-output reply.

    Grammar-constrained local models may put raw newlines inside strings, so parsing is lenient
    (``strict=False``); a Markdown code fence around the JSON is tolerated too.

    Raises:
        ModelResponseError: The text is not JSON; the message says when it was cut off at
            ``max_tokens``.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return loads_bounded(body)
    except JsonTooDeep as exc:
        raise ModelResponseError(f"{model} replied with JSON {exc.msg}", retryable=False) from exc
    except json.JSONDecodeError as exc:
        if finish_reason == "length":
            raise ModelResponseError(
                f"{model} stopped at max_tokens={max_tokens} before finishing its JSON reply "
                f"({len(text)} characters); raise max_tokens or tighten the schema (maxLength)",
                retryable=False,
            ) from exc
        snippet = text if len(text) <= 200 else text[:200] + "..."
        raise ModelResponseError(
            f"{model} did not reply with valid JSON ({exc.msg} at char {exc.pos}): {snippet!r}",
            retryable=True,
        ) from exc


def backoff_s(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, ... capped at 20 s."""
    delay: float = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
    return delay * (0.5 + random.random() / 2)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    translate: Translate,
    catch: tuple[type[Exception], ...],
    max_retries: int,
) -> T:
    """Run ``call``, retrying retryable provider errors up to ``max_retries`` times.

    A delay the server asks for (Retry-After) is honoured, capped at a minute; otherwise the
    delay grows exponentially with jitter. The last failure is raised as a ``ModelError``.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except RecursionError:
            # The provider's client parses the HTTP body recursively: a reply nested thousands
            # of levels deep (in a tool call's input, say) fails there.
            raise ModelResponseError(
                "the model's reply is nested too deeply to parse", retryable=False
            ) from None
        except catch as exc:
            translated = translate(exc)
            if translated is None:
                raise
            error, retry_after_s = translated
            if not error.retryable or attempt >= max_retries:
                raise error from exc
            if retry_after_s is not None:
                delay = min(max(retry_after_s, 0.0), RETRY_AFTER_MAX_S)
            else:
                delay = backoff_s(attempt)
            attempt += 1
            await asyncio.sleep(delay)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds only; dates are ignored)."""
    if headers is None:
        return None
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(key)
        if value is None:
            continue
        try:
            return float(value) * scale
        except (TypeError, ValueError):
            continue
    return None


def flatten_tool_messages(messages: Iterable[ChatMessage]) -> list[ChatMessage]:
    """Rewrite tool traffic as plain text, for models without native tool calling.

    An assistant message with tool calls keeps its text plus one line per call; a ``tool``
    message becomes a ``user`` message carrying the result. Other messages pass unchanged.
    """
    out: list[ChatMessage] = []
    for message in messages:
        if message.role == "tool":
            label = message.name or message.tool_call_id or "tool"
            out.append(ChatMessage(role="user", content=f"Result of {label}:\n{message.content}"))
        elif message.role == "assistant" and message.tool_calls:
            lines = [message.content] if message.content else []
            for call in message.tool_calls:
                args = call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)
                lines.append(f"Call {call.name}({args})")
            out.append(ChatMessage(role="assistant", content="\n".join(lines)))
        else:
            out.append(message)
    return out
