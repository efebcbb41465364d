"""The spell bridge: a spell's host calls carried out by the engine, in Lua and JavaScript."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from planweave import Engine
from planweave.agents import AgentContext, AgentRegistry, ReactAgent, as_tool
from planweave.events import LlmCalled, PolicyDenied, SpellEvent, ToolCalled
from planweave.llm import ScriptedModel
from planweave.plan import Plan, TaskSpec
from planweave.policy import Policy
from planweave.spells import SpellError
from planweave.spells._agent import SpellAgent, run_spell
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


def context(tmp_path: Path, replies: list[dict[str, Any]], sink: Sink) -> AgentContext:
    return AgentContext(
        model=ScriptedModel(replies),
        tools=ToolRegistry([add]),
        tool_context=ToolContext(workspace=tmp_path, job_id="j1", task_id="t1"),
        emit=sink,
        job_id="j1",
        task_id="t1",
    )


LUA = {
    "tools": """
local names = {}
for _, t in ipairs(tools.list()) do names[#names + 1] = t.name end
return { names = names, sum = tools.call("add", { a = params.x, b = 2 }) }
""",
    "chat": """
local text = llm.chat({ { role = "user", content = "hi " .. params.x } })
local data = llm.chat("give json", { schema = { type = "object" } })
log.info("got", text)
return { text = text, n = data.n, round = json.decode(json.encode({ k = 1 })).k }
""",
}
JS = {
    "tools": """
const names = (await tools.list()).map(t => t.name);
return { names, sum: await tools.call("add", { a: params.x, b: 2 }) };
""",
    "chat": """
const text = await llm.chat([{ role: "user", content: "hi " + params.x }]);
const data = await llm.chat("give json", { schema: { type: "object" } });
await log.info("got", text);
return { text, n: data.n, round: (await json.decode(await json.encode({ k: 1 }))).k };
""",
}


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_tools_list_and_call_are_recorded_tool_calls(tmp_path: Path, language: str) -> None:
    sink = Sink()
    source = (LUA if language == "lua" else JS)["tools"]
    value = await run_spell(
        context(tmp_path, [], sink), name="adder", language=language, source=source,
        params={"x": 40},
    )  # fmt: skip
    assert value == {"names": ["add"], "sum": 42}
    calls = [e for e in sink.events if isinstance(e, ToolCalled)]
    assert [(c.name, c.agent) for c in calls] == [("add", "adder")]


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_llm_chat_text_and_structured_output(tmp_path: Path, language: str) -> None:
    sink = Sink()
    replies = [{"match": {"contains": "hi 7"}, "content": "hello"}, {"json": {"n": 3}}]
    source = (LUA if language == "lua" else JS)["chat"]
    ctx = context(tmp_path, replies, sink)
    value = await run_spell(ctx, name="chatty", language=language, source=source, params={"x": 7})
    assert value == {"text": "hello", "n": 3, "round": 1}
    logged = [(e.name, e.data) for e in sink.events if isinstance(e, SpellEvent)]
    assert logged == [("log.info", "got hello")]
    llm = [e for e in sink.events if isinstance(e, LlmCalled)]
    assert len(llm) == 2 and all(e.agent == "chatty" for e in llm)
    assert ctx.model.requests[1].response_schema == {"type": "object"}  # type: ignore[attr-defined]


# --- spells as tasks of a job -----------------------------------------------------------------


def _engine(tmp_path: Path, model: ScriptedModel, **kwargs: Any) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=model,
        tools=[add, *kwargs.pop("extra_tools", [])],
        data_dir=tmp_path / "data",
        **kwargs,
    )


def _spell_task(language: str, source: str, **params: Any) -> TaskSpec:
    return TaskSpec(
        id="s", kind="spell", args={"language": language, "source": source, "params": params}
    )


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_spell_task_runs_in_a_planned_job(tmp_path: Path, language: str) -> None:
    source = (LUA if language == "lua" else JS)["tools"]
    async with _engine(tmp_path, ScriptedModel([])) as engine:
        result = await engine.run(plan=Plan(tasks=(_spell_task(language, source, x=1),)))
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert "3" in json.dumps(result.result)
    (call,) = [e for e in events if e.type == "ToolCalled"]
    assert call.name == "add" and call.task_id == "s"


@pytest.mark.parametrize(
    ("language", "source", "line"),
    [
        ("lua", 'local x = 1\nerror("the price is missing")', "main.lua:2:"),
        ("js", 'const x = 1;\nthrow new Error("the price is missing");', "main.js:2:"),
    ],
)
async def test_a_failing_spell_fails_its_task_with_the_script_line(
    tmp_path: Path, language: str, source: str, line: str
) -> None:
    async with _engine(tmp_path, ScriptedModel([])) as engine:
        result = await engine.run(plan=Plan(tasks=(_spell_task(language, source),)))
    assert not result.ok
    assert line in (result.error or "") and "the price is missing" in (result.error or "")
    assert "Traceback" not in (result.error or "") and "SpellError" not in (result.error or "")


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_policy_denies_a_tool_called_from_a_spell(tmp_path: Path, language: str) -> None:
    source = {
        "lua": 'local ok, err = pcall(tools.call, "add", { a = 1, b = 2 })\nreturn err',
        "js": 'try { await tools.call("add", { a: 1, b: 2 }); } catch (e) { return e.message; }',
    }[language]
    policy = Policy(deny=("add",))
    async with _engine(tmp_path, ScriptedModel([]), policy=policy) as engine:
        result = await engine.run(plan=Plan(tasks=(_spell_task(language, source),)))
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    assert "add" in json.dumps(result.result)
    assert [e.tool for e in events if isinstance(e, PolicyDenied)] == ["add"]
    assert [e.outcome for e in events if e.type == "ToolCalled"] == ["error"]


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_budget_stops_a_spells_model_calls(tmp_path: Path, language: str) -> None:
    source = {"lua": 'return llm.chat("hello")', "js": 'return await llm.chat("hello");'}
    model = ScriptedModel([{"content": "hi", "repeat": True}])
    async with _engine(tmp_path, model) as engine:
        result = await engine.run(
            plan=Plan(tasks=(_spell_task(language, source[language]),)), max_job_tokens=5
        )
    assert not result.ok
    assert "budget" in (result.error or "").lower()
    assert model.requests == []


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_spell_as_a_tool_of_a_react_agent(tmp_path: Path, language: str) -> None:
    source = {
        "lua": 'return "twice: " .. tools.call("add", { a = #params.input, b = #params.input })',
        "js": 'return "twice: " + await tools.call("add", { a: params.input.length, b: 3 });',
    }[language]
    doubler = as_tool(
        SpellAgent(name="doubler", language=language, source=source),  # type: ignore[arg-type]
        description="Doubles the length of a word.",
    )
    model = ScriptedModel(
        [
            {"match": {"contains": "Count"}, "tool_calls": [{"name": "doubler", "arguments": {"task": "abc"}}]},
            {"content": "The doubler said so.", "repeat": True},
        ]
    )  # fmt: skip
    helper = ReactAgent("helper", tools=["doubler"])
    async with _engine(tmp_path, model, extra_tools=[doubler], agents=[helper]) as engine:
        result = await engine.run(
            plan=Plan(tasks=(TaskSpec(id="a", goal="Count", agent="helper"),))
        )
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    calls = {(e.name, e.agent, e.outcome) for e in events if e.type == "ToolCalled"}
    assert ("doubler", "helper", "ok") in calls and ("add", "doubler", "ok") in calls
    (spell_call,) = [e for e in events if e.type == "ToolCalled" and e.name == "doubler"]
    assert "twice: 6" in spell_call.result


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_events_emit_is_a_spell_event_in_the_jobs_log(tmp_path: Path, language: str) -> None:
    source = {
        "lua": 'events.emit("progress", { done = 3 })\nreturn "ok"',
        "js": 'await events.emit("progress", { done: 3 });\nreturn "ok";',
    }[language]
    async with _engine(tmp_path, ScriptedModel([])) as engine:
        result = await engine.run(plan=Plan(tasks=(_spell_task(language, source),)))
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    (emitted,) = [e for e in events if e.type == "spell.event" and e.name == "progress"]
    assert (emitted.name, emitted.data, emitted.spell, emitted.task_id) == (
        "progress", {"done": 3}, "spell:s", "s",
    )  # fmt: skip


AGENTS = {
    "lua": """
local checker = agent.new({ name = "checker", instructions = "Find errors.", tools = { "add" } })
local boss = agent.new({ name = "boss", tools = { checker:as_tool() } })
local known = agent.get("greeter")
return { checker = checker:run("check 1+1"), boss = boss:run("delegate"), greet = known:run("hi") }
""",
    "js": """
const checker = agent.new({ name: "checker", instructions: "Find errors.", tools: ["add"] });
const boss = agent.new({ name: "boss", tools: [checker.as_tool()] });
const known = await agent.get("greeter");
return { checker: await checker.run("check 1+1"), boss: await boss.run("delegate"), greet: await known.run("hi") };
""",
}
CONVERSATION = {
    "lua": """
local c = llm.conversation({ system = "Be brief." })
local a = c:say("first")
local b = c:say("second")
return { a = a, b = b, n = #c:history(), last = c:history()[4].content }
""",
    "js": """
const c = llm.conversation({ system: "Be brief." });
const a = await c.say("first");
const b = await c.say("second");
return { a, b, n: c.history().length, last: c.history()[3].content };
""",
}


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_agents_made_in_a_spell_run_with_tools_and_as_tools(
    tmp_path: Path, language: str
) -> None:
    sink = Sink()
    replies = [
        {"match": {"role": "checker", "contains": "check"},
         "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]},
        {"match": {"role": "checker", "contains": "check"}, "content": "1+1 is 2: correct."},
        {"match": {"role": "boss"}, "tool_calls": [{"name": "checker", "arguments": {"task": "check again"}}]},
        {"match": {"role": "checker"}, "content": "Still correct."},
        {"match": {"role": "boss"}, "content": "The checker agrees."},
        {"match": {"role": "greeter"}, "content": "Hello there."},
    ]  # fmt: skip
    ctx = context(tmp_path, replies, sink)
    ctx = replace(ctx, agents=AgentRegistry([ReactAgent("greeter", tools=[])]))
    value = await run_spell(ctx, name="crew", language=language, source=AGENTS[language])
    assert value == {
        "checker": "1+1 is 2: correct.", "boss": "The checker agrees.", "greet": "Hello there.",
    }  # fmt: skip
    calls = [(e.name, e.agent) for e in sink.events if isinstance(e, ToolCalled)]
    assert calls == [("add", "checker"), ("checker", "boss")]


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_an_unknown_agent_is_a_script_error_at_its_line(
    tmp_path: Path, language: str
) -> None:
    source = {
        "lua": 'local x = 1\nagent.get("nobody")',
        "js": 'let x = 1;\nawait agent.get("nobody");',
    }
    ctx = replace(context(tmp_path, [], Sink()), agents=AgentRegistry())
    with pytest.raises(SpellError, match=r"main\.(lua|js):2: .*unknown agent 'nobody'"):
        await run_spell(ctx, name="lost", language=language, source=source[language])


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_conversation_keeps_its_history(tmp_path: Path, language: str) -> None:
    replies = [{"content": "one"}, {"content": "two"}]
    ctx = context(tmp_path, replies, Sink())
    value = await run_spell(ctx, name="talk", language=language, source=CONVERSATION[language])
    assert value == {"a": "one", "b": "two", "n": 5, "last": "second"}
    second = ctx.model.requests[1]  # type: ignore[attr-defined]
    assert [(m.role, m.content) for m in second.messages] == [
        ("system", "Be brief."), ("user", "first"), ("assistant", "one"), ("user", "second"),
    ]  # fmt: skip


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_state_survives_runs_of_a_spell(tmp_path: Path, language: str) -> None:
    source = {
        "lua": """
local n = (state.get("runs") or 0) + 1
state.set("runs", n)
state.set("scratch", { a = 1 })
state.delete("scratch")
return { runs = n, keys = state.keys() }
""",
        "js": """
const n = ((await state.get("runs")) || 0) + 1;
await state.set("runs", n);
await state.set("scratch", { a: 1 });
await state.delete("scratch");
return { runs: n, keys: await state.keys() };
""",
    }[language]
    async with _engine(tmp_path, ScriptedModel([])) as engine:
        first = await engine.run(plan=Plan(tasks=(_spell_task(language, source),)))
        second = await engine.run(plan=Plan(tasks=(_spell_task(language, source),)))
    assert first.ok and second.ok, (first.error, second.error)
    assert "1" in json.dumps(first.result) and '"runs": 2' in json.dumps(second.result)
    assert '["runs"]' in json.dumps(second.result)
    assert (tmp_path / "data" / "spell-state" / "spell_s.json").exists()


SPANS: list[tuple[str, float, float]] = []


@tool
async def wait_a_bit(who: str) -> str:
    """Wait 0.3 s and say who waited."""
    import asyncio
    import time

    start = time.monotonic()
    await asyncio.sleep(0.3)
    SPANS.append((who, start, time.monotonic()))
    return who


async def test_two_spells_and_a_tool_task_of_one_job_run_at_once(tmp_path: Path) -> None:
    SPANS.clear()
    tasks = (
        _spell_task("lua", 'return tools.call("wait_a_bit", { who = "lua" })'),
        _spell_task("js", 'return await tools.call("wait_a_bit", { who: "js" });').model_copy(
            update={"id": "j"}
        ),
        TaskSpec(id="t", kind="tool", tool="wait_a_bit", args={"who": "job"}),
    )
    async with _engine(tmp_path, ScriptedModel([]), extra_tools=[wait_a_bit]) as engine:
        result = await engine.run(plan=Plan(tasks=tasks))
    assert result.ok, result.error
    assert sorted(who for who, _, _ in SPANS) == ["job", "js", "lua"]
    # Each waits 0.3 s; they overlap: every one started before any one ended.
    assert max(start for _, start, _ in SPANS) < min(end for _, _, end in SPANS)
