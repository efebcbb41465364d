"""The benchmark code runs: every workload of every engine and of the floors at a tiny size, in
process, and the report turns rows into ratios and verdicts.

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
from bench.report import RATIO_HEADERS, compare, ratio_rows, ratios, rows
from bench.run_one import measure
from bench.workloads import ENGINES, FLOOR, SPECS, WorkloadFactory

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


async def test_floor_workloads_run() -> None:
    from bench import floor_w

    await _run_all(floor_w, {"W1", "W2", "W3", "W4"})


def test_run_one_runs_a_floor_and_reports_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run_one", FLOOR, "W4", "--runs", "1"],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["engine"], result["workload"], result["status"]) == (FLOOR, "W4", "ok")
    assert result["units"] == SPECS["W4"].units
    assert result["us_per_unit_wall"] > 0
    assert "sqlite3" in result["variant"]


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


def test_report_gives_ratios_to_the_floors_and_peers_and_verdicts() -> None:
    results = [
        _ok(FLOOR, "W1", 8.0, 4.0),
        _ok("planweave", "W1", 20.0, 10.0),
        _ok("langgraph", "W1", 246.0, 123.0),
        _ok(FLOOR, "W3", 0.1, 102.0),
        _ok("planweave", "W3", 0.13, 130.0),
        _ok("langgraph", "W3", 0.4, 400.0),
        _ok("llamaindex", "W3", 0.65, 650.0),
        _ok("planweave", "W4", 150.0, 30.0),
        {"engine": "llamaindex", "workload": "W4", "status": "n/a", "reason": "x"},
    ]
    compared = {(r["engine"], r["workload"]): r for r in compare(results)}
    assert compared["planweave", "W1"]["vs_floor"] == pytest.approx(2.5)
    assert compared["planweave", "W1"]["target_met"] is True  # 2.5x <= 3x
    assert compared["langgraph", "W1"]["vs_planweave"] == pytest.approx(12.3)
    # W3 is judged against its ideal (5 x 20 ms); peers on the time above it.
    assert compared["planweave", "W3"]["vs_ideal"] == pytest.approx(1.3)
    assert compared["planweave", "W3"]["vs_floor"] == pytest.approx(130 / 102)
    assert compared["planweave", "W3"]["target_met"] is False  # 1.3x > 1.25x
    assert compared["llamaindex", "W3"]["vs_planweave"] == pytest.approx(550 / 30)
    assert compared["planweave", "W4"]["vs_floor"] is None  # no floor row: no verdict
    assert compared["planweave", "W4"]["target_met"] is None

    by_workload = {entry["workload"]: entry for entry in ratios(results)}
    assert set(by_workload) == {"W1", "W3", "W4"}
    assert by_workload["W1"]["peers"]["langgraph"]["target_met"] is True  # 12.3x >= 10x
    assert by_workload["W3"]["peers"]["langgraph"]["vs_planweave"] == pytest.approx(10.0)
    assert by_workload["W3"]["peers"]["langgraph"]["target_met"] is True
    assert by_workload["W4"]["peers"]["langgraph"]["target_met"] is None

    text = rows(results)
    assert any("floor (asyncio)" in row for row in text)
    assert any("\N{MULTIPLICATION SIGN}12.3 slower" in row for row in text)
    assert any("n/a" in row for row in text)
    table = ratio_rows(results)
    assert all(len(row) == len(RATIO_HEADERS) for row in table)
    assert table[0][:3] == (
        "W1",
        "\N{MULTIPLICATION SIGN}2.50 (CPU \N{MULTIPLICATION SIGN}2.50)",
        "\N{LESS-THAN OR EQUAL TO} 3\N{MULTIPLICATION SIGN} floor: met",
    )
    assert "MISSED" in table[1][2]
    assert set(SPECS) == {"W1", "W2", "W3", "W4"}
    assert list(ENGINES)[:2] == [FLOOR, "planweave"]  # the floors run first


def test_bench_adds_the_floors_and_writes_their_ratios(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--only", "W2", "--engines", "planweave", "--runs", "1", "--plain", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    engines = [(r["engine"], r["status"]) for r in report["results"]]
    assert engines == [(FLOOR, "ok"), ("planweave", "ok")]  # the floor runs though not named
    (entry,) = report["ratios"]
    assert entry["workload"] == "W2" and entry["planweave_vs_floor"] > 0
    assert isinstance(entry["target_met"], bool)
    assert "planweave ÷ floor" in done.stdout and "floor (asyncio)" in done.stdout


def test_bench_runs_the_hooks_and_journal_sections_and_saves_their_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import __main__ as bench_main

    out = tmp_path / "results.json"
    argv = ["--only", "hooks,journal", "--runs", "1", "--warmup", "0", "--out", str(out)]
    assert bench_main.main([*argv, "--plain"]) == 0
    printed = capsys.readouterr().out
    assert "µs per recorded step" in printed and "logging + metrics" in printed
    report = json.loads(out.read_text())
    journal = report["journal"]
    assert journal["status"] == "ok"
    assert journal["steps"] == 2 * journal["calls"] + 1
    assert journal["on_us_per_step"] > 0 and journal["off_us_per_step"] > 0
    assert journal["cost_us_per_step"] == pytest.approx(
        journal["on_us_per_step"] - journal["off_us_per_step"], abs=0.2
    )
    assert report["hooks"]["status"] == "ok"


def test_bench_runs_the_policy_section_and_saves_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import __main__ as bench_main

    out = tmp_path / "results.json"
    argv = ["--only", "policy", "--runs", "1", "--warmup", "0", "--out", str(out), "--plain"]
    assert bench_main.main(argv) == 0
    assert "budgets + policy" in capsys.readouterr().out
    policy = json.loads(out.read_text())["policy"]
    assert policy["status"] == "ok"
    assert [row["config"] for row in policy["rows"]][:3] == [
        "no policy, no budgets",
        "budgets",
        "budgets + policy",
    ]
    assert policy["check_us_per_task"] > 0 and isinstance(policy["target_met"], bool)


def test_bench_runs_the_sessions_section_alone_and_saves_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import __main__ as bench_main

    out = tmp_path / "results.json"
    argv = ["--only", "sessions", "--session-agents", "5", "--out", str(out), "--plain"]
    assert bench_main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "session re-computation, 5 agents" in printed and "input of the root" in printed
    report = json.loads(out.read_text())
    assert report["results"] == [] and report["hooks"] == {} and report["scaled"] == {}
    sessions = report["sessions"]
    assert sessions["status"] == "ok" and sessions["agents"] == 5
    assert sessions["shapes"]["chain"]["leaf_ratio"] == 0.2
    assert sessions["shapes"]["fanout"]["root_ratio"] == 1.0
    assert sessions["shapes"]["chain"]["leaf_us_per_rerun_agent"] > 0
