"""Engine-overhead benchmarks: planweave against LangGraph and LlamaIndex Workflows.

Four workloads, as in ``shared/research/peer-overhead.md``:

- **W1** wide DAG, 1 → 500 → 1 (µs per task = wall / 502)
- **W2** chain of 200 (µs per task = wall / 200), in memory
- **W3** 200 concurrent runs x 5 steps x 20 ms sleep (wall ms; ideal 100 ms)
- **W4** durable chain of 200 on SQLite (µs per task)

Beside the engines, the floors (``bench/floor_w.py``) run the same shapes with no engine: bare
asyncio tasks for W1-W3 and raw ``sqlite3`` commits for W4. planweave's targets are ratios to
them (and to W3's ideal) and to LangGraph, all from one run, so they hold on any machine.

Every (engine, workload) pair runs in its own process (``python -m bench.run_one``) so imports,
caches and peak RSS do not leak between them: one warm-up run, then ``--runs`` timed runs, median
reported. Graphs and plans are built untimed; only the run itself is inside the timer.

After them come the API server benchmarks (S1, S2) and the scaled section (``bench/scaled.py``:
PostgreSQL + Redis with 1, 2 and 4 worker processes beside the embedded default and arq, on
throwaway servers from ``bench/_servers.py``).

Run ``python -m bench`` (``--help`` for the options); results go to ``bench/results.json``.
"""
