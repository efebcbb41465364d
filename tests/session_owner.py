"""A process that drives a party session on SQLite until it is killed (for the kill -9 test).

Usage: python -m tests.session_owner DB_FILE DATA_DIR. Prints the session id, then keeps the
cascade going with slow scripted replies so that the test can kill it half-way.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from planweave import Engine
from planweave.llm.scripted import ScriptedModel
from planweave.sessions import SessionSpec

PARTY = Path(__file__).resolve().parent.parent / "examples" / "party"
INPUTS: list[Any] = ["jungle theme party", {"text": "budget is $1500", "tags": ["budget"]}]


def party_model(delay_s: float) -> ScriptedModel:
    replies = yaml.safe_load((PARTY / "scripted.yaml").read_text())["replies"]
    return ScriptedModel([{**reply, "delay_s": delay_s} for reply in replies])


async def main(db: str, data_dir: str) -> None:
    spec = SessionSpec.from_file(PARTY / "party.yaml")
    async with Engine(
        store=f"sqlite:///{db}", model=party_model(0.4), data_dir=data_dir, builtins=False
    ) as engine:
        session = await engine.sessions.create(spec, inputs=INPUTS)
        print(session.id, flush=True)
        await asyncio.sleep(120)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
