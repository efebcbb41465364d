"""JavaScript spells: a script run in a V8 isolate of its own (``mini-racer``), with one async
host entry point as its only way out.

The isolate has no Node.js APIs (no ``require``, ``process``, file or network access, and
``import()`` is refused); the spell sees the host calls it may make (``tools.call``,
``llm.chat``, ...) as async functions, which send their arguments as JSON to the host, where
the engine carries them out on the event loop. A hard memory cap stops allocation bombs, and
at the wall-clock limit (or when the run is cancelled) the isolate is torn down, which stops
even a loop that never yields.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from planweave.spells._errors import SpellError, SpellLimitExceeded, SpellSyntaxError
from planweave.spells._flow_js import FLOW_JS
from planweave.spells._lua import HostCall, ScriptFunction

__all__ = ["JsLimits", "run_js"]

_BRIDGE = r"""
(function () {
  const host = globalThis.__planweave_host;
  const settle = globalThis.__planweave_settle;
  const stringify = JSON.stringify, parse = JSON.parse;   // the spell may replace JSON
  delete globalThis.__planweave_host;
  delete globalThis.__planweave_settle;
  // Runs the spell once and reports how it ended; gone from the global scope at its first use.
  Object.defineProperty(globalThis, "__planweave_run", {
    configurable: true,
    value: function (spell) {
      delete globalThis.__planweave_run;
      spell().then(
        v => settle(true, stringify(v === undefined ? null : v)),
        e => settle(false, e && e.stack ? String(e.stack) : String(e)));
    },
  });
  let seed = (%(seed)d >>> 0) || 1;
  Math.random = function () {   // seeded, so a re-run of the spell draws the same
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const ret = globalThis.__planweave_return;
  delete globalThis.__planweave_return;
  const fns = new Map();   // the spell's functions passed to the host, by number
  let nextFn = 0;
  const replacer = function (key, value) {
    if (typeof value !== "function") return value;
    nextFn += 1;
    fns.set(nextFn, value);
    return { __planweave_fn: nextFn };
  };
  // The host calls one of them: its end comes back through ret(callId, ok, text).
  const invoke = function (callId, fnId, argsText) {
    const fn = fns.get(fnId);
    Promise.resolve().then(() => fn(...parse(argsText))).then(
      v => ret(callId, true, stringify(v === undefined ? null : v, replacer)),
      e => ret(callId, false, e && e.stack ? String(e.stack) : String(e)));
  };
  const call = async function (op, args) {
    const answer = parse(await host(op, stringify(args, replacer)));
    if (!answer.ok) throw new Error(answer.error);
    return answer.value;
  };
  const ops = %(ops)s;
  for (const op of ops) {
    const path = op.split(".");
    let node = globalThis;
    for (const part of path.slice(0, -1)) {
      if (!Object.prototype.hasOwnProperty.call(node, part)) node[part] = {};
      node = node[part];
    }
    node[path[path.length - 1]] = (...args) => call(op, args);
  }
  const values = %(globals)s;
  for (const name of Object.keys(values)) globalThis[name] = values[name];
  return invoke;
})();
//# sourceURL=planweave-bridge.js
"""

_FRAME = re.compile(r"\(?(?P<file>[\w./-]+\.js):(?P<line>\d+):\d+\)?")


@dataclass(frozen=True, slots=True)
class JsLimits:
    """What one run of a JavaScript spell may use.

    Attributes:
        memory_bytes: The isolate's hard heap limit.
        wall_s: Wall-clock seconds from start to end, host calls included.
        host_calls: Host calls the spell may make.
    """

    memory_bytes: int = 128 * 1024 * 1024
    wall_s: float = 60.0
    host_calls: int = 1_000


async def run_js(
    source: str,
    *,
    host: HostCall,
    ops: Sequence[str],
    globals_: Mapping[str, Any] | None = None,
    chunk: str = "main.js",
    limits: JsLimits | None = None,
    seed: int = 0,
    library: str | None = None,
) -> Any:
    """Run a JavaScript spell (the body of an async function: ``await`` and ``return`` work at
    its top level) and return what it returned, as plain Python values.

    Args and errors as for :func:`~planweave.spells.run_lua` (``library`` is trusted
    JavaScript run in the script's global scope just before it); the script's errors name its
    file and line (``main.js:4: TypeError: ...``).
    """
    from py_mini_racer import JSOOMException, JSParseException, MiniRacer

    limits = limits or JsLimits()
    started = time.monotonic()
    racer = MiniRacer()
    racer.set_hard_memory_limit(limits.memory_bytes)
    calls = 0

    pending: dict[int, asyncio.Future[tuple[bool, str]]] = {}
    ended = False
    invoke: Any = None  # the bridge's function that calls one of the spell's functions

    def decode(text: str) -> Any:
        return json.loads(text, object_hook=lambda d: wrap(d) if "__planweave_fn" in d else d)

    def wrap(marker: dict[str, Any]) -> Any:
        if len(marker) != 1 or not isinstance(marker["__planweave_fn"], int):
            return marker
        fn_id = int(marker["__planweave_fn"])

        async def call(*args: Any) -> Any:
            if ended:
                raise SpellError("the spell has ended; its functions can no longer be called")
            call_id = len(pending) + 1
            while call_id in pending:
                call_id += 1
            future: asyncio.Future[tuple[bool, str]] = loop.create_future()
            pending[call_id] = future
            try:
                text = json.dumps(list(args), default=str)
                await invoke.cancelable()(call_id, fn_id, text)
                ok, answer = await future
            finally:
                pending.pop(call_id, None)
            if not ok:
                raise SpellError(_error_message(answer, chunk))
            return decode(answer)

        return ScriptFunction(call)

    async def returned(call_id: Any, ok: Any, text: Any) -> None:
        future = pending.get(int(call_id))
        if future is not None and not future.done():
            future.set_result((bool(ok), str(text)))

    async def entry(op: Any, arguments: Any) -> str:
        nonlocal calls
        calls += 1
        if calls > limits.host_calls:
            stop.set_exception(SpellLimitExceeded("host_calls", _as_lua(limits)))
            return json.dumps({"ok": False, "error": "the spell made too many host calls"})
        try:
            args = decode(str(arguments))
            value = await host(str(op), list(args) if isinstance(args, list) else [args])
            return json.dumps({"ok": True, "value": value}, default=str)
        except SpellLimitExceeded as exc:
            stop.set_exception(exc)
            return json.dumps({"ok": False, "error": str(exc)})
        except Exception as exc:  # the call fails inside the script, at its line
            return json.dumps({"ok": False, "error": str(exc) or type(exc).__name__})

    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    settled: asyncio.Future[tuple[bool, str]] = loop.create_future()

    async def settle(ok: Any, text: Any) -> None:
        # The script's end comes back through a call of its own: awaiting its promise from
        # here would read from the isolate, which a script spinning after a host call holds.
        if not settled.done():
            settled.set_result((bool(ok), str(text)))

    try:
        async with (
            racer.wrap_py_function(entry) as function,
            racer.wrap_py_function(settle) as settle_function,
            racer.wrap_py_function(returned) as returned_function,
        ):
            scope: Any = racer.eval("globalThis")
            scope["__planweave_host"] = function
            scope["__planweave_settle"] = settle_function
            scope["__planweave_return"] = returned_function
            invoke = racer.eval(
                _BRIDGE
                % {
                    "seed": seed & 0xFFFFFFFF,
                    "ops": json.dumps(list(ops)),
                    "globals": json.dumps(dict(globals_ or {}), default=str),
                }
            )
            racer.eval(FLOW_JS)
            if library:
                racer.eval(library + "\n//# sourceURL=planweave-lib.js")
            script = f"__planweave_run(async () => {{{source}\n}});\n//# sourceURL={chunk}"
            try:
                # The script runs here until its first host call (or its end): a loop that
                # never gets there is cut off at the wall-clock limit.
                remaining = limits.wall_s - (time.monotonic() - started)
                await asyncio.wait_for(racer.eval_cancelable(script), max(remaining, 0.001))
            except TimeoutError:
                raise SpellLimitExceeded("wall_time", _as_lua(limits)) from None
            except JSParseException as exc:
                raise SpellSyntaxError(_parse_message(str(exc), chunk)) from None
            except JSOOMException:
                raise SpellLimitExceeded("memory", _as_lua(limits)) from None
            remaining = limits.wall_s - (time.monotonic() - started)
            waits: set[asyncio.Future[Any]] = {settled, stop}
            done, _ = await asyncio.wait(
                waits, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
            )
            if stop in done:
                stop.result()  # raises the limit
            if settled not in done:
                if racer.was_hard_memory_limit_reached():
                    raise SpellLimitExceeded("memory", _as_lua(limits))
                raise SpellLimitExceeded("wall_time", _as_lua(limits))
            ok, text = settled.result()
            if not ok:
                if racer.was_hard_memory_limit_reached():
                    raise SpellLimitExceeded("memory", _as_lua(limits))
                raise SpellError(_error_message(text, chunk))
            return json.loads(text)
    finally:
        ended = True
        if not stop.done():
            stop.cancel()
        racer.close()  # tears the isolate down: a script still running stops here


def _as_lua(limits: JsLimits) -> Any:
    """The limits in the shape the limit error describes (memory, wall time, host calls)."""
    from planweave.spells._lua import LuaLimits

    return LuaLimits(
        memory_bytes=limits.memory_bytes, wall_s=limits.wall_s, host_calls=limits.host_calls
    )


def _parse_message(text: str, chunk: str) -> str:
    """``<anonymous>:3: SyntaxError: Unexpected token '}'`` -> ``main.js:3: SyntaxError: ...``."""
    first = text.strip().splitlines()[0] if text.strip() else text
    match = re.match(r"(?:[^:]*):(\d+): (.*)", first)
    if match:
        return f"{chunk}:{match.group(1)}: {match.group(2)}"
    return f"{chunk}: {first}"


def _error_message(text: str, chunk: str) -> str:
    """A rejected spell as ``main.js:LINE: Error: message``: the reason, at the spell's own
    innermost frame."""
    body = text.split("reason: ", 1)[-1]
    lines = body.strip().splitlines()
    reason = lines[0].strip() if lines else body.strip()
    for line in lines[1:]:
        frame = _FRAME.search(line)
        if frame and frame.group("file") == chunk:
            return f"{chunk}:{frame.group('line')}: {reason}"
    return f"{chunk}: {reason}"
