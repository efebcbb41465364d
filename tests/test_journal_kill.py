"""kill -9 in the middle of an agent task, then resume: the model and tool calls it had completed
are replayed from the step journal, not made again."""

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

from planweave import Engine

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from planweave import Engine, Plan, TaskSpec, tool
    from planweave.llm import LlmResponse, ToolCall

    LEDGER = Path(os.environ["PW_LEDGER"])

    @tool
    async def record(name: str) -> str:
        "Append a name to the ledger (a side effect); the fourth kills its process (kill -9)."
        with LEDGER.open("a") as f:
            f.write(name + "-start\\n")
        if name == "4" and not Path(str(LEDGER) + ".fast").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        with LEDGER.open("a") as f:
            f.write(name + "\\n")
        return "recorded " + name

    class Counter:
        "A deterministic model: asks for the next name until five are recorded, then answers."

        name = "counter"
        supports_tools = True

        def __init__(self):
            self.calls = 0

        async def complete(self, request):
            self.calls += 1
            done = sum(1 for m in request.messages if m.role == "tool")
            if done < 5:
                n = str(done + 1)
                return LlmResponse(tool_calls=(ToolCall(id="c" + n, name="record",
                                                        arguments={"name": n}),))
            return LlmResponse(content="Recorded all five names.")

        async def aclose(self):
            pass

    PLAN = Plan(tasks=(TaskSpec(id="work", kind="execute", goal="Record five names"),))

    async def main():
        engine = Engine(store=sys.argv[1], model=Counter(), tools=[record],
                        data_dir=LEDGER.parent / "data")
        async with engine as e:
            job_id = await e.submit(plan=PLAN)
            print(job_id, flush=True)
            await e.wait(job_id)

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


def _tool_steps(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT result FROM pw_steps WHERE kind = 'tool' ORDER BY at"
        ).fetchall()
    return [row[0] for row in rows]


def test_kill_9_after_three_of_five_tool_calls_then_resume_runs_each_of_them_once(
    tmp_path: Path,
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    ledger = tmp_path / "ledger.txt"
    db = tmp_path / "jobs.db"
    store = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PW_LEDGER": str(ledger)}
    proc = subprocess.Popen(
        [sys.executable, str(script), store], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        proc.stdout.close()
        assert job_id, "the job script printed no job id"
        # The fourth call kills its process the moment it starts: it may start only once the
        # third call (and the model reply that asked for the fourth) is journaled.
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(_tool_steps(db)) == 3
    assert ledger.read_text().split() == [
        "1-start", "1", "2-start", "2", "3-start", "3", "4-start",
    ]  # fmt: skip

    sys.path.insert(0, str(tmp_path))
    os.environ["PW_LEDGER"] = str(ledger)
    try:
        import job  # the same tool as the killed process

        Path(str(ledger) + ".fast").touch()
        model = job.Counter()

        async def resume() -> tuple[str, object, list[str]]:
            engine = Engine(
                store=store, model=model, tools=[job.record], data_dir=tmp_path / "data"
            )
            async with engine:
                result = await engine.resume(job_id, force=True)
                events = await engine.events(job_id)
                steps = await engine.store.read_steps(job_id)
                assert steps == []  # forgotten once the task succeeded
                return result.status, result.result, [e.type for e in events]

        status, result, kinds = asyncio.run(resume())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("job", None)
        os.environ.pop("PW_LEDGER", None)

    assert status == "succeeded"
    assert result == "Recorded all five names."
    names = ledger.read_text().split()
    for name in ("1", "2", "3"):
        assert names.count(name) == 1, names
        assert names.count(f"{name}-start") == 1, names
    # The call in flight when the process died is the only one made again.
    assert names.count("4-start") == 2 and names.count("4") == 1 and names.count("5") == 1
    # Live model calls after the resume: the one that asked for "5", and the answer.
    assert model.calls == 2
    # Replayed calls are not reported again: each call has one event.
    assert kinds.count("ToolCalled") == 5
    assert kinds.count("LlmCalled") == 6
