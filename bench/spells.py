"""What spells cost: µs per host call of a no-op tool from Lua and from JavaScript (in-process
and in a child process), a spell's start-up time in each language, and W2 (a chain of 200
tool calls) written as a spell loop against the same chain as a Python plan on the engine.

Each figure is the median of ``--runs`` runs after ``--warmup`` untimed ones. The spell's host
function calls the no-op tool itself, so the spell rows are the bridge's cost and the Python
W2 row the engine's (store and bus ``memory://``).

    python -m bench.spells [--runs 5] [--length 200] [--json]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from bench._cli import w2_main
from bench.hooks_w import _median_s as _python_w2_s
from bench.workloads import W2_LENGTH

__all__ = ["main", "measure", "render"]

_LOOP = {
    "lua": "for i = 1, params.n do tools.call('noop', {}) end\nreturn params.n",
    "js": "for (let i = 0; i < params.n; i++) await tools.call('noop', {});\nreturn params.n;",
}
_EMPTY = {"lua": "return 1", "js": "return 1;"}


async def _noop() -> None:
    return None


_STAMPS: list[float] = []


async def _host(op: str, args: list[Any]) -> Any:
    _STAMPS.append(time.perf_counter())
    return await _noop()


def _per_call_s() -> float:
    """Seconds between the first and the last host call of a run, per call: the bridge's cost
    alone, without the spell's start-up."""
    if len(_STAMPS) < 2:
        return 0.0
    return (_STAMPS[-1] - _STAMPS[0]) / (len(_STAMPS) - 1)


async def _time_s(language: str, isolation: str, source: str, n: int) -> float:
    from planweave.spells import JsLimits, LuaLimits, run_script

    limits: Any = LuaLimits(host_calls=n + 1) if language == "lua" else JsLimits(host_calls=n + 1)
    _STAMPS.clear()
    started = time.perf_counter()
    await run_script(
        language,  # type: ignore[arg-type]
        source,
        host=_host,
        ops=["tools.call"],
        isolation=isolation,  # type: ignore[arg-type]
        globals_={"params": {"n": n}},
        limits=limits,
    )
    return time.perf_counter() - started


async def _median(
    language: str, isolation: str, source: str, n: int, runs: int, warmup: int
) -> tuple[float, float]:
    """The median run, and the median seconds per host call."""
    times, per_call = [], []
    for _ in range(warmup + runs):
        times.append(await _time_s(language, isolation, source, n))
        per_call.append(_per_call_s())
    return statistics.median(times[warmup:]), statistics.median(per_call[warmup:])


async def _measure(length: int, runs: int, warmup: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    python_s = await _python_w2_s([], length, runs, warmup)
    rows.append({"case": "W2 as a Python plan (engine)", "us_per_call": python_s / length * 1e6})
    for language in ("lua", "js"):
        for isolation in ("inprocess", "subprocess"):
            start, _ = await _median(language, isolation, _EMPTY[language], 0, runs, warmup)
            loop, per_call = await _median(
                language, isolation, _LOOP[language], length, runs, warmup
            )
            rows.append(
                {
                    "case": f"W2 as a {language} spell loop ({isolation})",
                    "language": language,
                    "isolation": isolation,
                    "startup_ms": start * 1e3,
                    "us_per_call": per_call * 1e6,
                    "w2_s": loop,
                    "ratio_to_python_w2": loop / python_s,
                }
            )
    return {"workload": f"W2 (chain of {length})", "runs": runs, "rows": rows}


def measure(*, length: int = W2_LENGTH, runs: int = 5, warmup: int = 1) -> dict[str, Any]:
    """The spells' figures: start-up, µs per host call, and W2 as a spell against Python."""
    return asyncio.run(_measure(length, runs, warmup))


def render(report: dict[str, Any]) -> str:
    lines = [
        f"spells on {report['workload']}, median of {report['runs']} runs",
        f"{'case':<40}{'start ms':>10}{'µs/call':>10}{'x Python W2':>13}",
    ]
    for row in report["rows"]:
        start = f"{row['startup_ms']:.1f}" if "startup_ms" in row else "-"
        ratio = f"{row['ratio_to_python_w2']:.2f}" if "ratio_to_python_w2" in row else "1.00"
        lines.append(f"{row['case']:<40}{start:>10}{row['us_per_call']:>10.1f}{ratio:>13}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return w2_main("python -m bench.spells", __doc__, measure, render, argv)


if __name__ == "__main__":
    sys.exit(main())
