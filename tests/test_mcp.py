"""MCP tools in real jobs: a server written with the ``mcp`` package, over stdio and HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from planweave import Engine, Plan, TaskSpec
from planweave.errors import ConfigError
from planweave.llm import ScriptedModel
from planweave.mcp import McpSettings, McpTool, approve_server, check_definition, mcp_tools
from planweave.tools import ToolContext, ToolRegistry, invoke
from planweave.tools._tool import is_high_impact

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def stdio_settings(tmp_path: Path, **extra: Any) -> McpSettings:
    args = [SERVER, "--changed-if", str(tmp_path / "changed")]
    return McpSettings.model_validate(
        {"servers": {"calc": {"command": sys.executable, "args": args, **extra}}}
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_http_server(port: int, *flags: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the MCP test server did not start")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = start_http_server(port)
    yield port, proc
    proc.kill()
    proc.wait()


def one_task_plan(goal: str) -> Plan:
    return Plan(tasks=(TaskSpec(id="a", kind="execute", goal=goal),))


def engine_with(tmp_path: Path, tools: list[McpTool], replies: list[dict[str, Any]]) -> Engine:
    return Engine(
        store=f"sqlite:///{tmp_path / 'jobs.db'}",
        model=ScriptedModel(replies=replies),
        data_dir=tmp_path / "data",
        tools=tools,
    )


async def test_an_agent_calls_a_stdio_server_tool_in_a_job(tmp_path: Path) -> None:
    settings = stdio_settings(tmp_path)
    data = tmp_path / "data"
    await approve_server("calc", settings, data)
    replies = [
        {"tool_calls": [{"name": "calc__add", "arguments": {"a": 20, "b": 22}}]},
        {"content": "the sum is 42"},
    ]
    async with engine_with(tmp_path, mcp_tools(settings, data), replies) as engine:
        result = await engine.run(plan=one_task_plan("Add 20 and 22"))
        assert result.ok, result.error
        calls = [e for e in await engine.events(result.job_id) if e.type == "ToolCalled"]
        assert [(c.name, c.outcome) for c in calls] == [("calc__add", "ok")]
        assert "42" in calls[0].result
        assert engine.tools.get("calc__add").server.connection.starts == 1  # type: ignore[attr-defined]
    # The engine stopped the server with itself.
    assert engine.tools.get("calc__add").server.connection.status == "closed"  # type: ignore[attr-defined]


async def test_an_agent_calls_a_streamable_http_server_tool_in_a_job(
    tmp_path: Path, http_server: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, _ = http_server
    settings = McpSettings.model_validate(
        {"servers": {"web": {"url": f"http://127.0.0.1:{port}/mcp"}}}
    )
    data = tmp_path / "data"
    await approve_server("web", settings, data)
    replies = [
        {"tool_calls": [{"name": "web__add", "arguments": {"a": 1, "b": 2}}]},
        {"content": "3"},
    ]
    async with engine_with(tmp_path, mcp_tools(settings, data), replies) as engine:
        result = await engine.run(plan=one_task_plan("Add 1 and 2"))
        assert result.ok, result.error
        calls = [e for e in await engine.events(result.job_id) if e.type == "ToolCalled"]
        assert [(c.name, c.outcome, c.result) for c in calls] == [
            ("web__add", "ok", '{"result": 3}')
        ]


async def test_unapproved_servers_offer_no_tools(tmp_path: Path) -> None:
    assert mcp_tools(stdio_settings(tmp_path), tmp_path / "data") == []


async def test_a_changed_definition_is_disabled_until_approved_again(tmp_path: Path) -> None:
    settings = stdio_settings(tmp_path)
    data = tmp_path / "data"
    await approve_server("calc", settings, data)
    (tmp_path / "changed").touch()  # the server now starts with a different schema for add
    registry = ToolRegistry(mcp_tools(settings, data))
    ctx = ToolContext(workspace=tmp_path)
    try:
        result = await invoke(registry, "calc__add", {"a": 1, "b": 2}, ctx)
        assert not result.ok
        assert "disabled" in (result.error or "") and "changed" in (result.error or "")
        assert "planweave mcp approve calc" in (result.error or "")
        # Its other tools, unchanged, still work.
        assert (await invoke(registry, "calc__wipe", {"what": "x"}, ctx)).ok
    finally:
        await registry.aclose()
    await approve_server("calc", settings, data)
    registry = ToolRegistry(mcp_tools(settings, data))
    try:
        again = await invoke(registry, "calc__add", {"a": 1, "b": 2, "c": 3}, ctx)
        assert again.ok, again.error
        assert again.value == {"result": 6}
    finally:
        await registry.aclose()


async def test_a_server_that_dies_fails_as_an_observation_then_restarts(tmp_path: Path) -> None:
    settings = stdio_settings(tmp_path)
    data = tmp_path / "data"
    await approve_server("calc", settings, data)
    registry = ToolRegistry(mcp_tools(settings, data))
    ctx = ToolContext(workspace=tmp_path)
    connection = registry.get("calc__add").server.connection  # type: ignore[attr-defined]
    try:
        assert (await invoke(registry, "calc__add", {"a": 1, "b": 1}, ctx)).ok
        died = await invoke(registry, "calc__crash", {}, ctx)
        assert not died.ok and died.retryable
        assert "stopped answering" in (died.error or "")
        for _ in range(300):  # the supervisor starts it again after its backoff
            result = await invoke(registry, "calc__add", {"a": 2, "b": 2}, ctx)
            if result.ok:
                break
            assert result.retryable, result.error
            await asyncio.sleep(0.05)
        assert result.ok and result.value == {"result": 4}
        assert connection.starts == 2
    finally:
        await registry.aclose()


async def test_tokens_and_secrets_are_not_forwarded_to_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANWEAVE_TOKENS", "alice:secret-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    settings = stdio_settings(tmp_path, env={"GREETING": "hello"})
    data = tmp_path / "data"
    await approve_server("calc", settings, data)
    registry = ToolRegistry(mcp_tools(settings, data))
    try:
        result = await invoke(registry, "calc__environment", {}, ToolContext(workspace=tmp_path))
    finally:
        await registry.aclose()
    assert result.ok, result.error
    env = result.value
    assert env["GREETING"] == "hello"
    assert not [key for key in env if key.startswith("PLANWEAVE_")]
    assert "OPENAI_API_KEY" not in env
    assert "secret-token" not in repr(env) and "sk-should-not-leak" not in repr(env)
    assert os.environ["PLANWEAVE_TOKENS"] == "alice:secret-token"


async def test_destructive_and_configured_tools_are_high_impact(tmp_path: Path) -> None:
    settings = stdio_settings(tmp_path, high_impact=["add"])
    data = tmp_path / "data"
    await approve_server("calc", settings, data)
    tools = {tool.name: tool for tool in mcp_tools(settings, data)}
    assert is_high_impact(tools["calc__wipe"], {})  # destructiveHint
    assert is_high_impact(tools["calc__add"], {})  # named in high_impact
    assert not is_high_impact(tools["calc__environment"], {})
    assert tools["calc__add"].display_name == "calc.add"
    assert "calc" in tools["calc__add"].sandbox


def test_a_command_that_does_not_exist_is_one_clear_error() -> None:
    settings = McpSettings.model_validate(
        {"servers": {"ghost": {"command": "no-such-mcp-server-binary"}}}
    )
    with pytest.raises(ConfigError, match=r"'ghost'.*'no-such-mcp-server-binary' not found"):
        mcp_tools(settings, Path("unused"))


def test_a_definition_that_is_not_json_schema_is_refused() -> None:
    bad = {"name": "oops", "inputSchema": {"type": "objekt"}}
    problem = check_definition("srv", bad)
    assert problem is not None and "'oops'" in problem and "not valid JSON Schema" in problem
    assert check_definition("srv", {"name": "ok", "inputSchema": {"type": "object"}}) is None


def test_a_server_needs_a_command_or_a_url() -> None:
    with pytest.raises(ValueError, match="either command"):
        McpSettings.model_validate({"servers": {"x": {"args": ["a"]}}})
    with pytest.raises(ValueError, match="bad MCP server name"):
        McpSettings.model_validate({"servers": {"a_b": {"command": "x"}}})


async def test_in_a_job_a_disabled_tool_and_a_dying_server_are_observations(
    tmp_path: Path,
) -> None:
    settings = stdio_settings(tmp_path)
    data = tmp_path / "data"
    await approve_server("calc", settings, data)
    (tmp_path / "changed").touch()
    replies = [
        {"tool_calls": [{"name": "calc__add", "arguments": {"a": 1, "b": 2}}]},
        {"tool_calls": [{"name": "calc__crash", "arguments": {}}]},
        {"content": "the calculator is unavailable"},
    ]
    async with engine_with(tmp_path, mcp_tools(settings, data), replies) as engine:
        result = await engine.run(plan=one_task_plan("Add 1 and 2"))
        assert result.ok, result.error
        assert result.result == "the calculator is unavailable"
        calls = [e for e in await engine.events(result.job_id) if e.type == "ToolCalled"]
        assert [(c.name, c.outcome) for c in calls] == [
            ("calc__add", "error"),
            ("calc__crash", "error"),
        ]
        assert "is disabled: its definition changed" in (calls[0].error or "")
        assert "stopped answering" in (calls[1].error or "")
