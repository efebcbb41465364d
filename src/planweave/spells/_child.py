"""The child process of an isolated spell: ``python -m planweave.spells._child``.

It reads one request line (JSON) from stdin, puts itself under resource limits (address
space, CPU seconds, open files, no file writes, no core dumps), runs the spell in its sandbox
and sends each host call to the parent as a JSON line on stdout, reading the answer from stdin.
Its last line says how the spell ended. Nothing else is written to stdout.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import sys
import threading
from typing import Any, BinaryIO

from planweave.spells._errors import SpellError, SpellLimitExceeded, SpellSyntaxError

__all__ = ["main"]

# Room for the interpreter, lupa and V8 themselves, above the spell's own memory limit.
# V8 reserves a large address range up front, so a JavaScript child gets more.
_BASE_ADDRESS_SPACE = {"lua": 1 << 30, "js": 256 << 30}
_OPEN_FILES = 64


def _limit(kind: int, value: int, slack: int = 0) -> None:
    """Lower a limit to ``value`` (the hard one to ``value + slack``: past the soft CPU limit
    the process gets SIGXCPU, which says why it ended, before the hard one kills it)."""
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
        resource.setrlimit(kind, (value, min(value + slack, hard)))
    else:
        resource.setrlimit(kind, (value, value + slack))


def _confine(language: str, memory_bytes: int, wall_s: float) -> None:
    _limit(resource.RLIMIT_AS, _BASE_ADDRESS_SPACE[language] + memory_bytes)
    _limit(resource.RLIMIT_CPU, max(1, math.ceil(wall_s)) + 1, slack=1)
    _limit(resource.RLIMIT_NOFILE, _OPEN_FILES)
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CORE, 0)


class _Channel:
    """Host calls to the parent and their answers, matched by id."""

    def __init__(self, out: BinaryIO, loop: asyncio.AbstractEventLoop) -> None:
        self._out = out
        self._loop = loop
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        with self._lock:
            self._out.write(data)
            self._out.flush()

    async def call(self, op: str, args: list[Any]) -> Any:
        self._next += 1
        ident = self._next
        answer: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._waiting[ident] = answer
        self.send({"call": ident, "op": op, "args": args})
        reply = await answer
        if not reply.get("ok"):
            raise SpellError(str(reply.get("error") or "the host call failed"))
        return reply.get("value")

    def read_answers(self) -> None:
        """Reads the parent's answers (in a thread) until stdin closes."""
        for line in sys.stdin.buffer:
            reply = json.loads(line)
            self._loop.call_soon_threadsafe(self._deliver, reply)

    def _deliver(self, reply: dict[str, Any]) -> None:
        future = self._waiting.pop(int(reply["reply"]), None)
        if future is not None and not future.done():
            future.set_result(reply)


async def _run(request: dict[str, Any], out: BinaryIO) -> None:
    from planweave.spells._js import JsLimits, run_js
    from planweave.spells._lua import LuaLimits, run_lua

    channel = _Channel(out, asyncio.get_running_loop())
    threading.Thread(target=channel.read_answers, daemon=True).start()
    kwargs: dict[str, Any] = {
        "host": channel.call,
        "ops": request["ops"],
        "globals_": request.get("globals") or {},
        "chunk": request["chunk"],
        "seed": int(request.get("seed", 0)),
    }
    try:
        if request["language"] == "lua":
            value = await run_lua(
                request["source"], limits=LuaLimits(**request["limits"]), **kwargs
            )
        else:
            value = await run_js(request["source"], limits=JsLimits(**request["limits"]), **kwargs)
    except SpellLimitExceeded as exc:
        channel.send({"end": "limit", "limit": exc.limit, "message": str(exc)})
    except SpellSyntaxError as exc:
        channel.send({"end": "syntax", "message": str(exc)})
    except SpellError as exc:
        channel.send({"end": "error", "message": str(exc)})
    except MemoryError:
        channel.send({"end": "limit", "limit": "memory"})
    else:
        channel.send({"end": "ok", "value": value})


def main() -> int:
    """Run one spell as the parent asks, under resource limits."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr; stdout is the parent's channel only
    request = json.loads(sys.stdin.buffer.readline())
    limits = request["limits"]
    _confine(request["language"], int(limits["memory_bytes"]), float(limits["wall_s"]))
    asyncio.run(_run(request, out))
    out.flush()
    os._exit(0)  # the sandbox's threads may still be busy; nothing more is owed


if __name__ == "__main__":
    sys.exit(main())
