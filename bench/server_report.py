"""The server table: S1 (jobs/s through the API) and S2 (SSE fan-out), one figure a row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench._tables import Grid, print_tables
from bench.server_w import S1_CONCURRENCY, S1_JOBS, S1_TASKS, S2_SUBSCRIBERS, S2_TASKS

__all__ = ["SERVER_HEADERS", "SERVER_TITLES", "render_server", "server_rows"]

SERVER_HEADERS = ("", "benchmark", "figure", "value")

SERVER_TITLES = {
    "S1": f"{S1_JOBS} jobs of {S1_TASKS} calculator tasks, {S1_CONCURRENCY} concurrent submitters",
    "S2": f"1 job of {S2_TASKS} tool tasks, {S2_SUBSCRIBERS} SSE subscribers",
}

Row = tuple[str, str, str, str]


def _ms3(figures: Mapping[str, float]) -> str:
    return f"{figures['p50']:.1f} / {figures['p99']:.1f} / {figures['max']:.1f} ms"


def _s1(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    statuses = ", ".join(f"{code} x {n}" for code, n in r["statuses"].items())
    succeeded = r["final_status"].get("succeeded", 0)
    return [
        ("jobs accepted (HTTP status)", f"{r['accepted']} of {r['jobs']} ({statuses})"),
        ("jobs succeeded", f"{succeeded} of {r['accepted']}"),
        ("submitted jobs/s", f"{r['submitted_per_s']:.0f} (in {r['submit_wall_s']:.2f} s)"),
        (
            "completed jobs/s, end to end",
            f"{r['completed_per_s']:.0f} (all ended {r['complete_wall_s']:.2f} s after the first submit)",
        ),
        ("submit latency p50 / p99 / max", _ms3(r["submit_ms"])),
        ("CPU s: server / clients", f"{r['server_cpu_s']:.1f} / {r['client_cpu_s']:.1f}"),
        ("server peak RSS", f"{r['server_peak_rss_mib']:.0f} MiB"),
    ]


def _s2(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("events in the job", f"{r['events_per_job']:,}"),
        (
            "subscribers that got every event, in order",
            f"{r['contiguous_subscribers']} of {r['subscribers']} "
            f"(gaps {r['gaps']}, duplicates {r['duplicates']}, failed streams {r['error_count']})",
        ),
        (
            "events per subscriber (min / max)",
            f"{r['events_min']:,} / {r['events_max']:,} of {r['events_per_job']:,}",
        ),
        (
            "delivery lag p50 / p99 / max",
            f"{_ms3(r['lag_ms'])} (over {r['lag_samples']:,} live deliveries)",
        ),
        (
            "events delivered",
            f"{r['events_delivered']:,} ({r['events_delivered_per_s']:,.0f}/s)",
        ),
        (
            "wall: job ran / all delivered",
            f"{r['job_wall_s']:.2f} s / {r['delivery_wall_s']:.1f} s",
        ),
        ("CPU s: server / clients", f"{r['server_cpu_s']:.1f} / {r['client_cpu_s']:.1f}"),
        ("server peak RSS", f"{r['server_peak_rss_mib']:.0f} MiB"),
    ]


def server_rows(results: Sequence[Mapping[str, Any]]) -> list[Row]:
    """Table rows as text, in the order of :data:`SERVER_HEADERS`."""
    table: list[Row] = []
    for r in results:
        name = r["bench"]
        title = SERVER_TITLES.get(name, "")
        if r["status"] == "error":
            table.append((name, title, "error", r.get("reason", "")))
            continue
        figures = _s1(r) if name == "S1" else _s2(r)
        if r["status"] != "ok":
            figures.insert(0, ("FAILED", r.get("reason", "")))
        for i, (figure, value) in enumerate(figures):
            table.append((name if i == 0 else "", title if i == 0 else "", figure, value))
    return table


def render_server(results: Sequence[Mapping[str, Any]], *, plain: bool = False) -> None:
    """Print the server table, with rich where it is installed and ``plain`` is false."""
    table = server_rows(results)
    variants = {r["variant"] for r in results if "variant" in r}
    legend = [f"setup: {v}" for v in sorted(variants)]
    legend += [
        "S2 lag = receive time - event 'at', for events emitted after the stream opened; "
        "the subscribers connect while a gate task holds the job"
    ]
    grid = Grid(
        "API server (one bench process serving, one process of clients)", SERVER_HEADERS, table
    )
    print_tables([grid], "\n".join(legend), plain=plain)
