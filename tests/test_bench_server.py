"""The server benchmarks run at a tiny size and report what they measured.

No timing is asserted (timing belongs in ``bench/``): these check that S1 and S2 serve real jobs,
that every subscriber's sequence is checked for gaps and repeats, and that the figures land in the
table and under ``"server"`` in the results file.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from bench import __main__ as bench_main
from bench.server_clients import LagHistogram, SeqCheck, percentile
from bench.server_report import server_rows
from bench.server_w import s2

_TINY = ["--jobs", "5", "--concurrency", "2", "--tasks", "12", "--subscribers", "3"]


def _check(seqs: list[int]) -> SeqCheck:
    check = SeqCheck()
    for seq in seqs:
        check.add(seq)
    return check


def test_seq_check_accepts_only_every_event_once_in_order() -> None:
    assert _check([1, 2, 3, 4]).contiguous(4)
    assert not _check([1, 2, 3]).contiguous(4)  # the end is missing
    gap = _check([1, 2, 4])
    assert (gap.gaps, gap.missing, gap.contiguous(4)) == (1, 1, False)
    repeat = _check([1, 2, 2, 3])
    assert (repeat.duplicates, repeat.contiguous(3)) == (1, False)
    late_start = _check([2, 3])
    assert (late_start.gaps, late_start.missing, late_start.contiguous(3)) == (1, 1, False)


def test_lag_percentiles() -> None:
    lags = LagHistogram()
    for ms in range(1, 101):
        lags.add(float(ms))
    assert lags.total == 100 and lags.max_ms == 100.0
    assert lags.percentile(50) == pytest.approx(50.1)  # upper edge of the 0.1 ms bucket
    assert lags.percentile(99) == pytest.approx(99.1)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


async def test_s2_every_subscriber_gets_every_event() -> None:
    result = await s2(tasks=12, subscribers=3, timeout_s=60)
    assert result["status"] == "ok", result.get("reason")
    # 5 events a tool task (ToolCalled among them), JobSubmitted, JobCompleted
    assert result["events_per_job"] == 5 * 12 + 2
    assert result["contiguous_subscribers"] == 3
    assert result["events_min"] == result["events_max"] == 62
    assert (result["gaps"], result["duplicates"], result["error_count"]) == (0, 0, 0)
    assert result["ended_terminal"] == 3
    assert result["events_delivered"] == 3 * 62
    # Each delivery is either history (emitted before its stream opened) or timed.
    assert result["history_events"] + result["lag_samples"] == 3 * 62
    assert result["lag_ms"]["p50"] <= result["lag_ms"]["p99"]


async def test_bench_prints_and_saves_the_server_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = functools.partial(bench_main._run_server, args=_TINY)
    monkeypatch.setattr(bench_main, "_run_server", tiny)
    out = tmp_path / "results.json"
    assert bench_main.main(["--only", "S1,S2", "--out", str(out), "--plain"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert {"machine", "settings", "targets", "results", "server"} <= set(report)
    assert report["results"] == []
    s1, s2_ = report["server"]["S1"], report["server"]["S2"]
    assert s1["status"] == "ok" and s2_["status"] == "ok"
    assert (s1["accepted"], s1["statuses"], s1["final_status"]) == (5, {"201": 5}, {"succeeded": 5})
    assert s1["submitted_per_s"] > 0 and s1["completed_per_s"] > 0
    assert set(s1["submit_ms"]) == {"p50", "p99", "max"}
    assert s2_["contiguous_subscribers"] == s2_["subscribers"] == 3
    assert s2_["events_per_job"] == 62  # 5 events a tool task (ToolCalled among them), +2
    assert "load_avg_1m_before" in s1
    table = capsys.readouterr().out
    assert "submitted jobs/s" in table and "3 of 3 (gaps 0, duplicates 0" in table


def test_the_table_shows_failures() -> None:
    failed: dict[str, Any] = {
        "bench": "S2",
        "status": "failed",
        "reason": "1 subscribers missed or repeated events",
        "events_per_job": 50,
        "contiguous_subscribers": 2,
        "subscribers": 3,
        "gaps": 1,
        "duplicates": 0,
        "error_count": 0,
        "events_min": 49,
        "events_max": 50,
        "lag_ms": {"p50": 1.0, "p99": 2.0, "max": 3.0},
        "lag_samples": 140,
        "events_delivered": 149,
        "events_delivered_per_s": 1000.0,
        "job_wall_s": 0.1,
        "delivery_wall_s": 0.2,
        "server_cpu_s": 0.1,
        "client_cpu_s": 0.1,
        "server_peak_rss_mib": 80.0,
    }
    error = {"bench": "S1", "status": "error", "reason": "RuntimeError: boom"}
    rows = server_rows([error, failed])
    assert rows[0][2:] == ("error", "RuntimeError: boom")
    assert ("FAILED", "1 subscribers missed or repeated events") in [r[2:] for r in rows]
    assert any("2 of 3 (gaps 1" in r[3] for r in rows)
