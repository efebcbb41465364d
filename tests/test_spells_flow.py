"""Spells calling back: script functions the host runs while the script waits (hooks, stream
chunks, workflow steps), ``parallel`` host calls carried out together, and the workflow forms,
in Lua and JavaScript."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from planweave.errors import HookVeto
from planweave.hooks._contexts import BeforeToolCall
from planweave.hooks._hook import HookSet
from planweave.spells import LuaLimits, SpellError, SpellLimitExceeded
from planweave.spells._flow import ScriptHooks
from planweave.spells._js import JsLimits, run_js
from planweave.spells._lua import ScriptFunction, run_lua

OPS = ["slow", "call", "hooks.on", "tools.call", "llm.stream", "keep"]


class Host:
    """A host with slow calls, callbacks, hooks around tools.call and a streaming model."""

    def __init__(self) -> None:
        self.spans: dict[Any, tuple[float, float]] = {}
        self.hooks: dict[str, list[ScriptFunction]] = {}
        self.kept: list[ScriptFunction] = []
        self.tool_calls: list[dict[str, Any]] = []

    async def __call__(self, op: str, args: list[Any]) -> Any:
        if op == "slow":
            start = time.monotonic()
            await asyncio.sleep(0.3)
            self.spans[args[0]] = (start, time.monotonic())
            return args[0]
        if op == "call":
            fn = args[0]
            assert isinstance(fn, ScriptFunction)
            return await fn(*args[1:])
        if op == "keep":
            self.kept.append(args[0])
            return None
        if op == "hooks.on":
            self.hooks.setdefault(args[0], []).append(args[1])
            return None
        if op == "tools.call":
            ctx: dict[str, Any] = {"name": args[0], "args": args[1]}
            for fn in self.hooks.get("before_tool", []):
                change = await fn(ctx)
                if isinstance(change, dict):
                    if "veto" in change:
                        raise SpellError(f"vetoed: {change['veto']}")
                    ctx = {**ctx, **change}
            self.tool_calls.append(ctx)
            return {"echo": ctx["args"]}
        if op == "llm.stream":
            on_chunk = args[2]
            chunks = ["Hel", "lo, ", "world"]
            for chunk in chunks:
                await on_chunk(chunk)
            return "".join(chunks)
        raise SpellError(f"{op} is not available")


async def run(lang: str, lua: str, js: str, host: Host, calls: int = 100) -> Any:
    if lang == "lua":
        limits = LuaLimits(
            instructions=20_000_000, memory_bytes=16 << 20, wall_s=10, host_calls=calls
        )
        return await run_lua(lua, host=host, ops=OPS, limits=limits)
    return await run_js(js, host=host, ops=OPS, limits=JsLimits(wall_s=10, host_calls=calls))


LANGS = pytest.mark.parametrize("lang", ["lua", "js"])


def overlapping(spans: list[tuple[float, float]]) -> bool:
    """Every call started before any of them ended."""
    return max(start for start, _ in spans) < min(end for _, end in spans)


@LANGS
async def test_parallel_runs_the_host_calls_together_and_keeps_their_order(lang: str) -> None:
    host = Host()
    result = await run(
        lang,
        "return { parallel(function() return slow('a') end, function() return slow('b') end,"
        " function() return slow('c') end) }",
        "return await parallel(() => slow('a'), () => slow('b'), () => slow('c'));",
        host,
    )
    assert result == ["a", "b", "c"]
    assert overlapping([host.spans[k] for k in "abc"])


@LANGS
async def test_one_call_after_another_does_not_overlap(lang: str) -> None:
    host = Host()
    await run(lang, "slow('a'); slow('b')", "await slow('a'); await slow('b');", host)
    assert not overlapping([host.spans["a"], host.spans["b"]])


@LANGS
async def test_the_host_calls_a_script_function_that_makes_host_calls(lang: str) -> None:
    host = Host()
    result = await run(
        lang,
        "return call(function(x, y) return slow(x) .. y end, 'p', '!')",
        "return await call(async (x, y) => (await slow(x)) + y, 'p', '!');",
        host,
    )
    assert result == "p!"
    assert "p" in host.spans


@LANGS
async def test_a_script_function_that_fails_fails_the_host_call_at_its_line(lang: str) -> None:
    host = Host()
    result = await run(
        lang,
        "local ok, err = pcall(call, function() error('no way') end)\nreturn err",
        "try { await call(() => { throw new Error('no way'); }); } catch (e) { return e.message; }",
        host,
    )
    assert "no way" in result


@LANGS
async def test_a_script_functions_host_calls_count_against_the_spells_limit(lang: str) -> None:
    host = Host()
    with pytest.raises(SpellLimitExceeded) as info:
        await run(
            lang,
            "call(function() for i = 1, 10 do slow(i) end end)",
            "await call(async () => { for (let i = 0; i < 10; i++) await slow(i); });",
            host,
            calls=4,
        )
    assert info.value.limit == "host_calls"


@LANGS
async def test_a_script_function_cannot_run_after_the_spell_ended(lang: str) -> None:
    host = Host()
    await run(lang, "keep(function() return 1 end)", "await keep(() => 1);", host)
    with pytest.raises(SpellError, match="has ended"):
        await host.kept[0]()


@LANGS
async def test_workflow_forms_over_functions_and_agent_objects(lang: str) -> None:
    host = Host()
    result = await run(
        lang,
        """
        local shout = { run = function(self, text) return string.upper(text) end }
        return {
          seq = workflow.sequential({ function(x) return x .. "b" end, shout }, "a"),
          par = workflow.parallel({ function(x) return slow(x .. 1) end,
                                    function(x) return slow(x .. 2) end }, "p"),
          yes = workflow.conditional(function(x) return x > 3 end, function() return "big" end,
                                     function() return "small" end, 5),
          no = workflow.conditional(function(x) return x > 3 end, function() return "big" end,
                                    function() return "small" end, 1),
          loop = workflow.loop(function(x) return x * 2 end,
                               { ["until"] = function(v) return v > 50 end, max = 20 }, 1),
          capped = workflow.loop(function(x) return x + 1 end, { max = 3 }, 0),
        }
        """,
        """
        const shout = { run: async (text) => text.toUpperCase() };
        return {
          seq: await workflow.sequential([x => x + "b", shout], "a"),
          par: await workflow.parallel([x => slow(x + 1), x => slow(x + 2)], "p"),
          yes: await workflow.conditional(x => x > 3, () => "big", () => "small", 5),
          no: await workflow.conditional(x => x > 3, () => "big", () => "small", 1),
          loop: await workflow.loop(x => x * 2, { until: v => v > 50, max: 20 }, 1),
          capped: await workflow.loop(x => x + 1, { max: 3 }, 0),
        };
        """,
        host,
    )
    assert result == {
        "seq": "AB",
        "par": ["p1", "p2"],
        "yes": "big",
        "no": "small",
        "loop": 64,
        "capped": 3,
    }
    assert overlapping([host.spans["p1"], host.spans["p2"]])


@LANGS
async def test_a_step_that_is_not_a_function_or_agent_is_a_clear_error(lang: str) -> None:
    with pytest.raises(SpellError, match="a step is a function or an agent"):
        await run(
            lang,
            "return workflow.sequential({ 42 }, 1)",
            "return await workflow.sequential([42], 1);",
            Host(),
        )


@LANGS
async def test_a_hook_of_the_script_modifies_a_tools_args_and_another_vetoes(lang: str) -> None:
    host = Host()
    result = await run(
        lang,
        """
        hooks.on("before_tool", function(ctx)
          if ctx.name == "delete" then return { veto = "no deleting" } end
          return { args = { path = "safe/" .. ctx.args.path } }
        end)
        local page = tools.call("read", { path = "a.txt" })
        local ok, err = pcall(tools.call, "delete", { path = "b.txt" })
        return { page = page, ok = ok, err = err }
        """,
        """
        await hooks.on("before_tool", async (ctx) => {
          if (ctx.name === "delete") return { veto: "no deleting" };
          return { args: { path: "safe/" + ctx.args.path } };
        });
        const page = await tools.call("read", { path: "a.txt" });
        let err = null;
        try { await tools.call("delete", { path: "b.txt" }); } catch (e) { err = e.message; }
        return { page, ok: err === null, err };
        """,
        host,
    )
    assert result["page"] == {"echo": {"path": "safe/a.txt"}}
    assert result["ok"] is False
    assert "vetoed: no deleting" in result["err"]
    assert [c["name"] for c in host.tool_calls] == ["read"]


@LANGS
async def test_stream_chunks_reach_the_scripts_callback(lang: str) -> None:
    result = await run(
        lang,
        """
        local seen = {}
        local full = llm.stream("hi", {}, function(chunk) seen[#seen + 1] = chunk end)
        return { full = full, seen = seen }
        """,
        """
        const seen = [];
        const full = await llm.stream("hi", {}, (chunk) => { seen.push(chunk); });
        return { full, seen };
        """,
        Host(),
    )
    assert result == {"full": "Hello, world", "seen": ["Hel", "lo, ", "world"]}


class EngineHost(Host):
    """Registers the script's hooks as engine hooks and runs tool calls through them."""

    def __init__(self) -> None:
        super().__init__()
        self.script_hooks = ScriptHooks("redact")

    async def __call__(self, op: str, args: list[Any]) -> Any:
        if op == "hooks.on":
            self.script_hooks.on(args[0], args[1])
            return None
        if op == "tools.call":
            hooks = self.script_hooks.in_force() or HookSet()
            ctx = BeforeToolCall(job_id="j1", task_id="t1", agent=None, name=args[0], args=args[1])
            try:
                ctx = await hooks.run("before_tool_call", ctx)
            except HookVeto as veto:
                raise SpellError(f"vetoed by {veto.hook}: {veto.reason}") from None
            self.tool_calls.append({"name": ctx.name, "args": ctx.args})
            return {"echo": ctx.args}
        return await super().__call__(op, args)


@LANGS
async def test_hooks_on_makes_an_engine_hook_that_modifies_and_vetoes(lang: str) -> None:
    host = EngineHost()
    result = await run(
        lang,
        """
        hooks.on("before_tool", function(ctx)
          if ctx.name == "delete" then return { veto = "no deleting" } end
          return { args = { path = "safe/" .. ctx.args.path } }
        end)
        local page = tools.call("read", { path = "a.txt" })
        local ok, err = pcall(tools.call, "delete", { path = "b.txt" })
        return { page = page, err = err }
        """,
        """
        await hooks.on("before_tool", async (ctx) => {
          if (ctx.name === "delete") return { veto: "no deleting" };
          return { args: { path: "safe/" + ctx.args.path } };
        });
        const page = await tools.call("read", { path: "a.txt" });
        let err = null;
        try { await tools.call("delete", { path: "b.txt" }); } catch (e) { err = e.message; }
        return { page, err };
        """,
        host,
    )
    assert result["page"] == {"echo": {"path": "safe/a.txt"}}
    assert "vetoed by redact:before_tool: no deleting" in result["err"]
    assert host.tool_calls == [{"name": "read", "args": {"path": "safe/a.txt"}}]


async def test_hooks_on_refuses_an_unknown_point() -> None:
    with pytest.raises(SpellError, match="unknown hook point 'before_lunch'"):
        await run("lua", "hooks.on('before_lunch', function() end)", "", EngineHost())
