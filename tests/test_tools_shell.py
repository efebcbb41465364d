"""The shell tool: off by default, allowlisted programs only, no shell, limits on time and
output, no secrets from the engine's environment."""

from __future__ import annotations

import asyncio
import shutil
import zipfile
from pathlib import Path

import pytest

from planweave import Engine, Plan, TaskSpec
from planweave.config import load_settings
from planweave.errors import ConfigError
from planweave.llm import ScriptedModel
from planweave.tools import ToolContext, ToolRegistry, ToolResult, builtin_tools, invoke, tool
from planweave.tools._tool import is_high_impact

pytestmark = pytest.mark.skipif(
    shutil.which("sh") is None or shutil.which("echo") is None, reason="needs sh and echo"
)


def ctx_for(ws: Path, *commands: str) -> ToolContext:
    return ToolContext(workspace=ws, shell_commands=commands)


async def call(ctx: ToolContext, **args: object) -> ToolResult:
    return await invoke(ToolRegistry(builtin_tools()), "shell", args, ctx)


async def test_runs_an_allowed_command_in_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("x")
    result = await call(ctx_for(tmp_path, "ls", "echo"), command=["ls"])
    assert result.ok, result.error
    assert result.value == {
        "exit_code": 0,
        "stdout": "here.txt\n",
        "stderr": "",
        "truncated": False,
    }
    failed = await call(ctx_for(tmp_path, "ls"), command=["ls", "missing"])
    assert failed.ok and failed.value["exit_code"] != 0 and "missing" in failed.value["stderr"]


async def test_stdin_reaches_the_program(tmp_path: Path) -> None:
    result = await call(ctx_for(tmp_path, "cat"), command=["cat"], stdin="from stdin")
    assert result.value["stdout"] == "from stdin"


async def test_off_without_allowed_commands(tmp_path: Path) -> None:
    result = await call(ToolContext(workspace=tmp_path), command=["echo", "hi"])
    assert (result.ok, result.error_type) == (False, "policy")
    assert "shell tool is off" in (result.error or "")


@pytest.mark.parametrize(
    "command", [["rm", "-rf", "."], ["sh", "-c", "echo hi"], ["/bin/echo", "hi"], ["./echo"]]
)
async def test_commands_outside_the_allowlist_are_refused(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "keep.txt").write_text("keep")
    result = await call(ctx_for(tmp_path, "echo"), command=command)
    assert (result.ok, result.error_type) == (False, "policy"), result.error
    assert "not allowed" in (result.error or "")
    assert (tmp_path / "keep.txt").exists()


@pytest.mark.parametrize(
    "argument",
    ["hi; touch pwned", "$(touch pwned)", "`touch pwned`", "a && touch pwned", "x | touch pwned"],
)
async def test_metacharacters_are_passed_literally(tmp_path: Path, argument: str) -> None:
    result = await call(ctx_for(tmp_path, "echo"), command=["echo", argument])
    assert result.ok, result.error
    assert result.value["stdout"] == argument + "\n"
    assert not (tmp_path / "pwned").exists()


async def test_environment_carries_no_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("PLANWEAVE_TOKENS", "alice:tok-secret")
    result = await call(ctx_for(tmp_path, "env"), command=["env"])
    assert result.ok, result.error
    assert "secret" not in result.value["stdout"]
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in result.value["stdout"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a killed child its new parent has not reaped yet is gone too


async def test_a_command_that_runs_too_long_is_killed_with_its_children(tmp_path: Path) -> None:
    # sh starts a background sleep that would outlive it; the whole group is killed.
    script = "sleep 60 >/dev/null 2>&1 & echo $!; exec sleep 60"
    result = await call(ctx_for(tmp_path, "sh"), command=["sh", "-c", script], timeout_s=0.5)
    assert result.ok, result.error
    assert result.value["timed_out"] is True
    assert "killed after 0.5 s" in result.value["stderr"]
    child = int(result.value["stdout"])
    for _ in range(100):  # the kill is sent; wait until the process has ended
        if not _alive(child):
            break
        await asyncio.sleep(0.05)
    assert not _alive(child)


async def test_huge_output_is_truncated(tmp_path: Path) -> None:
    script = "head -c 1000000 /dev/zero | tr '\\0' 'a'"
    result = await call(ctx_for(tmp_path, "sh"), command=["sh", "-c", script])
    assert result.ok, result.error
    assert result.value["truncated"] is True
    assert len(result.value["stdout"]) == 64 * 1024
    assert result.value["exit_code"] == 0


def test_shell_is_high_impact() -> None:
    tool = ToolRegistry(builtin_tools()).get("shell")
    assert is_high_impact(tool, {"command": ["ls"]})


async def test_engine_offers_shell_only_when_commands_are_allowed(tmp_path: Path) -> None:
    off = Engine(store="memory://", data_dir=tmp_path)
    on = Engine(store="memory://", data_dir=tmp_path, shell_commands=["ls"])
    try:
        assert "shell" not in off.tools.names()
        assert "shell" in on.tools.names()
        assert "delete_file" in off.tools.names()
    finally:
        await off.close()
        await on.close()


def test_settings_shell_commands(tmp_path: Path) -> None:
    config = tmp_path / "planweave.toml"
    config.write_text('shell_commands = ["git", "/usr/bin/ls"]\n')
    settings = load_settings({}, env={}, config_file=config)
    assert settings.shell_commands == ("git", "/usr/bin/ls")
    assert settings.engine_kwargs(with_tools=False)["shell_commands"] == ("git", "/usr/bin/ls")
    from_env = load_settings({}, env={"PLANWEAVE_SHELL_COMMANDS": "git,ls"}, config_file=config)
    assert from_env.shell_commands == ("git", "ls")
    config.write_text('shell_commands = ["bin/evil"]\n')
    with pytest.raises(ConfigError, match="shell_commands"):
        load_settings({}, env={}, config_file=config)


@tool
def allowed_programs(ctx: ToolContext) -> str:
    """The programs this call's shell tool may run."""
    return ",".join(ctx.shell_commands)


async def test_a_job_runs_the_builtins_with_the_engines_shell_commands(tmp_path: Path) -> None:
    """Through the workers of a real engine: the file and archive tools work in the job's
    workspace, and a tool's context carries the engine's shell_commands."""
    plan = Plan(
        tasks=(
            TaskSpec(
                id="w", kind="tool", tool="write_file", args={"path": "a.txt", "content": "hi"}
            ),
            TaskSpec(
                id="z",
                kind="tool",
                tool="archive_create",
                args={"path": "out.zip", "sources": ["a.txt"]},
                depends_on=("w",),
            ),
            TaskSpec(id="s", kind="tool", tool="allowed_programs", depends_on=("z",)),
        )
    )
    engine = Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=[]),
        data_dir=tmp_path / "data",
        tools=[allowed_programs],
        shell_commands=["echo", "ls"],
    )
    async with engine:
        result = await engine.run(plan=plan)
    assert result.ok, result.error
    assert result.result == "echo,ls"
    (archive,) = (tmp_path / "data").rglob("out.zip")
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("a.txt") == b"hi"
