"""``planweave spell new|list|run|test``: spell packages from the terminal.

Spells are found in ``./spells`` and the folders of the setting ``spell_paths``. ``run`` runs a
spell with the engine's model and built-in tools (so workspace confinement and the network
guard apply to its tool calls); ``test`` runs each spell's ``tests/*.lua|js`` on the scripted
model. Only ``typer`` is imported at module level.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planweave.cli._common import (
    ConfigOpt,
    JsonOpt,
    ModelOpt,
    print_json,
    run_async,
    settings_from,
)
from planweave.errors import UsageError

if TYPE_CHECKING:
    from planweave.agents import AgentContext
    from planweave.llm import Model
    from planweave.spells._package import SpellPackage

__all__ = ["spell_app"]

spell_app = typer.Typer(
    name="spell",
    help="Spells: Lua and JavaScript scripts that drive models, tools and agents.",
    no_args_is_help=True,
)

_LUA_TEST_PRELUDE = (
    "local function expect(got, want, what) if got ~= want then error((what or 'expected') "
    "..  ': wanted ' .. tostring(want) .. ', got ' .. tostring(got), 2) end end "
)
_JS_TEST_PRELUDE = (
    "function expect(got, want, what) { if (JSON.stringify(got) !== JSON.stringify(want)) "
    "throw new Error((what || 'expected') + ': wanted ' + JSON.stringify(want) + ', got ' "
    "+ JSON.stringify(got)); } function assert(ok, what) { if (!ok) "
    "throw new Error(what || 'assertion failed'); } "
)


def _folders(config: Path | None) -> list[Path]:
    return settings_from(config).spell_folders()


def _template(file: str, **fields: str) -> str:
    text = (resources.files("planweave.spells") / "templates" / file).read_text("utf-8")
    for key, value in fields.items():
        text = text.replace("{" + key + "}", value)
    return text


@spell_app.command("new")
def new_spell(
    name: Annotated[str, typer.Argument(help="The spell's name (letters, digits, _ and -)")],
    lang: Annotated[str, typer.Option("--lang", help="lua or js")] = "lua",
    dir: Annotated[Path, typer.Option("--dir", help="Folder to create it in")] = Path("spells"),
) -> None:
    """Create a spell package from a template: spell.toml, main.lua|js and a test."""
    import re

    if lang not in ("lua", "js"):
        raise UsageError(f"--lang: expected lua or js, got {lang!r}")
    if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", name):
        raise UsageError(
            f"spell name {name!r}: letters, digits, '_' and '-', starting with a letter"
        )
    folder = dir / name
    if folder.exists():
        raise UsageError(f"{folder}: already exists")
    (folder / "tests").mkdir(parents=True)
    (folder / "spell.toml").write_text(_template("spell.toml.tmpl", name=name, lang=lang))
    (folder / f"main.{lang}").write_text(_template(f"main.{lang}.tmpl", name=name))
    (folder / "tests" / f"test_{name}.{lang}").write_text(_template(f"test.{lang}.tmpl"))
    (folder / "tests" / "replies.yaml").write_text(_template("replies.yaml.tmpl"))
    typer.echo(f"created {folder} (spell.toml, main.{lang}, tests/test_{name}.{lang})")


@spell_app.command("list")
def list_spells(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The spells in ./spells and the configured spell_paths."""
    from planweave.spells._package import discover_spells

    spells = discover_spells(_folders(config))
    if as_json:
        print_json([pkg.summary() for pkg in spells.values()])
        return
    if not spells:
        typer.echo("no spells (looked in ./spells and spell_paths)")
    for pkg in spells.values():
        params = ", ".join(
            f"{k}:{v.type}" + ("*" if v.required and v.default is None else "")
            for k, v in pkg.parameters.items()
        )
        typer.echo(
            f"{pkg.name} {pkg.version} [{pkg.language}] ({params or 'no parameters'})"
            f" {pkg.description}"
        )


def _context(model: Model, workspace: Path, name: str) -> AgentContext:
    from planweave.agents import AgentContext
    from planweave.tools import ToolContext, ToolRegistry
    from planweave.tools.builtins import builtin_tools

    async def discard(event: Any) -> None:
        return None

    return AgentContext(
        model=model,
        tools=ToolRegistry(builtin_tools()),
        tool_context=ToolContext(workspace=workspace, job_id=f"spell-{name}", task_id=name),
        emit=discard,
        job_id=f"spell-{name}",
        task_id=name,
    )


def _check_tools(pkg: SpellPackage, ctx: AgentContext) -> None:
    missing = [t for t in pkg.tools if t not in ctx.tools]
    if missing:
        raise UsageError(
            f"{pkg.dir / 'spell.toml'}: tools: unknown tool {missing[0]!r} "
            f"(known: {', '.join(sorted(ctx.tools.names()))})"
        )


async def _run_package(ctx: AgentContext, pkg: SpellPackage, params: dict[str, Any]) -> Any:
    from planweave.spells._task import agent_of_package

    agent = agent_of_package(pkg, params)
    from planweave.spells._agent import run_spell

    return await run_spell(
        ctx,
        name=agent.name,
        language=agent.language,
        source=agent.source,
        filename=f"{pkg.entry}",
        params=agent.params,
        limits=agent.limits,
        tools=agent.tools,
    )


@spell_app.command("run")
def run_spell_command(
    name: Annotated[str, typer.Argument(help="The spell to run")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter, key=value")
    ] = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a spell with parameters and print what it returned."""
    from planweave.llm import load_model
    from planweave.spells._package import find_spell

    settings = settings_from(config, model=model)
    pkg = find_spell(name, settings.spell_folders())
    params = pkg.parse_params(param or [])
    workspace = (settings.workspace or Path.cwd()).expanduser()
    ctx = _context(load_model(settings.model), workspace, pkg.name)
    _check_tools(pkg, ctx)
    value = run_async(_run_package(ctx, pkg, params))
    if as_json:
        print_json(value)
    elif isinstance(value, str):
        typer.echo(value)
    else:
        typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


async def _run_test(pkg: SpellPackage, file: Path, text: str, model: Model) -> None:
    from planweave.spells import _agent  # noqa: F401  (registers every host op)
    from planweave.spells._host import SpellHost
    from planweave.spells._js import run_js
    from planweave.spells._lua import run_lua

    ctx = _context(model, pkg.dir, pkg.name)
    _check_tools(pkg, ctx)
    inner = SpellHost(ctx, name=f"{pkg.name}-test", params={}, tools=None)

    async def host(op: str, args: list[Any]) -> Any:
        if op == "spell.run":
            given = args[0] if args and isinstance(args[0], dict) else {}
            return await _run_package(ctx, pkg, given)
        return await inner(op, args)

    ops = [*inner.ops(), "spell.run"]
    chunk = f"{file}"
    if pkg.language == "lua":
        await run_lua(
            _LUA_TEST_PRELUDE + text, host=host, ops=ops, globals_=inner.globals(), chunk=chunk
        )
    else:
        await run_js(
            _JS_TEST_PRELUDE + text, host=host, ops=ops, globals_=inner.globals(), chunk=chunk
        )


def _test_model(pkg: SpellPackage) -> Model:
    """The scripted model of a spell's tests: ``tests/replies.yaml``, else one that says ok."""
    from planweave.llm import ScriptedModel

    replies = pkg.dir / "tests" / "replies.yaml"
    return (
        ScriptedModel.from_file(replies)
        if replies.is_file()
        else ScriptedModel([{"content": "ok", "repeat": True}])
    )


@spell_app.command("test")
def test_spells(
    name: Annotated[str | None, typer.Argument(help="Only this spell")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run each spell's tests (tests/*.lua|js) on the scripted model; exit 1 on a failure."""
    from planweave.errors import PlanweaveError
    from planweave.spells._package import discover_spells, find_spell

    folders = _folders(config)
    spells = [find_spell(name, folders)] if name else list(discover_spells(folders).values())
    passed = failed = 0
    for pkg in spells:
        files = pkg.test_files()
        if not files:
            typer.echo(f"{pkg.name}: no tests")
        for file in files:
            try:
                run_async(_run_test(pkg, file, file.read_text("utf-8"), _test_model(pkg)))
            except PlanweaveError as exc:
                failed += 1
                typer.echo(f"FAIL {pkg.name} {file.name}: {exc}")
            else:
                passed += 1
                typer.echo(f"ok   {pkg.name} {file.name}")
    typer.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)
