"""Turn a typed, documented Python function into a tool a model can call.

The signature is the single source of truth: pydantic builds both the JSON schema shown to the
model and the validator that checks the model's arguments, so the two can never disagree. Bad
arguments are refused before the function runs, and whatever the function raises is translated
into the ``ToolError`` family at this one seam.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from planweave._deadline import deadline
from planweave.errors import ConfigError, Signal, ToolArgumentsInvalid, ToolError, ToolTimeout
from planweave.llm.base import ToolSpec
from planweave.tools._context import ToolContext
from planweave.tools._docstring import parse_docstring
from planweave.tools._isolation import main_file_of, shared_tool_processes

__all__ = ["DEFAULT_TIMEOUT_S", "FunctionTool", "tool", "tool_failure"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TIMEOUT_S = 30.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Schema keys whose values are data, not sub-schemas: their contents are copied untouched.
_DATA_KEYS = frozenset({"default", "const", "enum", "examples"})
_MAPPING_KEYS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
# OSErrors that say something about the request, not about a flaky network: retrying won't help.
_PERMANENT_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def tool_failure(exc: Exception) -> ToolError:
    """What a tool's unexpected exception becomes: a ``ToolError`` naming it, retryable when it
    looks like a network or I/O hiccup rather than a problem with the request."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    retryable = isinstance(exc, OSError) and not isinstance(exc, _PERMANENT_OS_ERRORS)
    return ToolError(detail, retryable=retryable)


def _strip_titles(node: Any) -> Any:
    """Drop pydantic's auto-generated ``title`` keys, which only add noise for a model."""
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _MAPPING_KEYS and isinstance(value, dict):
            out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
        else:
            out[key] = _strip_titles(value)
    return out


def _describe_error(err: Mapping[str, Any]) -> str:
    loc = ".".join(str(part) for part in err["loc"]) or "(arguments)"
    kind = err["type"]
    if kind == "missing":
        return f"{loc}: missing required argument"
    if kind == "extra_forbidden":
        return f"{loc}: unexpected argument"
    return f"{loc}: {err['msg']}"


class FunctionTool(Generic[P, R]):
    """A function a model may call, with its name, description and JSON-schema parameters.

    It implements the :class:`~planweave.tools.Tool` protocol; ``@tool`` makes one. A
    ``FunctionTool`` stays callable like the function it wraps (``add(2, 3) == 5``); the engine calls it
    through :meth:`call`, which validates the arguments, injects the :class:`ToolContext`, applies
    the timeout and translates errors.

    Attributes:
        name: The name models call the tool by.
        description: What the tool does (the docstring's first paragraph by default).
        parameters: JSON schema of the arguments (an ``object`` schema).
        timeout_s: Longest a call may take before it fails with ``ToolTimeout``.
        isolated: Whether calls run in a worker process that is killed at the deadline.
        high_impact: Whether a call needs a person's approval before it runs: ``True``,
            ``False``, or a function of the call's arguments (``lambda args: args["method"]
            != "GET"``).
        sandbox: What the tool may reach and what it refuses, in a sentence, for
            ``planweave tools list`` and the docs.
        fn: The wrapped function.
    """

    __name__: str  # copied from the function, like the rest of its metadata

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        isolated: bool = False,
        high_impact: bool | Callable[[Mapping[str, Any]], bool] = False,
        sandbox: str = "",
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name if name is not None else fn.__name__
        if not _NAME_RE.fullmatch(self.name):
            raise ConfigError(
                f"invalid tool name {self.name!r}: use 1 to 64 letters, digits, '_' or '-'"
            )
        if not timeout_s > 0:
            raise ConfigError(f"tool {self.name!r}: timeout_s must be positive, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.isolated = isolated
        self.high_impact = high_impact
        self.sandbox = sandbox
        if isolated and "<" in fn.__qualname__:
            raise ConfigError(
                f"tool {self.name!r}: an isolated tool must be a function defined at the top "
                f"level of a module (its worker process imports it by name), not "
                f"{fn.__qualname__!r}"
            )
        doc = parse_docstring(inspect.getdoc(fn))
        self.description = description if description is not None else doc.description
        self._is_async = inspect.iscoroutinefunction(fn)
        self._args_model, self._layout = self._build_model(fn, doc.params)
        self.uses_context = any(key is None for _, key, _ in self._layout)
        self._no_parameters = all(key is None for _, key, _ in self._layout)
        """Whether the tool takes a ``ToolContext`` (and so may touch the job's workspace)."""
        try:
            schema = self._args_model.model_json_schema(by_alias=True)
        except Exception as exc:
            raise ConfigError(f"tool {self.name!r}: cannot build a JSON schema: {exc}") from exc
        schema = _strip_titles(schema)
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        self.parameters: dict[str, Any] = schema

    def _build_model(
        self, fn: Callable[..., Any], docs: Mapping[str, str]
    ) -> tuple[type[BaseModel], list[tuple[str, str | None, bool]]]:
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise ConfigError(f"tool {self.name!r}: cannot resolve type hints: {exc}") from exc
        fields: dict[str, Any] = {}
        # One entry per parameter: (parameter name, field key or None for the context, positional)
        layout: list[tuple[str, str | None, bool]] = []
        for index, (pname, param) in enumerate(inspect.signature(fn).parameters.items()):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(f"tool {self.name!r}: *args and **kwargs are not supported")
            positional = param.kind is param.POSITIONAL_ONLY
            annotation = hints.get(pname, Any)
            if annotation is ToolContext:
                layout.append((pname, None, positional))
                continue
            default = ... if param.default is param.empty else param.default
            key = f"p{index}"  # aliases keep names like "json" from shadowing BaseModel methods
            fields[key] = (annotation, Field(default, alias=pname, description=docs.get(pname)))
            layout.append((pname, key, positional))
        try:
            model = create_model(
                f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
            )
        except Exception as exc:
            raise ConfigError(f"tool {self.name!r}: unsupported parameter type: {exc}") from exc
        return typing.cast(type[BaseModel], model), layout

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionTool(name={self.name!r})"

    def spec(self) -> ToolSpec:
        """Describe the tool for a model."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def _bind(self, args: Mapping[str, Any], ctx: ToolContext) -> tuple[list[Any], dict[str, Any]]:
        if not isinstance(args, Mapping):
            raise ToolArgumentsInvalid(
                f"invalid arguments for tool {self.name!r}: expected a JSON object, "
                f"got {type(args).__name__}"
            )
        # An empty object is all a tool without parameters accepts: nothing to validate.
        validated = None if not args and self._no_parameters else self._validate_arguments(args)
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for pname, key, is_positional in self._layout:
            value = ctx if key is None else getattr(validated, key)
            if is_positional:
                positional.append(value)
            else:
                keywords[pname] = value
        return positional, keywords

    def _validate_arguments(self, args: Mapping[str, Any]) -> BaseModel:
        try:
            return typing.cast(
                BaseModel, self._args_model.__pydantic_validator__.validate_python(dict(args))
            )
        except ValidationError as exc:
            problems = [_describe_error(err) for err in exc.errors(include_url=False)]
            expected = ", ".join(self.parameters["properties"]) or "none"
            raise ToolArgumentsInvalid(
                f"invalid arguments for tool {self.name!r}: {'; '.join(problems)} "
                f"(parameters: {expected})"
            ) from None

    async def _run(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            if self._is_async:
                return await typing.cast(Any, self.fn)(*args, **kwargs)
            return await asyncio.to_thread(self.fn, *args, **kwargs)
        except (ToolError, Signal):
            raise
        except Exception as exc:
            raise tool_failure(exc) from exc

    async def _run_isolated(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        processes = ctx.processes if ctx.processes is not None else shared_tool_processes()
        return await processes.call(
            self.fn.__module__,
            self.fn.__qualname__,
            args,
            ctx if self.uses_context else None,
            main_file=main_file_of(self.fn.__module__),
            timeout_s=self.timeout_s,
            name=self.name,
        )

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Validate ``args``, run the tool and return what it returned.

        A sync function runs in a worker thread; when it times out the call returns at once but
        the thread finishes in the background. An isolated tool runs in a worker process
        instead, which is killed at the deadline (its ``ToolTimeout`` is not retryable: the
        same call would do the same work again).

        Args:
            args: The arguments, as the model sent them (a JSON object).
            ctx: Injected into the parameters annotated ``ToolContext``.

        Raises:
            ToolArgumentsInvalid: ``args`` do not match the schema (the function did not run).
            ToolTimeout: The call took longer than ``timeout_s``.
            ToolError: The function failed; ``retryable`` is set for network-like errors.
            Signal: Signals raised by the function (``RetryTask``, ``ApprovalRequired``).
        """
        positional, keywords = self._bind(args, ctx)  # in this process, for clear errors
        if self.isolated:
            return await self._run_isolated(args, ctx)  # the pool applies timeout_s
        try:
            with deadline(self.timeout_s):
                return await self._run(positional, keywords)
        except TimeoutError:
            # _run turns the function's own TimeoutError into ToolError, so this is our deadline.
            raise ToolTimeout(
                f"tool {self.name!r} did not finish within {self.timeout_s:g} s"
            ) from None


@overload
def tool(fn: Callable[P, R], /) -> FunctionTool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolated: bool = False,
    high_impact: bool | Callable[[Mapping[str, Any]], bool] = False,
    sandbox: str = "",
) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolated: bool = False,
    high_impact: bool | Callable[[Mapping[str, Any]], bool] = False,
    sandbox: str = "",
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Make a :class:`FunctionTool` of a function, bare (``@tool``) or with options (``@tool(...)``).

    Args:
        fn: The function (sync or async) when used bare.
        name: Tool name; the function's name by default.
        description: Tool description; the docstring's first paragraph by default.
        timeout_s: Longest a call may take.
        isolated: Run each call in a worker process that is killed when the call's deadline
            passes, so a tool that computes without yielding (and holds the GIL) cannot stall
            the event loop. For CPU-bound and untrusted code; arguments and results travel as
            JSON, the context without its model and event sink.
        high_impact: Whether a call needs a person's approval before it runs: a bool, or a
            function of the call's arguments that says so per call.
        sandbox: One sentence on what the tool may reach and what it refuses.

    Returns:
        The tool, or a decorator that makes one.
    """

    def wrap(func: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(
            func,
            name=name,
            description=description,
            timeout_s=timeout_s,
            isolated=isolated,
            high_impact=high_impact,
            sandbox=sandbox,
        )

    return wrap if fn is None else wrap(fn)
