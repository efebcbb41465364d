"""What every command shares: options, settings, consoles, job lookup, Ctrl-C handling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from planweave.config import Settings, load_settings
from planweave.engine import Engine
from planweave.errors import JobNotFound, UsageError
from planweave.state import JobState

__all__ = [
    "EXIT_INTERRUPTED",
    "SHORT_ID",
    "ConfigOpt",
    "DataDirOpt",
    "JobArg",
    "JsonOpt",
    "ModelOpt",
    "StoreOpt",
    "err_console",
    "interrupts",
    "out_console",
    "print_json",
    "read_only_engine",
    "resolve_job",
    "settings_from",
]

REFRESH_S = 0.125
"""Redraw interval of the live tree (8 per second)."""

EXIT_INTERRUPTED = 130

SHORT_ID = 12
"""Characters of a job id shown in tables; any unique prefix names a job."""


# --- shared options -------------------------------------------------------------------------

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store", help="Store URL [default: sqlite file in the data dir]", show_default=False
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", help="Model URL: local:, openai:NAME, scripted:FILE.yaml", show_default=False
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Directory of the default store and job workspaces", show_default=False
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Settings file [default: ./planweave.toml if present]", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a rich view")]
JobArg = Annotated[str, typer.Argument(help="Job id (a unique prefix is enough)")]


def settings_from(config: Path | None, **flags: Any) -> Settings:
    settings = load_settings(flags, config_file=config)
    logging.getLogger("planweave").setLevel(settings.log_level)
    return settings


def out_console() -> Console:
    return Console(highlight=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def read_only_engine(settings: Settings) -> Engine:
    """An engine that reads and controls jobs but runs no workers (and loads no model)."""
    return Engine(**settings.engine_kwargs(), run_workers=False)


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
def interrupts() -> Iterator[asyncio.Event]:
    """An event set by the first Ctrl-C or SIGTERM; a second one interrupts at once."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if stopped.is_set():
            for each in installed:
                loop.remove_signal_handler(each)
            signal.raise_signal(sig)
            return
        stopped.set()

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
    sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
