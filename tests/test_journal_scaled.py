"""The step journal in the scaled deployment (PostgreSQL + Redis Streams): a worker process
killed with kill -9 mid-task; the control plane lives on, the work item is delivered again to
another worker process, which gets the task's journal through the plane and replays it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from planweave import Engine, Plan, TaskSpec
from planweave.events import JobOptions

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
LEASE_S = 2.0

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from planweave import Engine, tool
    from planweave.llm import LlmResponse, ToolCall

    LEDGER = Path(os.environ["PW_LEDGER"])

    @tool
    async def record(name: str) -> str:
        "Append a name to the ledger; the fourth waits unless told to hurry."
        with LEDGER.open("a") as f:
            f.write(name + "-start\\n")
        if name == "4" and not Path(str(LEDGER) + ".fast").exists():
            await asyncio.sleep(120)
        with LEDGER.open("a") as f:
            f.write(name + "\\n")
        return "recorded " + name

    class Counter:
        name = "counter"
        supports_tools = True

        async def complete(self, request):
            with LEDGER.open("a") as f:
                f.write("model\\n")
            done = sum(1 for m in request.messages if m.role == "tool")
            if done < 5:
                n = str(done + 1)
                return LlmResponse(tool_calls=(ToolCall(id="c" + n, name="record",
                                                        arguments={"name": n}),))
            return LlmResponse(content="Recorded all five names.")

        async def aclose(self):
            pass

    async def main():
        engine = Engine(store=sys.argv[1], bus=sys.argv[2], model=Counter(), tools=[record],
                        run_plane=False, worker_kinds=["executor"],
                        work_lease_s=float(sys.argv[3]), data_dir=LEDGER.parent / "data")
        async with engine:
            print("ready", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def _holds(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text().split()


async def _wait_for(path: Path, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_holds, path, text):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


async def test_a_worker_killed_mid_task_on_redis_leaves_a_journal_the_next_worker_replays(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ledger = tmp_path / "ledger.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANWEAVE_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        PYTHONUNBUFFERED="1",
        PW_LEDGER=str(ledger),
    )

    def start_worker() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(script), pg_url, redis_url, str(LEASE_S)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc

    engine = Engine(
        store=pg_url,
        bus=redis_url,
        model="scripted",
        run_workers=False,
        work_lease_s=LEASE_S,
        data_dir=tmp_path / "data",
    )
    workers: list[subprocess.Popen[str]] = []
    try:
        async with engine:
            workers.append(await asyncio.to_thread(start_worker))
            plan = Plan(tasks=(TaskSpec(id="work", kind="execute", goal="Record five names"),))
            # The model of the worker processes (they hold it under that name).
            job_id = await engine.submit(plan=plan, options=JobOptions(model="counter"))
            await _wait_for(ledger, "4-start")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            tool_steps = [s for s in await engine.store.read_steps(job_id) if s.kind == "tool"]
            assert len(tool_steps) == 3
            await asyncio.to_thread(Path(str(ledger) + ".fast").touch)
            # The next worker takes the item once its lease runs out.
            workers.append(await asyncio.to_thread(start_worker))
            result = await engine.wait(job_id)
            events = await engine.events(job_id)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()

    assert result.status == "succeeded", result.error
    names = ledger.read_text().split()
    for name in ("1", "2", "3"):
        assert names.count(name) == 1, names
        assert names.count(f"{name}-start") == 1, names
    assert names.count("4-start") == 2 and names.count("5") == 1
    # Four model calls before the kill; after it only the two the journal did not hold.
    assert names.count("model") == 6, names
    kinds = [e.type for e in events]
    assert kinds.count("ToolCalled") == 5
