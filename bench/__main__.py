"""``python -m bench``: run every (engine, workload) pair in its own process, the floors (the
same workloads with no engine) among them, then the server benchmarks (S1, S2) each in its own
process, then the scaled section (PostgreSQL + Redis with worker processes, on throwaway servers
this process starts and always stops); print the tables with planweave's ratios to the floors
and the peers, save JSON."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import _servers
from bench.report import compare, ratios, render
from bench.scaled_report import render_scaled, scaled_summary
from bench.server_report import render_server
from bench.server_w import SERVER_BENCHES
from bench.workloads import ENGINES, FLOOR, PEER_TARGETS, SPECS

_ROOT = Path(__file__).resolve().parent.parent
SCALED = "scaled"
HOOKS = "hooks"  # W2 with no hooks, logging + metrics, tracing (bench/hooks_w.py)
JOURNAL = "journal"  # the step journal's cost per recorded step (bench/journal_step.py)
POLICY = "policy"  # W2 with the policy gate and the budget checks (bench/policy_w.py)
SESSIONS = "sessions"  # reactive sessions' re-computation cost (bench/sessions.py)
SPELLS = "spells"  # host calls, start-up and W2 as a Lua / JavaScript spell (bench/spells.py)
_STOP_GRACE_S = 10.0
_PACKAGES = (
    "planweave",
    "pydantic",
    "aiosqlite",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langchain-core",
    "llama-index-workflows",
)


def _names(text: str, known: list[str], what: str) -> list[str]:
    lookup = {name.lower(): name for name in known}
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return [lookup[n.lower()] for n in names]


def _load_1m() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_1m": _load_1m(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "asyncio_loop": "default",
        "packages": versions,
    }


def _run_pair(
    engine: str, workload: str, *, runs: int, warmup: int, timeout_s: float
) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.run_one", engine, workload]
    command += ["--runs", str(runs), "--warmup", str(warmup)]
    try:
        done = subprocess.run(
            command, cwd=_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        reason = f"took longer than {timeout_s:g} s"
        return {"engine": engine, "workload": workload, "status": "error", "reason": reason}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        reason = f"exit {done.returncode}: {tail}"
        return {"engine": engine, "workload": workload, "status": "error", "reason": reason}
    if result["status"] == "error" and done.stderr:
        print(done.stderr, file=sys.stderr)
    return result


def _run_server(name: str, *, timeout_s: float, args: Sequence[str] = ()) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.server_w", name, *args]
    try:
        done = subprocess.run(
            command, cwd=_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return {"bench": name, "status": "error", "reason": f"took longer than {timeout_s:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"bench": name, "status": "error", "reason": f"exit {done.returncode}: {tail}"}
    if result["status"] != "ok" and done.stderr:
        print(done.stderr, file=sys.stderr)
    return result


def _group_gone(pgid: int, timeout_s: float) -> bool:
    """Wait until no process is left in group ``pgid``; whether none is."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """End the child and every process it started (workers, arq workers): they share its
    process group. SIGTERM first, which lets a worker finish in its grace; then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_STOP_GRACE_S)  # reaped, so the group's leader no longer counts
    if not _group_gone(proc.pid, _STOP_GRACE_S):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _group_gone(proc.pid, _STOP_GRACE_S)
    if proc.stdout is not None:
        proc.stdout.close()


def _run_scaled(*, timeout_s: float, args: Sequence[str] = ()) -> dict[str, Any]:
    """The scaled section in a child process, on a ``redis-server`` and a PostgreSQL cluster
    started here for it and stopped whatever happens (timeout, failure, Ctrl-C)."""
    missing = _servers.missing_servers()
    if missing:
        reason = "; ".join(missing)
        print(f"skipping the scaled section: {reason}", file=sys.stderr, flush=True)
        return {"status": "skipped", "reason": reason}
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pw-bench-")))
        redis = stack.enter_context(_servers.redis_server())
        pg = stack.enter_context(_servers.postgres_server(durability="default"))
        command = [sys.executable, "-m", "bench.scaled", "--postgres", pg.admin_dsn]
        command += ["--redis", redis.url(), "--data-dir", str(scratch), "--json", *args]
        # Its own session: Ctrl-C reaches this process only, which then stops the whole group.
        proc = subprocess.Popen(
            command, cwd=_ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        stack.callback(_stop_group, proc)
        try:
            stdout, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"status": "error", "reason": f"took longer than {timeout_s:g} s"}
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        try:
            results: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            return {"status": "error", "reason": f"exit {proc.returncode}: no results"}
    return {"status": "ok", **results, "summary": scaled_summary(results)}


def _run_child(module: str, args: list[str], *, timeout_s: float) -> dict[str, Any]:
    """A section run by ``python -m MODULE --json`` in a child process (a fresh interpreter,
    as each workload gets); its report is the last JSON line it prints, rendered by the
    module's ``render``."""
    command = [sys.executable, "-m", module, "--json", *args]
    try:
        done = subprocess.run(
            command, cwd=_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"took longer than {timeout_s:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"status": "error", "reason": f"exit {done.returncode}: {done.stderr[-500:]}"}
    report: dict[str, Any] = json.loads(lines[-1])
    print(importlib.import_module(module).render(report))
    return {"status": "ok", **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Engine overhead: planweave against LangGraph and LlamaIndex Workflows; "
        "then the API server: jobs/s (S1) and SSE fan-out (S2).",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per pair (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument(
        "--only",
        default=",".join(
            [*SPECS, *SERVER_BENCHES, SCALED, HOOKS, JOURNAL, POLICY, SESSIONS, SPELLS]
        ),
        help=f"e.g. W1,W2 or S1,S2 or {SCALED}, {HOOKS}, {JOURNAL}, {POLICY}, {SESSIONS} or "
        f"{SPELLS} (that section alone); default: everything",
    )
    parser.add_argument(
        "--session-agents",
        type=int,
        default=50,
        help="agents in each session of the sessions section (default 50)",
    )
    parser.add_argument(
        "--no-scaled",
        action="store_true",
        help="leave out the scaled section (PostgreSQL + Redis with worker processes)",
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="e.g. planweave,langgraph (the floors always run: the targets are ratios to them)",
    )
    parser.add_argument("--out", type=Path, default=_ROOT / "bench" / "results.json")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per pair (default 900)")
    parser.add_argument(
        "--scaled-timeout-s",
        type=float,
        default=1800.0,
        help="for the whole scaled section (default 1800)",
    )
    parser.add_argument("--plain", action="store_true", help="plain-text table, no rich")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    chosen = _names(
        args.only,
        [*SPECS, *SERVER_BENCHES, SCALED, HOOKS, JOURNAL, POLICY, SESSIONS, SPELLS],
        "workload",
    )
    workloads = [name for name in chosen if name in SPECS]
    servers = [name for name in chosen if name in SERVER_BENCHES]
    engines = _names(args.engines, list(ENGINES), "engine")
    if FLOOR not in engines:
        engines.insert(0, FLOOR)

    machine = _machine()
    results: list[dict[str, Any]] = []
    for workload in workloads:
        for engine in engines:
            print(f"running {workload} on {ENGINES[engine][1]} …", file=sys.stderr, flush=True)
            load = _load_1m()
            result = _run_pair(
                engine, workload, runs=args.runs, warmup=args.warmup, timeout_s=args.timeout_s
            )
            results.append({**result, "load_avg_1m_before": load})
    if results:
        render(results, plain=args.plain)
    loads = [r["load_avg_1m_before"] for r in results if r["load_avg_1m_before"] is not None]
    cpus = machine["cpus_usable"] or machine["cpu_count"] or 1
    # The bench's own child keeps about one CPU busy; more than half the rest busy is contention.
    if loads and max(loads) - 1 > cpus / 2:
        print(
            f"note: load average up to {max(loads):.1f} on {cpus} CPUs while measuring; other "
            "processes took CPU, so wall times may be inflated; compare the CPU column",
            file=sys.stderr,
        )

    server: dict[str, Any] = {}
    for name in servers:
        print(f"running {name} (API server) …", file=sys.stderr, flush=True)
        load = _load_1m()
        server[name] = {**_run_server(name, timeout_s=args.timeout_s), "load_avg_1m_before": load}
        server[name]["load_avg_1m_after"] = _load_1m()
    if server:
        render_server(list(server.values()), plain=args.plain)
        load_text = ", ".join(
            f"{name} {r['load_avg_1m_before']} before, {r['load_avg_1m_after']} after"
            for name, r in server.items()
        )
        print(f"load average (1 min) on {cpus} CPUs: {load_text}", file=sys.stderr)

    scaled: dict[str, Any] = {}
    if SCALED in chosen and not args.no_scaled:
        print("running the scaled section (PostgreSQL + Redis, 1-4 workers) …", file=sys.stderr)
        load = _load_1m()
        scaled = _run_scaled(timeout_s=args.scaled_timeout_s)
        scaled["load_avg_1m_before"], scaled["load_avg_1m_after"] = load, _load_1m()
        scaled["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if scaled["status"] == "ok":
            render_scaled(scaled, plain=args.plain)
            print(
                f"load average (1 min) on {cpus} CPUs: {load} before the scaled section, "
                f"{scaled['load_avg_1m_after']} after",
                file=sys.stderr,
            )
        elif scaled["status"] == "error":
            print(f"the scaled section failed: {scaled['reason']}", file=sys.stderr)

    hooks: dict[str, Any] = {}
    if HOOKS in chosen:
        print("running W2 with hooks (none, logging + metrics, tracing) …", file=sys.stderr)
        hooks = _run_child(
            "bench.hooks_w",
            ["--runs", str(args.runs), "--warmup", str(args.warmup)],
            timeout_s=args.timeout_s,
        )
    journal: dict[str, Any] = {}
    if JOURNAL in chosen:
        print("running the step journal on SQLite (on and off) …", file=sys.stderr)
        journal = _run_child(
            "bench.journal_step", ["--runs", str(args.runs)], timeout_s=args.timeout_s
        )
    policy: dict[str, Any] = {}
    if POLICY in chosen:
        print("running W2 with the policy gate and budgets (off and on) …", file=sys.stderr)
        policy = _run_child(
            "bench.policy_w",
            ["--runs", str(args.runs), "--warmup", str(args.warmup)],
            timeout_s=args.timeout_s,
        )
    sessions: dict[str, Any] = {}
    if SESSIONS in chosen:
        print("running the sessions section (chain and fan-out re-runs) …", file=sys.stderr)
        sessions = _run_child(
            "bench.sessions", ["--agents", str(args.session_agents)], timeout_s=args.timeout_s
        )
    spells: dict[str, Any] = {}
    if SPELLS in chosen:
        print("running W2 as Lua and JavaScript spells (in-process, subprocess) …", file=sys.stderr)
        spells = _run_child(
            "bench.spells",
            ["--runs", str(args.runs), "--warmup", str(args.warmup)],
            timeout_s=args.timeout_s,
        )

    report = {
        "machine": machine,
        "settings": {"runs": args.runs, "warmup": args.warmup, "statistic": "median"},
        "targets": {
            name: {
                "planweave": spec.target_text(),
                **{
                    peer: f"≥ {want:g}\N{MULTIPLICATION SIGN} slower than planweave"
                    for peer, want in PEER_TARGETS.items()
                },
            }
            for name, spec in SPECS.items()
        },
        "results": compare(results),
        "ratios": ratios(results),
        "server": server,
        "scaled": scaled,
        "hooks": hooks,
        "journal": journal,
        "policy": policy,
        "sessions": sessions,
        "spells": spells,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    failed = any(r["status"] == "error" for r in results) or scaled.get("status") == "error"
    statuses = (hooks.get("status"), journal.get("status"), policy.get("status"))
    failed = failed or "error" in (*statuses, sessions.get("status"), spells.get("status"))
    return 1 if failed or any(r["status"] != "ok" for r in server.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
