"""Sessions survive their process: kill -9 mid-cascade, restart, and the board converges to
the board of a run without the crash; and (hypothesis) through the real engine, any sequence
of adds and removes settles to the board a from-scratch session computes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.session_owner import INPUTS, PARTY, party_model

from planweave import Engine
from planweave.agents import AgentResult, AgentTask
from planweave.agents._context import AgentContext
from planweave.errors import SessionOwned
from planweave.sessions import SessionSpec, SqliteSessionStore

ROOT = Path(__file__).resolve().parent.parent


def comparable(board: dict[str, Any]) -> dict[str, Any]:
    return {
        "agents": {name: (a["status"], a["value"]) for name, a in board["agents"].items()},
        "aggregate": board["aggregate"]["value"],
        "inputs": [(i["text"], i["tags"], i["routes"]) for i in board["inputs"]],
    }


async def reference_board(tmp: Path) -> dict[str, Any]:
    spec = SessionSpec.from_file(PARTY / "party.yaml")
    async with Engine(store="memory://", model=party_model(0), data_dir=tmp, builtins=False) as e:
        s = await e.sessions.create(spec, inputs=INPUTS)
        return await s.wait_settled()


def start_owner(db: Path, data_dir: Path) -> subprocess.Popen[str]:
    """Start the process that drives the session (``tests/session_owner.py``)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.session_owner", str(db), str(data_dir), "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_kill_9_mid_cascade_then_restart_converges(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    owner = start_owner(db, tmp_path / "owner")
    try:
        assert owner.stdout is not None
        session_id = (await asyncio.to_thread(owner.stdout.readline)).strip()
        assert session_id, "the owner process printed no session id"
        store = SqliteSessionStore(db)
        await store.open()
        try:
            async with asyncio.timeout(60):
                while True:
                    state = await store.load(session_id)
                    assert state is not None
                    statuses = {node.status for node in state.agents.values()}
                    if "fresh" in statuses and "running" in statuses:
                        break
                    await asyncio.sleep(0.05)
        finally:
            await store.close()
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    assert state.aggregate.value is None  # killed before the cascade ended

    async with Engine(
        store=f"sqlite:///{db}", model=party_model(0), data_dir=tmp_path, builtins=False
    ) as engine:
        async with asyncio.timeout(30):
            while True:  # the killed owner's one-second lease runs out
                try:
                    session = await engine.sessions.open(session_id)
                    break
                except SessionOwned:
                    await asyncio.sleep(0.1)
        board = await session.wait_settled()
        superseded = [e for e in await session.events() if e.type == "agent.run.superseded"]
        assert superseded and all(e.reason == "restart" for e in superseded)  # type: ignore[union-attr]
        assert await engine.sessions.replay(session_id) == session.state
    assert comparable(board) == comparable(await reference_board(tmp_path))


class Lines:
    """An agent whose answer is exactly what it was shown (its prompt's list lines)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, task: AgentTask, ctx: AgentContext) -> AgentResult:
        lines = sorted(line for line in task.goal.splitlines() if line.startswith("- "))
        if self.name == "p.plan":
            answer: dict[str, Any] = {"recommendations": lines, "next_steps": []}
        else:
            answer = {"seen": lines, "n": len(lines) % 2}
        return AgentResult(output=json.dumps(answer))


PROPERTY_SPEC = SessionSpec.from_data(
    {
        "name": "p",
        "debounce_s": 0,
        "agents": [
            {"name": "a", "agent": "p.a", "consumes": {"tags": ["a"]}, "cutoff": ["n"]},
            {"name": "b", "agent": "p.b", "consumes": {"tags": ["b"]}, "depends_on": ["a"]},
            {"name": "c", "agent": "p.c", "consumes": {"tags": ["c"]}, "depends_on": ["a", "b"]},
        ],
        "aggregator": {"name": "plan", "agent": "p.plan"},
    }
)

CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("remove"), st.integers(0, 10)),
        st.tuples(st.just("settle"), st.just("")),
    ),
    min_size=1,
    max_size=8,
)


async def _property(changes: list[tuple[str, str]], tmp: str) -> None:
    agents = [Lines(name) for name in ("p.a", "p.b", "p.c", "p.plan")]
    async with Engine(store="memory://", data_dir=tmp, builtins=False, agents=agents) as engine:
        s = await engine.sessions.create(PROPERTY_SPEC)
        for n, (op, arg) in enumerate(changes):
            current = [i["input_id"] for i in s.board()["inputs"]]
            if op == "add":
                await s.add_input(f"note {n}", tags=[arg])
            elif op == "remove" and current:
                await s.remove_input(current[int(arg) % len(current)])
            elif op == "settle":
                await s.wait_settled(timeout_s=30)
            await asyncio.sleep(0)
        board = await s.wait_settled(timeout_s=30)
        inputs = [{"text": i["text"], "tags": i["tags"]} for i in board["inputs"]]
        fresh = await engine.sessions.create(PROPERTY_SPEC, inputs=inputs)
        want = await fresh.wait_settled(timeout_s=30)
    got_view, want_view = comparable(board), comparable(want)
    for view in (got_view, want_view):  # never-needed and dropped both mean "no result"
        view["agents"] = {k: v[1] for k, v in view["agents"].items()}
    assert got_view == want_view


@settings(max_examples=40, deadline=None)
@given(CHANGES)
def test_through_the_engine_the_settled_board_equals_a_from_scratch_one(
    changes: list[tuple[str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_property(changes, tmp))
