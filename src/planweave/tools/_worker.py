"""The tool worker process: runs isolated tool calls one at a time, for ``_isolation``.

Started as ``python -m planweave.tools._worker`` by a :class:`ToolProcesses` pool. It reads one
JSON request a line from stdin and writes one JSON reply a line to the pipe that was its
stdout; the tool's own prints go to stderr, so they cannot corrupt a reply. It exits when stdin
closes (its pool shut down, or the parent died). The parent kills it at a call's deadline:
nothing here needs to be interruptible.

The worker limits its own address space (``RLIMIT_AS``) to what the pool says, once its
preloaded modules are in: a tool that allocates past it gets a ``MemoryError``, reported as the
call's failure, and the worker exits so that the pool starts a fresh one.

Requests name the tool's function by module and qualified name, so the function is imported
here, never sent; arguments, results and errors travel as JSON, never pickles.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import resource
import runpy
import sys
from pathlib import Path
from typing import Any

from planweave.errors import ApprovalRequired, RetryTask, ToolError
from planweave.tools._context import ToolContext
from planweave.tools._decorator import FunctionTool, tool_failure
from planweave.tools._isolation import INIT_ENV, READY
from planweave.tools._net import egress_in_force
from planweave.tools._tool import Tool

__all__ = ["KNOWN_ERRORS", "main"]

KNOWN_ERRORS = ("ToolArgumentsInvalid", "PolicyViolation", "ToolTimeout", "ToolNotFound")
"""``ToolError`` subclasses that keep their class across the process boundary."""

_tools: dict[tuple[str, str], FunctionTool[..., Any]] = {}
_instances: dict[tuple[str, str], Tool] = {}
_limit: dict[str, int | None] = {"memory_bytes": None}
_mains: dict[str, dict[str, Any]] = {}


def _import(module: str, qualname: str, main_file: str | None) -> Any:
    if module == "__main__":
        if main_file is None:
            raise ToolError("an isolated tool defined in an interactive session cannot be run")
        namespace = _mains.get(main_file)
        if namespace is None:
            # Like multiprocessing: the script runs again, under a name that is not __main__.
            namespace = _mains[main_file] = runpy.run_path(main_file, run_name="__mp_main__")
        head, _, rest = qualname.partition(".")
        obj: Any = namespace[head]
        parts = rest.split(".") if rest else []
    else:
        obj = importlib.import_module(module)
        parts = qualname.split(".")
    for part in parts:
        obj = getattr(obj, part)
    return obj


def _resolve(module: str, qualname: str, main_file: str | None) -> FunctionTool[..., Any]:
    key = (module, qualname)
    found = _tools.get(key)
    if found is None:
        obj = _import(module, qualname, main_file)
        found = _tools[key] = obj if isinstance(obj, FunctionTool) else FunctionTool(obj)
    return found


def _instance(module: str, qualname: str, main_file: str | None) -> Tool:
    """This worker's instance of a ``Tool`` class, made on its first call."""
    key = (module, qualname)
    found = _instances.get(key)
    if found is None:
        cls = _import(module, qualname, main_file)
        made = cls()
        if not isinstance(made, Tool):
            raise ToolError(f"{module}.{qualname} does not make a tool")
        found = _instances[key] = made
    return found


def _context(data: dict[str, Any] | None) -> ToolContext:
    if data is None:
        return ToolContext(workspace=Path.cwd())
    return ToolContext(**{**data, "workspace": Path(data["workspace"])})


def _error(exc: ToolError) -> dict[str, Any]:
    kind = next(
        (cls.__name__ for cls in type(exc).__mro__ if cls.__name__ in KNOWN_ERRORS), "ToolError"
    )
    return {"kind": kind, "message": str(exc), "retryable": exc.retryable}


def _call(request: dict[str, Any]) -> dict[str, Any]:
    try:
        where = (request["module"], request["qualname"], request.get("main"))
        ctx = _context(request.get("ctx"))
        with egress_in_force(ctx.egress):  # the job's allowlist holds in this process too
            if request.get("instance"):
                value = _instance(*where).call(request["args"], ctx)
            else:
                tool = _resolve(*where)
                positional, keywords = tool._bind(request["args"], ctx)
                value = tool.fn(*positional, **keywords)
            if inspect.isawaitable(value):
                value = asyncio.run(_awaited(value))
        return {"ok": True, "value": value}
    except ToolError as exc:
        return {"ok": False, "error": _error(exc)}
    except RetryTask as exc:
        return {"ok": False, "retry": {"reason": exc.reason, "delay_s": exc.delay_s}}
    except ApprovalRequired as exc:
        return {"ok": False, "approval": str(exc)}
    except MemoryError:
        return {"ok": False, "error": _error(ToolError(_out_of_memory())), "exit": True}
    except Exception as exc:
        return {"ok": False, "error": _error(tool_failure(exc))}


def _out_of_memory() -> str:
    limit = _limit["memory_bytes"]
    if limit is None:
        return "the tool ran out of memory"
    return (
        f"the tool ran out of memory: its worker process may use {limit // (1024 * 1024)} MiB "
        "(the engine's tool_memory_bytes)"
    )


def _limit_memory(limit: int | None) -> None:
    """Cap this process's address space at ``limit`` bytes (soft and hard: a tool cannot lift
    it again)."""
    _limit["memory_bytes"] = limit
    if limit is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


async def _awaited(value: Any) -> Any:
    return await value


def _encode(reply: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(reply, default=str)  # ASCII: lone surrogates survive as escapes
    except (ValueError, RecursionError) as exc:
        failure = ToolError(f"the tool's result cannot be sent back as JSON: {exc}")
        text = json.dumps({"ok": False, "error": _error(failure)})
    return text.encode("ascii") + b"\n"


def main() -> None:
    """Serve requests until stdin closes."""
    init = json.loads(os.environ.pop(INIT_ENV, "{}"))
    if init.get("sys_path"):
        sys.path[:] = init["sys_path"]
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in a tool goes to stderr, never into a reply
    for module in init.get("preload", ()):
        # Imported before "ready", so that the first call's deadline covers only its own work;
        # a module that fails here fails again, with its error, at the call.
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    _limit_memory(init.get("max_memory_bytes"))
    replies.write(READY)
    replies.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
        except ValueError:
            return
        reply = _call(request)
        replies.write(_encode(reply))
        replies.flush()
        if reply.get("exit"):
            return


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        main()
