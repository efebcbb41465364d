"""``worker`` (worker pools on a shared bus, no control plane) and ``status`` (queues and workers).

A worker process takes work items off a shared bus (``redis://``), runs them and reports each
outcome to the control plane that dispatched it; it never writes the store. SIGTERM or Ctrl-C
stops it taking work, lets running items finish for ``worker_grace_s`` and gives the rest back,
so another worker runs them at once instead of after their lease; then it exits 0.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planweave.cli._agents import AgentsDirOpt
from planweave.cli._common import (
    BusOpt,
    ConfigOpt,
    DataDirOpt,
    HookOpt,
    JsonOpt,
    ModelOpt,
    StoreOpt,
    ToolsOpt,
    WorkLeaseOpt,
    err_console,
    interrupts,
    out_console,
    print_json,
    run_async,
    settings_from,
)
from planweave.constants import DEFAULT_CONCURRENCY, QUEUE_PREFIX
from planweave.errors import UsageError

if TYPE_CHECKING:
    from planweave.bus.base import QueueStats
    from planweave.config import Settings

__all__ = ["status", "worker"]

KINDS = ", ".join(DEFAULT_CONCURRENCY)

KindsOpt = Annotated[
    str | None,
    typer.Option(
        "--kinds",
        help=f"Comma-separated kinds of work to take ({KINDS})",
        show_default="all of them",
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        min=1,
        max=10_000,
        help="Work items run at once per kind",
        show_default="per kind: " + ", ".join(f"{k} {n}" for k, n in DEFAULT_CONCURRENCY.items()),
    ),
]
GraceOpt = Annotated[
    float | None,
    typer.Option(
        "--grace-s",
        min=0,
        help="Seconds running items may take to finish after SIGTERM (then they are given back)",
        show_default="30",
    ),
]


def _shared_bus(settings: Settings, command: str) -> None:
    from planweave._backends import scheme_of

    if scheme_of("bus", settings.bus) == "memory":
        raise UsageError(
            f"'planweave {command}' needs a shared bus (--bus redis://HOST:6379/0): with "
            "memory:// the work queues live inside one process, and its workers run inside "
            "'planweave serve' or 'planweave run'"
        )


def worker(
    bus: BusOpt = None,
    store: StoreOpt = None,
    kinds: KindsOpt = None,
    concurrency: ConcurrencyOpt = None,
    model: ModelOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    work_lease_s: WorkLeaseOpt = None,
    grace_s: GraceOpt = None,
    tools: ToolsOpt = None,
    agents_dir: AgentsDirOpt = None,
    hook: HookOpt = None,
) -> None:
    """Run worker pools that take work from a shared bus (no control plane, no API).

    Start as many as the load needs, on any machines that reach the bus; the control planes of
    'planweave serve' (or 'planweave run') dispatch the work. The store is not written here.
    """
    settings = settings_from(
        config,
        bus=bus,
        store=store,
        model=model,
        data_dir=data_dir,
        work_lease_s=work_lease_s,
        worker_kinds=kinds,
        worker_concurrency=concurrency,
        worker_grace_s=grace_s,
        tools=tools,
        agents_dir=agents_dir,
        hooks=tuple(hook) if hook else None,
    )
    _shared_bus(settings, "worker")
    run_async(_work(settings))


async def _work(settings: Settings) -> None:
    from planweave._backends import safe_url
    from planweave.engine import Engine

    kinds = settings.worker_kinds or tuple(DEFAULT_CONCURRENCY)
    concurrency = (
        dict.fromkeys(kinds, settings.worker_concurrency)
        if settings.worker_concurrency is not None
        else None
    )
    kwargs: dict[str, Any] = {
        **settings.engine_kwargs(),
        "run_workers": True,
        "run_plane": False,
        "worker_kinds": kinds,
        "concurrency": concurrency,
    }
    engine = Engine(**kwargs)
    err = err_console()
    with interrupts() as stopped:
        await engine.start()
        sizes = ", ".join(f"{kind} x{engine.concurrency[kind]}" for kind in engine.worker_kinds)
        sys.stdout.write(
            f"planweave worker: taking {sizes} from {safe_url(settings.bus)}; "
            "SIGTERM or Ctrl-C stops it\n"
        )
        sys.stdout.flush()
        try:
            await stopped.wait()
        finally:
            err.print(
                f"stopping: letting running work finish (up to {settings.worker_grace_s:g} s)…",
                markup=False,
            )
            await engine.close(grace_s=settings.worker_grace_s)
    err.print("worker stopped", markup=False)


# --- status -------------------------------------------------------------------------------------


def status(
    bus: BusOpt = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the work queues (depth, pending, oldest, dead letters), the workers on them with
    their last heartbeat, and the control planes driving jobs."""
    settings = settings_from(config, bus=bus, store=store, data_dir=data_dir)
    queues, planes = run_async(_status(settings))
    if json_out:
        print_json({"queues": [asdict(q) for q in queues], "control_planes": planes})
        return
    _print_status(queues, planes)


async def _status(settings: Settings) -> tuple[list[QueueStats], list[dict[str, Any]]]:
    from planweave.bus import open_bus
    from planweave.cli._checks import check_writable
    from planweave.store import open_store

    check_writable(settings, workspaces=False)
    _shared_bus(settings, "status")
    bus = open_bus(settings.bus)
    store = open_store(settings.store_url)
    await bus.open()
    try:
        await store.open()
        try:
            names = dict.fromkeys([QUEUE_PREFIX + kind for kind in DEFAULT_CONCURRENCY])
            names.update(dict.fromkeys(await bus.queues()))
            queues = [await bus.stats(name) for name in names]
            planes = await _planes(store)
        finally:
            await store.close()
    finally:
        await bus.close()
    return queues, planes


async def _planes(store: Any) -> list[dict[str, Any]]:
    """The owners of the running jobs, with how many each drives."""
    owners: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        page = await store.list_jobs(status="running", limit=500, offset=offset)
        for job in page:
            owner = job.owner or "(none)"
            entry = owners.setdefault(owner, {"owner": owner, "jobs": 0})
            entry["jobs"] += 1
        if len(page) < 500:
            break
        offset += 500
    return sorted(owners.values(), key=lambda e: e["owner"])


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _print_status(queues: list[QueueStats], planes: list[dict[str, Any]]) -> None:
    from rich.table import Table

    out = out_console()
    table = Table(title="queues", title_justify="left")
    for column in ("queue", "depth", "pending", "oldest", "dead letters", "consumers"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for q in queues:
        table.add_row(
            q.queue,
            str(q.depth),
            str(q.pending),
            _age(q.oldest_age_s),
            str(q.dead_letters),
            str(len(q.consumers)),
        )
    out.print(table)
    workers = Table(title="workers", title_justify="left")
    for column in ("queue", "consumer", "pending", "last seen"):
        workers.add_column(column, justify="right" if column == "pending" else "left")
    for q in queues:
        for consumer in q.consumers:
            seen = "-" if consumer.idle_s is None else _age(consumer.idle_s) + " ago"
            workers.add_row(q.queue, consumer.name, str(consumer.pending), seen)
    if workers.row_count:
        out.print(workers)
    else:
        out.print("workers: none connected")
    if planes:
        table = Table(title="control planes (owners of running jobs)", title_justify="left")
        for column in ("owner", "running jobs"):
            table.add_column(column)
        for plane in planes:
            table.add_row(plane["owner"], str(plane["jobs"]))
        out.print(table)
    else:
        out.print("control planes: no running jobs")
