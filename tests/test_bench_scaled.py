"""The scaled section runs at a tiny size and reports what it measured.

No timing is asserted (timing belongs in ``bench/``): these check that every task submitted is
counted as run, that the latencies and ratios are sane, that the figures land in the table and
under ``"scaled"`` in the results file, and that ``python -m bench`` stops the servers it started
even when the section fails, and skips it with one line when a server is not installed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench import __main__ as bench_main
from bench import _servers
from bench.scaled import ScaledSize, run_scaled
from bench.scaled_report import SCALED_HEADERS, scaled_rows, scaled_summary
from tests.postgres_server import PgServer
from tests.redis_server import RedisServer

_TINY = ScaledSize(
    jobs=2,
    tasks_per_job=5,
    worker_counts=(1,),
    steady_fraction=0.2,
    steady_s=0.5,
    steady_tasks_per_job=5,
)
_TINY_ARGS = ["--jobs", "2", "--tasks-per-job", "5", "--workers", "1"]
_TINY_ARGS += ["--steady-s", "0.5", "--steady-tasks-per-job", "5"]


def _check_phase(figures: dict[str, Any], jobs: int | None, tasks_per_job: int) -> None:
    assert figures["failed_jobs"] == 0, figures["first_error"]
    if jobs is not None:
        assert figures["jobs"] == jobs
    assert figures["tasks_submitted"] == figures["jobs"] * tasks_per_job
    assert figures["tasks_completed"] == figures["tasks_submitted"]
    assert figures["latency_samples"] == figures["tasks_submitted"]
    assert 0 <= figures["p50_ms"] <= figures["p99_ms"]
    assert figures["tasks_per_s"] > 0


def _check_results(results: dict[str, Any]) -> None:
    embedded, (cluster,), (peer,) = results["embedded"], results["cluster"], results["arq"]
    for run in (embedded, cluster):
        _check_phase(run["burst"], 2, 5)
        _check_phase(run["steady"], None, 5)
        assert run["steady"]["jobs"] >= 2
        # The steady load is offered below what the burst reached.
        assert run["steady"]["offered_tasks_per_s"] <= run["burst"]["tasks_per_s"]
    assert cluster["workers"] == 1
    for phase in ("burst", "steady"):
        # The store's own transactions: at least one commit a job, at most a few a task.
        per_task = cluster[phase]["pg_transactions_per_task"]
        assert 1 / 5 <= per_task < 10
    assert (peer["workers"], peer["tasks"]) == (1, 10) and peer["tasks_per_s"] > 0

    summary = scaled_summary(results)
    assert [(e["run"], e["workers"]) for e in summary] == [
        ("embedded", None),
        ("cluster", 1),
        ("arq", 1),
    ]
    assert summary[0]["vs_embedded"] == 1.0
    assert summary[1]["vs_arq"] == pytest.approx(
        cluster["burst"]["tasks_per_s"] / peer["tasks_per_s"], rel=1e-2
    )
    for entry in summary[:2]:
        assert 0 <= entry["burst_p50_ms"] <= entry["burst_p99_ms"]
        assert 0 <= entry["steady_p50_ms"] <= entry["steady_p99_ms"]
    rows = scaled_rows(results)
    assert all(len(row) == len(SCALED_HEADERS) for row in rows)
    assert rows[1][0] == "PostgreSQL + Redis" and rows[2][0] == "arq (same Redis)"


async def test_the_scaled_section_runs_every_task_it_submits(
    pg_server: PgServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    results = await run_scaled(pg_server.admin_dsn, redis_server.url(), tmp_path, _TINY)
    _check_results(results)


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The servers ``python -m bench`` starts, as it started them."""
    servers: list[Any] = []

    def recording(launcher: Any) -> Any:
        @contextlib.contextmanager
        def launch(**kwargs: Any) -> Iterator[Any]:
            with launcher(**kwargs) as server:
                servers.append(server)
                yield server

        return launch

    monkeypatch.setattr(_servers, "redis_server", recording(_servers.redis_server))
    monkeypatch.setattr(_servers, "postgres_server", recording(_servers.postgres_server))
    return servers


def _gone(servers: list[Any]) -> None:
    redis, pg = servers
    assert isinstance(redis, _servers.RedisServer) and isinstance(pg, _servers.PgServer)
    assert not _answers(redis.port) and not redis.folder.exists()
    assert not _answers(pg.port) and not pg.root.exists()


def test_bench_runs_the_scaled_section_on_servers_it_starts_and_stops(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    launched: list[Any],
) -> None:
    if _servers.missing_servers():
        pytest.skip("; ".join(_servers.missing_servers()))
    tiny = functools.partial(bench_main._run_scaled, args=_TINY_ARGS)
    monkeypatch.setattr(bench_main, "_run_scaled", tiny)
    out = tmp_path / "results.json"
    assert bench_main.main(["--only", "scaled", "--out", str(out), "--plain"]) == 0
    _gone(launched)
    assert launched[1].durability == "default"  # a benchmark keeps PostgreSQL's fsync
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["results"] == [] and report["server"] == {}
    scaled = report["scaled"]
    assert scaled["status"] == "ok"
    _check_results(scaled)
    assert [e["run"] for e in scaled["summary"]] == ["embedded", "cluster", "arq"]
    assert "load_avg_1m_before" in scaled
    table = capsys.readouterr().out
    assert "÷ arq, same workers" in table and "PostgreSQL + Redis" in table


def _group(pgid: int) -> list[int]:
    """The processes in process group ``pgid`` now."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                found.append(int(stat.parent.name))
    return found


class _Interrupted(subprocess.Popen[str]):
    """The child as started, with Ctrl-C pressed while the bench waits for it, once its worker
    processes run (``seen`` holds how many processes its group had then)."""

    seen = 0

    def communicate(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        if "bench.scaled" not in self.args:  # the servers' own commands (initdb, pg_ctl)
            return super().communicate(*args, **kwargs)
        deadline = time.monotonic() + 60.0
        while len(_group(self.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        type(self).seen = len(_group(self.pid))
        raise KeyboardInterrupt


@pytest.mark.parametrize("failure", ["timeout", "interrupt"])
def test_bench_stops_everything_it_started_when_the_scaled_section_fails(
    failure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launched: list[Any]
) -> None:
    if _servers.missing_servers():
        pytest.skip("; ".join(_servers.missing_servers()))
    children: list[subprocess.Popen[str]] = []
    stop_group = bench_main._stop_group

    def recording(proc: subprocess.Popen[str]) -> None:
        children.append(proc)
        stop_group(proc)

    monkeypatch.setattr(bench_main, "_stop_group", recording)
    out = tmp_path / "results.json"
    args = ["--only", "scaled", "--scaled-timeout-s", "2", "--out", str(out), "--plain"]
    if failure == "interrupt":
        tiny = functools.partial(bench_main._run_scaled, args=_TINY_ARGS)
        monkeypatch.setattr(bench_main, "_run_scaled", tiny)
        monkeypatch.setattr(subprocess, "Popen", _Interrupted)
        with pytest.raises(KeyboardInterrupt):
            bench_main.main(["--only", "scaled", "--out", str(out), "--plain"])
        assert _Interrupted.seen >= 2  # the child and its worker process at least
    else:
        # Past its time limit: the child and what it started are ended, then the servers.
        assert bench_main.main(args) == 1
        scaled = json.loads(out.read_text(encoding="utf-8"))["scaled"]
        assert scaled["status"] == "error" and "longer than 2 s" in scaled["reason"]
    _gone(launched)
    (child,) = children
    assert child.returncode is not None
    assert _group(child.pid) == []  # nothing is left of the child's process group


def test_bench_skips_the_scaled_section_without_its_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    why = "redis-server is not installed (apt-get install redis-server)"
    monkeypatch.setattr(_servers, "missing_servers", lambda: [why])
    out = tmp_path / "results.json"
    assert bench_main.main(["--only", "scaled", "--out", str(out), "--plain"]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["scaled"]["status"] == "skipped"
    said = capsys.readouterr().err.splitlines()
    assert [x for x in said if not x.startswith(("running", "wrote"))] == [
        f"skipping the scaled section: {why}"
    ]
    assert bench_main.main(["--only", "scaled", "--no-scaled", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["scaled"] == {}


def test_an_empty_latency_list_has_no_percentile() -> None:
    from bench._load import percentile

    assert math.isnan(percentile([], 0.5))
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.99) == 4.0


def test_stopping_workers_kills_and_reaps_one_that_ignores_sigterm() -> None:
    from bench._procs import stop_all

    ignoring = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    ignoring += "; print(1, flush=True); time.sleep(60)"
    procs = [
        subprocess.Popen(["python3", "-c", ignoring], stdout=subprocess.PIPE),
        subprocess.Popen(["python3", "-c", "import time; time.sleep(60)"]),
    ]
    assert procs[0].stdout is not None and procs[0].stdout.readline().strip() == b"1"
    procs[0].stdout.close()
    stop_all(procs, timeout_s=0.2)
    assert [proc.returncode for proc in procs] == [-9, -15]
