"""A deterministic model that answers from a script, for tests of agents and of the engine.

Shipped in the library so users can test their own agents without a network or a GPU. A script
is a list of replies, each with an optional ``match`` (role or agent name, and a substring of the
last user message). Replies are taken in order: the first unconsumed reply that matches answers,
and is then consumed unless it says ``repeat: true``::

    replies:
      - match: {role: planner}
        json: {tasks: [{id: a, goal: "Square 5"}]}
      - match: {role: executor, contains: squared}
        tool_calls: [{name: calculator, arguments: {expression: "(2+3)**2"}}]
      - match: {role: executor}
        content: "The answer is 25."
        repeat: true
      - error: {type: unavailable, message: "simulated outage"}

Streamed (``stream``), a reply's content arrives word by word, one delta a word, with
``delta_delay_s`` seconds between deltas; a ``stream_gate`` holds every streamed reply after its
first delta until the gate is set, so a test can look at a call that is still being written.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planweave._files import load_yaml_file
from planweave._json import loads_bounded
from planweave.errors import (
    ConfigError,
    ModelResponseError,
    ModelUnavailable,
    ScriptedModelMismatch,
)
from planweave.llm._common import estimate_tokens, last_user_message
from planweave.llm._registry import ModelOptions
from planweave.llm.base import DeltaSink, LlmRequest, LlmResponse, ModelProfile, ToolCall

__all__ = [
    "ScriptedError",
    "ScriptedMatch",
    "ScriptedModel",
    "ScriptedReply",
    "ScriptedToolCall",
]


class ScriptedMatch(BaseModel):
    """When a reply applies. Every field given must fit; an empty match fits any request.

    Attributes:
        role: The request's ``role`` (planner, executor, composer, critic) or its ``agent`` name.
        contains: A substring of the request's last user message.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str | None = None
    contains: str | None = None

    def fits(self, request: LlmRequest) -> bool:
        if self.role is not None and self.role not in (request.role, request.agent):
            return False
        return self.contains is None or self.contains in last_user_message(request.messages)

    def describe(self) -> str:
        parts = [f"role={self.role}"] if self.role is not None else []
        if self.contains is not None:
            parts.append(f"contains={self.contains!r}")
        return " ".join(parts) or "any"


class ScriptedError(BaseModel):
    """A simulated failure: ``unavailable`` raises ModelUnavailable, ``response``
    ModelResponseError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["unavailable", "response"] = "unavailable"
    message: str = "scripted failure"


class ScriptedToolCall(BaseModel):
    """A tool call the scripted model makes (``id`` defaults to ``call_<n>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str = ""


class ScriptedReply(BaseModel):
    """One scripted answer: text, structured data (``json``), tool calls, or an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    match: ScriptedMatch = Field(default_factory=ScriptedMatch)
    content: str | None = None
    data: Any = Field(default=None, alias="json")
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    error: ScriptedError | None = None
    delay_s: float = Field(default=0.0, ge=0)
    delta_delay_s: float = Field(default=0.0, ge=0)
    """Pause between two deltas when the reply is streamed."""
    repeat: bool = False

    @model_validator(mode="after")
    def _has_an_answer(self) -> Self:
        answers = [
            self.content is not None,
            self.data is not None,
            bool(self.tool_calls),
            self.error is not None,
        ]
        if not any(answers):
            raise ValueError("a reply needs one of content, json, tool_calls or error")
        if self.error is not None and sum(answers) > 1:
            raise ValueError("an error reply cannot also have content, json or tool_calls")
        return self


def _parse_replies(
    replies: Sequence[ScriptedReply | Mapping[str, Any]], where: str
) -> list[ScriptedReply]:
    parsed: list[ScriptedReply] = []
    for index, reply in enumerate(replies):
        if isinstance(reply, ScriptedReply):
            parsed.append(reply)
            continue
        if not isinstance(reply, Mapping):
            raise ConfigError(f"{where}: reply {index + 1} is not a mapping")
        try:
            parsed.append(ScriptedReply.model_validate(reply))
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"])
                problems.append(f"{field}: {error['msg']}" if field else error["msg"])
            raise ConfigError(
                f"{where}: reply {index + 1} is invalid: {'; '.join(problems)}"
            ) from exc
    return parsed


_WORD = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """``text`` in pieces of one word each (with the spaces around it): the scripted deltas."""
    return _WORD.findall(text)


class ScriptedModel:
    """A model that answers from a list of scripted replies.

    Args:
        replies: The script, as ``ScriptedReply`` objects or mappings in the YAML format.
        name: Shown as the model name in events.
        stream_gate: When given, every streamed reply stops after its first delta until the
            gate is set (a test holds a call open while it looks at what was streamed).

    Attributes:
        requests: Every request received, in order, for assertions in tests.

    Raises:
        ConfigError: A reply is malformed.
    """

    supports_tools = True

    def __init__(
        self,
        replies: Sequence[ScriptedReply | Mapping[str, Any]] = (),
        *,
        name: str = "scripted",
        profile: ModelProfile | None = None,
        stream_gate: asyncio.Event | None = None,
    ) -> None:
        self._name = name
        self.stream_gate = stream_gate
        self._profile = profile
        self._pending = _parse_replies(replies, name)
        self._lock = threading.Lock()
        self.requests: list[LlmRequest] = []

    @property
    def profile(self) -> ModelProfile:
        """As given (to stand in for a small model in tests), else a capable model."""
        if self._profile is not None:
            return self._profile
        return ModelProfile(small=False, native_tools=self.supports_tools)

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        """Load a script from a YAML file with a top-level ``replies`` list.

        Raises:
            ConfigError: The file is missing, is not YAML, or does not follow the format.
        """
        file = Path(path)
        try:
            raw = load_yaml_file(file, what="scripted model file")
        except FileNotFoundError as exc:
            raise ConfigError(f"scripted model file {file} does not exist") from exc
        except OSError as exc:
            raise ConfigError(f"scripted model file {file} cannot be read: {exc}") from exc
        except yaml.YAMLError as exc:
            problem = " ".join(str(exc).split())
            raise ConfigError(f"scripted model file {file} is not valid YAML: {problem}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("replies"), list):
            raise ConfigError(f"scripted model file {file} must be a mapping with a 'replies' list")
        unknown = sorted(set(raw) - {"replies"})
        if unknown:
            raise ConfigError(
                f"scripted model file {file} has unknown keys {unknown}: only 'replies' is allowed"
            )
        replies = _parse_replies(raw["replies"], f"scripted model file {file}")
        return cls(replies, name=f"scripted:{file.name}")

    @classmethod
    def from_url(cls, target: str, options: ModelOptions, env: Mapping[str, str]) -> ScriptedModel:
        """Build from the target of a ``scripted:FILE`` URL (relative to ``options.base_dir``)."""
        if not target:
            raise ConfigError("scripted: needs a YAML file, e.g. scripted:replies.yaml")
        path = Path(target).expanduser()
        if not path.is_absolute() and options.base_dir is not None:
            path = options.base_dir / path
        return cls.from_file(path)

    @property
    def name(self) -> str:
        return self._name

    @property
    def remaining(self) -> int:
        """How many replies are not yet consumed (``repeat`` replies included)."""
        with self._lock:
            return len(self._pending)

    def _take(self, request: LlmRequest) -> ScriptedReply:
        with self._lock:
            self.requests.append(request)
            for index, reply in enumerate(self._pending):
                if reply.match.fits(request):
                    if not reply.repeat:
                        del self._pending[index]
                    return reply
            left = [reply.match.describe() for reply in self._pending]
        last = last_user_message(request.messages)
        if len(last) > 80:
            last = last[:77] + "..."
        summary = f": {', '.join(left)}" if left else ""
        raise ScriptedModelMismatch(
            f"{self._name} has no reply for role={request.role!r} agent={request.agent!r} "
            f"last user message={last!r}; {len(left)} replies remain{summary}"
        )

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """Answer with the first unconsumed reply that matches the request.

        Raises:
            ScriptedModelMismatch: No remaining reply matches.
            ModelUnavailable: The reply is ``error: {type: unavailable}``.
            ModelResponseError: The reply is ``error: {type: response}``, or the request asks
                for structured output and the reply's content is not JSON.
        """
        return (await self._answer(request))[1]

    async def stream(self, request: LlmRequest, on_delta: DeltaSink) -> LlmResponse:
        """``complete``, with the reply's content sent to ``on_delta`` a word at a time.

        Raises:
            The errors of :meth:`complete`.
        """
        started = time.perf_counter()
        reply, response = await self._answer(request)
        for index, piece in enumerate(split_words(response.content)):
            if index and reply.delta_delay_s:
                await asyncio.sleep(reply.delta_delay_s)
            on_delta(piece)
            gate = self.stream_gate
            if index == 0 and gate is not None:
                await gate.wait()
        return response.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})

    async def _answer(self, request: LlmRequest) -> tuple[ScriptedReply, LlmResponse]:
        started = time.perf_counter()
        reply = self._take(request)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error is not None:
            if reply.error.type == "unavailable":
                raise ModelUnavailable(f"{self._name}: {reply.error.message}")
            raise ModelResponseError(f"{self._name}: {reply.error.message}")

        data = copy.deepcopy(reply.data)
        content = reply.content
        if content is None:
            content = json.dumps(data, ensure_ascii=False) if data is not None else ""
        if request.response_schema is not None and data is None and not reply.tool_calls:
            try:
                data = loads_bounded(content)
            except json.JSONDecodeError as exc:
                raise ModelResponseError(
                    f"{self._name}: the request asks for structured output but the reply's "
                    f"content is not JSON: {content[:80]!r} (script a 'json' reply instead)"
                ) from exc
        tool_calls = tuple(
            ToolCall(
                id=call.id or f"call_{index + 1}",
                name=call.name,
                arguments=copy.deepcopy(call.arguments),
            )
            for index, call in enumerate(reply.tool_calls)
        )
        out_text = content + "".join(json.dumps(call.arguments) for call in tool_calls)
        return reply, LlmResponse(
            content=content,
            data=data,
            tool_calls=tool_calls,
            model=self._name,
            tokens_in=sum(estimate_tokens(message.content) for message in request.messages),
            tokens_out=estimate_tokens(out_text),
            cost_usd=0.0,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason="tool_calls" if tool_calls else "stop",
        )

    async def aclose(self) -> None:
        """Nothing to release."""
