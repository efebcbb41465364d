"""Secret redaction: known secrets and configured patterns never reach events, logs, traces or
the UI.

:class:`RedactionHook` runs first (priority ``-1000``) at every point where text leaves the code
that holds it: the request a model is sent and its reply, a tool's arguments and result, a
task's result and error, a workflow step's output. What it rewrites is what every later hook,
the event log, the API and the web UI see. With ``redact_logs`` it also rewrites every log
record of the process (message and traceback) before any handler formats it.

Known secrets are the values of environment variables whose names say they hold one
(``OPENAI_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``) plus any given; patterns catch
secrets nobody listed (API key shapes, bearer tokens).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from planweave.hooks._contexts import (
    AfterModelCall,
    AfterStep,
    AfterTask,
    AfterToolCall,
    BeforeModelCall,
    BeforeToolCall,
)
from planweave.hooks._hook import Hook

__all__ = ["DEFAULT_PATTERNS", "MASK", "RedactionHook", "Redactor"]

MASK = "[REDACTED]"

DEFAULT_PATTERNS: tuple[str, ...] = (
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}",  # OpenAI and Anthropic API keys
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub tokens
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"\b[Bb]earer\s+[A-Za-z0-9._~+/\-]{16,}=*",  # bearer tokens in headers
)

_SECRET_NAME = re.compile(r"(?i)(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY)")
MIN_SECRET_CHARS = 8  # shorter values ("1", "true") would mask ordinary words


class Redactor:
    """Replaces secrets and pattern matches in text and in JSON-like values.

    Args:
        secrets: Exact strings to mask (shorter than 8 characters are ignored).
        patterns: Regular expressions whose matches are masked (``DEFAULT_PATTERNS`` when
            ``None``).
        mask: What replaces each secret.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        patterns: Iterable[str] | None = None,
        *,
        mask: str = MASK,
    ) -> None:
        self.mask = mask
        known = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        parts = [re.escape(s) for s in known]
        parts += list(DEFAULT_PATTERNS if patterns is None else patterns)
        self._re = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None
        self._log_factory: Callable[..., logging.LogRecord] | None = None

    def text(self, text: str) -> str:
        """``text`` with every secret masked."""
        if self._re is None or not text:
            return text
        return self._re.sub(self.mask, text)

    def value(self, value: Any) -> Any:
        """``value`` (strings, lists, tuples, dicts: keys and values) with secrets masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value

    def install_log_filter(self) -> None:
        """Mask secrets in every log record of this process (message and traceback), whatever
        logger or handler it goes to."""
        previous = logging.getLogRecordFactory()
        if previous is self._log_factory:
            return
        redactor = self
        formatter = logging.Formatter()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: leave it for the handler to report
                return record
            record.msg, record.args = redactor.text(message), ()
            if record.exc_info:
                record.exc_text = redactor.text(formatter.formatException(record.exc_info))
            return record

        self._log_factory = factory
        logging.setLogRecordFactory(factory)


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a secret."""
    env = os.environ if env is None else env
    return [
        value
        for name, value in env.items()
        if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS
    ]


class RedactionHook(Hook):
    """Masks secrets wherever text leaves the code that holds it (see the module docstring).

    Args:
        secrets: Exact strings to mask, besides those found in the environment.
        patterns: Regular expressions to mask (``DEFAULT_PATTERNS`` when ``None``).
        env: Also mask the values of secret-named environment variables.
        redact_logs: Also mask every log record of this process.
        redact_prompts: Also mask what a model is sent (not only what is recorded).
    """

    name = "redaction"
    priority = -1000

    def __init__(
        self,
        secrets: Iterable[str] = (),
        patterns: Iterable[str] | None = None,
        *,
        env: bool = True,
        redact_logs: bool = True,
        redact_prompts: bool = True,
    ) -> None:
        found = list(secrets) + (secrets_from_env() if env else [])
        self.redactor = Redactor(found, patterns)
        self.redact_prompts = redact_prompts
        if redact_logs:
            self.redactor.install_log_filter()

    @classmethod
    def from_env(cls) -> RedactionHook:
        """The hook with extra patterns from ``PLANWEAVE_REDACT_PATTERNS`` (a JSON list of
        regular expressions, or one expression), added to the defaults."""
        raw = os.environ.get("PLANWEAVE_REDACT_PATTERNS", "").strip()
        extra: list[str] = []
        if raw:
            extra = json.loads(raw) if raw.startswith("[") else [raw]
        return cls(patterns=[*DEFAULT_PATTERNS, *extra])

    async def before_model_call(self, ctx: BeforeModelCall) -> BeforeModelCall | None:
        if not self.redact_prompts:
            return None
        r = self.redactor
        messages = tuple(
            m.model_copy(
                update={
                    "content": r.text(m.content),
                    "tool_calls": tuple(
                        c.model_copy(update={"arguments": r.value(c.arguments)})
                        for c in m.tool_calls
                    ),
                }
            )
            for m in ctx.request.messages
        )
        return replace(ctx, request=ctx.request.model_copy(update={"messages": messages}))

    async def after_model_call(self, ctx: AfterModelCall) -> AfterModelCall | None:
        response = ctx.response
        if response is None:
            return None
        r = self.redactor
        update: dict[str, Any] = {"content": r.text(response.content)}
        if response.data is not None:
            update["data"] = r.value(response.data)
        if response.tool_calls:
            update["tool_calls"] = tuple(
                c.model_copy(
                    update={
                        "arguments": r.value(c.arguments),
                        "raw_arguments": None
                        if c.raw_arguments is None
                        else r.text(c.raw_arguments),
                    }
                )
                for c in response.tool_calls
            )
        return replace(ctx, response=response.model_copy(update=update))

    async def before_tool_call(self, ctx: BeforeToolCall) -> BeforeToolCall | None:
        return replace(ctx, args=self.redactor.value(ctx.args)) if ctx.args else None

    async def after_tool_call(self, ctx: AfterToolCall) -> AfterToolCall | None:
        result = ctx.result
        r = self.redactor
        changed = replace(
            result,
            value=r.value(result.value),
            error=None if result.error is None else r.text(result.error),
        )
        return replace(ctx, result=changed)

    async def after_task(self, ctx: AfterTask) -> AfterTask | None:
        outcome = ctx.outcome
        r = self.redactor
        update: dict[str, Any] = {"result": r.value(outcome.result)}
        if outcome.error is not None:
            update["error"] = r.text(outcome.error)
        return replace(ctx, outcome=outcome.model_copy(update=update))

    async def after_step(self, ctx: AfterStep) -> AfterStep | None:
        return replace(ctx, output=self.redactor.value(ctx.output))
