"""The tool runtime: the one path every tool call takes, from an agent or from a ``tool`` task.

:func:`run_tool_call` is the boundary between the engine and tool code. Whatever the tool's
implementation (an ``@tool`` function, a class written to the :class:`Tool` protocol) and
whoever calls it, the call is checked (is the tool offered, are the arguments an object that
fits the schema), bounded (the tool's own ``timeout_s`` and the calling task's deadline), timed,
and recorded as one ``ToolCalled`` event. Every tool problem (unknown name, bad arguments,
timeout, policy refusal, crash) becomes a :class:`ToolResult` the caller can read and react to,
so a misbehaving tool never takes the worker down. Only control-flow signals pass, after being
recorded. Policy checks and hooks attach here, once, for every path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from planweave import _budget, _journal
from planweave._deadline import deadline
from planweave._json import TOO_DEEP_TEXT, JsonTooDeep, loads_bounded, too_deep
from planweave._text import truncate
from planweave.constants import MAX_JSON_DEPTH
from planweave.errors import (
    ApprovalRequired,
    PolicyViolation,
    Signal,
    ToolArgumentsInvalid,
    ToolError,
    ToolNotFound,
    ToolTimeout,
)
from planweave.events import PolicyDenied, ToolCalled, trusted
from planweave.hooks._active import active_hooks, after_tool_call, before_tool_call
from planweave.tools._approval import call_fingerprint
from planweave.tools._context import ToolContext
from planweave.tools._decorator import FunctionTool, tool_failure
from planweave.tools._isolation import call_isolated_tool
from planweave.tools._net import egress_in_force
from planweave.tools._registry import ToolRegistry
from planweave.tools._tool import Tool, is_isolated

__all__ = ["Record", "ToolErrorType", "ToolResult", "invoke", "run_tool_call"]

ToolErrorType = Literal[
    "", "arguments_invalid", "timeout", "policy", "not_found", "rejected", "error"
]

Record = Callable[[ToolCalled | PolicyDenied], Awaitable[None] | None]
"""Receives the ``ToolCalled`` event of a call, after its ``PolicyDenied`` event when a policy
rule refused it (an agent's event sink, or a list's ``append``)."""

EVENT_RESULT_CHARS = 1_000
EVENT_ARG_CHARS = 500


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"  # what a no-op tool returns: skip the JSON encoder
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if too_deep(value):
        return TOO_DEEP_TEXT
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What came of one tool call, as the caller sees it.

    Attributes:
        ok: Whether the tool returned normally.
        value: What it returned (``None`` on failure).
        error: The error message on failure.
        error_type: ``""`` when ok, else ``arguments_invalid``, ``timeout``, ``policy``,
            ``not_found``, ``rejected`` (a person rejected the call) or ``error``.
        retryable: Whether calling again may succeed.
        latency_ms: How long the call took.
    """

    ok: bool
    value: Any = None
    error: str | None = None
    error_type: ToolErrorType = ""
    retryable: bool = False
    latency_ms: float = 0.0

    def as_text(self, max_chars: int = 4000) -> str:
        """Render for a model: the value as text (JSON for structures) or ``error: ...``."""
        text = _render(self.value) if self.ok else f"error: {self.error}"
        if len(text) > max_chars:
            cut = len(text) - max_chars
            text = f"{text[:max_chars]}\n[... {cut} more characters cut]"
        return text


class ApprovalRejected(ToolError):
    """A person rejected the call (the agent reads who and why)."""


def _error_type(exc: ToolError) -> ToolErrorType:
    if isinstance(exc, ApprovalRejected):
        return "rejected"
    if isinstance(exc, ToolArgumentsInvalid):
        return "arguments_invalid"
    if isinstance(exc, ToolTimeout):
        return "timeout"
    if isinstance(exc, PolicyViolation):
        return "policy"
    if isinstance(exc, ToolNotFound):
        return "not_found"
    return "error"


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict, Mapping),
    "null": (type(None),),
}


def _fits(value: Any, kind: object) -> bool:
    if isinstance(kind, list):
        return any(_fits(value, one) for one in kind)
    if not isinstance(kind, str) or kind not in _JSON_TYPES:
        return True  # a type this check does not know: leave it to the tool
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def check_arguments(tool: Tool, args: Mapping[str, Any]) -> None:
    """Check ``args`` against the top level of ``tool.parameters`` before the tool runs.

    ``@tool`` functions validate fully (pydantic); for other tools this checks what a JSON
    schema's top level says: required names, unknown names where ``additionalProperties`` is
    false, and each argument's JSON type.

    Raises:
        ToolArgumentsInvalid: what is wrong, naming the expected parameters.
    """
    if not isinstance(args, Mapping):
        raise ToolArgumentsInvalid(
            f"invalid arguments for tool {tool.name!r}: expected a JSON object, "
            f"got {type(args).__name__}"
        )
    schema = tool.parameters
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    problems = [
        f"{name}: missing required argument"
        for name in schema.get("required", ())
        if name not in args
    ]
    if schema.get("additionalProperties") is False:
        problems += [f"{name}: unexpected argument" for name in args if name not in props]
    for name, value in args.items():
        prop = props.get(name)
        if isinstance(prop, dict) and not _fits(value, prop.get("type")):
            problems.append(f"{name}: expected {prop.get('type')}, got {type(value).__name__}")
    if problems:
        expected = ", ".join(props) or "none"
        raise ToolArgumentsInvalid(
            f"invalid arguments for tool {tool.name!r}: {'; '.join(problems)} "
            f"(parameters: {expected})"
        )


async def _run_protocol_tool(tool: Tool, args: Mapping[str, Any], ctx: ToolContext) -> Any:
    """Call a tool that is not an ``@tool`` function: check, bound and translate as they do
    (an ``isolated = True`` one in a tool worker process, as an isolated ``@tool`` runs)."""
    check_arguments(tool, args)
    if is_isolated(tool):
        return await call_isolated_tool(tool, args, ctx)  # the pool applies timeout_s

    async def guarded() -> Any:
        try:
            return await tool.call(args, ctx)
        except (ToolError, Signal):
            raise
        except Exception as exc:
            raise tool_failure(exc) from exc

    try:
        with deadline(tool.timeout_s):
            return await guarded()
    except TimeoutError:
        # guarded() turns the tool's own TimeoutError into ToolError, so this is our deadline.
        raise ToolTimeout(
            f"tool {tool.name!r} did not finish within {tool.timeout_s:g} s"
        ) from None


def _too_deep(name: str) -> str:
    return f"the arguments for {name!r} are nested deeper than {MAX_JSON_DEPTH} levels"


def _not_an_object(name: str, raw_arguments: str) -> str:
    """Why arguments a model wrote could not be used: too deep, or not a JSON object."""
    if raw_arguments == TOO_DEEP_TEXT:
        return _too_deep(name)
    try:
        loads_bounded(raw_arguments)
    except JsonTooDeep:
        return _too_deep(name)
    except ValueError:
        pass
    return f"the arguments for {name!r} are not a JSON object: {truncate(raw_arguments, 200)!r}"


def event_args(args: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str):
            out[key] = truncate(value, EVENT_ARG_CHARS)
        elif isinstance(value, int | float | bool) or value is None:
            out[key] = value
        elif too_deep(value, MAX_JSON_DEPTH - 1):
            out[key] = TOO_DEEP_TEXT
        else:
            text = json.dumps(value, ensure_ascii=False, default=str)
            out[key] = value if len(text) <= EVENT_ARG_CHARS else truncate(text, EVENT_ARG_CHARS)
    return out


def _event(name: str, args: Mapping[str, Any], ctx: ToolContext, result: ToolResult) -> ToolCalled:
    return trusted(
        ToolCalled,
        {
            # The control plane numbers the event and gives it its id in the job's log.
            "id": f"{ctx.job_id}:{ctx.task_id}:tool",
            "job_id": ctx.job_id,
            "task_id": ctx.task_id or None,
            "name": name,
            "agent": ctx.agent,
            "args": event_args(args) if args else {},
            "outcome": "ok" if result.ok else "error",
            "result": result.as_text(max_chars=EVENT_RESULT_CHARS) if result.ok else "",
            "error": result.error,
            "latency_ms": result.latency_ms,
        },
    )


def _denial(
    name: str, args: Mapping[str, Any], ctx: ToolContext, rule: str, reason: str
) -> PolicyDenied:
    return trusted(
        PolicyDenied,
        {
            "id": f"{ctx.job_id}:{ctx.task_id}:policy",
            "job_id": ctx.job_id,
            "task_id": ctx.task_id or None,
            "point": "tool",
            "tool": name,
            "agent": ctx.agent,
            "rule": rule,
            "reason": reason,
            "args": event_args(args) if args else {},
        },
    )


async def run_tool_call(
    registry: ToolRegistry,
    name: str,
    args: Mapping[str, Any],
    ctx: ToolContext,
    *,
    record: Record | None = None,
    allowed: Collection[str] | None = None,
    raw_arguments: str | None = None,
    timeout_s: float | None = None,
) -> ToolResult:
    """Run one tool call, from any caller, and record it; tool failures never raise.

    Args:
        registry: Where to find the tool.
        name: The tool's name, as the caller wrote it.
        args: The arguments, as the caller wrote them.
        ctx: The context of the call (its ``job_id``, ``task_id`` and ``agent`` go into the
            event).
        record: Receives the call's ``ToolCalled`` event (``None``: not recorded).
        allowed: The tools this caller was offered (``None``: every registered tool).
        raw_arguments: The arguments as written, when they were not a JSON object.
        timeout_s: The calling task's time limit, on top of the tool's own ``timeout_s``.

    Returns:
        ``ok=True`` with the value, or ``ok=False`` with the error, its type and whether a retry
        may help.

    Inside a journaled task (``planweave._journal``) a call recorded by an earlier run of the
    task returns the recorded result without running the tool or recording an event again, and
    a live call's result is recorded before it is returned.

    Raises:
        Signal: A signal the tool raised on purpose (``RetryTask``, ``ApprovalRequired``); the
            call is recorded as an error first. ``BudgetNeeded`` when the task's share of its
            job's tool calls has none left: the call is not made.
    """
    if ctx.egress is not None:
        with egress_in_force(ctx.egress):
            return await _journaled_call(
                registry, name, args, ctx, record, allowed, raw_arguments, timeout_s
            )
    return await _journaled_call(
        registry, name, args, ctx, record, allowed, raw_arguments, timeout_s
    )


async def _journaled_call(
    registry: ToolRegistry,
    name: str,
    args: Mapping[str, Any],
    ctx: ToolContext,
    record: Record | None,
    allowed: Collection[str] | None,
    raw_arguments: str | None,
    timeout_s: float | None,
) -> ToolResult:
    step = _journal.begin("tool", lambda: _journal_print(name, args, raw_arguments))
    if step is not None:
        if step.recorded is not None:
            return _replayed(step.recorded.result)
        with step.inside():
            result = await _run_tool_call(
                registry, name, args, ctx, record, allowed, raw_arguments, timeout_s
            )
        await step.done(_journal_result(result))
        return result
    return await _run_tool_call(
        registry, name, args, ctx, record, allowed, raw_arguments, timeout_s
    )


def _journal_print(name: str, args: Mapping[str, Any], raw_arguments: str | None) -> str:
    if not args:
        text = "{}"
    elif too_deep(args):
        text = TOO_DEEP_TEXT
    else:
        text = json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)
    return _journal.fingerprint(name, text, raw_arguments or "")


def _journal_result(result: ToolResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "value": _journal.json_value(result.value),
        "error": result.error,
        "error_type": result.error_type,
        "retryable": result.retryable,
        "latency_ms": result.latency_ms,
    }


def _replayed(recorded: dict[str, Any]) -> ToolResult:
    return ToolResult(**recorded)


async def _run_tool_call(
    registry: ToolRegistry,
    name: str,
    args: Mapping[str, Any],
    ctx: ToolContext,
    record: Record | None,
    allowed: Collection[str] | None,
    raw_arguments: str | None,
    timeout_s: float | None,
) -> ToolResult:
    _budget.before_tool_call()  # the task's share of the job's tool calls: made only if it fits
    hooks = active_hooks()
    start = time.perf_counter()
    denied: PolicyDenied | None = None
    try:
        if hooks is not None and hooks.tool_calls:  # may change the args, or veto (policy)
            args = await before_tool_call(hooks, name, args, ctx)
        if allowed is not None and name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ToolNotFound(f"unknown tool {name!r}; available tools: {known}")
        if raw_arguments is not None and not args:
            raise ToolArgumentsInvalid(_not_an_object(name, raw_arguments))
        if args and too_deep(args):  # most calls have few or no arguments: skip the walk
            raise ToolArgumentsInvalid(_too_deep(name))
        tool = registry.get(name)
        gate = ctx.approval
        if gate is not None:
            verdict = gate.check(tool, name, args)  # raises ApprovalRequired: nobody decided
            if verdict is not None and not verdict.approved:
                raise ApprovalRejected(verdict.rejection())
        call = (
            tool.call(args, ctx)
            if isinstance(tool, FunctionTool)
            else _run_protocol_tool(tool, args, ctx)
        )
        if timeout_s is None:
            value = await call
        else:
            try:
                with deadline(timeout_s):
                    value = await call
            except TimeoutError:
                raise ToolTimeout(
                    f"the task took longer than its timeout of {timeout_s:g} s"
                ) from None
        result = ToolResult(ok=True, value=value, latency_ms=(time.perf_counter() - start) * 1000)
    except ToolError as exc:
        result = ToolResult(
            ok=False,
            error=str(exc),
            error_type=_error_type(exc),
            retryable=exc.retryable,
            latency_ms=(time.perf_counter() - start) * 1000,
        )
        if isinstance(exc, PolicyViolation):
            if exc.call_args is not None:
                args = exc.call_args  # as the hooks before the refusal left them (redacted)
            if exc.rule is not None:
                denied = _denial(name, args, ctx, exc.rule, str(exc))
    except ApprovalRequired as exc:
        if exc.call is not None:  # the gate's: the call has not happened, nothing to record
            raise
        # The tool itself asked: the call waits like one the gate stopped, unless a person
        # approved it already (asking again then is the tool's error).
        gate = ctx.approval
        verdict = gate.decided(name, args) if gate is not None else None
        if verdict is None:
            exc.tool, exc.arguments, exc.call = name, dict(args), call_fingerprint(name, args)
            raise
        result = ToolResult(
            ok=False,
            error=(
                f"tool {name!r} asked for approval again after it was approved: {exc.reason}"
                if verdict.approved
                else verdict.rejection()
            ),
            error_type="rejected",
            latency_ms=(time.perf_counter() - start) * 1000,
        )
    except Signal as exc:
        if record is not None:
            failed = ToolResult(
                ok=False,
                error=f"{type(exc).__name__}: {exc}",
                error_type="error",
                latency_ms=(time.perf_counter() - start) * 1000,
            )
            pending = record(_event(name, args, ctx, failed))
            if pending is not None:
                await pending
        raise
    if hooks is not None and hooks.tool_calls:  # may change (redact) the result first
        result = await after_tool_call(hooks, name, args, ctx, result)
    if record is not None:
        if denied is not None:
            pending = record(denied)
            if pending is not None:
                await pending
        pending = record(_event(name, args, ctx, result))
        if pending is not None:
            await pending
    return result


async def invoke(
    registry: ToolRegistry, name: str, args: Mapping[str, Any], ctx: ToolContext
) -> ToolResult:
    """Call tool ``name`` and report the outcome; tool failures never raise.

    :func:`run_tool_call` without recording, for scripts and tests.

    Raises:
        Signal: A signal the tool raised on purpose (``RetryTask``, ``ApprovalRequired``).
    """
    return await run_tool_call(registry, name, args, ctx)
