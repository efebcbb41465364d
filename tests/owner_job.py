"""A job run by a real process, for the tests of job ownership (tests/test_ownership.py).

    python tests/owner_job.py STORE LEDGER submit PLAN CLAIM_LEASE_S [MAX_ATTEMPTS]
    python tests/owner_job.py STORE LEDGER resume JOB_ID CLAIM_LEASE_S [force]
    python tests/owner_job.py STORE LEDGER adopt - CLAIM_LEASE_S

``submit`` prints the job id, then (like ``resume``) the job's final status. ``adopt`` takes
over every stored job nobody runs, as ``planweave serve`` does at start-up, and prints
``JOB_ID STATUS [ERROR]`` for each once all have ended. Every tool appends
``NAME-EVENT:PID`` lines to the ledger, so a test sees which process ran what; ``slow`` tasks
wait until the test creates the ledger's ``.go`` file, so a test decides when they end. A planweave error
is printed as one ``error:`` line with exit status 1, as the CLI does.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from planweave import Engine, Plan, PlanweaveError, TaskSpec, tool

LEDGER = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("ledger.txt")
GO = LEDGER.with_suffix(".go")
SLOW_S = 0.3


def _note(line: str) -> None:
    with LEDGER.open("a") as f:
        f.write(f"{line}:{os.getpid()}\n")


@tool
def record(name: str) -> str:
    "Note the name in the ledger."
    _note(f"{name}-run")
    return name


@tool
async def slow(name: str) -> str:
    "Note the start, wait for the test's go (the ledger's .go file) and a bit, note the end."
    _note(f"{name}-start")
    for _ in range(6000):  # the go comes from another process: poll for it (2 minutes at most)
        if GO.exists():
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(SLOW_S)
    _note(f"{name}-end")
    return name


@tool
def die(name: str) -> str:
    "Note the start, then kill this process on the spot."
    _note(f"{name}-start")
    os._exit(1)


def _chain(kind: str, *names: str) -> tuple[TaskSpec, ...]:
    return tuple(
        TaskSpec(
            id=name,
            kind="tool",
            tool=kind if i else "record",
            args={"name": name},
            depends_on=(names[i - 1],) if i else (),
        )
        for i, name in enumerate(names)
    )


PLANS = {
    # a runs at once; b, c, d wait for the go, then SLOW_S; e is quick.
    "slow": Plan(
        tasks=(
            *_chain("slow", "a", "b", "c", "d"),
            TaskSpec(id="e", kind="tool", tool="record", args={"name": "e"}, depends_on=("d",)),
        )
    ),
    # a runs, then x kills its process every time it runs.
    "die": Plan(
        tasks=(
            TaskSpec(id="a", kind="tool", tool="record", args={"name": "a"}),
            TaskSpec(id="x", kind="tool", tool="die", args={"name": "x"}, depends_on=("a",)),
        )
    ),
}


async def main(argv: list[str]) -> int:
    store, _, mode, target, lease = argv[:5]
    engine = Engine(
        store=store,
        model="scripted",
        tools=[record, slow, die],
        data_dir=LEDGER.parent / "data",
        claim_lease_s=float(lease),
    )
    try:
        async with engine:
            if mode == "submit":
                max_attempts = int(argv[5]) if len(argv) > 5 else 3
                job_id = await engine.submit(plan=PLANS[target], max_attempts=max_attempts)
                print(job_id, flush=True)
                result = await engine.wait(job_id)
            elif mode == "adopt":
                for job_id in await engine.adopt_active():
                    ended = await engine.wait(job_id)
                    print(job_id, ended.status, ended.error or "", flush=True)
                return 0
            else:
                result = await engine.resume(target, force=argv[5:] == ["force"])
            print(result.status, result.error or "", flush=True)
            return 0
    except PlanweaveError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
