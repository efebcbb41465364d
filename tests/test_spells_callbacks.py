"""A spell's callbacks run by the engine: hooks registered with ``hooks.on`` on the spell's own
tool calls, ``events.on`` subscriptions, and ``llm.stream`` chunks, in Lua and JavaScript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planweave.agents import AgentContext
from planweave.events import ToolCalled
from planweave.llm import ScriptedModel
from planweave.spells import SpellError
from planweave.spells._agent import run_spell
from planweave.tools import ToolContext, ToolRegistry, tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: Any) -> None:
        self.events.append(event)


def context(
    tmp_path: Path, sink: Sink, replies: list[dict[str, Any]] | None = None
) -> AgentContext:
    return AgentContext(
        model=ScriptedModel(replies or []),
        tools=ToolRegistry([add]),
        tool_context=ToolContext(workspace=tmp_path, job_id="j1", task_id="t1"),
        emit=sink,
        job_id="j1",
        task_id="t1",
    )


HOOKS = {
    "lua": """
hooks.on("before_tool", function(ctx)
  if ctx.args.a < 0 then return { veto = "no negative numbers" } end
  return { args = { a = ctx.args.a * 10, b = ctx.args.b } }
end)
local seen = {}
hooks.on("after_tool", function(ctx) seen[#seen + 1] = ctx.name end)
local sum = tools.call("add", { a = 4, b = 2 })
local ok, err = pcall(tools.call, "add", { a = -1, b = 2 })
return { sum = sum, ok = ok, err = err, seen = seen }
""",
    "js": """
await hooks.on("before_tool", (ctx) => {
  if (ctx.args.a < 0) return { veto: "no negative numbers" };
  return { args: { a: ctx.args.a * 10, b: ctx.args.b } };
});
const seen = [];
await hooks.on("after_tool", (ctx) => { seen.push(ctx.name); });
const sum = await tools.call("add", { a: 4, b: 2 });
let err = null;
try { await tools.call("add", { a: -1, b: 2 }); } catch (e) { err = e.message; }
return { sum, ok: err === null, err, seen };
""",
}


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_spells_hooks_modify_and_veto_its_tool_calls(tmp_path: Path, language: str) -> None:
    sink = Sink()
    value = await run_spell(
        context(tmp_path, sink), name="guard", language=language, source=HOOKS[language]
    )
    assert value["sum"] == 42
    assert value["ok"] is False
    assert "no negative numbers" in value["err"]
    assert value["seen"] == ["add", "add"]  # after_tool sees the vetoed call too
    calls = [e for e in sink.events if isinstance(e, ToolCalled)]
    assert calls[0].args == {"a": 40, "b": 2}
    assert "no negative numbers" in (calls[1].error or "")


async def test_a_hook_at_an_unknown_point_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpellError, match=r"main.lua:1: .*unknown hook point 'before_lunch'"):
        await run_spell(
            context(tmp_path, Sink()),
            name="bad",
            language="lua",
            source="hooks.on('before_lunch', function() end)",
        )


EVENTS = {
    "lua": """
local got = {}
events.on("ToolCalled", function(e) got[#got + 1] = e.name .. " by " .. e.agent end)
events.on("progress", function(e) got[#got + 1] = "progress " .. e.data.step end)
tools.call("add", { a = 1, b = 2 })
events.emit("progress", { step = 1 })
return got
""",
    "js": """
const got = [];
await events.on("ToolCalled", (e) => { got.push(e.name + " by " + e.agent); });
await events.on("progress", (e) => { got.push("progress " + e.data.step); });
await tools.call("add", { a: 1, b: 2 });
await events.emit("progress", { step: 1 });
return got;
""",
}


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_events_on_calls_the_script_for_the_runs_events(
    tmp_path: Path, language: str
) -> None:
    sink = Sink()
    value = await run_spell(
        context(tmp_path, sink), name="watcher", language=language, source=EVENTS[language]
    )
    assert value == ["add by watcher", "progress 1"]
    assert any(isinstance(e, ToolCalled) for e in sink.events)  # the job's log still gets them


STREAM = {
    "lua": """
local chunks = {}
local full = llm.stream("tell me", {}, function(text) chunks[#chunks + 1] = text end)
return { full = full, chunks = chunks }
""",
    "js": """
const chunks = [];
const full = await llm.stream("tell me", {}, (text) => { chunks.push(text); });
return { full, chunks };
""",
}


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_llm_stream_hands_the_reply_to_the_script_piece_by_piece(
    tmp_path: Path, language: str
) -> None:
    replies = [{"content": "one two three four"}]
    value = await run_spell(
        context(tmp_path, Sink(), replies), name="s", language=language, source=STREAM[language]
    )
    assert value["full"] == "one two three four"
    assert len(value["chunks"]) > 1
    assert "".join(value["chunks"]) == "one two three four"
