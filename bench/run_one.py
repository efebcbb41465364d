"""Run one (engine, workload) pair and print one JSON line: ``python -m bench.run_one ENGINE W``.

Meant to run in a process of its own (``python -m bench`` starts one per pair), so the peak RSS
it reports is that engine's alone. The line always has ``engine``, ``workload`` and ``status``:
``ok`` (with the figures), ``not installed`` (the engine's package, or planweave's engine API, is
missing), ``n/a`` (the engine has no such workload) or ``error`` (the run failed; exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import resource
import statistics
import sys
import traceback
from typing import Any

from bench.workloads import ENGINES, SPECS, Timer, WorkloadFactory

__all__ = ["main", "measure"]


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _spread(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms)}


async def measure(factory: WorkloadFactory, *, runs: int, warmup: int = 1) -> dict[str, Any]:
    """Build the workload, do ``warmup`` untimed runs and ``runs`` timed ones, return the figures.

    A full garbage collection runs before every run, outside the timer, so one run's garbage is
    not collected on the next one's clock.
    """
    walls: list[float] = []
    cpus: list[float] = []
    async with factory() as run:
        for i in range(warmup + runs):
            gc.collect()
            timer = Timer()
            await run(timer)
            if timer.wall_s is None or timer.cpu_s is None:
                raise RuntimeError("the workload never entered its timer")
            if i >= warmup:
                walls.append(timer.wall_s)
                cpus.append(timer.cpu_s)
    return {"wall_ms": _spread(walls), "cpu_ms": _spread(cpus)}


def _result(engine: str, workload: str, **fields: Any) -> dict[str, Any]:
    return {"engine": engine, "workload": workload, **fields}


def run_pair(engine: str, workload: str, *, runs: int, warmup: int) -> dict[str, Any]:
    """Import the engine's module, run the workload and return the JSON-ready result."""
    spec = SPECS[workload]
    module_name = ENGINES[engine][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return _result(engine, workload, status="not installed", reason=str(exc))
    rss_import = _peak_rss_mib()
    workloads: dict[str, WorkloadFactory] = module.WORKLOADS
    if workload not in workloads:
        reason = getattr(module, "NOT_APPLICABLE", {}).get(workload, "not implemented")
        return _result(engine, workload, status="n/a", reason=reason)
    try:
        figures = asyncio.run(measure(workloads[workload], runs=runs, warmup=warmup))
    except ImportError as exc:
        return _result(engine, workload, status="not installed", reason=str(exc))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return _result(engine, workload, status="error", reason=f"{type(exc).__name__}: {exc}")
    wall_median = figures["wall_ms"]["median"]
    cpu_median = figures["cpu_ms"]["median"]
    return _result(
        engine,
        workload,
        status="ok",
        variant=getattr(module, "VARIANTS", {}).get(workload, ""),
        runs=runs,
        warmup=warmup,
        units=spec.units,
        unit=spec.unit,
        **figures,
        us_per_unit_wall=wall_median * 1000 / spec.units,
        us_per_unit_cpu=cpu_median * 1000 / spec.units,
        rss_after_import_mib=rss_import,
        peak_rss_mib=_peak_rss_mib(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_one", description=__doc__)
    parser.add_argument("engine", choices=sorted(ENGINES))
    parser.add_argument("workload", choices=sorted(SPECS))
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    result = run_pair(args.engine, args.workload, runs=args.runs, warmup=args.warmup)
    print(json.dumps(result), flush=True)
    return 1 if result["status"] == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
