"""What every command shares: options, settings, consoles, job lookup, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from planweave.errors import JobNotFound, UsageError

if TYPE_CHECKING:  # imported when a command runs, so --help stays fast
    import asyncio

    from planweave.config import Settings
    from planweave.engine import Engine
    from planweave.state import JobState

__all__ = [
    "EXIT_INTERRUPTED",
    "SHORT_ID",
    "BusOpt",
    "ClaimLeaseOpt",
    "ConfigOpt",
    "DataDirOpt",
    "HookOpt",
    "JobArg",
    "JsonOpt",
    "ModelOpt",
    "StoreOpt",
    "ToolsOpt",
    "WorkLeaseOpt",
    "WorkersOpt",
    "err_console",
    "interrupts",
    "out_console",
    "print_json",
    "read_only_engine",
    "resolve_job",
    "run_async",
    "settings_from",
]

T = TypeVar("T")

REFRESH_S = 0.125
"""Redraw interval of the live tree (8 per second)."""

EXIT_INTERRUPTED = 130

SHORT_ID = 12
"""Characters of a job id shown in tables; any unique prefix names a job."""


# --- shared options -------------------------------------------------------------------------

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL: sqlite:///FILE.db or memory://",
        show_default="sqlite:///<data dir>/planweave.db",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", help="Model URL: local:, openai:NAME, scripted:FILE.yaml", show_default="local:"
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory of the default store and job workspaces",
        show_default=".planweave",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file", show_default="./planweave.toml if present"),
]
ClaimLeaseOpt = Annotated[
    float | None,
    typer.Option(
        "--claim-lease-s",
        min=0.001,
        help="Seconds a claim on a job lasts without renewal (then another process may take it)",
        show_default="30",
    ),
]
WorkLeaseOpt = Annotated[
    float | None,
    typer.Option(
        "--work-lease-s",
        min=0.001,
        help="Seconds a worker holds a work item without extending it (then it is handed out "
        "again)",
        show_default="30",
    ),
]
BusOpt = Annotated[
    str | None,
    typer.Option(
        "--bus", help="Bus URL: memory:// or redis://HOST:PORT/DB", show_default="memory://"
    ),
]
WorkersOpt = Annotated[
    bool | None,
    typer.Option(
        "--workers/--no-workers",
        help="Run worker pools in this process (with a shared bus, 'planweave worker' "
        "processes do the work)",
        show_default="yes with memory://, no with redis://",
    ),
]
ToolsOpt = Annotated[
    str | None,
    typer.Option(
        "--tools",
        help="Your tools, comma-separated: package.module (its @tool functions), "
        "package.module:name, or file.py",
        show_default=False,
    ),
]
HookOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--hook",
        metavar="HOOK",
        help="A hook every job runs with (repeatable): logging, metrics, tracing, "
        "redaction, or package.module:name",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a rich view")]
JobArg = Annotated[str, typer.Argument(help="Job id (a unique prefix is enough)")]


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to its end (``asyncio.run``; asyncio is imported here, so
    ``--help`` never loads it)."""
    import asyncio

    return asyncio.run(main)


def settings_from(config: Path | None, **flags: Any) -> Settings:
    from planweave.config import load_settings

    settings = load_settings(flags, config_file=config)
    logging.getLogger("planweave").setLevel(settings.log_level)
    return settings


def out_console() -> Console:
    return Console(highlight=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def read_only_engine(settings: Settings) -> Engine:
    """An engine that reads and controls jobs but runs no workers (and loads no model)."""
    from planweave.cli._checks import check_writable
    from planweave.engine import Engine

    check_writable(settings, workspaces=False)
    return Engine(**{**settings.engine_kwargs(with_tools=False), "run_workers": False})


async def resolve_job(engine: Engine, text: str) -> JobState:
    """The job whose id is ``text`` or starts with it."""
    try:
        return await engine.get(text)
    except JobNotFound:
        matches = await engine.find_prefix(text)
        if len(matches) == 1:
            return await engine.get(matches[0])
        if len(matches) > 1:
            raise UsageError(
                f"job id prefix {text!r} is ambiguous: it matches {', '.join(matches[:5])}"
            ) from None
        raise


@contextlib.contextmanager
def interrupts(forced: asyncio.Event | None = None) -> Iterator[asyncio.Event]:
    """An event set by the first Ctrl-C or SIGTERM.

    Args:
        forced: Set by the second signal, for a command that then stops without waiting (and
            still cleans up); a signal after that, or the second one without ``forced``,
            interrupts at once.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if not stopped.is_set():
            stopped.set()
            return
        if forced is not None and not forced.is_set():
            forced.set()
            return
        for each in installed:
            loop.remove_signal_handler(each)
        signal.raise_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without loop signal handlers
    try:
        yield stopped
    finally:
        for sig in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
