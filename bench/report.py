"""The results tables: figures per (workload, engine), then the ratios the targets are set on.

Every target is a ratio between rows of one run, so it means the same on a fast machine and a
slow one: planweave against the floor (the same shape with no engine) or W3's ideal, and each
peer against planweave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench._tables import Grid, print_tables
from bench.workloads import ENGINES, FLOOR, PEER_TARGETS, SPECS, WorkloadSpec

__all__ = ["HEADERS", "RATIO_HEADERS", "compare", "notes", "ratio_rows", "ratios", "render", "rows"]

_TIMES = "\N{MULTIPLICATION SIGN}"
_PEERS = [name for name in ENGINES if name not in (FLOOR, "planweave")]

HEADERS = (
    "",
    "engine",
    "wall ms median (min-max)",
    "wall µs/unit",
    "CPU µs/unit",
    "RSS MiB",
    "ratio",
)

RATIO_HEADERS = (
    "",
    "planweave ÷ floor",
    "planweave target",
    *(
        header
        for peer in _PEERS
        for header in (
            [f"{ENGINES[peer][1]} ÷ planweave", f"{ENGINES[peer][1]} target"]
            if peer in PEER_TARGETS
            else [f"{ENGINES[peer][1]} ÷ planweave"]
        )
    ),
)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _ok(results: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(r["engine"], r["workload"]): r for r in results if r["status"] == "ok"}


def ratios(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per workload measured: planweave ÷ floor (and ÷ ideal), each peer ÷ planweave,
    and whether each target was met (``None`` where a row it needs has no figures).

    A peer's ratio compares :meth:`WorkloadSpec.cost` (for W3, the time above the ideal).
    """
    ok = _ok(results)
    out: list[dict[str, Any]] = []
    for name, spec in SPECS.items():
        if not any(r["workload"] == name for r in results):
            continue
        ours, floor = ok.get(("planweave", name)), ok.get((FLOOR, name))
        entry: dict[str, Any] = {
            "workload": name,
            "floor": spec.floor,
            "floor_value": spec.value(floor) if floor else None,
            "planweave_value": spec.value(ours) if ours else None,
            "planweave_vs_floor": _ratio(spec.value(ours), spec.value(floor))
            if ours and floor
            else None,
            # The same on CPU time, which other processes on a busy machine disturb less.
            "planweave_vs_floor_cpu": _ratio(ours["us_per_unit_cpu"], floor["us_per_unit_cpu"])
            if ours and floor
            else None,
            "target": spec.target_text(),
        }
        if spec.ideal_ms is not None:
            entry["ideal_ms"] = spec.ideal_ms
            entry["planweave_vs_ideal"] = spec.value(ours) / spec.ideal_ms if ours else None
        judged = entry.get("planweave_vs_ideal", entry["planweave_vs_floor"])
        entry["target_met"] = None if judged is None else judged <= spec.factor
        peers: dict[str, dict[str, Any]] = {}
        for peer in _PEERS:
            theirs = ok.get((peer, name))
            ratio = _ratio(spec.cost(theirs), spec.cost(ours)) if theirs and ours else None
            figures: dict[str, Any] = {"vs_planweave": ratio}
            if peer in PEER_TARGETS:
                want = PEER_TARGETS[peer]
                figures["target"] = f"≥ {want:g}{_TIMES} slower"
                figures["target_met"] = None if ratio is None else ratio >= want
            peers[peer] = figures
        entry["peers"] = peers
        out.append(entry)
    return out


def compare(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The results with their ratios added: ``vs_floor`` (and ``vs_ideal``), ``target`` and
    ``target_met`` on planweave's rows, ``vs_planweave`` on each peer's.

    Returns new dicts; a ratio is ``None`` where either side has no figures.
    """
    by_workload = {entry["workload"]: entry for entry in ratios(results)}
    out: list[dict[str, Any]] = []
    for result in results:
        row = dict(result)
        entry = by_workload[row["workload"]]
        if row["status"] == "ok" and row["engine"] == "planweave":
            row["vs_floor"] = entry["planweave_vs_floor"]
            if "planweave_vs_ideal" in entry:
                row["vs_ideal"] = entry["planweave_vs_ideal"]
            row["target"] = entry["target"]
            row["target_met"] = entry["target_met"]
        elif row["status"] == "ok" and row["engine"] in entry["peers"]:
            row["vs_planweave"] = entry["peers"][row["engine"]]["vs_planweave"]
        out.append(row)
    return out


def _times(ratio: float | None, what: str = "") -> str:
    if ratio is None:
        return "-"
    return f"{_TIMES}{ratio:.2f}" + (f" {what}" if what else "")


def _ratio_text(row: Mapping[str, Any]) -> str:
    if row["engine"] == "planweave":
        text = _times(row.get("vs_floor"), "floor")
        if "vs_ideal" in row:
            text += f", {_times(row['vs_ideal'], 'ideal')}"
        return text
    ratio = row.get("vs_planweave")
    if ratio is None:
        return "-"
    if ratio >= 1:
        return f"{_TIMES}{ratio:.1f} slower"
    return f"{_TIMES}{1 / ratio:.1f} faster"


def rows(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Figures table rows as text, in the order of :data:`HEADERS`."""
    table: list[tuple[str, ...]] = []
    for row in compare(results):
        spec = SPECS[row["workload"]]
        engine = ENGINES[row["engine"]][1]
        if row["engine"] == FLOOR:
            engine = f"floor ({spec.floor})"
        if row["status"] != "ok":
            table.append((spec.name, engine, row["status"], "", "", "", ""))
            continue
        wall = row["wall_ms"]
        table.append(
            (
                spec.name,
                engine,
                f"{wall['median']:.1f} ({wall['min']:.1f}-{wall['max']:.1f})",
                f"{row['us_per_unit_wall']:.1f} /{spec.unit}",
                f"{row['us_per_unit_cpu']:.1f}",
                f"{row['peak_rss_mib']:.0f}",
                "" if row["engine"] == FLOOR else _ratio_text(row),
            )
        )
    return table


def _verdict(target: str, met: bool | None) -> str:
    return f"{target}: " + ("-" if met is None else "met" if met else "MISSED")


def ratio_rows(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Ratios table rows as text, in the order of :data:`RATIO_HEADERS`."""
    table: list[tuple[str, ...]] = []
    for entry in ratios(results):
        ours = _times(entry["planweave_vs_floor"])
        if "planweave_vs_ideal" in entry:
            ours = f"{_times(entry['planweave_vs_ideal'])} ideal ({ours} floor)"
        elif entry["planweave_vs_floor_cpu"] is not None:
            ours += f" (CPU {_times(entry['planweave_vs_floor_cpu'])})"
        cells = [entry["workload"], ours, _verdict(entry["target"], entry["target_met"])]
        for peer in _PEERS:
            figures = entry["peers"][peer]
            ratio = figures["vs_planweave"]
            cells.append("-" if ratio is None else f"{_TIMES}{ratio:.1f}")
            if "target" in figures:
                cells.append(_verdict(figures["target"], figures["target_met"]))
        table.append(tuple(cells))
    return table


def _spec_line(spec: WorkloadSpec) -> str:
    return (
        f"{spec.name}: {spec.title}; unit = {spec.unit}; floor = {spec.floor}; "
        f"planweave target {spec.target_text()} ({spec.note})"
    )


def notes(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per workload and one per engine/status/reason of the rows without figures."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        if r["status"] != "ok":
            key = (ENGINES[r["engine"]][1], r["status"], r.get("reason", ""))
            seen.setdefault(key, []).append(r["workload"])
    lines = [
        _spec_line(spec)
        for spec in SPECS.values()
        if any(r["workload"] == spec.name for r in results)
    ]
    lines.append(
        "ratios: planweave ÷ floor (W3: ÷ its ideal) on wall time, and on CPU time in brackets; "
        "a peer ÷ planweave on what the engine adds (W3: wall time above the ideal); targets "
        "are judged on wall time; all from this one run"
    )
    lines += [
        f"{engine} {','.join(names)}: {status}" + (f" ({reason})" if reason else "")
        for (engine, status, reason), names in seen.items()
    ]
    return lines


def render(results: Sequence[Mapping[str, Any]], *, plain: bool = False) -> None:
    """Print both tables, with rich where it is installed and ``plain`` is false."""
    figures = Grid(
        "Engine overhead (median of timed runs; one process per row)",
        HEADERS,
        rows(results),
        right=frozenset(range(2, 6)),
        grouped=True,
    )
    targets = Grid(
        "Ratios and targets (same run, so machine-independent)", RATIO_HEADERS, ratio_rows(results)
    )
    print_tables([figures, targets], "\n".join(notes(results)), plain=plain)
