"""Lua spells in their sandbox: host calls in and out, errors with the script's own line, and
the attacks a hostile script tries, each refused or stopped with the host unharmed."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from planweave.spells import LuaLimits, SpellError, SpellLimitExceeded, SpellSyntaxError, run_lua

SMALL = LuaLimits(instructions=20_000_000, memory_bytes=16 * 1024 * 1024, wall_s=10)


class Host:
    """Records the host calls a spell makes and answers them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []

    async def __call__(self, op: str, args: list[Any]) -> Any:
        self.calls.append((op, args))
        if op == "tools.call":
            name, arguments = args[0], (args[1] if len(args) > 1 else {})
            if name == "fail":
                raise SpellError("tool 'fail' failed: it always does")
            return {"tool": name, "args": arguments}
        return None


async def run(source: str, host: Host | None = None, **kwargs: Any) -> Any:
    kwargs.setdefault("limits", SMALL)
    return await run_lua(source, host=host or Host(), ops=["tools.call", "log.info"], **kwargs)


async def test_a_spell_calls_the_host_and_returns_plain_values() -> None:
    host = Host()
    result = await run(
        """
        local page = tools.call("http_fetch", { url = params.url, tries = 2 })
        log.info("fetched " .. page.args.url)
        return { url = page.args.url, tries = page.args.tries, list = params.list, empty = nil }
        """,
        host,
        globals_={"params": {"url": "https://example.org", "list": ["a", "b"]}},
    )
    assert result == {"url": "https://example.org", "tries": 2, "list": ["a", "b"]}
    assert host.calls == [
        ("tools.call", ["http_fetch", {"url": "https://example.org", "tries": 2}]),
        ("log.info", ["fetched https://example.org"]),
    ]


async def test_a_failed_host_call_is_a_lua_error_the_spell_can_catch() -> None:
    result = await run(
        """
        local ok, err = pcall(tools.call, "fail")
        return { ok = ok, err = err }
        """
    )
    assert result["ok"] is False
    assert "tool 'fail' failed" in result["err"]


async def test_host_calls_from_the_spells_own_coroutines_reach_the_host() -> None:
    host = Host()
    result = await run(
        """
        local co = coroutine.wrap(function(a)
          local got = tools.call("inner", { n = a })
          coroutine.yield(got.args.n + 1)
          return "end"
        end)
        return { co(41), co() }
        """,
        host,
    )
    assert result == [42, "end"]
    assert host.calls == [("tools.call", ["inner", {"n": 41}])]


async def test_errors_name_the_script_and_its_line() -> None:
    with pytest.raises(SpellError, match=r"^main\.lua:3: the price is missing$"):
        await run("local x = 1\nlocal y = 2\nerror('the price is missing')")
    with pytest.raises(SpellSyntaxError, match=r"summarize\.lua:2: .*near"):
        await run("local x = 1\nlocal = 2", chunk="summarize.lua")
    with pytest.raises(SpellError, match=r"main\.lua:2: attempt to call a nil value"):
        await run("local t = {}\nt.nothing()")


@pytest.mark.parametrize(
    "source",
    [
        "return python.eval('1')",
        "return python.builtins.open('/etc/passwd')",
        "return os.execute('id')",
        "return io.open('/etc/passwd'):read('a')",
        "return require('os')",
        "return load(string.dump(function() end))",
        "return debug.getregistry()",
        "return dofile('/etc/passwd')",
        "return collectgarbage('count')",
        "return package.loadlib('libc.so.6', 'system')",
        "return string.dump(print)",
        "return getmetatable('').__index.dump",
        "setmetatable('', {})",
        "return _G.os.execute('id')",
        "return _ENV.io.open('/etc/passwd')",
        "setmetatable({}, {__gc = function() while true do end end})",
        "return load('return 1')",
    ],
)
async def test_the_sandbox_has_no_way_out(source: str) -> None:
    with pytest.raises(SpellError) as raised:
        await run(source)
    assert not isinstance(raised.value, SpellSyntaxError)
    assert str(raised.value).startswith("main.lua:1:")


async def test_the_outside_globals_are_simply_absent() -> None:
    absent = await run(
        "return { python == nil, os == nil, io == nil, debug == nil, load == nil,"
        " require == nil, package == nil, getmetatable('') == false }"
    )
    assert absent == [True] * 8


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        ("while true do end", "instructions"),
        (
            "local co = coroutine.create(function() while true do end end)\ncoroutine.resume(co)",
            "instructions",
        ),
        ("local s = string.rep('x', 2^28)", "memory"),
        ("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end", "memory"),
        ("local function deep(n) return deep(n + 1) + 1 end return deep(1)", "memory"),
        (
            "local t = {}\nwhile true do pcall(function() t[#t + 1] = string.rep('y', 4096) end) end",
            "memory",
        ),
    ],
)
async def test_runaway_spells_are_stopped_at_their_limit(source: str, limit: str) -> None:
    with pytest.raises(SpellLimitExceeded) as raised:
        await run(source)
    assert raised.value.limit == limit


@pytest.mark.parametrize(
    "catch",
    ["pcall(spin)", "xpcall(spin, function(e) return e end)", "coroutine.wrap(spin)()"],
)
async def test_a_spell_cannot_catch_its_own_stop(catch: str) -> None:
    host = Host()
    with pytest.raises(SpellLimitExceeded) as raised:
        await run(
            f"local function spin() while true do end end\n{catch}\ntools.call('after')", host
        )
    assert raised.value.limit == "instructions"
    assert host.calls == []  # nothing after the stop ran


async def test_a_spell_past_its_wall_clock_limit_is_stopped() -> None:
    limits = LuaLimits(instructions=10**15, memory_bytes=16 * 1024 * 1024, wall_s=0.5)
    with pytest.raises(SpellLimitExceeded) as raised:
        await run("while true do end", limits=limits)
    assert raised.value.limit == "wall_time"


async def test_a_spell_past_its_host_call_limit_is_stopped() -> None:
    limits = LuaLimits(host_calls=5)
    with pytest.raises(SpellLimitExceeded) as raised:
        await run("for i = 1, 100 do tools.call('x') end", limits=limits)
    assert raised.value.limit == "host_calls"


async def test_pattern_matches_too_costly_to_interrupt_are_refused() -> None:
    with pytest.raises(SpellError, match="pattern too costly"):
        await run("local s = string.rep('a', 5000)\nlocal r = s:find('.-.-.-.-b')\nreturn r")
    # A plain find, or a modest pattern, still works.
    found = await run("local s = string.rep('a', 5000) .. 'b'\nreturn { s:find('b', 1, true) }")
    assert found == [5001, 5001]
    assert await run("return ('key=value'):match('(%w+)=(%w+)')") == ["key", "value"]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_the_host_survives_bombs_with_its_memory_flat() -> None:
    bombs = [
        "local s = string.rep('x', 2^28)",
        "local t = {} for i = 1, 1e9 do t[i] = {i} end",
        "local s = 'x' while true do s = s .. s end",
    ]
    await run("return 1")  # the first runtime loads the library
    before = _rss_bytes()
    for _ in range(3):
        for bomb in bombs:
            with pytest.raises(SpellLimitExceeded):
                await run(bomb)
    # Each bomb is held to 16 MiB and its runtime is freed after it.
    assert _rss_bytes() - before < 64 * 1024 * 1024
    assert await run("return 'still here'") == "still here"


async def test_spells_run_at_once_and_never_block_the_event_loop() -> None:
    arrived = 0
    both = asyncio.Event()

    class Meeting(Host):
        async def __call__(self, op: str, args: list[Any]) -> Any:
            nonlocal arrived
            arrived += 1
            if arrived == 2:
                both.set()
            await asyncio.wait_for(both.wait(), 10)  # only returns once both spells are here
            return "met"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        busy = run("while true do end")  # computes in its thread until its budget ends
        first = run("return tools.call('a')", Meeting())
        second = run("return tools.call('b')", Meeting())
        results = await asyncio.gather(busy, first, second, return_exceptions=True)
    finally:
        ticking.cancel()
    assert isinstance(results[0], SpellLimitExceeded)
    assert results[1:] == ["met", "met"]
    assert ticks > 10  # the loop kept turning while the busy spell computed


async def test_math_random_is_seeded_so_a_rerun_draws_the_same() -> None:
    source = "return { math.random(1, 10^9), math.random(1, 10^9) }"
    assert await run(source, seed=7) == await run(source, seed=7)
    assert await run(source, seed=7) != await run(source, seed=8)
