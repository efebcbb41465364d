"""What the policy gate and the budget checks cost: W2 (a chain of 200 ``tool`` tasks, store
and bus ``memory://``) with neither, with the job's budgets on (dollars and tokens), and with
the budgets and a realistic policy (a deny list, an egress allowlist, path rules on the file
tools, a content rule on results), in µs per task and µs per task added. Two more rows show a
path rule that concerns every call (a tool with a ``path`` argument, checked against
``docs/**`` with a look for links on the way), added over the same tool without a policy.

Each configuration gets its own started engine; only ``engine.run(plan=...)`` is timed, the
median of ``--runs`` runs after ``--warmup`` untimed ones.

    python -m bench.policy_w [--runs 5] [--length 200] [--json]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._cli import w2_main
from bench.workloads import W2_LENGTH

__all__ = ["CONFIGS", "POLICY", "main", "measure"]

TARGET_ADDED_US = 5.0

POLICY: dict[str, Any] = {
    "deny": ["shell", "mcp_*"],
    "egress": ["example.org", "*.example.org"],
    "tools": {
        name: {"args": {"path": {"paths": ["docs/**"]}}}
        for name in ("read_file", "write_file", "list_files")
    },
    "outputs": [{"name": "no-keys", "pattern": "sk-[A-Za-z0-9]{20,}"}],
}
EVERY_CALL: dict[str, Any] = {**POLICY, "tools": {"*": {"args": {"path": {"paths": ["docs/**"]}}}}}

CONFIGS: dict[str, dict[str, Any]] = {
    "no policy, no budgets": {"policy": None, "budgets": False, "tool": "noop", "over": None},
    "budgets": {"policy": None, "budgets": True, "tool": "noop", "over": 0},
    "budgets + policy": {"policy": POLICY, "budgets": True, "tool": "noop", "over": 0},
    "path tool, budgets": {"policy": None, "budgets": True, "tool": "touch", "over": None},
    "path tool, + path rule": {"policy": EVERY_CALL, "budgets": True, "tool": "touch", "over": 3},
}


def _plan(name: str, length: int) -> Any:
    from planweave import Plan, TaskSpec

    args = {"path": "docs/notes.md"} if name == "touch" else {}
    tasks = [TaskSpec(id="t0", kind="tool", tool=name, args=args)]
    tasks += [
        TaskSpec(id=f"t{i}", kind="tool", tool=name, args=args, depends_on=(f"t{i - 1}",))
        for i in range(1, length)
    ]
    return Plan(tasks=tuple(tasks))


async def _medians_s(length: int, runs: int, warmup: int) -> dict[str, float]:
    """Each configuration's median seconds per job; the configurations take turns run by run,
    so a change in the machine's load falls on all of them alike."""
    from contextlib import AsyncExitStack

    from planweave import Engine, JobOptions, tool
    from planweave.policy import Policy

    @tool
    async def noop() -> None:
        return None

    @tool
    async def touch(path: str) -> str:
        return path

    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="pw-policy-") as scratch:
        (Path(scratch) / "docs").mkdir()
        async with AsyncExitStack() as stack:
            runners = []
            for name, config in CONFIGS.items():
                policy = Policy.model_validate(config["policy"]) if config["policy"] else None
                engine = await stack.enter_async_context(
                    Engine(
                        store="memory://",
                        bus="memory://",
                        tools=[noop, touch],
                        policy=policy,
                        data_dir=Path(scratch) / name.replace(" ", "-"),
                    )
                )
                budgets: dict[str, Any] = (
                    {"max_cost_usd": 5.0, "max_job_tokens": 2_000_000}
                    if config["budgets"]
                    else {"max_cost_usd": None, "max_job_tokens": None}
                )
                options = JobOptions(workspace=scratch, **budgets)
                runners.append((name, engine, options, _plan(config["tool"], length)))
            for n in range(warmup + runs):
                for name, engine, options, plan in runners:
                    started = time.perf_counter()
                    result = await engine.run(plan=plan, options=options)
                    took = time.perf_counter() - started
                    if result.status != "succeeded":
                        raise RuntimeError(f"{name}: the job ended {result.status!r}")
                    if n >= warmup:
                        times[name].append(took)
    return {name: statistics.median(each) for name, each in times.items()}


def _check_us(policy: dict[str, Any], tool: str, args: dict[str, Any], workspace: Path) -> float:
    """µs of the gate's own work for one ``tool`` task: its policies looked up, its call
    checked, its result checked (timed directly: a figure the machine's load barely moves)."""
    import timeit

    from planweave.messages import WorkItem
    from planweave.plan import TaskSpec
    from planweave.policy import Policy, TaskPolicies

    policies = TaskPolicies(Policy.model_validate(policy))
    spec = TaskSpec(id="t", kind="tool", tool=tool, args=args)
    item = WorkItem(job_id="j", task_id="t", attempt=1, worker="tool", reply_to="r", spec=spec)

    def once() -> None:
        found = policies.for_item(item)
        assert found is not None
        found.call_denial(None, tool, args, workspace)
        found.output_denial("a result")

    number = 20_000
    return min(timeit.repeat(once, number=number, repeat=5)) / number * 1e6


def measure(*, length: int = W2_LENGTH, runs: int = 5, warmup: int = 1) -> dict[str, Any]:
    """µs per task of each configuration, and what each adds over its baseline (the first row
    for the ``noop`` rows, the ``path tool`` row for the last)."""
    medians = asyncio.run(_medians_s(length, runs, warmup))
    rows = [{"config": name, "us_per_task": s / length * 1e6} for name, s in medians.items()]
    for row, config in zip(rows, CONFIGS.values(), strict=True):
        over = config["over"]
        row["added_us_per_task"] = (
            None if over is None else row["us_per_task"] - rows[over]["us_per_task"]
        )
    added = rows[2]["added_us_per_task"]
    with tempfile.TemporaryDirectory(prefix="pw-policy-") as scratch:
        (Path(scratch) / "docs").mkdir()
        check_us = _check_us(POLICY, "noop", {}, Path(scratch))
        path_check_us = _check_us(EVERY_CALL, "touch", {"path": "docs/n.md"}, Path(scratch))
    return {
        "workload": f"W2 (chain of {length} tool tasks)",
        "runs": runs,
        "target_added_us_per_task": TARGET_ADDED_US,
        "added_us_per_task": added,
        # Judged on what W2 pays, not on the gate's own work timed alone.
        "target_met": added is not None and added <= TARGET_ADDED_US,
        "check_us_per_task": check_us,
        "path_rule_check_us_per_task": path_check_us,
        "rows": rows,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"policy gate and budgets on {report['workload']}, median of {report['runs']} runs "
        f"(target: ≤ {report['target_added_us_per_task']:g} µs/task added)",
        f"{'configuration':<24}{'µs/task':>10}{'added':>10}",
    ]
    for row in report["rows"]:
        added = row["added_us_per_task"]
        shown = "" if added is None else f"{added:+.1f}"
        lines.append(f"{row['config']:<24}{row['us_per_task']:>10.1f}{shown:>10}")
    lines.append(
        f"the gate's own work per task (timed alone): {report['check_us_per_task']:.2f} µs; "
        f"with a path rule on the call: {report['path_rule_check_us_per_task']:.2f} µs"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return w2_main("python -m bench.policy_w", __doc__, measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
