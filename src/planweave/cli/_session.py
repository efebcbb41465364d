"""``planweave session new|add|remove|show``: reactive sessions from the terminal.

``new``, ``add`` and ``remove`` drive the session in this process until its board settles, then
print the board and exit; the session stays in the store, and the next command carries on from
it. ``show`` only reads the store. Only ``typer`` is imported at module level.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planweave.cli._common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    StoreOpt,
    out_console,
    print_json,
    run_async,
    settings_from,
)
from planweave.errors import SessionNotFound, UsageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from planweave.engine import Engine
    from planweave.sessions import Session

__all__ = ["session_app"]

session_app = typer.Typer(
    name="session",
    help="Reactive sessions: a board of inputs that agents react to.",
    no_args_is_help=True,
)

SessionArg = Annotated[str, typer.Argument(help="Session id (a unique prefix is enough)")]
TagOpt = Annotated[
    list[str] | None,
    typer.Option("--tag", help="A routing tag of the input (repeatable)", show_default=False),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout-s", min=0.1, help="Seconds to wait for the board to settle"),
]


@session_app.command("new")
def new(
    spec: Annotated[Path, typer.Argument(help="The session file (YAML)")],
    input_text: Annotated[
        list[str] | None,
        typer.Option("--input", help="A first input (repeatable)", show_default=False),
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    timeout_s: TimeoutOpt = 300.0,
) -> None:
    """Start a session from SPEC, wait for its board to settle, and print it."""
    from planweave.sessions import SessionSpec

    checked = SessionSpec.from_file(spec)  # a bad file: one line, exit 2, nothing stored

    async def go(engine: Engine) -> Session:
        return await engine.sessions.create(checked, inputs=input_text or ())

    _drive(go, model, store, data_dir, config, json_out, timeout_s)


ExpectedVersionOpt = Annotated[
    int | None,
    typer.Option("--expected-version", help="Refuse the change if the inputs changed since"),
]


@session_app.command("add")
def add(
    session: SessionArg,
    text: Annotated[str, typer.Argument(help="The input's text")],
    tag: TagOpt = None,
    expected_version: ExpectedVersionOpt = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    timeout_s: TimeoutOpt = 300.0,
) -> None:
    """Add an input to SESSION, wait for the board to settle, and print it."""

    async def go(engine: Engine) -> Session:
        s = await engine.sessions.open(await _resolve(engine, session))
        await s.add_input(text, tags=tag or (), expected_version=expected_version)
        return s

    _drive(go, model, store, data_dir, config, json_out, timeout_s)


@session_app.command("remove")
def remove(
    session: SessionArg,
    input_id: Annotated[str, typer.Argument(help="The input's id (see 'session show')")],
    expected_version: ExpectedVersionOpt = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    timeout_s: TimeoutOpt = 300.0,
) -> None:
    """Remove an input from SESSION (what depended on it re-runs or drops) and print the
    settled board."""

    async def go(engine: Engine) -> Session:
        s = await engine.sessions.open(await _resolve(engine, session))
        await s.remove_input(_input_id(s, input_id), expected_version=expected_version)
        return s

    _drive(go, model, store, data_dir, config, json_out, timeout_s)


@session_app.command("show")
def show(
    session: SessionArg,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a session's board as stored (drives nothing)."""
    from planweave.cli._common import read_only_engine
    from planweave.sessions import SessionSpec
    from planweave.sessions._session import board_of

    settings = settings_from(config, store=store, data_dir=data_dir)

    async def go() -> dict[str, Any]:
        async with read_only_engine(settings) as engine:
            state = await engine.sessions.load(await _resolve(engine, session))
            return board_of(SessionSpec.from_data(state.spec), state)

    _print(run_async(go()), json_out)


@session_app.command("watch")
def watch(
    session: SessionArg,
    after: Annotated[int, typer.Option("--after", help="Start after this event seq")] = 0,
    until_settled: Annotated[
        bool, typer.Option("--until-settled", help="Stop once the board is settled")
    ] = False,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print SESSION's changes as they happen, whichever process drives it (Ctrl-C stops)."""
    from planweave.cli._common import interrupts, read_only_engine

    settings = settings_from(config, store=store, data_dir=data_dir)
    console = out_console()

    async def show_events(engine: Engine, sid: str) -> None:
        stream = engine.sessions.follow(sid, after_seq=after, until_settled=until_settled)
        async for event in stream:
            if json_out:
                print_json(event.model_dump(mode="json"))
            else:
                console.print(_event_line(event.model_dump(mode="json")))

    async def go() -> None:
        import asyncio

        async with read_only_engine(settings) as engine:
            sid = await _resolve(engine, session)
            with interrupts() as stopped:
                printing = asyncio.create_task(show_events(engine, sid))
                stopping = asyncio.create_task(stopped.wait())
                await asyncio.wait({printing, stopping}, return_when=asyncio.FIRST_COMPLETED)
                for task in (printing, stopping):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await printing  # a failure of the stream is raised here
                stopping.cancel()

    run_async(go())


def _event_line(event: dict[str, Any]) -> str:
    detail = ""
    if "agent" in event:
        detail = f" {event['agent']}"
        if event.get("unchanged"):
            detail += " (unchanged)"
        if event.get("error"):
            detail += f": {_short(event['error'])}"
    elif "text" in event:
        detail = f" {event['input_id'][:12]} {_short(event['text'], 60)}"
    elif "input_id" in event:
        detail = f" {event['input_id'][:12]}"
    elif event["type"] == "aggregate.updated":
        detail = f" completion {event['value'].get('completion_percent')}%"
    return f"{event['seq']:>5} {event['type']}{detail}"


def _drive(
    start: Callable[[Engine], Awaitable[Session]],
    model: str | None,
    store: str | None,
    data_dir: Path | None,
    config: Path | None,
    json_out: bool,
    timeout_s: float,
) -> None:
    from planweave.cli._checks import check_writable
    from planweave.engine import Engine

    settings = settings_from(config, model=model, store=store, data_dir=data_dir)
    check_writable(settings, workspaces=True)

    async def go() -> dict[str, Any]:
        async with Engine(**settings.engine_kwargs()) as engine:
            s = await start(engine)
            try:
                return await s.wait_settled(timeout_s=timeout_s)
            except TimeoutError:
                raise UsageError(
                    f"session {s.id} did not settle within {timeout_s:g} s; "
                    f"see it with 'planweave session show {s.id}'"
                ) from None

    _print(run_async(go()), json_out)


async def _resolve(engine: Engine, text: str) -> str:
    rows = await engine.sessions.list(limit=1000)
    ids = [row.session_id for row in rows]
    if text in ids:
        return text
    matches = [each for each in ids if each.startswith(text)]
    if len(matches) > 1:
        raise UsageError(f"session id prefix {text!r} is ambiguous: {', '.join(matches[:5])}")
    if not matches:
        raise SessionNotFound(text)
    return matches[0]


def _input_id(session: Session, text: str) -> str:
    ids = [node.input_id for node in session.state.current_inputs()]
    matches = [each for each in ids if each.startswith(text)]
    return matches[0] if len(matches) == 1 else text


def _print(board: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(board)
        return
    from rich.table import Table

    console = out_console()
    settled = "settled" if board["settled"] else "not settled"
    console.print(f"session {board['session_id']} ({board['name']}) version {board['version']}, "
                  f"{settled}")  # fmt: skip
    inputs = Table("input", "text", "routes", title="inputs", title_justify="left")
    for item in board["inputs"]:
        inputs.add_row(item["input_id"][:12], item["text"], ", ".join(item["routes"]))
    console.print(inputs)
    agents = Table("agent", "status", "version", "runs", "result", title="agents",
                   title_justify="left")  # fmt: skip
    for name, agent in board["agents"].items():
        status = agent["status"] + (" (stale)" if agent["stale"] else "")
        result = "" if agent["value"] is None else _short(agent["value"])
        agents.add_row(name, status, str(agent["version"]), str(agent["runs"]), result)
    console.print(agents)
    aggregate = board["aggregate"]["value"]
    if aggregate is not None:
        console.print(f"completion {aggregate['completion_percent']}%")
        for step in aggregate.get("next_steps", []):
            console.print(f"  next: {_short(step)}")


def _short(value: Any, limit: int = 80) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
