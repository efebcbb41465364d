"""The session benchmark runs at a tiny size and re-runs only what a change reaches (no timing
is asserted: the figures are printed by ``python -m bench.sessions``)."""

from __future__ import annotations

from bench.sessions import measure


async def test_the_session_benchmark_reruns_only_what_a_change_reaches() -> None:
    rows = {(row["shape"], row["change"]): row for row in await measure(5)}
    for shape in ("chain", "fanout"):
        assert rows[(shape, "from scratch")]["agents_rerun"] == 5
        assert rows[(shape, "input of the last agent")]["agents_rerun"] == 1
        assert rows[(shape, "pure decide on a settled board")]["us_per_call"] > 0
    # The chain's second agent answers as before: early cutoff stops the cascade there.
    assert rows[("chain", "input of the root")]["agents_rerun"] == 2
    assert rows[("fanout", "input of the root")]["agents_rerun"] == 5
