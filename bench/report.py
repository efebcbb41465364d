"""The results table: figures per (workload, engine), each peer's ratio to planweave, targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.workloads import ENGINES, SPECS, WorkloadSpec

__all__ = ["HEADERS", "compare", "notes", "render", "rows"]

_TIMES = "\N{MULTIPLICATION SIGN}"

HEADERS = (
    "",
    "engine",
    "wall ms median (min-max)",
    "wall µs/unit",
    "CPU µs/unit",
    "RSS MiB",
    "vs planweave",
    "planweave target",
)


def _metric(result: Mapping[str, Any], spec: WorkloadSpec) -> float:
    if spec.metric == "wall_ms":
        return float(result["wall_ms"]["median"])
    return float(result["us_per_unit_wall"])


def compare(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Add ``vs_planweave`` (peer ÷ planweave on the workload's metric) and ``target_met``.

    Returns new dicts; a ratio is ``None`` where either side has no figures.
    """
    ours = {r["workload"]: r for r in results if r["engine"] == "planweave" and r["status"] == "ok"}
    out: list[dict[str, Any]] = []
    for result in results:
        row = dict(result)
        spec = SPECS[row["workload"]]
        if row["status"] == "ok":
            value = _metric(row, spec)
            if row["engine"] == "planweave":
                row["target"] = spec.target_text()
                row["target_met"] = value <= spec.target
            elif row["workload"] in ours:
                row["vs_planweave"] = value / _metric(ours[row["workload"]], spec)
        out.append(row)
    return out


def _ratio_text(row: Mapping[str, Any]) -> str:
    ratio = row.get("vs_planweave")
    if ratio is None:
        return "-"
    name = ENGINES[row["engine"]][1]
    if ratio >= 1:
        return f"{name} {_TIMES}{ratio:.1f} slower"
    return f"{name} {_TIMES}{1 / ratio:.1f} faster"


def _target_text(row: Mapping[str, Any]) -> str:
    spec = SPECS[row["workload"]]
    if row["engine"] != "planweave":
        return ""
    if "target_met" not in row:
        return f"{spec.target_text()}: -"
    verdict = "met" if row["target_met"] else "MISSED"
    return f"{spec.target_text()}: {verdict}"


def rows(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Table rows as text, in the order of :data:`HEADERS`."""
    table: list[tuple[str, ...]] = []
    for row in compare(results):
        spec = SPECS[row["workload"]]
        label = spec.name
        engine = ENGINES[row["engine"]][1]
        if row["status"] != "ok":
            table.append((label, engine, row["status"], "", "", "", "", _target_text(row)))
            continue
        wall = row["wall_ms"]
        table.append(
            (
                label,
                engine,
                f"{wall['median']:.1f} ({wall['min']:.1f}-{wall['max']:.1f})",
                f"{row['us_per_unit_wall']:.1f} /{spec.unit}",
                f"{row['us_per_unit_cpu']:.1f}",
                f"{row['peak_rss_mib']:.0f}",
                _ratio_text(row),
                _target_text(row),
            )
        )
    return table


def _plain(table: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [HEADERS, *table]) for i in range(len(HEADERS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def notes(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per workload and one per engine/status/reason of the rows without figures."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        if r["status"] != "ok":
            key = (ENGINES[r["engine"]][1], r["status"], r.get("reason", ""))
            seen.setdefault(key, []).append(r["workload"])
    lines = [
        f"{spec.name}: {spec.title}; unit = {spec.unit}; target {spec.target_text()} "
        f"({spec.target_note})"
        for spec in SPECS.values()
        if any(r["workload"] == spec.name for r in results)
    ]
    lines += [
        f"{engine} {','.join(names)}: {status}" + (f" ({reason})" if reason else "")
        for (engine, status, reason), names in seen.items()
    ]
    return lines


def render(results: Sequence[Mapping[str, Any]], *, plain: bool = False) -> None:
    """Print the table, with rich where it is installed and ``plain`` is false."""
    table = rows(results)
    legend = "\n".join(notes(results))
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if plain:
        print(_plain(table))
        print(legend)
        return
    grid = Table(title="Engine overhead (median of timed runs; one process per row)")
    for i, header in enumerate(HEADERS):
        grid.add_column(header, justify="right" if 2 <= i <= 5 else "left")
    previous = None
    for r in table:
        grid.add_row(*(r if r[0] != previous else ("", *r[1:])), end_section=False)
        previous = r[0]
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    console.print(grid)
    console.print(legend, highlight=False)
