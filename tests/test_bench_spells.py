"""The spells benchmark runs at a tiny size in each language and isolation (no timing is
asserted: the figures are printed by ``python -m bench.spells``)."""

from __future__ import annotations

from bench.spells import measure, render


def test_the_spells_benchmark_reports_every_language_and_isolation() -> None:
    report = measure(length=3, runs=1, warmup=0)
    cases = [row["case"] for row in report["rows"]]
    assert cases == [
        "W2 as a Python plan (engine)",
        "W2 as a lua spell loop (inprocess)",
        "W2 as a lua spell loop (subprocess)",
        "W2 as a js spell loop (inprocess)",
        "W2 as a js spell loop (subprocess)",
    ]
    for row in report["rows"][1:]:
        assert row["us_per_call"] > 0 and row["startup_ms"] > 0 and row["ratio_to_python_w2"] > 0
    assert "x Python W2" in render(report)
