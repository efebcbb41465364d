"""The scaled table: embedded, PostgreSQL + Redis and arq side by side, one row a run, with
each row's tasks/s as a ratio to the embedded default's and to arq's at the same worker count
(both from the same run, so they mean the same on any machine)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench._tables import Grid, print_tables

__all__ = ["SCALED_HEADERS", "render_scaled", "scaled_rows", "scaled_summary"]

SCALED_HEADERS = (
    "run",
    "workers",
    "tasks/s",
    "÷ embedded",
    "÷ arq, same workers",
    "burst p50 / p99",
    "steady p50 / p99",
    "steady load",
    "PG transactions/task",
)

_LABELS = {
    "embedded": "embedded (SQLite + memory://)",
    "cluster": "PostgreSQL + Redis",
    "arq": "arq (same Redis)",
}


def _ratio(numerator: float, denominator: float | None) -> float | None:
    if denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, 3)


def _latencies(prefix: str, figures: Mapping[str, Any] | None) -> dict[str, float | None]:
    if figures is None:
        return {f"{prefix}_p50_ms": None, f"{prefix}_p99_ms": None}
    return {f"{prefix}_p50_ms": figures["p50_ms"], f"{prefix}_p99_ms": figures["p99_ms"]}


def scaled_summary(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per run, in the table's order: embedded, PostgreSQL + Redis per worker count,
    arq per worker count; ratios are ``None`` where the row compared with is missing."""
    embedded = results["embedded"]
    base = embedded["burst"]["tasks_per_s"]
    arq_by_workers = {a["workers"]: a["tasks_per_s"] for a in results["arq"]}
    out: list[dict[str, Any]] = []
    for run in [embedded, *results["cluster"]]:
        burst, steady = run["burst"], run["steady"]
        cluster = run["run"] == "cluster"
        out.append(
            {
                "run": run["run"],
                "workers": run["workers"],
                "tasks": burst["tasks_completed"],
                "tasks_per_s": burst["tasks_per_s"],
                "vs_embedded": _ratio(burst["tasks_per_s"], base),
                "vs_arq": _ratio(burst["tasks_per_s"], arq_by_workers.get(run["workers"]))
                if cluster
                else None,
                **_latencies("burst", burst),
                **_latencies("steady", steady),
                "steady_offered_tasks_per_s": steady["offered_tasks_per_s"],
                "pg_transactions_per_task": burst.get("pg_transactions_per_task"),
                "steady_pg_transactions_per_task": steady.get("pg_transactions_per_task"),
                "failed_jobs": burst["failed_jobs"] + steady["failed_jobs"],
            }
        )
    for peer in results["arq"]:
        out.append(
            {
                "run": "arq",
                "workers": peer["workers"],
                "tasks": peer["tasks"],
                "tasks_per_s": peer["tasks_per_s"],
                "vs_embedded": _ratio(peer["tasks_per_s"], base),
                "vs_arq": None,
                **_latencies("burst", None),
                **_latencies("steady", None),
                "steady_offered_tasks_per_s": None,
                "pg_transactions_per_task": None,
                "steady_pg_transactions_per_task": None,
                "failed_jobs": 0,
            }
        )
    return out


def _ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _pair(first: float | None, second: float | None) -> str:
    return "-" if first is None else f"{_ms(first)} / {_ms(second)}"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"\N{MULTIPLICATION SIGN}{ratio:.2f}"


def scaled_rows(results: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Table rows as text, in the order of :data:`SCALED_HEADERS`."""
    rows: list[tuple[str, ...]] = []
    for entry in scaled_summary(results):
        pg = entry["pg_transactions_per_task"]
        steady_pg = entry["steady_pg_transactions_per_task"]
        offered = entry["steady_offered_tasks_per_s"]
        rows.append(
            (
                _LABELS[entry["run"]],
                "in-process" if entry["workers"] is None else str(entry["workers"]),
                f"{entry['tasks_per_s']:,.0f}",
                _times(entry["vs_embedded"]),
                _times(entry["vs_arq"]),
                _pair(entry["burst_p50_ms"], entry["burst_p99_ms"]),
                _pair(entry["steady_p50_ms"], entry["steady_p99_ms"]),
                "-" if offered is None else f"{offered:,.0f} tasks/s",
                "-" if pg is None else f"{pg:.3f} / {steady_pg:.3f}",
            )
        )
    return rows


def _legend(results: Mapping[str, Any]) -> list[str]:
    size = results["size"]
    return [
        f"burst: {size['jobs']} jobs x {size['tasks_per_job']} no-op tool tasks submitted at "
        f"once; tasks/s = tasks / (first submit to last job end); arq runs as many no-op jobs",
        f"steady: jobs of {size['steady_tasks_per_job']} tasks at "
        f"{size['steady_fraction']:.0%} of the row's burst tasks/s for {size['steady_s']:g} s",
        "p50 / p99: ready→running per task (TaskStarted.at - TaskReady.at); "
        "PG transactions/task: burst / steady",
    ]


def render_scaled(results: Mapping[str, Any], *, plain: bool = False) -> None:
    """Print the scaled table, with rich where it is installed and ``plain`` is false."""
    rows = scaled_rows(results)
    legend = "\n".join(_legend(results))
    failed = sum(entry["failed_jobs"] for entry in scaled_summary(results))
    if failed:
        legend += f"\nFAILED: {failed} jobs did not succeed"
    grid = Grid(
        "Scaled: PostgreSQL + Redis with worker processes (one run)",
        SCALED_HEADERS,
        rows,
        right=frozenset(range(2, 5)),
    )
    print_tables([grid], legend, plain=plain)
