"""The seed's party planner as a reactive session.

    python examples/party/party.py                      # offline, on the scripted model
    python examples/party/party.py --model local:       # or any model URL

Adds a theme, then a budget, then removes the theme, printing what re-ran each time and the
aggregate.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from planweave import Engine
from planweave.sessions import AgentRunQueued, Session, SessionSpec

HERE = Path(__file__).resolve().parent


async def step(s: Session, what: str) -> None:
    before = s.state.seq
    board = await s.wait_settled(timeout_s=600)
    ran = [e.agent for e in await s.events(after_seq=before) if isinstance(e, AgentRunQueued)]
    aggregate = board["aggregate"]["value"] or {}
    print(f"{what}: re-ran {', '.join(ran) or 'nothing'}")
    print(f"  completion {aggregate.get('completion_percent', 0)}%, "
          f"next steps: {aggregate.get('next_steps', [])}")  # fmt: skip


async def main(model: str) -> None:
    spec = SessionSpec.from_file(HERE / "party.yaml")
    with tempfile.TemporaryDirectory() as data_dir:
        async with Engine(model=model, data_dir=data_dir, builtins=False) as engine:
            s = await engine.sessions.create(spec)
            theme = await s.add_input("jungle theme party for 75 guests")
            await step(s, "added the theme")
            await s.add_input("budget is $1500", tags=["budget"])
            await step(s, "added a budget")
            await s.remove_input(theme)
            await step(s, "removed the theme")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The party planner session")
    parser.add_argument("--model", default=f"scripted:{HERE / 'scripted.yaml'}")
    asyncio.run(main(parser.parse_args().model))
