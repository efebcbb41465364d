"""Spells in a child process of their own: the same results and errors as in-process, host
calls carried out here, the child under resource limits, and this process unharmed by
anything the child does (a crash, a kill, a bomb)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from planweave.spells import (
    JsLimits,
    LuaLimits,
    SpellError,
    SpellLimitExceeded,
    SpellSyntaxError,
    run_isolated,
    run_script,
)

LUA = LuaLimits(instructions=50_000_000, memory_bytes=16 * 1024 * 1024, wall_s=1.5)
JS = JsLimits(memory_bytes=32 * 1024 * 1024, wall_s=1.5)


def _children() -> list[int]:
    """This process's spell children, by pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"planweave.spells._child" in cmdline:
            found.append(int(entry.name))
    return found


def _read(path: str) -> str:
    with open(path, "rb") as file:
        return file.read().decode(errors="replace")


class Host:
    def __init__(self, signal_: int | None = None) -> None:
        self.calls: list[tuple[str, list[Any]]] = []
        self.signal = signal_

    async def __call__(self, op: str, args: list[Any]) -> Any:
        self.calls.append((op, args))
        name = args[0] if args else None
        if name == "fail":
            raise SpellError("tool 'fail' failed: it always does")
        if name == "limits":
            (pid,) = _children()
            return _read(f"/proc/{pid}/limits")
        if name == "environ":
            (pid,) = _children()
            return _read(f"/proc/{pid}/environ")
        if name == "freeze":
            for pid in _children():
                os.kill(pid, signal.SIGSTOP)
            return None
        if name == "kill" and self.signal is not None:
            for pid in _children():
                os.kill(pid, self.signal)
            await asyncio.sleep(5)
        return {"tool": name, "args": args[1:]}


async def lua(source: str, host: Host | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("limits", LUA)
    return await run_isolated("lua", source, host=host or Host(), ops=["tools.call"], **kwargs)


async def js(source: str, host: Host | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("limits", JS)
    return await run_isolated("js", source, host=host or Host(), ops=["tools.call"], **kwargs)


async def test_an_isolated_spell_calls_the_host_in_this_process() -> None:
    host = Host()
    got = await lua(
        "local r = tools.call('fetch', { url = params.url })\nreturn { url = r.args[1].url }",
        host,
        globals_={"params": {"url": "https://example.org"}},
    )
    assert got == {"url": "https://example.org"}
    assert host.calls == [("tools.call", ["fetch", {"url": "https://example.org"}])]
    got = await js(
        "const rs = await Promise.all(['a', 'b'].map(n => tools.call(n, { n })));\n"
        "return rs.map(r => r.tool);"
    )
    assert got == ["a", "b"]


async def test_isolated_errors_are_the_same_as_in_process() -> None:
    with pytest.raises(SpellError, match=r"^main\.lua:2: the price is missing$"):
        await lua("local x = 1\nerror('the price is missing')")
    with pytest.raises(SpellSyntaxError, match=r"^main\.lua:1:"):
        await lua("local = 1")
    with pytest.raises(SpellError, match=r"^review\.js:1: Error: tool 'fail' failed"):
        await js("await tools.call('fail');", chunk="review.js")
    caught = await lua("local ok, err = pcall(tools.call, 'fail')\nreturn err")
    assert "tool 'fail' failed" in caught


@pytest.mark.parametrize(
    ("language", "source", "limit"),
    [
        ("lua", "while true do end", "instructions"),
        ("lua", "local s = string.rep('x', 2^28)", "memory"),
        ("lua", "local t = {} for i = 1, 1e9 do t[i] = {i} end", "memory"),
        ("lua", "for i = 1, 100 do tools.call('x') end", "host_calls"),
        ("js", "while (1) {}", "wall_time"),
        ("js", "const a = []; while (true) a.push('x'.repeat(1000) + a.length);", "memory"),
        ("js", "for (let i = 0; i < 100; i++) await tools.call('x');", "host_calls"),
    ],
)
async def test_isolated_spells_are_stopped_at_their_limits(
    language: str, source: str, limit: str
) -> None:
    limits: Any = (
        LuaLimits(instructions=50_000_000, memory_bytes=16 << 20, wall_s=1.5, host_calls=5)
        if language == "lua"
        else JsLimits(memory_bytes=32 << 20, wall_s=1.5, host_calls=5)
    )
    runner = lua if language == "lua" else js
    with pytest.raises(SpellLimitExceeded) as raised:
        await runner(source, limits=limits)
    assert raised.value.limit == limit
    assert _children() == []  # the child is gone


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_bombs_that_end_a_process_end_only_the_child_and_memory_stays_flat() -> None:
    # V8 ends the whole process on this one (a fatal out-of-memory): in-process it would take
    # the host with it.
    await js("return 1;")
    before = _rss_bytes()
    # A wall-clock limit well past the time the bomb needs to reach its memory cap, even on a
    # busy machine: what stops it must be the memory or CPU limit.
    roomy = JsLimits(memory_bytes=32 * 1024 * 1024, wall_s=30)
    for _ in range(2):
        with pytest.raises(SpellLimitExceeded) as raised:
            await js("return new Array(1e9).fill(0).length;", limits=roomy)
        assert raised.value.limit in ("memory", "cpu_time")
        with pytest.raises(SpellLimitExceeded):
            await lua("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end")
    assert _rss_bytes() - before < 16 * 1024 * 1024
    assert _children() == []
    assert await js("return 'still here';") == "still here"


@pytest.mark.parametrize("language", ["lua", "js"])
@pytest.mark.parametrize("signal_", [signal.SIGSEGV, signal.SIGKILL])
async def test_this_process_survives_the_child_crashing_or_being_killed(
    language: str, signal_: int
) -> None:
    runner = lua if language == "lua" else js
    call = "tools.call('kill')" if language == "lua" else "await tools.call('kill');"
    with pytest.raises(SpellError, match=f"ended with {signal.Signals(signal_).name}"):
        await runner(call, Host(signal_))
    assert _children() == []
    assert await runner("return 'still here'") == "still here"


@pytest.mark.parametrize("language", ["lua", "js"])
async def test_a_child_that_stops_answering_is_killed_at_the_wall_clock_limit(
    language: str,
) -> None:
    runner = lua if language == "lua" else js
    limits: Any = LuaLimits(wall_s=0.5) if language == "lua" else JsLimits(wall_s=0.5)
    with pytest.raises(SpellLimitExceeded) as raised:
        await runner(
            "tools.call('freeze')" if language == "lua" else "await tools.call('freeze');",
            limits=limits,
        )
    assert raised.value.limit == "wall_time"
    assert _children() == []  # killed, though it was stopped


async def test_the_child_runs_under_resource_limits_and_without_this_processs_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-parents-secret")
    limits = await lua("return tools.call('limits')")
    rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
    assert rows["Max file size"][:2] == ["0", "0"]  # no file can be written
    assert rows["Max open files"][0] == "64"
    assert rows["Max core file size"][0] == "0"
    assert rows["Max cpu time"][0] == "3"  # the wall-clock limit, rounded up, plus one
    assert rows["Max address space"][0] != "unlimited"
    environ = await js("return await tools.call('environ');")
    assert "sk-the-parents-secret" not in environ
    assert "OPENAI_API_KEY" not in environ


@pytest.mark.parametrize(
    ("language", "source"),
    [
        ("lua", "return python.eval('1')"),
        ("lua", "return os.execute('id')"),
        ("lua", "return io.open('/etc/passwd'):read('a')"),
        ("lua", "return require('os')"),
        ("lua", "return load(string.dump(function() end))"),
        ("lua", "return debug.getregistry()"),
        ("js", "await import('fs');"),
        ("js", "return process.env;"),
        ("js", "return require('fs');"),
    ],
)
async def test_the_sandbox_is_as_closed_in_the_child(language: str, source: str) -> None:
    runner = lua if language == "lua" else js
    with pytest.raises(SpellError) as raised:
        await runner(source)
    assert not isinstance(raised.value, SpellLimitExceeded | SpellSyntaxError)
    assert str(raised.value).startswith(f"main.{language}:1:")


async def test_run_script_runs_in_process_or_in_a_child_process() -> None:
    for isolation in ("inprocess", "subprocess"):
        got = await run_script(
            "lua",
            "return tools.call('x').tool",
            host=Host(),
            ops=["tools.call"],
            isolation=isolation,  # type: ignore[arg-type]
        )
        assert got == "x"
    with pytest.raises(SpellError, match="unknown spell isolation 'vm'"):
        await run_script("lua", "return 1", host=Host(), ops=[], isolation="vm")  # type: ignore[arg-type]
