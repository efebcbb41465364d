"""What each workload is, how it is counted, and what planweave must reach on it.

An engine module (``bench/planweave_w.py``, ``bench/peers/*_w.py``) exposes ``WORKLOADS``: a
mapping from workload name to a factory. A factory is an async context manager that builds the
graph or plan (untimed) and yields a :data:`RunFn`; each call of that function does one run and
wraps exactly the part that counts in ``with timer:``. Per-run setup (a fresh database file) and
the check that the run did what it should both stay outside the timer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "ENGINES",
    "FLOOR",
    "PEER_TARGETS",
    "SPECS",
    "W1_WIDTH",
    "W2_LENGTH",
    "W3_RUNS",
    "W3_SLEEP_S",
    "W3_STEPS",
    "W4_LENGTH",
    "RunFn",
    "Timer",
    "WorkloadFactory",
    "WorkloadSpec",
]

W1_WIDTH = 500
W2_LENGTH = 200
W3_RUNS = 200
W3_STEPS = 5
W3_SLEEP_S = 0.02
W4_LENGTH = 200


class Timer:
    """Wall clock (``perf_counter``) and process CPU (``process_time``) around one block.

    ``process_time`` counts every thread of the process, so work an engine pushes onto a thread
    (aiosqlite, a writer thread) is included.
    """

    def __init__(self) -> None:
        self.wall_s: float | None = None
        self.cpu_s: float | None = None
        self._wall0 = 0.0
        self._cpu0 = 0.0

    def __enter__(self) -> Timer:
        if self.wall_s is not None:
            raise RuntimeError("a Timer measures one block; this one was already used")
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wall_s = time.perf_counter() - self._wall0
        self.cpu_s = time.process_time() - self._cpu0


RunFn = Callable[[Timer], Awaitable[None]]
WorkloadFactory = Callable[[], AbstractAsyncContextManager[RunFn]]

Metric = Literal["us_per_unit", "wall_ms"]


@dataclass(frozen=True, kw_only=True)
class WorkloadSpec:
    """How one workload is reported, and what planweave must reach on it.

    planweave's targets are ratios measured in the same run, so they hold on any machine: to
    the floor row (the same shape with no engine: bare asyncio, or raw ``sqlite3`` commits)
    or, for W3, to its ideal wall time; and to LangGraph (:data:`PEER_TARGETS`).

    Attributes:
        name: ``W1`` … ``W4``.
        title: One line for the table.
        units: What the wall time is divided by (tasks or steps per run).
        unit: The unit's name, singular.
        metric: What the ratios are read from (lower is better).
        floor: What the floor row runs (``asyncio`` or ``sqlite3``).
        factor: planweave's target: at most ``factor`` times the floor's metric, or times
            ``ideal_ms`` where that is set.
        ideal_ms: The wall time of a run with no overhead at all (W3: the sleeps in a row),
            or ``None``. Where set, a peer's ratio to planweave compares the time above it.
        note: Where planweave runs it (memory store, SQLite).
    """

    name: str
    title: str
    units: int
    unit: str
    metric: Metric
    floor: str
    factor: float
    ideal_ms: float | None = None
    note: str

    def target_text(self) -> str:
        if self.ideal_ms is not None:
            return f"≤ {self.factor:g}\N{MULTIPLICATION SIGN} ideal"
        return f"≤ {self.factor:g}\N{MULTIPLICATION SIGN} floor"

    def value(self, result: Mapping[str, Any]) -> float:
        """The figure of one ``ok`` result that ratios are taken of."""
        if self.metric == "wall_ms":
            return float(result["wall_ms"]["median"])
        return float(result["us_per_unit_wall"])

    def cost(self, result: Mapping[str, Any]) -> float:
        """What an engine adds on this workload: the figure, less the ideal where there is one."""
        return self.value(result) - (self.ideal_ms or 0.0)


_W3_IDEAL_MS = W3_STEPS * W3_SLEEP_S * 1000

SPECS: Mapping[str, WorkloadSpec] = {
    "W1": WorkloadSpec(
        name="W1",
        title=f"fan-out 1 → {W1_WIDTH} → 1",
        units=W1_WIDTH + 2,
        unit="task",
        metric="us_per_unit",
        floor="asyncio",
        factor=3.0,
        note="memory store",
    ),
    "W2": WorkloadSpec(
        name="W2",
        title=f"chain of {W2_LENGTH}",
        units=W2_LENGTH,
        unit="task",
        metric="us_per_unit",
        floor="asyncio",
        factor=3.0,
        note="memory store",
    ),
    "W3": WorkloadSpec(
        name="W3",
        title=f"{W3_RUNS} runs x {W3_STEPS} steps x {W3_SLEEP_S * 1000:g} ms sleep",
        units=W3_RUNS * W3_STEPS,
        unit="step",
        metric="wall_ms",
        floor="asyncio",
        factor=1.25,
        ideal_ms=_W3_IDEAL_MS,
        note=f"memory store; ideal {_W3_IDEAL_MS:g} ms",
    ),
    "W4": WorkloadSpec(
        name="W4",
        title=f"durable chain of {W4_LENGTH}",
        units=W4_LENGTH,
        unit="task",
        metric="us_per_unit",
        floor="sqlite3",
        factor=4.0,
        note="SQLite, synchronous=NORMAL",
    ),
}

PEER_TARGETS: Mapping[str, float] = {"langgraph": 10.0}
"""Peer -> how many times faster than it planweave must be on every workload (on
:meth:`WorkloadSpec.cost`: for W3 the time above the ideal, the rest is sleeping)."""

FLOOR = "floor"
"""The engine name of the floor rows (``bench/floor_w.py``)."""

# Engine name -> (module that holds its WORKLOADS, name shown in the table).
ENGINES: Mapping[str, tuple[str, str]] = {
    FLOOR: ("bench.floor_w", "floor"),
    "planweave": ("bench.planweave_w", "planweave"),
    "langgraph": ("bench.peers.langgraph_w", "LangGraph"),
    "llamaindex": ("bench.peers.llamaindex_w", "LlamaIndex"),
}
