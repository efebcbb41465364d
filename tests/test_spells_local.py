"""A spell on the offline local model (SmolLM2): a Lua and a JavaScript spell task call the
model and a tool through the bridge, in one job, and return what the script built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planweave import Engine, Plan, TaskSpec
from planweave.events import LlmCalled, ToolCalled

LUA = """
local n = tools.call("calculator", { expression = "6 * 7" })
local word = llm.chat({ { role = "user", content = "Say one word about the number " .. n .. "." } },
  { max_tokens = 16 })
return { number = n, word = word }
"""
JS = """
const n = await tools.call("calculator", { expression: "6 * 7" });
const word = await llm.chat([{ role: "user", content: `Say one word about the number ${n}.` }],
  { max_tokens: 16 });
return { number: n, word };
"""


@pytest.mark.local_model
@pytest.mark.timeout(900)
async def test_the_local_model_answers_lua_and_js_spells(tmp_path: Path) -> None:
    from planweave.llm import ModelOptions

    tasks = tuple(
        TaskSpec(id=lang, kind="spell", args={"language": lang, "source": source})
        for lang, source in (("lua", LUA), ("js", JS))
    )
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}",
        model="local:",
        model_options=ModelOptions(n_threads=1, max_tokens=16),
        data_dir=tmp_path,
    ) as engine:
        result = await engine.run(plan=Plan(tasks=tasks))
        events = await engine.events(result.job_id)
    assert result.ok, result.error
    for lang in ("lua", "js"):
        calls = [e for e in events if isinstance(e, LlmCalled) and e.task_id == lang]
        tools = [e for e in events if isinstance(e, ToolCalled) and e.task_id == lang]
        assert len(calls) == 1 and calls[0].tokens_out > 0
        assert [t.name for t in tools] == ["calculator"]
    text = json.dumps(result.result)
    assert "42" in text
