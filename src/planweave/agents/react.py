"""The ReAct agent: think, call a tool, read the result, repeat, then answer.

Two wire protocols, one loop:

* **native tool calling** for models whose profile says so (``profile_of(model).native_tools``):
  tools are offered as specs, calls come back as ``tool_calls``, results go back as ``tool``
  messages;
* a **JSON action protocol** for the others, small models above all (by their profile, however
  they are served), whose native tool calling is unreliable (it drops ``tool`` messages and
  returns empty text). Each reply is constrained by a JSON schema to either
  ``{"action": ..., "action_input": {...}}`` or ``{"final_answer": "..."}``, and tool results
  are fed back as plain ``user`` messages ("Observation: ...").

Whatever the model gets wrong (an unknown tool, bad arguments, malformed or cut-off JSON, i.e.
a retryable ``ModelResponseError``) becomes an observation it can correct, never a crash; other
model errors propagate so the engine can retry the task.

Answers are real answers: never empty, never the engine's own instructions echoed back (see
``_answers``). Such an answer after a successful tool call is replaced by that call's result; before
any, it is met with one request to answer. When the step budget (``max_steps`` model calls) runs
out, the agent makes one last call without tools asking for the answer, so ``AgentResult.steps``
may be ``max_steps + 1``. Only if that also yields no real answer (and no tool result exists to
fall back on) does it raise ``AnswerRejected``, a retryable failure, so that the engine tries again
instead of passing junk on to later tasks as a result.

Tool calls are capped too (``max_steps`` counts model calls only): at most
``max_tool_calls_per_step`` calls of one reply run, the rest are refused (dropped from the
transcript, and the model is told in one line), and once the task has made ``max_tool_calls``
calls no more run: the agent makes its last call without tools and answers from what it has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from planweave._json import TOO_DEEP_TEXT, loads_bounded, too_deep
from planweave.agents._agent import AgentResult, AgentTask
from planweave.agents._answers import answer_problem, rejection
from planweave.agents._context import AgentContext, call_model
from planweave.agents._handoff import Handoff, HandoffTool, with_tools
from planweave.agents._output import OutputSchema, SchemaLike, checked_answer
from planweave.agents._text import input_budget_chars, render_inputs
from planweave.constants import (
    CRITIC_LLM,
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MAX_TOOL_CALLS_PER_STEP,
)
from planweave.errors import ConfigError, ModelResponseError
from planweave.hooks import Hook, with_agent_hooks
from planweave.llm.base import (
    ChatMessage,
    LlmRequest,
    LlmResponse,
    Model,
    ToolCall,
    ToolSpec,
    profile_of,
)
from planweave.policy._task import offered_tools
from planweave.tools import Tool, ToolContext, run_tool_call

__all__ = ["ReactAgent", "action_schema"]

# llama.cpp compiles maxLength into nested grammar rules and overflows its stack (a segfault)
# somewhere above 1,000 characters, so no schema here goes beyond that. Small models also pad a
# string up to its maxLength, so theirs are shorter still.
FINAL_ANSWER_MAX_CHARS = 1_000
SMALL_MODEL_ANSWER_MAX_CHARS = 300
SMALL_MODEL_ARG_MAX_CHARS = 200
OBSERVATION_CHARS = 4_000
SMALL_MODEL_OBSERVATION_CHARS = 1_200

_NATIVE_GUIDE = (
    "You are {name}, an agent that carries out one task of a larger job.\n"
    "Use the tools when they help, with arguments that match their schemas. Read each result "
    "before deciding what to do next. When you have what you need, reply with your final answer "
    "as plain text and no tool call. The answer must be complete and self-contained: later tasks "
    "see only the answer, not the tool results."
)
_JSON_GUIDE = (
    "You are {name}, an agent that carries out one task of a larger job.\n"
    "Reply with exactly one JSON object per turn:\n"
    '- {{"action": "<tool name>", "action_input": {{...arguments...}}}} to use a tool;\n'
    '- {{"final_answer": "<your answer>"}} when you are done.\n'
    "After each action you get an Observation with the tool's result.\n\n"
    "Tools:\n{tools}"
)
_JSON_GUIDE_NO_TOOLS = (
    "You are {name}, an agent that carries out one task of a larger job.\n"
    'Reply with one JSON object: {{"final_answer": "<your answer>"}}.'
)
_FINAL_CALL = (
    "You have used all your steps. Give your final answer now, from what you have found so far, "
    "without calling any tool."
)
_REPEATED = " If you have what you need, give your final answer now."
_ALREADY_CALLED = "(You already called {name} with these arguments."
_EMPTY_ANSWER = "Your answer was empty. Give your final answer to the task."
_ECHOED_ANSWER = (
    "Your answer repeated these instructions instead of answering. Give your own final answer "
    "to the task."
)
_OBSERVE_FOOTER = "Reply with the next action, or with final_answer if you can answer now."
_BAD_REPLY = (
    'error: reply with {{"action": "<tool>", "action_input": {{...}}}} or {{"final_answer": "..."}}'
)
_TOO_MANY_IN_REPLY = (
    "You asked for {asked} tool calls in one reply; only the first {ran} ran (at most {limit} "
    "per reply, the job option max_tool_calls_per_step). Ask for fewer at a time."
)
_NO_TOOL_CALLS_LEFT = (
    "You have made {limit} tool calls, all this task may make (the job option "
    "max_tool_calls); no more tool calls will run."
)

PROMPT_TEXTS = (
    _NATIVE_GUIDE,
    _JSON_GUIDE,
    _JSON_GUIDE_NO_TOOLS,
    _FINAL_CALL,
    _REPEATED,
    _ALREADY_CALLED,
    _EMPTY_ANSWER,
    _ECHOED_ANSWER,
    _OBSERVE_FOOTER,
    _BAD_REPLY,
    _TOO_MANY_IN_REPLY,
    _NO_TOOL_CALLS_LEFT,
)
"""Every instruction this agent writes (templates): an answer that echoes one is rejected."""


DEFAULT_AGENT_DESCRIPTION = "The general agent: carries out any task with every tool."
"""What the planner is told of the default agent (``executor``)."""

_MAX_REPEATS = 2
"""Identical tool calls tolerated before the agent stops calling tools and asks for the answer."""


@dataclass
class _Run:
    """The mutable state of one run of the loop."""

    messages: list[ChatMessage]
    tool_context: ToolContext
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_tool_calls_per_step: int = DEFAULT_MAX_TOOL_CALLS_PER_STEP
    steps: int = 0
    tool_calls: int = 0
    last_observation: str | None = None
    nudged: bool = False
    trace: list[dict[str, Any]] = field(default_factory=list)
    seen_calls: set[tuple[str, str]] = field(default_factory=set)
    repeats: int = 0


def _final_answer_schema(
    max_chars: int = FINAL_ANSWER_MAX_CHARS, answer: dict[str, Any] | None = None
) -> dict[str, Any]:
    if answer is None:
        answer = {"type": "string", "minLength": 1, "maxLength": max_chars}
    return {
        "type": "object",
        "properties": {"final_answer": answer},
        "required": ["final_answer"],
        "additionalProperties": False,
    }


_ANY_JSON: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "object"},
        {"type": "array"},
        {"type": "null"},
    ]
}
_SHAPE_KEYS = frozenset({"type", "anyOf", "oneOf", "allOf", "enum", "const", "$ref"})


def _typed(params: dict[str, Any]) -> dict[str, Any]:
    """A parameter schema whose properties all say their shape: a property that takes any
    JSON value (a Python ``Any``) says so as a union of the JSON types, which grammar-
    constrained models compile (a schema without a type would leave their reply unconstrained).
    """
    props = params.get("properties")
    if not isinstance(props, dict) or all(
        not isinstance(p, dict) or _SHAPE_KEYS & p.keys() for p in props.values()
    ):
        return params
    typed = {
        name: {**_ANY_JSON, **prop}
        if isinstance(prop, dict) and not _SHAPE_KEYS & prop.keys()
        else prop
        for name, prop in props.items()
    }
    return {**params, "properties": typed}


def _contains_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or "$defs" in node or any(_contains_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_contains_ref(item) for item in node)
    return False


def _cap_strings(schema: dict[str, Any], max_chars: int, max_items: int = 16) -> dict[str, Any]:
    """A copy of a parameter schema whose strings, at any depth, have a maxLength and whose
    arrays have a maxItems (a grammar-constrained small model otherwise writes until it runs out
    of tokens)."""
    capped = dict(schema)
    kind = capped.get("type")
    if kind == "string" and "maxLength" not in capped and "enum" not in capped:
        capped["maxLength"] = max_chars
    if kind == "array":
        capped.setdefault("maxItems", max_items)
        items = capped.get("items")
        if isinstance(items, dict):
            capped["items"] = _cap_strings(items, max_chars, max_items)
    props = capped.get("properties")
    if isinstance(props, dict):
        capped["properties"] = {
            name: _cap_strings(prop, max_chars, max_items) if isinstance(prop, dict) else prop
            for name, prop in props.items()
        }
    extra = capped.get("additionalProperties")
    if isinstance(extra, dict):
        capped["additionalProperties"] = _cap_strings(extra, max_chars, max_items)
    for key in ("anyOf", "oneOf"):
        options = capped.get(key)
        if isinstance(options, list):
            capped[key] = [
                _cap_strings(o, max_chars, max_items) if isinstance(o, dict) else o for o in options
            ]
    return capped


def action_schema(
    specs: Sequence[ToolSpec],
    *,
    max_answer_chars: int = FINAL_ANSWER_MAX_CHARS,
    max_arg_chars: int | None = None,
    answer_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON schema a reply follows under the JSON action protocol.

    One branch per tool, whose ``action_input`` is the tool's own parameter schema, so a
    grammar-constrained model can only write arguments of the right shape (a schema with
    ``$ref`` falls back to a plain object, since references do not survive the nesting); plus
    a ``final_answer`` branch. Without tools only the ``final_answer`` branch remains.

    Args:
        specs: The tools offered.
        max_answer_chars: maxLength of ``final_answer``.
        max_arg_chars: maxLength given to string arguments that have none (``None``: leave
            them unbounded).
        answer_schema: The schema of ``final_answer`` (an agent's output schema) instead of
            a string.
    """
    final = _final_answer_schema(max_answer_chars, answer_schema)
    if not specs:
        return final
    branches: list[dict[str, Any]] = []
    for spec in specs:
        params = spec.parameters if not _contains_ref(spec.parameters) else {"type": "object"}
        params = _typed(params)
        if max_arg_chars is not None:
            params = _cap_strings(params, max_arg_chars)
        branches.append(
            {
                "type": "object",
                "properties": {"action": {"enum": [spec.name]}, "action_input": params},
                "required": ["action", "action_input"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": [*branches, final]}


def _describe_tools(specs: Sequence[ToolSpec]) -> str:
    lines = []
    for spec in specs:
        props = spec.parameters.get("properties", {})
        args = ", ".join(
            f"{name}: {prop.get('type', 'any')}" if isinstance(prop, dict) else name
            for name, prop in props.items()
        )
        description = spec.description.strip().splitlines()[0] if spec.description.strip() else ""
        lines.append(f"- {spec.name}({args}): {description}".rstrip(": "))
    return "\n".join(lines)


class ReactAgent:
    """An LLM agent that uses tools in a loop (ReAct) until it can answer.

    Args:
        name: The agent's name in plans and events.
        instructions: Extra guidance appended to the system prompt.
        tools: The tools it may use: names of registered tools, or ``Tool`` objects of its own
            (``as_tool(agent)``, say); ``None``: every registered tool.
        max_steps: Model calls before it must answer (``None``: ``ctx.max_steps``).
        model: The model this agent calls: a model URL or a ``Model`` (``None``: the task's).
        description: One line saying what the agent is for (shown to the planner, which
            assigns agents to tasks, and by ``planweave agents list``).
        output_schema: A pydantic model class or a JSON schema the final answer must match:
            the answer is then that JSON value (``AgentResult.data``), after one repair round
            if the first one does not validate.
        handoffs: Names of agents it may pass the task to: each is offered as a
            ``handoff_to_<name>`` tool, and calling one ends this agent's run with a
            ``Handoff``.
        hooks: Hooks in force only while this agent runs (its model and tool calls), after
            the engine's and the job's (``planweave.hooks``).
        critic: The critic that checks this agent's answers before a job accepts them
            (``docs/critic.md``): ``True`` or ``"llm"`` for the LLM critic, or the name of a
            registered one; a task's own ``critic`` comes first (``None``: the job's).

    Raises:
        ConfigError: ``max_steps`` is below 1, or ``output_schema`` is not a valid schema.
    """

    def __init__(
        self,
        name: str = "executor",
        *,
        instructions: str | None = None,
        tools: Sequence[str | Tool] | None = None,
        max_steps: int | None = None,
        model: str | Model | None = None,
        description: str | None = None,
        output_schema: SchemaLike | None = None,
        handoffs: Sequence[str] = (),
        hooks: Sequence[Hook] = (),
        critic: bool | str | None = None,
    ) -> None:
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"agent {name!r}: max_steps must be at least 1, not {max_steps}")
        self.name = name
        self.instructions = instructions
        self.own_tools = tuple(item for item in tools or () if not isinstance(item, str))
        self.tools = tuple(_tool_name(item) for item in tools) if tools is not None else None
        self.max_steps = max_steps
        self.handoffs = tuple(handoffs)
        self.model = model
        self.description = " ".join(description.split()) if description else None
        self.output_schema = output_schema
        self._output = None if output_schema is None else OutputSchema(output_schema, owner=name)
        self._loaded: Model | None = None
        self.hooks = tuple(hooks)
        if critic is not None and not isinstance(critic, bool | str):
            raise ConfigError(f"agent {name!r}: critic must be true, false or a critic's name")
        self.critic: str | None = (
            CRITIC_LLM if critic is True else (critic if isinstance(critic, str) else None)
        )
        if self.critic is not None and not self.critic.strip():
            raise ConfigError(f"agent {name!r}: critic must be a critic's name, not empty")

    def __repr__(self) -> str:
        return f"ReactAgent(name={self.name!r}, tools={self.tools!r})"

    @with_agent_hooks
    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        """Carry out ``task`` with the model and tools in ``ctx`` (or the agent's own).

        Raises:
            ConfigError: the agent names tools that are not registered.
            AnswerRejected: no real answer came (empty, or the engine's instructions echoed),
                even from the last call made without tools; or the answer does not match the
                output schema after one repair round.
            ModelError: a model call failed.
        """
        ctx = await self._own_context(ctx)
        out = await self._loop(task, ctx)
        if isinstance(out, AgentResult):
            return out  # handed over to another agent
        answer, run = out
        if self._output is None:
            return self._result(answer, run)
        text, value, calls = await checked_answer(
            self._output, answer, messages=run.messages, ctx=ctx, agent=self.name
        )
        return AgentResult(output=text, data=value, steps=run.steps + calls)

    async def _own_context(self, ctx: AgentContext) -> AgentContext:
        """``ctx`` with this agent's own model in it, where it has one."""
        if self.model is None:
            return ctx
        model = self._loaded
        if model is None:
            if isinstance(self.model, str):
                load = ctx.load_model or _load_model
                model = await load(self.model)
            else:
                model = self.model
            self._loaded = model
        return replace(ctx, model=model, tool_context=replace(ctx.tool_context, model=model))

    async def _loop(self, task: AgentTask, ctx: AgentContext) -> tuple[str, _Run] | AgentResult:
        handoff_tools = [HandoffTool(target) for target in self.handoffs]
        if self.own_tools or handoff_tools:
            ctx = replace(ctx, tools=with_tools(ctx.tools, [*self.own_tools, *handoff_tools]))
        names = self._tool_names(ctx)
        if self.tools is not None:
            names += [each.name for each in handoff_tools]
        specs = ctx.tools.specs(names) if names else []
        profile = profile_of(ctx.model)
        native = profile.native_tools
        small = profile.small
        max_steps = self.max_steps or ctx.max_steps
        run = _Run(
            messages=[self._system(specs, native), self._first_user(task, ctx)],
            # Tool calls (and a tool's own model calls) are recorded under this agent's name.
            tool_context=replace(ctx.tool_context, agent=self.name),
            max_tool_calls=ctx.max_tool_calls,
            max_tool_calls_per_step=ctx.max_tool_calls_per_step,
        )
        while run.steps < max_steps:
            run.steps += 1
            if native:
                answer = await self._native_step(run, ctx, specs)
            else:
                answer = await self._json_step(run, ctx, specs, small)
            if answer is None:
                handoff = next((h for t in handoff_tools for h in t.requested), None)
                if handoff is not None:
                    return self._handoff(handoff, run)
                if run.repeats >= _MAX_REPEATS:
                    break  # the model is going round in circles: ask for its answer now
                if run.tool_calls >= run.max_tool_calls:
                    break  # the task's tool calls are spent: ask for its answer now
                continue
            problem = answer_problem(answer)
            if problem is None:
                return answer, run
            if run.last_observation:
                return run.last_observation, run
            if run.nudged:
                break
            run.nudged = True
            nudge = _EMPTY_ANSWER if problem == "empty_answer" else _ECHOED_ANSWER
            run.messages.append(ChatMessage(role="user", content=nudge))
        answer = await self._final_call(run, ctx, native, small)
        if answer_problem(answer) is None:
            return answer, run
        if run.last_observation:
            return run.last_observation, run
        raise rejection(
            answer,
            agent=self.name,
            detail=f"in {run.steps} model calls (max_steps={max_steps}) for task "
            f"{task.goal[:80]!r}",
        )

    # --- prompts ------------------------------------------------------------------------------

    def _tool_names(self, ctx: AgentContext) -> list[str]:
        # A tool the job's policy denies this agent is not offered to its model at all.
        if self.tools is None:
            return offered_tools(self.name, ctx.tools.names())
        unknown = [name for name in self.tools if name not in ctx.tools]
        if unknown:
            raise ConfigError(
                f"agent {self.name!r} names unknown tools {unknown}; "
                f"registered tools: {', '.join(ctx.tools.names()) or 'none'}"
            )
        return offered_tools(self.name, self.tools)

    def _system(self, specs: Sequence[ToolSpec], native: bool) -> ChatMessage:
        if native:
            text = _NATIVE_GUIDE.format(name=self.name)
        elif specs:
            text = _JSON_GUIDE.format(name=self.name, tools=_describe_tools(specs))
        else:
            text = _JSON_GUIDE_NO_TOOLS.format(name=self.name)
        if self.instructions:
            text += "\n\n" + self.instructions.strip()
        if self._output is not None:
            text += "\n\n" + self._output.instructions()
        return ChatMessage(role="system", content=text)

    def _first_user(self, task: AgentTask, ctx: AgentContext) -> ChatMessage:
        parts = [f"Task: {task.goal.strip()}"]
        if task.job_goal.strip() and task.job_goal.strip() != task.goal.strip():
            parts.append(f"This task is part of the job: {task.job_goal.strip()}")
        if task.inputs:
            rendered = render_inputs(
                task.inputs, task.input_goals, max_chars=input_budget_chars(ctx.model)
            )
            parts.append(f"Results of earlier tasks:\n\n{rendered}")
        return ChatMessage(role="user", content="\n\n".join(parts))

    # --- the two protocols --------------------------------------------------------------------

    async def _native_step(
        self, run: _Run, ctx: AgentContext, specs: Sequence[ToolSpec]
    ) -> str | None:
        response = await call_model(ctx, self._request(run, tools=specs))
        if not response.tool_calls:
            return response.content.strip()
        asked = len(response.tool_calls)
        # Only the calls that may run stay in the transcript (each needs its tool message);
        # the model is told about the rest in one line.
        room = min(run.max_tool_calls_per_step, run.max_tool_calls - run.tool_calls)
        calls = tuple(
            _bounded(call, f"call_{run.steps}_{index}")
            for index, call in enumerate(response.tool_calls[:room])
        )
        run.messages.append(
            ChatMessage(role="assistant", content=response.content, tool_calls=calls)
        )
        allowed = {spec.name for spec in specs}
        for call in calls:
            observation = await self._use_tool(run, ctx, call, allowed, OBSERVATION_CHARS)
            run.messages.append(
                ChatMessage(role="tool", content=observation, tool_call_id=call.id, name=call.name)
            )
        notes = []
        if asked > len(calls) and len(calls) == run.max_tool_calls_per_step:
            notes.append(
                _TOO_MANY_IN_REPLY.format(
                    asked=asked, ran=len(calls), limit=run.max_tool_calls_per_step
                )
            )
        if run.tool_calls >= run.max_tool_calls:
            notes.append(_NO_TOOL_CALLS_LEFT.format(limit=run.max_tool_calls))
        if notes:
            run.messages.append(ChatMessage(role="user", content=" ".join(notes)))
        return None

    async def _json_step(
        self, run: _Run, ctx: AgentContext, specs: Sequence[ToolSpec], small: bool
    ) -> str | None:
        schema = (
            action_schema(
                specs,
                max_answer_chars=SMALL_MODEL_ANSWER_MAX_CHARS,
                max_arg_chars=SMALL_MODEL_ARG_MAX_CHARS,
                answer_schema=self._answer_schema(),
            )
            if small
            else action_schema(specs, answer_schema=self._answer_schema())
        )
        try:
            response = await call_model(ctx, self._request(run, schema=schema))
        except ModelResponseError as exc:
            if not exc.retryable:
                raise
            # Malformed or cut-off JSON: tell the model, as it would be told of a bad tool call.
            run.messages.append(ChatMessage(role="user", content=_observe(f"error: {exc}")))
            return None
        reply = _parse_reply(response)
        if isinstance(reply, str):
            # Not JSON at all: a model without structured output answering in prose.
            return reply.strip()
        said = response.content.strip() or json.dumps(reply, ensure_ascii=False)
        run.messages.append(ChatMessage(role="assistant", content=said))
        if reply.get("final_answer") is not None and "action" not in reply:
            answer = reply["final_answer"]
            return (answer if isinstance(answer, str) else json.dumps(answer)).strip()
        action = reply.get("action")
        if not isinstance(action, str) or not action:
            observation = _BAD_REPLY.format()
        else:
            raw_input = reply.get("action_input", {})
            call = (
                ToolCall(name=action, arguments=raw_input)
                if isinstance(raw_input, dict)
                else ToolCall(name=action, raw_arguments=json.dumps(raw_input, default=str))
            )
            allowed = {spec.name for spec in specs}
            max_chars = SMALL_MODEL_OBSERVATION_CHARS if small else OBSERVATION_CHARS
            if run.tool_calls >= run.max_tool_calls:
                observation = "error: " + _NO_TOOL_CALLS_LEFT.format(limit=run.max_tool_calls)
            else:
                observation = await self._use_tool(run, ctx, call, allowed, max_chars)
                if run.tool_calls >= run.max_tool_calls:
                    observation += "\n" + _NO_TOOL_CALLS_LEFT.format(limit=run.max_tool_calls)
        run.messages.append(ChatMessage(role="user", content=_observe(observation)))
        return None

    async def _final_call(self, run: _Run, ctx: AgentContext, native: bool, small: bool) -> str:
        """One last call, without tools, asking for the answer ("" when none came)."""
        run.messages.append(ChatMessage(role="user", content=_FINAL_CALL))
        run.steps += 1
        if native:
            response = await call_model(ctx, self._request(run))
            return "" if response.tool_calls else response.content.strip()
        max_chars = SMALL_MODEL_ANSWER_MAX_CHARS if small else FINAL_ANSWER_MAX_CHARS
        try:
            response = await call_model(
                ctx,
                self._request(run, schema=_final_answer_schema(max_chars, self._answer_schema())),
            )
        except ModelResponseError as exc:
            if not exc.retryable:
                raise
            return ""
        reply = _parse_reply(response)
        if isinstance(reply, str):
            return reply.strip()
        answer = reply.get("final_answer")
        if answer is not None and not isinstance(answer, str):  # a structured answer
            return json.dumps(answer, ensure_ascii=False)
        return answer.strip() if isinstance(answer, str) else ""

    def _answer_schema(self) -> dict[str, Any] | None:
        """The output schema, as the JSON protocol's ``final_answer`` (where it nests)."""
        if self._output is None or _contains_ref(self._output.json_schema):
            return None
        return self._output.json_schema

    def _request(
        self,
        run: _Run,
        *,
        tools: Sequence[ToolSpec] = (),
        schema: dict[str, Any] | None = None,
    ) -> LlmRequest:
        return LlmRequest(
            messages=tuple(run.messages),
            role="executor",
            agent=self.name,
            tools=tuple(tools),
            response_schema=schema,
            schema_name="react_step" if schema is not None else "response",
        )

    # --- tools --------------------------------------------------------------------------------

    async def _use_tool(
        self, run: _Run, ctx: AgentContext, call: ToolCall, allowed: set[str], max_chars: int
    ) -> str:
        """Run one tool call through the tool runtime and return the observation; every
        problem becomes its text. The runtime records the call (``ToolCalled``)."""
        run.tool_calls += 1
        result = await run_tool_call(
            ctx.tools,
            call.name,
            call.arguments,
            run.tool_context,
            record=ctx.emit,
            allowed=allowed,
            raw_arguments=call.raw_arguments,
        )
        observation = result.as_text(max_chars=max_chars)
        if result.ok:
            run.last_observation = observation
        key = (call.name, json.dumps(call.arguments, sort_keys=True, default=str))
        if key in run.seen_calls:
            # Small models repeat a call forever; point out that the result is already known.
            observation += "\n" + _ALREADY_CALLED.format(name=call.name) + _REPEATED + ")"
            run.repeats += 1
        run.seen_calls.add(key)
        run.trace.append({"tool": call.name, "ok": result.ok})
        return observation

    def _result(self, answer: str, run: _Run) -> AgentResult:
        return AgentResult(output=answer, data={"tool_calls": run.trace}, steps=run.steps)

    def _handoff(self, handoff: Handoff, run: _Run) -> AgentResult:
        note = handoff.note or f"{self.name} handed the task over to {handoff.to}."
        return AgentResult(
            output=note, data={"tool_calls": run.trace}, steps=run.steps, handoff=handoff
        )


def _tool_name(item: str | Tool) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Tool):
        return item.name
    raise ConfigError(f"a tool must be a tool name or a Tool, not {type(item).__name__}")


async def _load_model(url: str) -> Model:
    from planweave.llm import load_model

    return load_model(url)


def _bounded(call: ToolCall, default_id: str) -> ToolCall:
    """The call with an id, and with arguments too deep to encode replaced by a note (the
    runtime then refuses it), so neither the conversation nor the events carry them."""
    update: dict[str, Any] = {} if call.id else {"id": default_id}
    if too_deep(call.arguments):
        update.update(arguments={}, raw_arguments=TOO_DEEP_TEXT)
    return call.model_copy(update=update) if update else call


def _observe(observation: str) -> str:
    return f"Observation: {observation}\n\n{_OBSERVE_FOOTER}"


def _parse_reply(response: LlmResponse) -> dict[str, Any] | str:
    """The reply as an action/answer object, or as plain text when it is not JSON.

    Text that looks like JSON but does not parse becomes an object with no action, which the
    loop turns into an observation asking for a well-formed reply.
    """
    if isinstance(response.data, dict):
        return {} if too_deep(response.data) else response.data
    text = response.content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0].strip()
    if not text.startswith("{"):
        return response.content
    try:
        value = loads_bounded(text)
    except json.JSONDecodeError:  # JsonTooDeep included
        return {}
    return value if isinstance(value, dict) else {}
