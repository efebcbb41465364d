"""A process that drives a party session until it is killed (for the kill -9 and take-over
tests).

Usage: python -m tests.session_owner STORE DATA_DIR [LEASE_S]. STORE is a SQLite file or a
store URL (``postgresql://…``). Prints the session id, then the id it drives the session as,
then keeps the cascade going with slow scripted replies so that the test can kill or pause it
half-way. Should another process take the session over, it prints ``lost: <why>`` and exits.
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


async def main(store: str, data_dir: str, lease_s: float) -> None:
    spec = SessionSpec.from_file(PARTY / "party.yaml")
    url = store if "://" in store else f"sqlite:///{store}"
    async with Engine(
        store=url,
        model=party_model(0.4),
        data_dir=data_dir,
        builtins=False,
        claim_lease_s=lease_s,
    ) as engine:
        session = await engine.sessions.create(spec, inputs=INPUTS)
        print(session.id, flush=True)
        print(engine.sessions.owner, flush=True)
        for _ in range(1200):
            if session.lost is not None:
                print(f"lost: {session.lost}", flush=True)
                return
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 30))
