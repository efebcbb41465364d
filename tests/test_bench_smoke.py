"""The benchmark code runs: every workload of every engine at a tiny size, in process.

No timing is asserted here (timing belongs in ``bench/``); each run checks its own result (every
node ran, the job succeeded, the last checkpoint holds the finished run) and raises otherwise.
"""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bench.report import compare, rows
from bench.run_one import measure
from bench.workloads import SPECS, WorkloadFactory

_ROOT = Path(__file__).resolve().parents[1]
_INSTALL = "pip install -e '.[bench]'"


def _tiny(module: ModuleType) -> dict[str, WorkloadFactory]:
    sizes: dict[str, dict[str, Any]] = {
        "W1": {"width": 5},
        "W2": {"length": 5},
        "W3": {"runs": 3, "steps": 5},
        "W4": {"length": 5},
    }
    return {
        name: functools.partial(factory, **sizes[name])
        for name, factory in module.WORKLOADS.items()
    }


async def _run_all(module: ModuleType, expected: set[str]) -> None:
    workloads = _tiny(module)
    assert set(workloads) == expected
    for factory in workloads.values():
        figures = await measure(factory, runs=2, warmup=1)
        assert figures["wall_ms"]["min"] <= figures["wall_ms"]["median"]
        assert figures["wall_ms"]["median"] <= figures["wall_ms"]["max"]


async def test_langgraph_workloads_run() -> None:
    pytest.importorskip("langgraph", reason=f"langgraph is not installed ({_INSTALL})")
    pytest.importorskip(
        "langgraph.checkpoint.sqlite",
        reason=f"langgraph-checkpoint-sqlite is not installed ({_INSTALL})",
    )
    module = importlib.import_module("bench.peers.langgraph_w")
    await _run_all(module, {"W1", "W2", "W3", "W4"})


async def test_llamaindex_workloads_run() -> None:
    pytest.importorskip("workflows", reason=f"llama-index-workflows is not installed ({_INSTALL})")
    module = importlib.import_module("bench.peers.llamaindex_w")
    await _run_all(module, {"W1", "W2", "W3"})


async def test_planweave_workloads_run() -> None:
    from bench import planweave_w

    assert planweave_w.available() is None
    await _run_all(planweave_w, {"W1", "W2", "W3", "W4"})


def test_run_one_prints_one_json_line_per_pair() -> None:
    pytest.importorskip("workflows", reason=f"llama-index-workflows is not installed ({_INSTALL})")
    done = subprocess.run(
        [sys.executable, "-m", "bench.run_one", "llamaindex", "W4", "--runs", "1"],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["engine"], result["workload"], result["status"]) == ("llamaindex", "W4", "n/a")


def _ok(engine: str, workload: str, us_per_unit: float, wall_ms: float) -> dict[str, Any]:
    spread = {"median": wall_ms, "min": wall_ms, "max": wall_ms}
    return {
        "engine": engine,
        "workload": workload,
        "status": "ok",
        "wall_ms": spread,
        "cpu_ms": spread,
        "us_per_unit_wall": us_per_unit,
        "us_per_unit_cpu": us_per_unit,
        "peak_rss_mib": 40.0,
    }


def test_report_gives_peer_ratios_and_planweave_targets() -> None:
    results = [
        _ok("planweave", "W1", 20.0, 10.0),
        _ok("langgraph", "W1", 246.0, 123.0),
        _ok("planweave", "W3", 0.13, 130.0),
        _ok("llamaindex", "W3", 0.65, 650.0),
        {"engine": "llamaindex", "workload": "W4", "status": "not installed", "reason": "x"},
    ]
    compared = {(r["engine"], r["workload"]): r for r in compare(results)}
    assert compared["langgraph", "W1"]["vs_planweave"] == pytest.approx(12.3)
    assert compared["planweave", "W1"]["target_met"] is True
    assert compared["llamaindex", "W3"]["vs_planweave"] == pytest.approx(5.0)
    assert compared["planweave", "W3"]["target_met"] is False  # 130 ms > 125 ms
    text = rows(results)
    assert any("LangGraph \N{MULTIPLICATION SIGN}12.3 slower" in row for row in text)
    assert any("not installed" in row for row in text)
    assert set(SPECS) == {"W1", "W2", "W3", "W4"}
