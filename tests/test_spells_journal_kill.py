"""kill -9 in the middle of a spell task, then resume: the spell's model and tool calls that had
completed are replayed from the step journal, not made again, in Lua and in JavaScript."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from planweave import Engine, Plan, TaskSpec, tool
    from planweave.llm import LlmResponse

    LEDGER = Path(os.environ["PW_LEDGER"])
    SOURCES = {
        "lua": '''
    local out = {}
    for i = 1, 5 do
      local n = llm.chat("name " .. i)
      out[#out + 1] = tools.call("record", { name = n })
    end
    return table.concat(out, ",")
    ''',
        "js": '''
    const out = [];
    for (let i = 1; i <= 5; i++) {
      const n = await llm.chat("name " + i);
      out.push(await tools.call("record", { name: n }));
    }
    return out.join(",");
    ''',
    }

    @tool
    async def record(name: str) -> str:
        "Append a name to the ledger (a side effect); the fourth kills its process (kill -9)."
        with LEDGER.open("a") as f:
            f.write(name + "-start\\n")
        if name == "4" and not Path(str(LEDGER) + ".fast").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        with LEDGER.open("a") as f:
            f.write(name + "\\n")
        return "r" + name

    class Namer:
        "A deterministic model: answers 'name N' with N."

        name = "namer"
        supports_tools = True

        def __init__(self):
            self.calls = 0

        async def complete(self, request):
            self.calls += 1
            return LlmResponse(content=request.messages[-1].content.split()[-1])

        async def aclose(self):
            pass

    def plan(language):
        args = {"language": language, "source": SOURCES[language]}
        return Plan(tasks=(TaskSpec(id="work", kind="spell", args=args),))

    async def main():
        engine = Engine(store=sys.argv[1], model=Namer(), tools=[record],
                        data_dir=LEDGER.parent / "data")
        async with engine as e:
            job_id = await e.submit(plan=plan(sys.argv[2]))
            print(job_id, flush=True)
            await e.wait(job_id)

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


def _steps(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT kind FROM pw_steps ORDER BY at")]


@pytest.mark.parametrize("language", ["lua", "js"])
def test_kill_9_in_a_spell_then_resume_replays_its_finished_calls(
    tmp_path: Path, language: str
) -> None:
    from planweave import Engine

    (tmp_path / "spelljob.py").write_text(SCRIPT)
    ledger = tmp_path / "ledger.txt"
    db = tmp_path / "jobs.db"
    store = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PW_LEDGER": str(ledger)}
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "spelljob.py"), store, language],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        proc.stdout.close()
        assert job_id, "the job script printed no job id"
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert sorted(_steps(db)) == ["model"] * 4 + ["tool"] * 3
    sys.path.insert(0, str(tmp_path))
    os.environ["PW_LEDGER"] = str(ledger)
    try:
        import spelljob  # the same tool as the killed process

        Path(str(ledger) + ".fast").touch()
        model = spelljob.Namer()

        async def resume() -> tuple[str, object, list[str]]:
            engine = Engine(
                store=store, model=model, tools=[spelljob.record], data_dir=tmp_path / "data"
            )
            async with engine:
                result = await engine.resume(job_id, force=True)
                events = await engine.events(job_id)
                return result.status, result.result, [e.type for e in events]

        status, result, kinds = asyncio.run(resume())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("spelljob", None)
        os.environ.pop("PW_LEDGER", None)

    assert status == "succeeded", result
    assert result == "r1,r2,r3,r4,r5"
    names = ledger.read_text().split()
    for name in ("1", "2", "3", "5"):
        assert names.count(name) == 1 and names.count(f"{name}-start") == 1, names
    assert names.count("4-start") == 2 and names.count("4") == 1
    assert model.calls == 1  # only the fifth model call is made after the resume
    assert kinds.count("ToolCalled") == 5 and kinds.count("LlmCalled") == 5
